//! The OpenTelemetry glue of the trace context (feature `otel`), through `tracing-opentelemetry`:
//! a Prom span joins the event's stored trace as an exported span whose remote parent is the
//! stored `traceparent`, and its own exported span id becomes the parent of what the work inside
//! it publishes; a publish inside a user's exported span stores that span's context.
//!
//! Every function answers `None` when no `tracing-opentelemetry` layer records the span (none
//! installed, or filtered out), so the callers keep their OpenTelemetry-free behaviour.

use super::TraceContext;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Makes `parent` the remote OpenTelemetry parent of `span` and returns the position of the
/// exported span itself: `parent`'s trace and `tracestate`, the exported span id and flags.
pub(crate) fn join(span: &tracing::Span, parent: &TraceContext) -> Option<TraceContext> {
    if span.is_disabled() {
        return None;
    }
    let remote = opentelemetry::Context::new().with_remote_span_context(span_context(parent));
    // Fails when no OpenTelemetry layer records this span (or it already started elsewhere).
    span.set_parent(remote).ok()?;
    let own = exported(span)?;
    // A started span keeps the parent it had: only a span of the event's trace continues it.
    (own.trace_id().to_bytes() == parent.trace_id).then(|| TraceContext {
        span_id: own.span_id().to_bytes(),
        flags: own.trace_flags().to_u8(),
        ..parent.clone()
    })
}

/// The position of the current `tracing` span as OpenTelemetry exports it (with its
/// `tracestate`), or `None` outside any exported span.
pub(crate) fn current_span() -> Option<TraceContext> {
    let span = tracing::Span::current();
    if span.is_none() {
        return None;
    }
    let own = exported(&span)?;
    let state = own.trace_state().header();
    let context = TraceContext::from_ids(
        own.trace_id().to_bytes(),
        own.span_id().to_bytes(),
        own.trace_flags().to_u8(),
    )?;
    Some(context.with_state(Some(&state), "the current OpenTelemetry span"))
}

/// The span context OpenTelemetry exports `span` with (starting it if it has not started), or
/// `None` when no OpenTelemetry layer records it.
fn exported(span: &tracing::Span) -> Option<SpanContext> {
    let context = span.context();
    let own = context.span();
    let own = own.span_context();
    own.is_valid().then(|| own.clone())
}

/// `context` as a remote OpenTelemetry span context. A `tracestate` that OpenTelemetry's
/// stricter grammar refuses is left out of the parent (it stays in the event's headers).
fn span_context(context: &TraceContext) -> SpanContext {
    let state = context.state().and_then(|state| state.parse::<TraceState>().ok()).unwrap_or_default();
    SpanContext::new(
        TraceId::from_bytes(context.trace_id),
        SpanId::from_bytes(context.span_id),
        TraceFlags::new(context.flags),
        true,
        state,
    )
}
