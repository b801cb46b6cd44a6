//! `prom rebuild`: folds a changelog projection again from offset 0 and swaps it in.

use super::progress_bar::{Piped, ProgressBar};
use super::{Failure, Outcome, SpecArgs};
use crate::project::rebuild::{self, DEFAULT_BATCH, Progress, RebuildOptions};
use serde_json::json;
use std::sync::Arc;

/// Arguments of `prom rebuild`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    spec: SpecArgs,
    /// The changelog projector whose collection (table `proj_<collection>`) is rebuilt.
    projector: String,
    /// Events folded per checkpoint (one transaction or bulk write each).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_BATCH)]
    batch_size: usize,
}

/// Rebuilds, showing progress on stderr, and prints a JSON report.
pub async fn run(target: &super::Target, args: Args) -> Outcome {
    if args.batch_size == 0 {
        return Err(Failure::Usage("--batch-size must be at least 1".into()));
    }
    let (system, registry) = super::load(&args.spec)?;
    // An unknown or transactional projector is answered before the store is opened.
    rebuild::changelog_projector(&system, &args.projector)?;
    let bus = target.open().await?;
    let bar = Arc::new(ProgressBar::new(&format!("rebuild {}", args.projector), "offsets", Piped::Lines));
    let shown = bar.clone();
    let announced = std::sync::atomic::AtomicBool::new(false);
    let name = args.projector.clone();
    let opts = RebuildOptions {
        batch_size: args.batch_size,
        progress: Some(Arc::new(move |p: Progress| {
            // The first report is where the run starts: past 0 only when it resumes a checkpoint.
            if !announced.swap(true, std::sync::atomic::Ordering::Relaxed) && p.position > 0 {
                shown.suspend(|| eprintln!("resuming the rebuild of `{name}` from offset {}", p.position));
            }
            shown.set(u64::try_from(p.position).unwrap_or(0), u64::try_from(p.head).unwrap_or(0));
        })),
    };
    let report = rebuild::rebuild(&bus, &system, registry, &args.projector, &opts).await;
    bar.finish();
    let report = report?;
    super::print_json(&json!({
        "projector": report.projector,
        "collection": report.collection,
        "resumed_from": report.resumed_from,
        "position": report.position,
        "events": report.events,
        "refused": report.refused,
        "finished_for_live": report.finished_for_live,
        "rows": report.rows,
    }))
}
