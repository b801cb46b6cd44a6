//! `prom verify`: checks an aggregate's streams (gap-free versions, hash chains).

use super::{Failure, Outcome, SpecArgs};
use serde_json::json;

/// Arguments of `prom verify`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    spec: SpecArgs,
    /// The aggregate whose streams are checked.
    aggregate: String,
    /// Check only this stream.
    id: Option<String>,
}

/// Prints a JSON report; exits 1 naming the first broken stream and version.
pub async fn run(target: &super::Target, args: Args) -> Outcome {
    let (_, registry) = super::load(&args.spec)?;
    let aggregate = registry.aggregate(&args.aggregate)?;
    let tamper_evident = aggregate.tamper_evident;
    let bus = target.open().await?;
    let report = crate::stream::verify(&bus, &args.aggregate, args.id.as_deref()).await?;
    let broken = report.broken.as_ref().map(
        |b| json!({ "stream": b.stream.to_string(), "version": b.version, "reason": b.reason.to_string() }),
    );
    super::print_json(&json!({
        "aggregate": args.aggregate,
        "tamper_evident": tamper_evident,
        "ok": report.ok(),
        "streams": report.streams,
        "events": report.events,
        "linked": report.linked,
        "broken": broken,
    }))?;
    match report.broken {
        None => Ok(()),
        Some(broken) => Err(Failure::Runtime(broken.to_string())),
    }
}
