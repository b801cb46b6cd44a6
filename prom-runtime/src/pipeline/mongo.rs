//! The MongoDB half of a declared pipeline: changelog projectors, transactional projectors with
//! the user's handlers, and changefeeds. They read and write MongoDB, so they run only when the
//! pipeline's bus is a [`MongoBus`].

use crate::bus::GroupId;
use crate::bus::MongoBus;
use crate::changefeed::{ChangefeedRunner, ChangefeedSpec, ChangefeedStats};
use crate::consumer::SubscribeOptions;
use crate::error::{Error, Result};
use crate::project::AnyTxHandler;
use crate::project::transactional::{
    DocsOnMongo, TransactionalProjector, TransactionalSpec, TxFuture, TxHandler, TxStats,
};
use crate::project::{ChangelogProjector, ChangelogSpec, ProjectorStats};
use crate::publish::Producer;
use crate::record::EventRecord;
use crate::retry::RetryPolicy;
use crate::runner::FailurePolicy;
use crate::system::{ProjectorKind, System};
use mongodb::{ClientSession, Database};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use tokio::task::JoinSet;

/// Transactional projector handlers by projector name.
pub type TxHandlers = BTreeMap<String, AnyTxHandler>;

/// One task [`spawn_declared`] started, with its live counters.
pub struct Started {
    /// Its name in the spec.
    pub name: String,
    /// What it does, for progress output (`projector `x`: `topic` → collection `c``).
    pub description: String,
    /// Its counters.
    pub stats: StartedStats,
}

/// The counters of a started task, by kind.
pub enum StartedStats {
    /// A changelog projector, with its consumer group and the topic's partitions.
    Changelog(GroupId, u32, Arc<ProjectorStats>),
    /// A transactional projector, with its consumer group and the topic's partitions.
    Transactional(GroupId, u32, Arc<TxStats>),
    /// A changefeed.
    Changefeed(Arc<ChangefeedStats>),
}

/// Starts on `tasks` every changelog projector and changefeed `system` declares, and every
/// transactional projector when `handlers` is given (one without a handler is an error; the
/// `prom` CLI, which has no user code, passes `None` and skips them). Each task stops when its
/// `shutdown()` future completes. Everything is resolved before anything starts, so a bad
/// declaration starts nothing.
pub fn spawn_declared<S, F>(
    system: &System,
    producer: &Producer<MongoBus>,
    handlers: Option<&TxHandlers>,
    tasks: &mut JoinSet<Result<()>>,
    shutdown: S,
) -> Result<Vec<Started>>
where
    S: Fn() -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let registry = producer.registry();
    let db = producer.bus().database().clone();
    let mut changelogs = Vec::new();
    let mut transactional = Vec::new();
    for projector in &system.projectors {
        match projector.kind {
            ProjectorKind::Changelog(_) => changelogs.push(ChangelogSpec::from_system(projector, registry)?),
            ProjectorKind::Transactional { .. } => {
                let Some(handlers) = handlers else { continue };
                let resolved = TransactionalSpec::from_system(projector, registry)?;
                let handler: Arc<dyn TxHandler> = match handlers.get(&resolved.name) {
                    Some(AnyTxHandler::Session(handler)) => handler.clone(),
                    Some(AnyTxHandler::Documents(handler)) => {
                        Arc::new(DocsOnMongo::new(handler.clone(), resolved.declared.clone()))
                    }
                    None => return Err(Error::MissingTxHandler { projector: resolved.name.clone() }),
                };
                transactional.push((resolved, handler));
            }
        }
    }
    let feeds: Vec<ChangefeedSpec> = system
        .changefeeds
        .iter()
        .map(|feed| ChangefeedSpec::from_system(feed, registry))
        .collect::<Result<_>>()?;

    let mut started = Vec::new();
    for resolved in changelogs {
        let description = format!(
            "projector `{}`: `{}` → collection `{}`",
            resolved.name, resolved.topic, resolved.collection
        );
        let group = GroupId::new(&resolved.topic, resolved.group());
        let partitions = registry.topic(&resolved.topic).map_or(1, |t| t.partitions);
        let name = resolved.name.clone();
        let projector =
            ChangelogProjector::new(producer.clone(), db.clone(), resolved, SubscribeOptions::default())?;
        let stats = StartedStats::Changelog(group, partitions, projector.stats());
        started.push(Started { name, description, stats });
        tasks.spawn(projector.run(shutdown()));
    }
    for (resolved, handler) in transactional {
        let description = format!("transactional projector `{}` on `{}`", resolved.name, resolved.topic);
        let group = GroupId::new(&resolved.topic, resolved.group());
        let (name, partitions) = (resolved.name.clone(), resolved.partitions);
        // Projectors declare no retry policy: the default backoff, then the DLQ, so one bad
        // event never stops the projection.
        let policy = FailurePolicy { retry: RetryPolicy::default(), dlq: true };
        let projector =
            TransactionalProjector::new(producer.clone(), resolved, SubscribeOptions::default(), policy);
        let stats = StartedStats::Transactional(group, partitions, projector.stats());
        started.push(Started { name, description, stats });
        tasks.spawn(projector.run(SharedTx(handler), shutdown()));
    }
    // Each changefeed resumes from its stored token, so a restart loses and repeats nothing.
    for resolved in feeds {
        let watched = resolved.database.as_deref().map_or_else(String::new, |d| format!("{d}."));
        let description = format!(
            "changefeed `{}`: `{watched}{}` → `{}`",
            resolved.name, resolved.collection, resolved.topic
        );
        let name = resolved.name.clone();
        let feed = ChangefeedRunner::new(producer.clone(), resolved);
        started.push(Started { name, description, stats: StartedStats::Changefeed(feed.stats()) });
        tasks.spawn(feed.run(shutdown()));
    }
    Ok(started)
}

/// Lets one registered handler serve its projector without cloning it.
struct SharedTx(Arc<dyn TxHandler>);

impl TxHandler for SharedTx {
    fn handle<'a>(
        &'a self,
        event: &'a EventRecord,
        db: &'a Database,
        session: &'a mut ClientSession,
    ) -> TxFuture<'a> {
        self.0.handle(event, db, session)
    }
}
