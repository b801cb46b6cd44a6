//! The `prom` binary's log output: the runtime's `tracing` events on stderr, one line each,
//! `prom: <message>` followed by the event's fields, filtered by `PROM_LOG` (default `info`).

use std::fmt;
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The environment variable holding the filter (`EnvFilter` syntax, e.g. `warn` or
/// `prom_runtime::runner=debug`).
pub const FILTER_VAR: &str = "PROM_LOG";

/// Installs the stderr subscriber; a `PROM_LOG` that does not parse is reported and `info` used.
pub fn install() {
    let filter = match std::env::var(FILTER_VAR) {
        Ok(value) if !value.trim().is_empty() => EnvFilter::try_new(&value).unwrap_or_else(|e| {
            eprintln!(
                "prom: ignoring {FILTER_VAR}={value:?} ({e}); logging at `info` (try e.g. {FILTER_VAR}=warn)"
            );
            EnvFilter::new("info")
        }),
        _ => EnvFilter::new("info"),
    };
    // `try_init` fails only if a subscriber is already set, which then keeps working.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .event_format(Line)
        .try_init();
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
