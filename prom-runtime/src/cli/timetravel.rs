//! `prom time-travel`: the state of one key of a topic at a past time, as JSON.

use super::{Failure, Outcome, SpecArgs};
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
    let url = target.mongo.as_deref().ok_or_else(|| {
        Failure::Runtime("time travel reads MongoDB: pass --mongo URL or set PROM_MONGO_URL".into())
    })?;
    let fold = FoldSpec::for_topic(&spec, &registry, &args.topic)?;
    let bus = super::open_mongo_bus(url).await?;
    let travel =
        TimeTravel::new(bus.database().clone(), registry, fold).await?.snapshot_every(args.snapshot_every);
    let travelled = travel.state_at(&args.key, at).await?;
    super::print_json(&travelled.state)
}
