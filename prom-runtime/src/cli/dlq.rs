//! `prom dlq list` and `prom dlq replay`.

use super::progress_bar::{Piped, ProgressBar};
use super::{Failure, Outcome, SpecArgs};
use crate::bus::EventBus;
use crate::dlq::{self, ReplayOptions};
use serde_json::json;
use std::sync::Arc;

/// `prom dlq` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print a topic's dead letters as JSON lines, oldest first.
    List(ListArgs),
    /// Republish dead letters to their topic (upcast, validated, in key order, each once).
    Replay(ReplayArgs),
}

/// Arguments of `prom dlq list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    spec: SpecArgs,
    /// The topic whose dead letters to show (not `dlq.<topic>`).
    topic: String,
    /// Show at most N.
    #[arg(long, value_name = "N", default_value_t = 100)]
    limit: usize,
}

/// Arguments of `prom dlq replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    spec: SpecArgs,
    /// The topic whose dead letters to replay.
    topic: String,
    /// Replay at most N (already replayed ones do not count).
    #[arg(long, value_name = "N", default_value_t = 100)]
    limit: usize,
    /// Only dead letters written at or after this time (RFC 3339 or ms since the epoch).
    #[arg(long, value_name = "TIME", value_parser = crate::record::parse_ts)]
    since: Option<i64>,
    /// Only dead letters written before this time.
    #[arg(long, value_name = "TIME", value_parser = crate::record::parse_ts)]
    until: Option<i64>,
}

/// Runs a `prom dlq` subcommand.
pub async fn run(target: &super::Target, command: Command) -> Outcome {
    match command {
        Command::List(args) => {
            let (_, registry) = super::load(&args.spec)?;
            let producer = super::open(target, registry).await?;
            for entry in dlq::list(&producer, &args.topic, args.limit).await? {
                super::print_json(&json!({
                    "id": entry.event.id,
                    "offset": entry.event.offset,
                    "failed_at": entry.letter.failed_at,
                    "group": entry.letter.group,
                    "attempts": entry.letter.attempts,
                    "error": entry.letter.error,
                    "replayed": entry.replayed,
                    "original": entry.letter.original,
                }))?;
            }
            Ok(())
        }
        Command::Replay(args) => {
            let (_, registry) = super::load(&args.spec)?;
            let producer = super::open(target, registry).await?;
            // The bar counts dead letters republished (each passes the transform hook once),
            // out of the limit or the dead letters stored, whichever is fewer.
            let bar = Arc::new(ProgressBar::new(
                &format!("replay dlq.{}", args.topic),
                "dead letters",
                Piped::Silent,
            ));
            if !bar.hidden() {
                let topic = format!("{}{}", crate::registry::DLQ_PREFIX, args.topic);
                let stored = producer.bus().heads(&topic).await?.total();
                bar.set(0, u64::try_from(stored).unwrap_or(0).min(args.limit as u64));
            }
            let counted = bar.clone();
            let transform: dlq::Transform = Arc::new(move |payload| {
                counted.inc(1);
                Ok(payload)
            });
            let opts = ReplayOptions {
                limit: args.limit,
                since: args.since,
                until: args.until,
                transform: (!bar.hidden()).then_some(transform),
            };
            let report = dlq::replay(&producer, &args.topic, &opts).await;
            bar.finish();
            let report = report?;
            super::print_json(&json!({
                "replayed": report.replayed.iter().map(|(from, to)| json!({ "dead_letter": from, "event": to })).collect::<Vec<_>>(),
                "already_replayed": report.already_replayed,
                "failed": report.failed.iter().map(|(id, why)| json!({ "dead_letter": id, "error": why.to_string() })).collect::<Vec<_>>(),
                "held_back": report.held_back,
            }))?;
            if report.failed.is_empty() {
                Ok(())
            } else {
                Err(Failure::Runtime(format!("{} dead letter(s) could not be replayed", report.failed.len())))
            }
        }
    }
}
