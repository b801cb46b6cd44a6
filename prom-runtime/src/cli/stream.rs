//! `prom stream append` and `prom stream read`.

use super::{Failure, Outcome, SpecArgs};
use crate::bus::EventBus;
use crate::error::Error;
use crate::stream::{ExpectedVersion, StreamId, StreamRecord, stream_append};
use serde_json::{Map, Value, json};

/// Events read per round trip by `prom stream read`.
const PAGE: usize = 1_000;

/// `prom stream ...`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Append one event to an aggregate's stream (validated like `prom publish`); prints
    /// `{"version":V,"offset":O}`. A version conflict exits 3.
    Append(AppendArgs),
    /// Print a stream's events as JSON lines, each with its `version`, upcast to the latest schema.
    Read(ReadArgs),
}

/// Arguments of `prom stream append`.
#[derive(Debug, clap::Args)]
pub struct AppendArgs {
    #[command(flatten)]
    spec: SpecArgs,
    /// The aggregate (declared under `aggregates:`).
    aggregate: String,
    /// The stream's id (the value at the aggregate's `id` pointer in the payload).
    id: String,
    /// The event's topic (one of the aggregate's `events`).
    topic: String,
    /// The payload as JSON.
    json: String,
    /// Append only if the stream is at this version: a number (0 = no stream yet), `any`,
    /// `no-stream` or `exists`.
    #[arg(long, value_name = "N|any|no-stream|exists", default_value = "any")]
    expected_version: ExpectedVersion,
}

/// Arguments of `prom stream read`.
#[derive(Debug, clap::Args)]
pub struct ReadArgs {
    #[command(flatten)]
    spec: SpecArgs,
    /// The aggregate.
    aggregate: String,
    /// The stream's id.
    id: String,
    /// The first version printed.
    #[arg(long, value_name = "N", default_value_t = 1)]
    from_version: u64,
    /// Print the stream as it stood at this time (RFC 3339 or ms since the epoch): its events up
    /// to the first one stamped later.
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
}

/// Runs a `prom stream` command.
pub async fn run(target: &super::Target, command: Command) -> Outcome {
    match command {
        Command::Append(args) => append(target, args).await,
        Command::Read(args) => read(target, args).await,
    }
}

async fn append(target: &super::Target, args: AppendArgs) -> Outcome {
    let (_, registry) = super::load(&args.spec)?;
    let payload = crate::payload::parse(&args.json).map_err(|e| {
        Failure::Runtime(format!("the payload argument: {e}; quote it for the shell, e.g. '{{\"id\": 1}}'"))
    })?;
    let stream = StreamId::new(args.aggregate, args.id);
    // Checked before the store is opened, so a bad payload leaves no trace at all.
    let prepared = stream_append(&registry, stream, args.expected_version, vec![(args.topic, payload)])?;
    let bus = target.open().await?;
    match bus.append(prepared).await {
        Ok(appended) => {
            let offset = appended.receipts.first().map_or(0, |r| r.offset);
            super::print_json(&json!({ "version": appended.last_version, "offset": offset }))
        }
        Err(conflict @ Error::StreamConflict { .. }) => Err(Failure::Conflict(conflict.to_string())),
        Err(e) => Err(e.into()),
    }
}

async fn read(target: &super::Target, args: ReadArgs) -> Outcome {
    let until = args
        .until
        .as_deref()
        .map(crate::record::parse_ts)
        .transpose()
        .map_err(|e| Failure::Runtime(format!("--until: {e}")))?;
    let (_, registry) = super::load(&args.spec)?;
    registry.aggregate(&args.aggregate)?;
    let bus = target.open().await?;
    let stream = StreamId::new(args.aggregate, args.id);
    let mut after = args.from_version.saturating_sub(1);
    loop {
        let page = match until {
            None => bus.read_stream(&stream, after, PAGE).await?,
            Some(until) => crate::stream::read_until(&bus, &stream, after, until, PAGE).await?,
        };
        for record in &page {
            let decoded = registry.decode_stream(record.clone()).map_err(|e| {
                Failure::Runtime(format!("stream `{stream}` version {}: {e}", record.version))
            })?;
            super::print_json(&line(decoded)?)?;
        }
        match page.last() {
            Some(last) if page.len() == PAGE => after = last.version,
            _ => return Ok(()),
        }
    }
}

/// `{"version": V, <the event as prom tail prints it>, "prev": hex, "hash": hex}`.
fn line(record: StreamRecord) -> Result<Value, Failure> {
    let event = serde_json::to_value(&record.record)
        .map_err(|e| Failure::Runtime(format!("cannot print event {}: {e}", record.record.id)))?;
    let mut out = Map::new();
    out.insert("version".into(), record.version.into());
    if let Value::Object(fields) = event {
        out.extend(fields);
    }
    if let Some(link) = record.link {
        out.insert("prev".into(), link.prev_hex().into());
        out.insert("hash".into(), link.hash_hex().into());
    }
    Ok(Value::Object(out))
}
