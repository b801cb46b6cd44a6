//! The bridge to OpenTelemetry: without the `otel` feature, spans get their W3C ids from
//! [`TraceContext::child`] and no OpenTelemetry context exists.

use super::TraceContext;

/// The context of a span continuing `parent`: a child with a fresh span id.
pub(super) fn link(_span: &tracing::Span, parent: &TraceContext) -> TraceContext {
    parent.child()
}

/// The active OpenTelemetry span's context; never one without the `otel` feature.
pub(super) fn current() -> Option<TraceContext> {
    None
}
