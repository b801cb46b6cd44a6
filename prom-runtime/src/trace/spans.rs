//! The `tracing` spans the runner and the projectors open around an event: `prom.handle` per
//! handler attempt and `prom.dead_letter` when the event is given up on. Each continues the
//! event's stored trace: its W3C context is a child of the stored `traceparent` (with the `otel`
//! feature and an OpenTelemetry layer, the exported span's own id, its remote parent the stored
//! one), and it is the current [`TraceContext`] while the work runs, so what the handler
//! publishes continues it.

use super::TraceContext;
use crate::record::EventRecord;
use std::future::Future;
use tracing::Instrument;
use tracing::field::{Empty, display};

/// Where spans are recorded, so `PROM_LOG=prom_runtime::trace=...` can select them.
pub(crate) const TARGET: &str = "prom_runtime::trace";

/// A span and the trace context the work inside it runs in.
pub(crate) struct Traced {
    /// The `tracing` span.
    pub(crate) span: tracing::Span,
    /// The span's W3C position (`None` when the event carries no trace).
    pub(crate) context: Option<TraceContext>,
}

impl Traced {
    /// The `prom.handle` span of attempt `attempt` at `record` by `consumer`.
    pub(crate) fn handle(
        consumer: &str,
        record: &EventRecord,
        attempt: u32,
        stored: Option<&TraceContext>,
    ) -> Traced {
        let span = tracing::info_span!(
            target: TARGET, "prom.handle",
            consumer, topic = %record.topic, partition = record.partition, offset = record.offset,
            event_id = %record.id, attempt, trace_id = Empty, parent_span_id = Empty, span_id = Empty,
        );
        Traced::continuing(span, stored)
    }

    /// The `prom.dead_letter` span of `record`, given up on by `consumer` after `attempts`.
    pub(crate) fn dead_letter(
        consumer: &str,
        record: &EventRecord,
        attempts: u32,
        stored: Option<&TraceContext>,
    ) -> Traced {
        let span = tracing::info_span!(
            target: TARGET, "prom.dead_letter",
            consumer, topic = %record.topic, partition = record.partition, offset = record.offset,
            event_id = %record.id, attempts, trace_id = Empty, parent_span_id = Empty, span_id = Empty,
        );
        Traced::continuing(span, stored)
    }

    fn continuing(span: tracing::Span, stored: Option<&TraceContext>) -> Traced {
        let context = stored.map(|parent| {
            let child = super::join_exported(&span, parent).unwrap_or_else(|| parent.child());
            if !span.is_disabled() {
                span.record("trace_id", display(child.trace_id_hex()));
                span.record("parent_span_id", display(parent.span_id_hex()));
                span.record("span_id", display(child.span_id_hex()));
            }
            child
        });
        Traced { span, context }
    }

    /// Runs the synchronous `work` inside the span, with its context current (when the event
    /// carries one): a future polled by hand this way sees what [`Traced::run`] gives it.
    pub(crate) fn in_scope<R>(&self, work: impl FnOnce() -> R) -> R {
        let _entered = self.span.enter();
        match &self.context {
            Some(context) => super::CURRENT.sync_scope(context.clone(), work),
            None => work(),
        }
    }

    /// Runs `work` inside the span, with its context current (when the event carries one).
    pub(crate) async fn run<F: Future>(self, work: F) -> F::Output {
        match self.context {
            Some(context) => context.scope(work).instrument(self.span).await,
            None => work.instrument(self.span).await,
        }
    }
}
