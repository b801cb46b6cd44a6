//! `prom tail`.

use super::progress_bar::{Piped, ProgressBar};
use super::{Failure, Outcome, SpecArgs};
use crate::bus::{AnyBus, EventBus, SqliteBus, TopicPosition};
use crate::consumer::{Start, SubscribeOptions, Subscription};
use crate::record::EventRecord;
use crate::registry::{Registry, Route};
use std::io::IsTerminal;
use std::time::Duration;

/// Arguments of `prom tail`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    spec: SpecArgs,
    /// Topic to print (declared, `dlq.<topic>` or `<topic>.v<N>`).
    topic: String,
    /// Where to start: earliest, latest, an RFC 3339 time, ms since the epoch, or an event id.
    #[arg(long, default_value = "earliest", value_parser = super::parse_start)]
    from: Start,
    /// Print at most N events.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Read as consumer group G: progress is committed, so the next tail continues after it.
    #[arg(long, value_name = "G")]
    group: Option<String>,
    /// Keep waiting for new events (until Ctrl-C) instead of stopping when caught up.
    #[arg(long)]
    follow: bool,
}

/// Prints events as JSON lines.
pub async fn run(target: &super::Target, args: Args) -> Outcome {
    let (_, registry) = super::load(&args.spec)?;
    let partitions = match registry.route(&args.topic)? {
        Route::Topic(t) | Route::Versioned(t, _) | Route::DeadLetters(t) => t.partitions,
    };
    let bus = open(target, args.group.is_some()).await?;
    let limit = args.limit.unwrap_or(usize::MAX);
    let mut printer = Printer { registry: &registry, printed: 0, failed: 0, corrupt: 0 };
    // Installed once, so a signal that arrives while printing is not lost.
    let interrupted = super::interrupted();
    tokio::pin!(interrupted);
    match &args.group {
        Some(group) => {
            let opts = SubscribeOptions {
                start: args.from,
                partitions,
                batch_size: limit.clamp(1, 100),
                poll_timeout: Duration::from_millis(200),
                ..SubscribeOptions::default()
            };
            let mut sub = Subscription::subscribe(bus, &args.topic, group, opts).await?;
            while printer.printed < limit {
                let batch = tokio::select! {
                    batch = sub.poll() => batch?,
                    () = &mut interrupted => break,
                };
                if batch.is_empty() && !args.follow {
                    break;
                }
                for delivery in batch {
                    // Unprinted events stay unacked, so the group's next reader gets them.
                    if printer.printed >= limit {
                        break;
                    }
                    // A corrupt event stays unacked: the group's cursor must not pass an event
                    // nobody handled or dead-lettered (a consumer in `prom run` dead-letters it).
                    if printer.print(delivery.record.clone())? {
                        sub.ack(&delivery);
                    }
                }
            }
            sub.close().await?;
        }
        None => {
            let mut after = match args.from {
                Start::Earliest => TopicPosition::start(),
                Start::Latest => bus.heads(&args.topic).await?,
                Start::Time(ms) => bus.position_before_time(&args.topic, ms).await?,
                Start::After(id) => bus
                    .position_of(&args.topic, id)
                    .await?
                    .ok_or_else(|| Failure::Runtime(format!("no event {id} on `{}`", args.topic)))?,
            };
            // A bar on a terminal's stderr while the events go to a file or pipe: the whole topic
            // up to its head now, so only a bounded read from the start gets one.
            let bar = match args.from {
                Start::Earliest if !args.follow && !std::io::stdout().is_terminal() => {
                    let bar = ProgressBar::new(&format!("tail {}", args.topic), "events", Piped::Silent);
                    if !bar.hidden() {
                        bar.set(0, u64::try_from(bus.heads(&args.topic).await?.total()).unwrap_or(0));
                    }
                    Some(bar)
                }
                _ => None,
            };
            let ordered = bus.ordered();
            while printer.printed < limit {
                let page = bus.read_topic(&args.topic, &after, (limit - printer.printed).min(500)).await?;
                if page.is_empty() {
                    if !args.follow {
                        break;
                    }
                    tokio::select! {
                        () = bus.wait(&args.topic, &after, Duration::from_secs(1)) => continue,
                        () = &mut interrupted => break,
                    }
                }
                for record in page {
                    after.advance(&record, ordered);
                    printer.print(record)?;
                }
                if let Some(bar) = &bar {
                    // Read from the start, the position counts the events behind it.
                    let head = u64::try_from(after.total()).unwrap_or(0);
                    bar.set(head, head.max(bar.total()));
                }
            }
            if let Some(bar) = &bar {
                bar.finish();
            }
        }
    }
    if printer.corrupt > 0 {
        return Err(Failure::Runtime(format!(
            "{} corrupt event(s) in the store were skipped and {} event(s) could not be decoded (see above); \
             consumers (`prom run`) dead-letter corrupt events to `dlq.<topic>` with their raw text",
            printer.corrupt, printer.failed
        )));
    }
    if printer.failed > 0 {
        return Err(Failure::Runtime(format!(
            "{} event(s) could not be decoded (see above)",
            printer.failed
        )));
    }
    Ok(())
}

/// How much of a corrupt event's stored text the report quotes.
const QUOTED: usize = 200;

/// Opens the bus: an existing embedded store read-only unless a group's progress must be
/// written, so a store in a read-only directory (or owned by another user) can still be read.
async fn open(target: &super::Target, writes: bool) -> Result<AnyBus, Failure> {
    let file = target.store.join(crate::bus::sqlite::FILE_NAME);
    if target.mongo.is_none() && !writes && std::fs::symlink_metadata(&file).is_ok() {
        return Ok(SqliteBus::open_read_only(&target.store)?.into());
    }
    target.open().await
}

struct Printer<'a> {
    registry: &'a Registry,
    printed: usize,
    failed: usize,
    corrupt: usize,
}

impl Printer<'_> {
    /// Prints one event (or reports why it cannot); `false` for a corrupt event, which a group
    /// must not ack.
    fn print(&mut self, record: EventRecord) -> Result<bool, Failure> {
        self.printed += 1;
        if let Some(error) = record.corrupt_error() {
            self.corrupt += 1;
            let stored = match &*record.payload {
                serde_json::Value::String(raw) => raw.chars().take(QUOTED).collect::<String>(),
                other => other.to_string().chars().take(QUOTED).collect(),
            };
            eprintln!("error: CORRUPT EVENT SKIPPED: {error}\n  stored payload text: {stored:?}");
            return Ok(false);
        }
        let (id, offset) = (record.id, record.offset);
        match self.registry.decode(record) {
            Ok(event) => super::print_json(&event)?,
            Err(e) => {
                self.failed += 1;
                eprintln!("error: event {id} (offset {offset}): {e}");
            }
        }
        Ok(true)
    }
}
