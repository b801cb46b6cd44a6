//! Starting the declared pipelines that run on MongoDB and need no user code — changelog
//! projectors and changefeeds — for `prom run` and `prom serve` alike, with progress counters.

use super::Failure;
use super::progress::Running;
use crate::bus::MongoBus;
use crate::error::Result;
use crate::pipeline::mongo::{StartedStats, spawn_declared};
use crate::publish::Producer;
use crate::system::{ProjectorKind, System};
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Spawns every changelog projector and changefeed of `spec` into `tasks`, each stopping once
/// `stop` turns true; returns them for progress lines. Transactional projectors run a handler
/// of the user's program, so they are reported as skipped.
pub fn start(
    spec: &System,
    producer: &Producer<MongoBus>,
    tasks: &mut JoinSet<Result<()>>,
    stop: &watch::Receiver<bool>,
) -> std::result::Result<Vec<Running>, Failure> {
    for projector in spec.projectors.iter().filter(|p| matches!(p.kind, ProjectorKind::Transactional { .. }))
    {
        eprintln!(
            "skipping projector `{}`: a transactional projector runs its handler, which lives in \
             your program (the generated `wire()` runs it)",
            projector.name
        );
    }
    let started = spawn_declared(spec, producer, None, tasks, || super::stopped(stop))?;
    Ok(started
        .into_iter()
        .map(|task| {
            eprintln!("running {}", task.description);
            let (group, counters): (_, Box<dyn Fn() -> String + Send + Sync>) = match task.stats {
                StartedStats::Changelog(group, partitions, stats) => (
                    Some((group, partitions)),
                    Box::new(move || {
                        format!(
                            "events={} upserted={} deleted={} skipped={} dead_lettered={}",
                            load(&stats.events),
                            load(&stats.upserted),
                            load(&stats.deleted),
                            load(&stats.skipped),
                            load(&stats.dead_lettered)
                        )
                    }),
                ),
                StartedStats::Transactional(group, partitions, stats) => (
                    Some((group, partitions)),
                    Box::new(move || {
                        format!(
                            "applied={} already_applied={} retried={} dead_lettered={}",
                            load(&stats.applied),
                            load(&stats.already_applied),
                            load(&stats.retried),
                            load(&stats.dead_lettered)
                        )
                    }),
                ),
                StartedStats::Changefeed(stats) => (
                    None,
                    Box::new(move || {
                        format!(
                            "published={} duplicates={} gaps={}",
                            load(&stats.published),
                            load(&stats.duplicates),
                            load(&stats.gaps)
                        )
                    }),
                ),
            };
            Running { name: task.name, group, counters }
        })
        .collect())
}

fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}
