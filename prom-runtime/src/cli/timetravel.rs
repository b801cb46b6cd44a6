//! `prom time-travel`: the state of one key of a topic at a past time, as JSON, on the embedded
//! store or on MongoDB.

use super::{Failure, Outcome, SpecArgs};
use crate::bus::{AnyBus, SqliteBus};
use crate::timetravel::{FoldSpec, TimeTravel};

/// Arguments of `prom time-travel`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    spec: SpecArgs,
    /// The topic (its changelog projector's key and version rules apply).
    topic: String,
    /// The key (as the topic's key pointer gives it, as text).
    key: String,
    /// The time: RFC 3339 (2026-11-24T13:00:00Z) or ms since the epoch.
    #[arg(long, value_name = "TIME")]
    at: String,
    /// Store a snapshot every N events of the key folded (0: none).
    #[arg(long, value_name = "N", default_value_t = crate::timetravel::DEFAULT_SNAPSHOT_EVENTS)]
    snapshot_every: u64,
}

/// Prints the key's state at `--at` (`null` when absent or deleted).
pub async fn run(target: &super::Target, args: Args) -> Outcome {
    let at = crate::record::parse_ts(&args.at).map_err(Failure::Runtime)?;
    let (spec, registry) = super::load(&args.spec)?;
    let fold = FoldSpec::for_topic(&spec, &registry, &args.topic)?;
    let bus = open(target).await?;
    let travel = TimeTravel::on(&bus, registry, fold).await?.snapshot_every(args.snapshot_every);
    let travelled = travel.state_at(&args.key, at).await?;
    super::print_json(&travelled.state)
}

/// Opens the bus: an embedded store must exist (a mistyped `--store` is an error, not an empty
/// answer); it is opened for writing so snapshots can be stored, or read-only when it cannot be.
async fn open(target: &super::Target) -> Result<AnyBus, Failure> {
    if target.mongo.is_some() {
        return target.open().await;
    }
    let file = target.store.join(crate::bus::sqlite::FILE_NAME);
    if std::fs::symlink_metadata(&file).is_err() {
        return Err(Failure::Runtime(format!(
            "there is no embedded store at `{}` (no `{}`), so there is no history to travel in\n  \
             = help: pass the store's directory with --store DIR, or a MongoDB with --mongo URL",
            target.store.display(),
            crate::bus::sqlite::FILE_NAME
        )));
    }
    match SqliteBus::open(&target.store) {
        Ok(bus) => Ok(bus.into()),
        Err(writable) => {
            SqliteBus::open_read_only(&target.store).map(AnyBus::from).map_err(|_| writable.into())
        }
    }
}
