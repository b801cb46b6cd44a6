//! W3C trace context through events, without OpenTelemetry: the `traceparent` (and `tracestate`)
//! of the publishing context is stored in each event's headers, and the runner restores it
//! around the handler, so a trace follows an event from publish to handler and on to the events
//! the handler publishes.
//!
//! The publishing context is, in order: [`crate::PublishOptions::trace`] when the caller gives
//! one (the gateway's `traceparent` request header, `prom publish --traceparent`); else the
//! context of the handler being run ([`TraceContext::current`], a `tokio` task-local the runner
//! sets around each attempt); else, with the `otel` feature, the current `tracing` span when an
//! OpenTelemetry layer exports it; else, only when [`set_new_traces`] switched it on, a new
//! trace. Otherwise nothing is stored: an untraced system pays no header bytes.
//!
//! Incoming trace headers are parsed strictly (W3C Trace Context level 1: version `00`,
//! lowercase hex, non-zero ids); a malformed one is ignored with a `tracing` warning and never
//! fails a publish.

use crate::record::Headers;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

/// Header holding the W3C `traceparent` of the context that published the event.
pub const TRACEPARENT: &str = "traceparent";
/// Header holding the W3C `tracestate` that came with [`TRACEPARENT`], when there was one.
pub const TRACESTATE: &str = "tracestate";

/// The longest `tracestate` carried (the W3C spec asks propagators to keep at least 512
/// characters); a longer one is dropped with a warning rather than cut mid-entry.
pub const MAX_TRACESTATE: usize = 512;

/// The sampled bit of the trace flags.
const SAMPLED: u8 = 0x01;

#[cfg(feature = "otel")]
mod otel;
pub(crate) mod spans;

#[cfg(feature = "otel")]
use otel::{current_span as exported_span, join as join_exported};

/// Without the `otel` feature no span is exported, so none is current.
#[cfg(not(feature = "otel"))]
fn exported_span() -> Option<TraceContext> {
    None
}

/// Without the `otel` feature a span never joins an exported trace.
#[cfg(not(feature = "otel"))]
fn join_exported(_span: &tracing::Span, _parent: &TraceContext) -> Option<TraceContext> {
    None
}

tokio::task_local! {
    static CURRENT: TraceContext;
}

static NEW_TRACES: AtomicBool = AtomicBool::new(false);

/// Whether a publish outside any trace context starts a new trace (default: off, so events of
/// an untraced system carry no trace headers). Process-wide; the `prom` binary switches it on
/// when `PROM_NEW_TRACES=1`.
pub fn set_new_traces(enabled: bool) {
    NEW_TRACES.store(enabled, Ordering::Relaxed);
}

/// Whether [`set_new_traces`] is on.
pub fn new_traces() -> bool {
    NEW_TRACES.load(Ordering::Relaxed)
}

/// One position in a trace: its trace id, the id of the span that is the parent of what
/// happens next, the trace flags and the vendors' `tracestate`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TraceContext {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    flags: u8,
    state: Option<String>,
}

/// Why a `traceparent` value is not W3C Trace Context.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TraceParentError {
    /// Not four `-`-separated fields of the right lengths.
    #[error(
        "it is not `VERSION-TRACEID-PARENTID-FLAGS` with 2, 32, 16 and 2 hex digits \
         (e.g. 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01)"
    )]
    Shape,
    /// A field is not lowercase hex.
    #[error("its {field} is not lowercase hex")]
    NotHex {
        /// `version`, `trace id`, `parent id` or `flags`.
        field: &'static str,
    },
    /// Version `ff`, which the spec forbids.
    #[error("its version is `ff`, which is invalid")]
    ForbiddenVersion,
    /// Version `00` with trailing data.
    #[error("version 00 has exactly 55 characters, this one has {0}")]
    TrailingData(usize),
    /// The all-zero trace id.
    #[error("its trace id is all zeros")]
    ZeroTraceId,
    /// The all-zero parent id.
    #[error("its parent id is all zeros")]
    ZeroParentId,
}

impl TraceContext {
    /// Parses a W3C `traceparent`. Version `00` must be exactly 55 characters; a higher version
    /// is read by its first four fields (forward compatibility, as the spec asks).
    pub fn parse(traceparent: &str) -> Result<TraceContext, TraceParentError> {
        let text = traceparent.as_bytes();
        if text.len() < 55 || text[2] != b'-' || text[35] != b'-' || text[52] != b'-' {
            return Err(TraceParentError::Shape);
        }
        let version = hex_field::<1>(&text[0..2], "version")?[0];
        if version == 0xff {
            return Err(TraceParentError::ForbiddenVersion);
        }
        if version == 0 && text.len() != 55 {
            return Err(TraceParentError::TrailingData(text.len()));
        }
        if text.len() > 55 && text[55] != b'-' {
            return Err(TraceParentError::Shape);
        }
        let trace_id = hex_field::<16>(&text[3..35], "trace id")?;
        let span_id = hex_field::<8>(&text[36..52], "parent id")?;
        let flags = hex_field::<1>(&text[53..55], "flags")?[0];
        if trace_id == [0; 16] {
            return Err(TraceParentError::ZeroTraceId);
        }
        if span_id == [0; 8] {
            return Err(TraceParentError::ZeroParentId);
        }
        // Only version 00's flags are known; a later version's other bits are not ours to keep.
        let flags = if version == 0 { flags } else { flags & SAMPLED };
        Ok(TraceContext { trace_id, span_id, flags, state: None })
    }

    /// The context in incoming trace headers, or `None` (with a `tracing` warning naming
    /// `source`) when `traceparent` is malformed: a bad trace header never fails a publish.
    /// A `tracestate` without a valid `traceparent` is dropped, as the spec says.
    pub fn accept(traceparent: Option<&str>, tracestate: Option<&str>, source: &str) -> Option<TraceContext> {
        let text = traceparent?;
        match TraceContext::parse(text.trim()) {
            Ok(context) => Some(context.with_state(tracestate, source)),
            Err(error) => {
                tracing::warn!(
                    source, traceparent = %shorten(text), %error,
                    "ignoring a malformed traceparent: {error}"
                );
                None
            }
        }
    }

    /// The context stored in an event's headers, if any (a malformed one is ignored with a
    /// warning).
    pub fn from_headers(headers: &Headers) -> Option<TraceContext> {
        let parent = headers.get(TRACEPARENT)?;
        TraceContext::accept(Some(parent), headers.get(TRACESTATE).map(String::as_str), "a stored event")
    }

    /// A new trace (random trace and span ids, sampled).
    pub fn new_root() -> TraceContext {
        TraceContext { trace_id: random_trace_id(), span_id: random_span_id(), flags: SAMPLED, state: None }
    }

    /// A child position: the same trace, flags and state, a new span id whose parent is this
    /// context's span.
    pub fn child(&self) -> TraceContext {
        TraceContext { span_id: random_span_id(), ..self.clone() }
    }

    /// The context built from raw ids (e.g. an OpenTelemetry span context); `None` if either id
    /// is all zeros.
    pub fn from_ids(trace_id: [u8; 16], span_id: [u8; 8], flags: u8) -> Option<TraceContext> {
        (trace_id != [0; 16] && span_id != [0; 8]).then_some(TraceContext {
            trace_id,
            span_id,
            flags,
            state: None,
        })
    }

    /// This context with `tracestate` (kept only when it is printable ASCII of at most
    /// [`MAX_TRACESTATE`] characters; otherwise dropped with a warning naming `source`).
    pub fn with_state(mut self, tracestate: Option<&str>, source: &str) -> TraceContext {
        self.state = match tracestate.map(str::trim) {
            None | Some("") => None,
            Some(state)
                if state.len() <= MAX_TRACESTATE && state.bytes().all(|b| (0x20..0x7f).contains(&b)) =>
            {
                Some(state.to_owned())
            }
            Some(state) => {
                tracing::warn!(
                    source, tracestate = %shorten(state),
                    "ignoring a tracestate that is not printable ASCII of at most {MAX_TRACESTATE} characters"
                );
                None
            }
        };
        self
    }

    /// The trace id.
    pub fn trace_id(&self) -> [u8; 16] {
        self.trace_id
    }

    /// The span id: the parent of whatever continues from this context.
    pub fn span_id(&self) -> [u8; 8] {
        self.span_id
    }

    /// The trace flags (bit 0: sampled).
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// Whether the caller sampled the trace.
    pub fn sampled(&self) -> bool {
        self.flags & SAMPLED != 0
    }

    /// The vendors' `tracestate`, if any.
    pub fn state(&self) -> Option<&str> {
        self.state.as_deref()
    }

    /// The trace id as 32 lowercase hex digits.
    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }

    /// The span id as 16 lowercase hex digits.
    pub fn span_id_hex(&self) -> String {
        hex(&self.span_id)
    }

    /// The W3C `traceparent` (version 00).
    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-{:02x}", self.trace_id_hex(), self.span_id_hex(), self.flags)
    }

    /// Writes [`TRACEPARENT`] (and [`TRACESTATE`] when there is one) into `headers`.
    pub fn inject(&self, headers: &mut Headers) {
        headers.insert(TRACEPARENT.to_owned(), self.traceparent());
        if let Some(state) = &self.state {
            headers.insert(TRACESTATE.to_owned(), state.clone());
        }
    }

    /// The context of the handler attempt running on this task, if any.
    pub fn current() -> Option<TraceContext> {
        CURRENT.try_with(Clone::clone).ok()
    }

    /// Runs `future` with this context as [`TraceContext::current`]: what it publishes
    /// continues this trace, with this context's span as parent.
    pub async fn scope<F: Future>(self, future: F) -> F::Output {
        CURRENT.scope(self, future).await
    }
}

impl fmt::Display for TraceContext {
    /// The `traceparent`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "00-{}-{}-{:02x}", self.trace_id_hex(), self.span_id_hex(), self.flags)
    }
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceContext")
            .field("traceparent", &self.traceparent())
            .field("tracestate", &self.state)
            .finish()
    }
}

/// The context a publish stores: the caller's, else the current handler's, else the current
/// exported OpenTelemetry span's (feature `otel`), else a new trace when [`set_new_traces`] is on.
pub(crate) fn for_publish(explicit: Option<&TraceContext>) -> Option<TraceContext> {
    if let Some(context) = explicit {
        return Some(context.clone());
    }
    if let Some(context) = TraceContext::current() {
        return Some(context);
    }
    if let Some(context) = exported_span() {
        return Some(context);
    }
    new_traces().then(TraceContext::new_root)
}

/// `N` bytes from `2 * N` lowercase hex digits.
fn hex_field<const N: usize>(text: &[u8], field: &'static str) -> Result<[u8; N], TraceParentError> {
    let mut out = [0; N];
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        let (Some(high), Some(low)) = (nibble(pair[0]), nibble(pair[1])) else {
            return Err(TraceParentError::NotHex { field });
        };
        *byte = high << 4 | low;
    }
    Ok(out)
}

fn nibble(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// A random trace id: a v4 UUID's bytes (122 random bits, never all zeros).
fn random_trace_id() -> [u8; 16] {
    *uuid::Uuid::new_v4().as_bytes()
}

/// A random span id: the random half of a v4 UUID (its variant bits make it never all zeros).
fn random_span_id() -> [u8; 8] {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let mut out = [0; 8];
    out.copy_from_slice(&bytes[8..]);
    out
}

/// At most 80 characters of untrusted text, for a log line.
fn shorten(text: &str) -> String {
    let mut out: String = text.chars().take(80).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_round_trips() {
        let context = TraceContext::parse(VALID).expect("valid");
        assert_eq!(context.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(context.span_id_hex(), "00f067aa0ba902b7");
        assert!(context.sampled());
        assert_eq!(context.traceparent(), VALID);
        assert_eq!(context.to_string(), VALID);
    }

    #[test]
    fn malformed_traceparents_are_refused_with_the_reason() {
        let cases = [
            ("", TraceParentError::Shape),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", TraceParentError::Shape),
            (
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                TraceParentError::NotHex { field: "trace id" },
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01",
                TraceParentError::NotHex { field: "parent id" },
            ),
            ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", TraceParentError::ZeroTraceId),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", TraceParentError::ZeroParentId),
            ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", TraceParentError::ForbiddenVersion),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", TraceParentError::TrailingData(57)),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1g",
                TraceParentError::NotHex { field: "flags" },
            ),
            ("00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", TraceParentError::Shape),
            ("é0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", TraceParentError::Shape),
        ];
        for (text, expected) in cases {
            assert_eq!(TraceContext::parse(text), Err(expected), "{text:?}");
        }
    }

    #[test]
    fn a_later_version_is_read_by_its_first_fields() {
        let context = TraceContext::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03-whatever")
            .expect("v01");
        assert_eq!(context.traceparent(), VALID, "written back as version 00, unknown flag bits dropped");
        let err = TraceContext::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03x");
        assert_eq!(err, Err(TraceParentError::Shape));
    }

    #[test]
    fn a_child_keeps_the_trace_and_gets_a_new_span() {
        let parent = TraceContext::parse(VALID).expect("valid").with_state(Some("congo=t61rcWkgMzE"), "test");
        let child = parent.child();
        assert_eq!(child.trace_id(), parent.trace_id());
        assert_ne!(child.span_id(), parent.span_id());
        assert_eq!(child.state(), Some("congo=t61rcWkgMzE"));
        assert_eq!(child.flags(), parent.flags());
        let roots = (TraceContext::new_root(), TraceContext::new_root());
        assert_ne!(roots.0.trace_id(), roots.1.trace_id());
        assert_eq!(TraceContext::parse(&roots.0.traceparent()), Ok(roots.0));
    }

    #[test]
    fn accept_ignores_malformed_input_and_bad_state() {
        assert_eq!(TraceContext::accept(Some("nonsense"), Some("a=b"), "test"), None);
        assert_eq!(TraceContext::accept(None, Some("a=b"), "test"), None);
        let long = "a=".to_owned() + &"b".repeat(MAX_TRACESTATE);
        let context = TraceContext::accept(Some(VALID), Some(&long), "test").expect("the parent is valid");
        assert_eq!(context.state(), None, "an oversized tracestate is dropped");
        let context = TraceContext::accept(Some(VALID), Some("a=\u{7}"), "test").expect("valid");
        assert_eq!(context.state(), None, "a control character is dropped");
    }

    #[test]
    fn headers_round_trip() {
        let context = TraceContext::parse(VALID).expect("valid").with_state(Some("a=b"), "test");
        let mut headers = Headers::new();
        context.inject(&mut headers);
        assert_eq!(headers.get(TRACEPARENT).map(String::as_str), Some(VALID));
        assert_eq!(TraceContext::from_headers(&headers), Some(context));
    }

    #[tokio::test]
    async fn the_current_context_is_scoped_to_its_future() {
        assert_eq!(TraceContext::current(), None);
        let context = TraceContext::new_root();
        let seen = context.clone().scope(async { TraceContext::current() }).await;
        assert_eq!(seen, Some(context));
        assert_eq!(TraceContext::current(), None);
        assert_eq!(for_publish(None), None, "no new trace unless switched on");
    }
}
