//! The embedded half of a declared pipeline: changelog projectors into tables of the store, each
//! publishing the events of the changefeeds declared on its table from its own transactions, and
//! transactional projectors running the service's document handlers.
//! They run when the pipeline's bus is a [`SqliteBus`].

use crate::bus::{GroupId, SqliteBus};
use crate::consumer::SubscribeOptions;
use crate::documents::Documents;
use crate::error::{Error, Result};
use crate::project::{
    AnyTxHandler, DocHandler, DocTxFuture, EmbeddedProjector, EmbeddedSpec, EmbeddedStats,
    EmbeddedTxProjector, TransactionalSpec, TxStats,
};
use crate::publish::Producer;
use crate::record::EventRecord;
use crate::retry::RetryPolicy;
use crate::runner::FailurePolicy;
use crate::system::{ProjectorKind, System};
use std::collections::BTreeMap;
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

/// What the embedded store cannot run of `system` without the service's own code:
/// transactional projectors (their handlers are functions of your program; `Pipeline::run` runs
/// them) and changefeeds on collections no changelog projector writes, as "projector `name`" /
/// "changefeed `name`" with the reason.
pub fn not_run(system: &System) -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
    for projector in &system.projectors {
        if matches!(projector.kind, ProjectorKind::Transactional { .. }) {
            out.push((
                format!("projector `{}`", projector.name),
                "a transactional projector runs a handler of your program: run it from your service \
                 (`wire()` then `run`), on either store",
            ));
        }
    }
    out.extend(not_run_with_handlers(system));
    out
}

/// What the embedded store cannot run of `system` even with the handlers: changefeeds on
/// collections no changelog projector writes.
pub fn not_run_with_handlers(system: &System) -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
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

/// Starts on `tasks` every transactional projector `system` declares, each with its handler
/// from `handlers` (one without a handler is [`Error::MissingTxHandler`]; one whose handler
/// takes a MongoDB session cannot run here). Everything is resolved before anything starts.
pub fn spawn_transactional<S, F>(
    system: &System,
    producer: &Producer<SqliteBus>,
    handlers: &BTreeMap<String, AnyTxHandler>,
    tasks: &mut JoinSet<Result<()>>,
    shutdown: S,
) -> Result<Vec<(String, Arc<TxStats>)>>
where
    S: Fn() -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let mut resolved = Vec::new();
    for projector in &system.projectors {
        if !matches!(projector.kind, ProjectorKind::Transactional { .. }) {
            continue;
        }
        let spec = TransactionalSpec::from_system(projector, producer.registry())?;
        let handler = match handlers.get(&spec.name) {
            Some(AnyTxHandler::Documents(handler)) => handler.clone(),
            #[cfg(feature = "mongo")]
            Some(AnyTxHandler::Session(_)) => {
                return Err(Error::system(
                    format!("transactional projector `{}`", spec.name),
                    "its handler takes a MongoDB session, so it runs on MongoDB only; write it against \
                     `&mut dyn Documents` to run it on the embedded store too",
                ));
            }
            None => return Err(Error::MissingTxHandler { projector: spec.name.clone() }),
        };
        resolved.push((spec, handler));
    }
    let mut started = Vec::new();
    for (spec, handler) in resolved {
        let name = spec.name.clone();
        // Projectors declare no retry policy: the default backoff, then the DLQ.
        let policy = FailurePolicy { retry: RetryPolicy::default(), dlq: true };
        let projector = EmbeddedTxProjector::new(producer.clone(), spec, SubscribeOptions::default(), policy);
        started.push((name, projector.stats()));
        tasks.spawn(projector.run(SharedDocs(handler), shutdown()));
    }
    Ok(started)
}

/// Lets one registered handler serve its projector without cloning it.
struct SharedDocs(Arc<dyn DocHandler>);

impl DocHandler for SharedDocs {
    fn handle<'a>(&'a self, event: &'a EventRecord, docs: &'a mut dyn Documents) -> DocTxFuture<'a> {
        self.0.handle(event, docs)
    }
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
