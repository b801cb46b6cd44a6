//! Changefeeds: a MongoDB change stream on a collection, republished to a topic.
//!
//! Each change becomes `{operation, key, document}` on the declared topic, validated like any
//! publish, with the runtime headers [`CHANGE_OPERATION`] and [`CLUSTER_TIME`]. The change's
//! resume token is the publish's dedup key and is stored after the publish: a crash in between
//! resumes from the previous token, and the repeated change is recognised as already published.
//! So a restart has no gap and no duplicate.
//!
//! When the resume point has left the oplog (the feed was stopped longer than the oplog
//! window), the declared `on_lost_resume` applies: `fail` stops with an error saying what to do;
//! `restart_from_now` records the gap in `changefeed_gaps` and continues from the current
//! cluster time.
//!
//! An outage (MongoDB unreachable, no primary) is waited out with backoff and reported
//! ([`crate::outage`]); once the server is back the stream is opened again after the last
//! stored token, so an outage costs neither a gap nor a duplicate.

mod change;
pub mod resume;

pub use change::{CHANGE_OPERATION, CLUSTER_TIME, DEFAULT_OPERATIONS};

use crate::bus::EventBus;
use crate::bus::mongo::MongoBus;
use crate::error::{Error, Result};
use crate::outage::Outage;
use crate::publish::{self, Producer, PublishOptions};
use crate::registry::Registry;
use crate::system::{Changefeed, FullDocument, LostResumePolicy};
use futures_util::TryStreamExt;
use mongodb::bson::{Document, doc};
use mongodb::change_stream::ChangeStream;
use mongodb::change_stream::event::ChangeStreamEvent;
use mongodb::options::FullDocumentType;
use mongodb::{Collection, Database};
use resume::{Resume, State};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A changefeed's declaration, resolved against the registry.
#[derive(Debug, Clone)]
pub struct ChangefeedSpec {
    /// The changefeed's name (its state document's `_id`).
    pub name: String,
    /// Database of the watched collection (default: the bus's).
    pub database: Option<String>,
    /// Watched collection.
    pub collection: String,
    /// Topic the changes are published to.
    pub topic: String,
    /// `fullDocument` mode.
    pub full_document: FullDocument,
    /// Operation types republished.
    pub operations: Vec<String>,
    /// What to do when the resume point is gone.
    pub on_lost_resume: LostResumePolicy,
}

impl ChangefeedSpec {
    /// Resolves a changefeed of a system against the registry (no operations: all CRUD ones).
    pub fn from_system(feed: &Changefeed, registry: &Registry) -> Result<ChangefeedSpec> {
        let name = feed.name.clone();
        let topic =
            publish::publishable(registry, &feed.topic, &format!("changefeed `{name}`"))?.name.clone();
        let operations = feed.operations_or_default();
        Ok(ChangefeedSpec {
            name,
            database: feed.database.clone(),
            collection: feed.collection.clone(),
            topic,
            full_document: feed.full_document,
            operations,
            on_lost_resume: feed.on_lost_resume,
        })
    }
}

/// Counters of a running changefeed.
#[derive(Debug, Default)]
pub struct ChangefeedStats {
    /// Changes published.
    pub published: AtomicU64,
    /// Changes found already published (seen again after a crash).
    pub duplicates: AtomicU64,
    /// Lost resume points restarted from now (each recorded in `changefeed_gaps`).
    pub gaps: AtomicU64,
}

/// An open change stream and the state it started from.
type Opened = (ChangeStream<ChangeStreamEvent<Document>>, State);

/// Republishes a collection's changes to a topic.
pub struct ChangefeedRunner {
    producer: Producer<MongoBus>,
    spec: ChangefeedSpec,
    stats: Arc<ChangefeedStats>,
}

impl ChangefeedRunner {
    /// A changefeed publishing through `producer` (its bus also stores the resume state).
    pub fn new(producer: Producer<MongoBus>, spec: ChangefeedSpec) -> ChangefeedRunner {
        ChangefeedRunner { producer, spec, stats: Arc::default() }
    }

    /// The counters (shared; readable while running).
    pub fn stats(&self) -> Arc<ChangefeedStats> {
        self.stats.clone()
    }

    /// Republishes changes until `shutdown` completes. A MongoDB outage is waited out
    /// ([`crate::outage`]): the stream is opened again from the last stored token once the
    /// server is back, so no change is skipped, and a change published twice is recognised by
    /// its token.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let bus = self.producer.bus();
        let db = bus.database();
        let watched = match &self.spec.database {
            Some(name) => bus.client().database(name),
            None => db.clone(),
        };
        let collection = watched.collection::<Document>(&self.spec.collection);
        let mut outage = Outage::new(format!("changefeed `{}`", self.spec.name));
        tokio::pin!(shutdown);
        let Some(state) = outage.retry(shutdown.as_mut(), || self.start(db)).await? else { return Ok(()) };
        let opened = outage.retry(shutdown.as_mut(), || self.open(db, &collection, &state)).await?;
        let Some((mut stream, mut last)) = opened else { return Ok(()) };
        loop {
            let next = tokio::select! {
                biased;
                () = shutdown.as_mut() => return Ok(()),
                next = stream.try_next() => next,
            };
            let reopened = match next {
                Ok(Some(change)) => {
                    // Stopping between the two is harmless: the change is published again at
                    // the next start and recognised by its token. (`shutdown` is never polled
                    // again once it completed.)
                    let Some(()) = outage.retry(shutdown.as_mut(), || self.publish(&change)).await? else {
                        return Ok(());
                    };
                    let Some(()) = outage.retry(shutdown.as_mut(), || self.save(db, &change)).await? else {
                        return Ok(());
                    };
                    last = State { resume: Resume::After(change.id), cluster_time: change.cluster_time };
                    continue;
                }
                Ok(None) => return Err(self.ended()),
                Err(e) if resume::resume_point_lost(&e) => {
                    outage.retry(shutdown.as_mut(), || self.lost(db, &collection, &last, &e)).await?
                }
                Err(e) => {
                    // The stream is spent (the driver already tried to resume it once): wait,
                    // then open a new one where the last stored change left off.
                    if !outage.wait(self.db_err("read the change stream", &e), shutdown.as_mut()).await? {
                        return Ok(());
                    }
                    outage.retry(shutdown.as_mut(), || self.open(db, &collection, &last)).await?
                }
            };
            let Some((new_stream, state)) = reopened else { return Ok(()) };
            (stream, last) = (new_stream, state);
        }
    }

    /// The stored state, or (first start) the current cluster time, stored as the start point.
    async fn start(&self, db: &Database) -> Result<State> {
        match resume::load(db, &self.spec.name).await.map_err(|e| self.db_err("read", &e))? {
            Some(state) => Ok(state),
            None => self.start_now(db).await,
        }
    }

    /// A change stream from `state` (or, when its resume point is gone, what `on_lost_resume`
    /// says), with the state it starts from.
    async fn open(&self, db: &Database, collection: &Collection<Document>, state: &State) -> Result<Opened> {
        match self.watch(collection, &state.resume).await {
            Ok(stream) => Ok((stream, state.clone())),
            Err(e) if resume::resume_point_lost(&e) => self.lost(db, collection, state, &e).await,
            Err(e) => Err(self.db_err("watch", &e)),
        }
    }

    /// Stores the token of a published change.
    async fn save(&self, db: &Database, change: &ChangeStreamEvent<Document>) -> Result<()> {
        resume::save_token(db, &self.spec.name, &change.id, change.cluster_time)
            .await
            .map_err(|e| self.db_err("store the resume token", &e))
    }

    /// Stores the current cluster time as the start point, so a crash resumes from it.
    async fn start_now(&self, db: &Database) -> Result<State> {
        let now = resume::server_time(db).await.map_err(|e| self.db_err("read the cluster time", &e))?;
        let now =
            now.ok_or_else(|| self.fail("the server reports no cluster time; is it a replica set?".into()))?;
        resume::save_start(db, &self.spec.name, now).await.map_err(|e| self.db_err("store the start", &e))?;
        Ok(State { resume: Resume::At(now), cluster_time: Some(now) })
    }

    async fn watch(
        &self,
        collection: &Collection<Document>,
        from: &Resume,
    ) -> mongodb::error::Result<ChangeStream<ChangeStreamEvent<Document>>> {
        // Filtering on the server keeps unwanted changes off the wire.
        let pipeline = vec![doc! { "$match": { "operationType": { "$in": &self.spec.operations } } }];
        let mode = match self.spec.full_document {
            FullDocument::Default => None,
            FullDocument::UpdateLookup => Some(FullDocumentType::UpdateLookup),
            FullDocument::WhenAvailable => Some(FullDocumentType::WhenAvailable),
            FullDocument::Required => Some(FullDocumentType::Required),
        };
        let watch = collection.watch().pipeline(pipeline);
        let watch = match mode {
            Some(mode) => watch.full_document(mode),
            None => watch,
        };
        match from {
            Resume::After(token) => watch.resume_after(token.clone()).await,
            Resume::At(time) => watch.start_at_operation_time(*time).await,
        }
    }

    /// Applies `on_lost_resume`: an error, or a recorded gap and a stream from now.
    async fn lost(
        &self,
        db: &Database,
        collection: &Collection<Document>,
        state: &State,
        error: &mongodb::error::Error,
    ) -> Result<Opened> {
        let since = state.cluster_time.map_or_else(|| "an unknown time".into(), change::cluster_time_text);
        if self.spec.on_lost_resume == LostResumePolicy::Fail {
            return Err(self.fail(format!(
                "its resume point (cluster time {since}) is no longer in the oplog, so the changes of `{}` \
                 since then cannot be read ({error})\nhelp: the changefeed was stopped for longer than the \
                 oplog window. Set `on_lost_resume: restart_from_now` on it in the spec to continue from \
                 now (the skipped interval is recorded in the `{}` collection), or delete its document \
                 `{{_id: \"{}\"}}` from `{}` to start over from now; then resynchronise the consumers of \
                 `{}`. A larger oplog (replSetResizeOplog) avoids this.",
                self.spec.collection,
                resume::GAPS,
                self.spec.name,
                resume::STATES,
                self.spec.topic
            )));
        }
        let now = self.start_now(db).await?;
        let Resume::At(to) = now.resume else { return Err(self.fail("no start time".into())) };
        let reason = format!("the resume point was no longer in the oplog: {error}");
        resume::record_gap(db, &self.spec.name, &self.spec.topic, state.cluster_time, to, &reason)
            .await
            .map_err(|e| self.db_err("record the gap", &e))?;
        self.stats.gaps.fetch_add(1, Ordering::Relaxed);
        let stream = self.watch(collection, &now.resume).await.map_err(|e| self.db_err("watch", &e))?;
        Ok((stream, now))
    }

    /// Publishes one change (deduplicated by its resume token).
    async fn publish(&self, change: &ChangeStreamEvent<Document>) -> Result<()> {
        let token = change::token_text(&change.id).map_err(|e| self.fail(e))?;
        let payload = change::payload(change).map_err(|e| self.fail(format!("change {token}: {e}")))?;
        let opts = PublishOptions {
            dedup: Some(format!("changefeed:{}:{token}", self.spec.name)),
            ..Default::default()
        };
        let mut events = publish::prepare(self.producer.registry(), &self.spec.topic, payload, &opts)
            .map_err(|e| {
                self.fail(format!("a change of `{}` cannot be published: {e}", self.spec.collection))
            })?;
        let operation = change::operation_name(&change.operation_type);
        for event in &mut events {
            // Runtime headers, stamped after validation (which only admits declared ones).
            event.headers.insert(CHANGE_OPERATION.into(), operation.clone());
            if let Some(time) = change.cluster_time {
                event.headers.insert(CLUSTER_TIME.into(), change::cluster_time_text(time));
            }
        }
        let receipts = self.producer.bus().publish(events).await?;
        let counter = match receipts.first() {
            Some(receipt) if receipt.duplicate => &self.stats.duplicates,
            _ => &self.stats.published,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn ended(&self) -> Error {
        self.fail(format!(
            "the change stream on `{}` ended (the collection or its database was dropped or renamed)\nhelp: \
             recreate the collection, then delete the changefeed's document `{{_id: \"{}\"}}` from `{}` to \
             start over from now",
            self.spec.collection,
            self.spec.name,
            resume::STATES
        ))
    }

    /// A driver error: [`Error::Unavailable`] when it is worth waiting out.
    fn db_err(&self, what: &str, e: &mongodb::error::Error) -> Error {
        crate::outage::mongo::error(self.path(), format!("cannot {what}"), e)
    }

    fn fail(&self, message: String) -> Error {
        Error::store(self.path(), message)
    }

    fn path(&self) -> String {
        format!("changefeed `{}`", self.spec.name)
    }
}
