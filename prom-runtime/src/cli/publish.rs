//! `prom publish`.

mod input;

use super::{Failure, Outcome, SpecArgs};
use crate::payload::PayloadError;
use crate::publish::PublishOptions;
use crate::registry::Registry;
use crate::trace::TraceContext;
use input::Source;
use serde_json::Value;
use std::path::PathBuf;

/// The default of `--max-bytes`: 16 MiB.
const DEFAULT_MAX_BYTES: u64 = 16 << 20;

/// Failing lines of a batch listed at most (the count says how many there were).
const MAX_LISTED: usize = 20;

/// Arguments of `prom publish`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    spec: SpecArgs,
    /// Topic to publish to.
    topic: String,
    /// The payload as JSON, or `-` to read it from stdin.
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    json: Option<String>,
    /// Read the payload from a file (FIFOs and devices too, up to --max-bytes).
    #[arg(long, value_name = "PATH")]
    file: Option<PathBuf>,
    /// The input holds one payload per line (NDJSON; blank lines are skipped), published
    /// atomically as one batch: every line is validated first, and if any fails nothing is stored.
    #[arg(long)]
    ndjson: bool,
    /// The most input bytes read (the payload, or the whole NDJSON batch); larger input is
    /// refused without reading past the limit.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_BYTES)]
    max_bytes: u64,
    /// A custom header `NAME=VALUE` (declared in the topic's `headers:`); repeatable. Applies to
    /// every event of a batch.
    #[arg(long = "header", value_name = "NAME=VALUE")]
    headers: Vec<String>,
    /// Validate against and store at this schema version instead of the latest (try an older
    /// producer's payload; readers and `prom tail` see it upcast). Fails, listing the declared
    /// versions, if the topic has no version N.
    #[arg(long, value_name = "N")]
    version: Option<u32>,
    /// The W3C trace context the events continue (default: the TRACEPARENT environment
    /// variable, as other OpenTelemetry CLIs read it). A malformed value is ignored with a
    /// warning; nothing is refused for it.
    #[arg(long, value_name = "00-TRACEID-PARENTID-FLAGS")]
    traceparent: Option<String>,
    /// The W3C `tracestate` that goes with --traceparent (default: the TRACESTATE environment
    /// variable).
    #[arg(long, value_name = "STATE")]
    tracestate: Option<String>,
}

/// The environment variables OpenTelemetry tools pass a trace context in.
const TRACEPARENT_VAR: &str = "TRACEPARENT";
const TRACESTATE_VAR: &str = "TRACESTATE";

/// The trace context of `--traceparent`/`TRACEPARENT` (and the matching state), if valid.
fn trace_of(args: &Args) -> Option<TraceContext> {
    let from_env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let (parent, state, source) = match &args.traceparent {
        Some(parent) => (Some(parent.clone()), args.tracestate.clone(), "--traceparent"),
        None => (
            from_env(TRACEPARENT_VAR),
            args.tracestate.clone().or_else(|| from_env(TRACESTATE_VAR)),
            "TRACEPARENT",
        ),
    };
    TraceContext::accept(parent.as_deref(), state.as_deref(), source)
}

/// Lints, validates and publishes; prints the id of each event, one per line.
pub async fn run(target: &super::Target, args: Args) -> Outcome {
    let (_, registry) = super::load(&args.spec)?;
    let mut opts =
        PublishOptions { version: args.version, trace: trace_of(&args), ..PublishOptions::default() };
    for header in &args.headers {
        let (name, value) = header
            .split_once('=')
            .ok_or_else(|| Failure::Runtime(format!("--header `{header}` is not NAME=VALUE")))?;
        opts.headers.insert(name.to_string(), value.to_string());
    }
    let source = match (args.json, args.file) {
        (_, Some(path)) => Source::File(path),
        (Some(dash), None) if dash == "-" => Source::Stdin,
        (Some(json), None) => Source::Argument(json),
        (None, None) => {
            return Err(Failure::Runtime("give the payload as an argument, `-` or --file PATH".into()));
        }
    };
    let text = source.read(args.max_bytes).map_err(Failure::Runtime)?;
    let payloads = if args.ndjson {
        batch(&registry, &args.topic, &text, &opts, &source)?
    } else {
        let payload = crate::payload::parse(&text).map_err(|e| {
            let hint = match (&e, &source) {
                (PayloadError::DuplicateKey { .. }, _) => "",
                (_, Source::Argument(_)) => "; quote it for the shell, e.g. '{\"pid\": 1}'",
                _ => "; for one payload per line, add --ndjson",
            };
            Failure::Runtime(format!("{}: {e}{hint}", source.name()))
        })?;
        // Validate before touching the store, so a bad payload leaves no trace at all.
        crate::publish::prepare(&registry, &args.topic, payload.clone(), &opts)?;
        vec![payload]
    };
    let producer = super::open(target, registry).await?;
    let items = payloads.into_iter().map(|payload| (args.topic.clone(), payload, opts.clone())).collect();
    for receipt in producer.publish_all(items).await? {
        println!("{}", receipt.id);
    }
    Ok(())
}

/// Parses and validates every line of an NDJSON batch; fails naming each bad line.
fn batch(
    registry: &Registry,
    topic: &str,
    text: &str,
    opts: &PublishOptions,
    source: &Source,
) -> Result<Vec<Value>, Failure> {
    let mut payloads = Vec::new();
    let mut failures = Vec::new();
    let mut lines = 0;
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        lines += 1;
        let checked = crate::payload::parse(line).map_err(|e| e.to_string()).and_then(|payload| {
            crate::publish::prepare(registry, topic, payload.clone(), opts).map_err(|e| e.to_string())?;
            Ok(payload)
        });
        match checked {
            Ok(payload) => payloads.push(payload),
            Err(e) => failures.push(format!("  line {}: {}", index + 1, e.replace('\n', "\n    "))),
        }
    }
    if lines == 0 {
        return Err(Failure::Runtime(format!(
            "{} holds no payload lines; nothing was published",
            source.name()
        )));
    }
    if failures.is_empty() {
        return Ok(payloads);
    }
    let failed = failures.len();
    let more = failed.saturating_sub(MAX_LISTED);
    failures.truncate(MAX_LISTED);
    if more > 0 {
        failures.push(format!("  ... and {more} more"));
    }
    Err(Failure::Runtime(format!(
        "{failed} of {lines} line(s) of {} failed, so nothing was stored (a batch is all or nothing):\n{}",
        source.name(),
        failures.join("\n")
    )))
}
