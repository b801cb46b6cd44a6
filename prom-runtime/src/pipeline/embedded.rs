//! The embedded half of a declared pipeline: changelog projectors into tables of the store, each
//! publishing the events of the changefeeds declared on its table from its own transactions.
//! They run when the pipeline's bus is a [`SqliteBus`].

use crate::bus::{GroupId, SqliteBus};
use crate::consumer::SubscribeOptions;
use crate::error::Result;
use crate::project::{EmbeddedProjector, EmbeddedSpec, EmbeddedStats};
use crate::publish::Producer;
use crate::system::{ProjectorKind, System};
use std::future::Future;
use std::sync::Arc;
use tokio::task::JoinSet;

/// One embedded projector [`spawn_declared`] started, with its live counters.
pub struct Started {
    /// Its name in the spec.
    pub name: String,
    /// What it does, for progress output (with the changefeeds it feeds).
    pub description: String,
    /// Its consumer group and the topic's partitions.
    pub group: (GroupId, u32),
    /// Its counters.
    pub stats: Arc<EmbeddedStats>,
}

/// What the embedded store cannot run of `system`: transactional projectors (their handlers
/// write MongoDB) and changefeeds on collections no changelog projector writes, as
/// "projector `name`" / "changefeed `name`" with the reason.
pub fn not_run(system: &System) -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
    for projector in &system.projectors {
        if matches!(projector.kind, ProjectorKind::Transactional { .. }) {
            out.push((
                format!("projector `{}`", projector.name),
                "a transactional projector's handler writes MongoDB through its session",
            ));
        }
    }
    for feed in &system.changefeeds {
        let fed = system.projectors.iter().any(|p| match &p.kind {
            ProjectorKind::Changelog(c) => c.collection == feed.collection,
            ProjectorKind::Transactional { .. } => false,
        });
        if !fed {
            out.push((
                format!("changefeed `{}`", feed.name),
                "on the embedded store a changefeed is published by the changelog projector writing its \
                 collection, and none writes it",
            ));
        }
    }
    out
}

/// Starts on `tasks` every changelog projector `system` declares (with the changefeeds on its
/// collection). Each stops when its `shutdown()` future completes. Everything is resolved before
/// anything starts, so a bad declaration starts nothing.
pub fn spawn_declared<S, F>(
    system: &System,
    producer: &Producer<SqliteBus>,
    tasks: &mut JoinSet<Result<()>>,
    shutdown: S,
) -> Result<Vec<Started>>
where
    S: Fn() -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let registry = producer.registry();
    let specs = system
        .projectors
        .iter()
        .filter(|p| matches!(p.kind, ProjectorKind::Changelog(_)))
        .map(|p| EmbeddedSpec::from_system(p, system, registry))
        .collect::<Result<Vec<_>>>()?;
    let mut started = Vec::new();
    for spec in specs {
        let feeds: Vec<String> =
            spec.feeds.iter().map(|f| format!("changefeed `{}` → `{}`", f.name, f.topic)).collect();
        let description = format!(
            "projector `{}`: `{}` → table `proj_{}`{}",
            spec.name,
            spec.topic,
            spec.collection,
            if feeds.is_empty() { String::new() } else { format!(" (with {})", feeds.join(", ")) }
        );
        let group = (GroupId::new(&spec.topic, spec.group()), spec.partitions);
        let name = spec.name.clone();
        let projector = EmbeddedProjector::new(producer.clone(), spec, SubscribeOptions::default());
        started.push(Started { name, description, group, stats: projector.stats() });
        tasks.spawn(projector.run(shutdown()));
    }
    Ok(started)
}
