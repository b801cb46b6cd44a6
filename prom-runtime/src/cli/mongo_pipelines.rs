//! Starting the declared pipelines that run on MongoDB and need no user code — changelog
//! projectors and changefeeds — for `prom run` and `prom serve` alike.

use super::Failure;
use super::progress::Running;
use crate::bus::{GroupId, MongoBus};
use crate::changefeed::{ChangefeedRunner, ChangefeedSpec};
use crate::consumer::SubscribeOptions;
use crate::error::Result;
use crate::project::{ChangelogProjector, ChangelogSpec};
use crate::publish::Producer;
use prom_codegen::spec::{ProjectorKind, Spec};
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Spawns every changelog projector and changefeed of `spec` into `tasks`, each stopping once
/// `stop` turns true; returns them for progress lines. Transactional projectors run a handler
/// of the user's program, so they are reported as skipped.
pub fn start(
    spec: &Spec,
    producer: &Producer<MongoBus>,
    tasks: &mut JoinSet<Result<()>>,
    stop: &watch::Receiver<bool>,
) -> std::result::Result<Vec<Running>, Failure> {
    let registry = producer.registry();
    let db = producer.bus().database();
    let mut running = Vec::new();
    for projector in spec.projectors.values() {
        if projector.kind.value != ProjectorKind::Changelog {
            eprintln!(
                "skipping projector `{}`: a transactional projector runs its handler, which lives in \
                 your program (TransactionalProjector)",
                projector.name.value
            );
            continue;
        }
        let resolved = ChangelogSpec::from_spec(projector, registry)?;
        eprintln!("running projector `{}`: `{}` → `{}`", resolved.name, resolved.topic, resolved.collection);
        let group = GroupId::new(&resolved.topic, resolved.group());
        let partitions = super::partitions(registry, &resolved.topic)?;
        let name = resolved.name.clone();
        let projector =
            ChangelogProjector::new(producer.clone(), db.clone(), resolved, SubscribeOptions::default())?;
        let stats = projector.stats();
        running.push(Running {
            name,
            group: Some((group, partitions)),
            counters: Box::new(move || {
                format!(
                    "events={} upserted={} deleted={} skipped={} dead_lettered={}",
                    load(&stats.events),
                    load(&stats.upserted),
                    load(&stats.deleted),
                    load(&stats.skipped),
                    load(&stats.dead_lettered)
                )
            }),
        });
        tasks.spawn(projector.run(super::stopped(stop)));
    }
    // Each changefeed resumes from its stored token, so stopping and restarting loses and repeats
    // nothing.
    for feed in spec.changefeeds.values() {
        let resolved = ChangefeedSpec::from_spec(feed, registry)?;
        let watched = resolved.database.as_deref().map_or_else(String::new, |d| format!("{d}."));
        eprintln!(
            "running changefeed `{}`: `{watched}{}` → `{}`",
            resolved.name, resolved.collection, resolved.topic
        );
        let name = resolved.name.clone();
        let feed = ChangefeedRunner::new(producer.clone(), resolved);
        let stats = feed.stats();
        running.push(Running {
            name,
            group: None,
            counters: Box::new(move || {
                format!(
                    "published={} duplicates={} gaps={}",
                    load(&stats.published),
                    load(&stats.duplicates),
                    load(&stats.gaps)
                )
            }),
        });
        tasks.spawn(feed.run(super::stopped(stop)));
    }
    Ok(running)
}

fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}
