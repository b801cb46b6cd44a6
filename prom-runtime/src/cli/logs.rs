//! The `prom` binary's log output: the runtime's `tracing` events on stderr, one line each,
//! `prom: <message>` followed by the event's fields, filtered by `PROM_LOG` (default `info`);
//! with the `otel` feature, its spans also go over OTLP when the environment names a collector.

use std::fmt;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

#[cfg(feature = "otel")]
pub use super::otlp::Export;
#[cfg(feature = "otel")]
use super::otlp::start as otlp;

/// Without the `otel` feature nothing is exported.
#[cfg(not(feature = "otel"))]
pub enum Export {}

#[cfg(not(feature = "otel"))]
impl Export {
    /// Nothing to flush.
    pub fn shutdown(self) {
        match self {}
    }
}

/// Without the `otel` feature there is no OTLP layer.
#[cfg(not(feature = "otel"))]
fn otlp() -> Option<(tracing_subscriber::layer::Identity, Export)> {
    None
}

/// The environment variable holding the filter (`EnvFilter` syntax, e.g. `warn` or
/// `prom_runtime::runner=debug`).
pub const FILTER_VAR: &str = "PROM_LOG";

/// Installs the stderr subscriber (a `PROM_LOG` that does not parse is reported and `info`
/// used) and the OTLP export when there is one, which the caller shuts down on exit.
pub fn install() -> Option<Export> {
    let filter = match std::env::var(FILTER_VAR) {
        Ok(value) if !value.trim().is_empty() => EnvFilter::try_new(&value).unwrap_or_else(|e| {
            eprintln!(
                "prom: ignoring {FILTER_VAR}={value:?} ({e}); logging at `info` (try e.g. {FILTER_VAR}=warn)"
            );
            EnvFilter::new("info")
        }),
        _ => EnvFilter::new("info"),
    };
    let stderr =
        tracing_subscriber::fmt::layer().with_writer(std::io::stderr).event_format(Line).with_filter(filter);
    // Spans are exported at `info` whatever `PROM_LOG` keeps off stderr.
    let (exported, export) = match otlp() {
        Some((layer, export)) => {
            (Some(layer.with_filter(tracing::level_filters::LevelFilter::INFO)), Some(export))
        }
        None => (None, None),
    };
    // `try_init` fails only if a subscriber is already set, which then keeps working.
    let _ = tracing_subscriber::registry().with(stderr).with(exported).try_init();
    export
}

/// `prom: <message> key=value ...`: the runtime's notes read like the CLI's own lines.
struct Line;

impl<S, N> FormatEvent<S, N> for Line
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        writer.write_str("prom: ")?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        // Inside a `prom.handle`/`prom.dead_letter` span, the line carries its trace, so logs
        // of one event can be found by the trace id its publisher knows.
        if let Some(scope) = ctx.event_scope() {
            for span in scope {
                let extensions = span.extensions();
                let Some(fields) = extensions.get::<FormattedFields<N>>() else { continue };
                let trace = fields.fields.split(' ').find(|f| f.starts_with("trace_id="));
                let own = fields.fields.split(' ').find(|f| f.starts_with("span_id="));
                if let Some(trace) = trace {
                    write!(writer, " {trace}")?;
                    if let Some(own) = own {
                        write!(writer, " {own}")?;
                    }
                    break;
                }
            }
        }
        writeln!(writer)
    }
}
