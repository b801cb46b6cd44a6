//! The changelog projector: a topic mirrored into a collection, one document per key.
//!
//! It is a consumer group (`projector.<name>`) on any bus: members split partitions, and after
//! a crash everything from the last committed cursor is applied again, which is harmless because
//! every write is idempotent (replace by key, version-guarded). Per poll batch it decodes the
//! events (upcast + validate), collapses them to one change per key, writes them in bulk, and
//! only after the server acknowledged the writes acks the events and commits the cursor.
//! Events that can never be projected (no key, a non-numeric version, a document the server
//! refuses) go to `dlq.<topic>` instead of blocking their partition.

use super::plan::{self, Change, Pointers};
use super::write::{self, Outcome, WriteError};
use crate::bus::EventBus;
use crate::consumer::{AckMode, Delivery, SubscribeOptions, Subscription};
use crate::dlq;
use crate::error::{Error, Result};
use crate::metrics::ProjectorMetrics;
use crate::outage::{self, Outage};
use crate::publish::Producer;
use crate::record::EventRecord;
use crate::registry::Route;
use crate::system::{Projector, ProjectorKind};
use mongodb::bson::Document;
use mongodb::options::IndexOptions;
use mongodb::{Database, IndexModel};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Attempts at one batch's bulk write before the projector stops with the error.
const WRITE_ATTEMPTS: u32 = 8;

/// A changelog projector's declaration, resolved against the registry.
#[derive(Debug, Clone)]
pub struct ChangelogSpec {
    /// Projector name (its consumer group is `projector.<name>`).
    pub name: String,
    /// Source topic.
    pub topic: String,
    /// Target collection.
    pub collection: String,
    /// Where key and version are.
    pub pointers: Pointers,
    /// Indexes created at start.
    pub indexes: Vec<IndexModel>,
}

impl ChangelogSpec {
    /// Resolves a changelog projector of a system against the registry.
    pub fn from_system(projector: &Projector, registry: &crate::registry::Registry) -> Result<ChangelogSpec> {
        let name = projector.name.clone();
        let fail = |what: String| Error::system(format!("projector `{name}`"), what);
        let ProjectorKind::Changelog(changelog) = &projector.kind else {
            return Err(Error::WrongProjectorKind {
                projector: name,
                kind: "transactional",
                help: "run it with the transactional projector",
            });
        };
        let topic = registry.topic(&projector.topic)?;
        let collection = changelog.collection.clone();
        let key = changelog.key.clone();
        let version = changelog.version.clone();
        if let Some(version) = &version {
            plan::dotted_path(version).map_err(|e| fail(format!("version {e}")))?;
        }
        let indexes = changelog
            .indexes
            .iter()
            .map(|index| {
                let mut keys = Document::new();
                for (field, direction) in &index.keys {
                    keys.insert(field.clone(), *direction);
                }
                let options = IndexOptions::builder().unique(index.unique).name(index.name.clone()).build();
                IndexModel::builder().keys(keys).options(options).build()
            })
            .collect();
        let key_is_event_key = topic.key.as_deref() == Some(key.as_str());
        Ok(ChangelogSpec {
            name: name.clone(),
            topic: topic.name.clone(),
            collection,
            pointers: Pointers { key, version, key_is_event_key },
            indexes,
        })
    }

    /// The consumer group the projector reads with.
    pub fn group(&self) -> String {
        format!("projector.{}", self.name)
    }
}

/// Counters of a running projector.
#[derive(Debug, Default)]
pub struct ProjectorStats {
    /// Events consumed (written and committed).
    pub events: AtomicU64,
    /// Documents inserted or replaced.
    pub upserted: AtomicU64,
    /// Documents deleted.
    pub deleted: AtomicU64,
    /// Events not written: superseded by a newer one of their key in the batch, or not newer
    /// than the stored document (a replay of the stored version included).
    pub skipped: AtomicU64,
    /// Events sent to the DLQ.
    pub dead_lettered: AtomicU64,
}

/// Keeps a collection in step with a topic.
pub struct ChangelogProjector<B: EventBus> {
    producer: Producer<B>,
    db: Database,
    spec: ChangelogSpec,
    version_path: Option<String>,
    opts: SubscribeOptions,
    stats: Arc<ProjectorStats>,
    metrics: ProjectorMetrics,
}

impl<B: EventBus> ChangelogProjector<B> {
    /// A projector writing into `db`; `opts` gives member id, TTL, batch size and poll timeout
    /// (partitions come from the registry, acks are manual).
    pub fn new(
        producer: Producer<B>,
        db: Database,
        spec: ChangelogSpec,
        opts: SubscribeOptions,
    ) -> Result<ChangelogProjector<B>> {
        let partitions = match producer.registry().route(&spec.topic)? {
            Route::Topic(t) | Route::Versioned(t, _) | Route::DeadLetters(t) => t.partitions,
        };
        let version_path = spec.pointers.version.as_deref().map(plan::dotted_path).transpose();
        let version_path =
            version_path.map_err(|e| Error::system(format!("projector `{}`", spec.name), e))?;
        let opts = SubscribeOptions { partitions, partitioned: true, ack: AckMode::Manual, ..opts };
        let metrics = ProjectorMetrics::new(&spec.name);
        Ok(ChangelogProjector { producer, db, spec, version_path, opts, stats: Arc::default(), metrics })
    }

    /// The counters (shared; readable while running).
    pub fn stats(&self) -> Arc<ProjectorStats> {
        self.stats.clone()
    }

    /// Creates the declared indexes (idempotent).
    pub async fn create_indexes(&self) -> Result<()> {
        if self.spec.indexes.is_empty() {
            return Ok(());
        }
        self.db
            .collection::<Document>(&self.spec.collection)
            .create_indexes(self.spec.indexes.clone())
            .await
            .map(|_| ())
            .map_err(|e| {
                let what = format!("cannot create its indexes on `{}`", self.spec.collection);
                outage::mongo::error(self.path(), what, &e)
            })
    }

    /// Creates the indexes, then projects until `shutdown` completes; commits and leaves the
    /// group on the way out. A MongoDB outage is waited out ([`crate::outage`]): the batch in
    /// hand is written again once the server is back (every write is idempotent), and nothing
    /// is acked before it is written. A batch that `shutdown` cuts short is not acked, so the
    /// next start writes it again.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let mut outage = Outage::new(format!("projector `{}`", self.spec.name));
        tokio::pin!(shutdown);
        if outage.retry(shutdown.as_mut(), || self.create_indexes()).await?.is_none() {
            return Ok(());
        }
        let mut sub = Subscription::new(
            self.producer.bus().clone(),
            &self.spec.topic,
            &self.spec.group(),
            self.opts.clone(),
        )?;
        let outcome = loop {
            let polled = outage.retry_on(shutdown.as_mut(), &mut sub, |sub| Box::pin(sub.poll())).await;
            let batch = match polled {
                Ok(Some(batch)) => batch,
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            };
            if batch.is_empty() {
                continue;
            }
            match outage.retry(shutdown.as_mut(), || self.project(&batch)).await {
                Ok(Some(())) => {}
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
            for delivery in &batch {
                sub.ack(delivery);
            }
            let committed = outage.retry_on(shutdown.as_mut(), &mut sub, |sub| Box::pin(sub.commit())).await;
            // Counted once committed (or left to `close`, which commits on the way out), so a
            // progress line never shows a batch as consumed while it still counts as lag.
            if committed.is_ok() {
                self.stats.events.fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
            match committed {
                Ok(Some(())) => {}
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        let closed = sub.close().await;
        outcome.and(closed)
    }

    /// Projects one batch: decode, dead-letter what cannot be projected, write the rest.
    /// Safe to run again on the same batch (dead letters carry a dedup key, writes are
    /// version-guarded upserts).
    async fn project(&self, batch: &[Delivery]) -> Result<()> {
        let mut changes = Vec::with_capacity(batch.len());
        for delivery in batch {
            match self.change_of(EventRecord::clone(&delivery.record)) {
                Ok(change) => changes.push(change),
                Err(reason) => self.dead_letter(&delivery.record, &reason).await?,
            }
        }
        let outcome = self.apply(changes).await?;
        for (offset, reason) in &outcome.rejected {
            if let Some(delivery) = batch.iter().find(|d| d.record.offset == *offset) {
                self.dead_letter(&delivery.record, reason).await?;
            }
        }
        Ok(())
    }

    fn change_of(&self, record: EventRecord) -> std::result::Result<Change, String> {
        // A null tombstone has no payload to upcast or validate.
        let record = if record.payload.is_null() {
            record
        } else {
            self.producer.registry().decode(record).map_err(|e| format!("cannot decode: {e}"))?
        };
        plan::change_of(&record, &self.spec.pointers)
    }

    /// Collapses `changes` to one per key and writes them (retrying transient failures); the
    /// result is acknowledged by a majority when this returns.
    pub async fn apply(&self, changes: Vec<Change>) -> Result<Outcome> {
        let collapsed_away = changes.len();
        let changes = plan::collapse(changes);
        let collapsed_away = (collapsed_away - changes.len()) as u64;
        let mut attempt = 0;
        let outcome = loop {
            attempt += 1;
            match write::apply(&self.db, &self.spec.collection, self.version_path.as_deref(), &changes).await
            {
                Ok(outcome) => break outcome,
                // An outage is the caller's to wait out (and report), not a few quick retries'.
                Err(e @ WriteError::Unavailable { .. }) => return Err(self.unavailable(e)),
                Err(e) if attempt >= WRITE_ATTEMPTS => {
                    let (message, source) = e.into_parts();
                    let message = format!("cannot write to `{}`: {message}", self.spec.collection);
                    return Err(Error::Store { path: self.path(), message, source });
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50 << attempt)).await,
            }
        };
        self.stats.upserted.fetch_add(outcome.upserted, Ordering::Relaxed);
        self.stats.deleted.fetch_add(outcome.deleted, Ordering::Relaxed);
        self.stats.skipped.fetch_add(outcome.skipped + collapsed_away, Ordering::Relaxed);
        self.metrics.applied(outcome.upserted, outcome.deleted, outcome.skipped + collapsed_away, 0);
        Ok(outcome)
    }

    /// Writes a dead letter (durably) so the event's partition can move on.
    async fn dead_letter(&self, record: &EventRecord, reason: &str) -> Result<()> {
        let letter = dlq::dead_letter(record, &self.spec.group(), reason, 0);
        self.producer.bus().publish(vec![letter]).await?;
        self.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
        self.metrics.applied(0, 0, 0, 1);
        Ok(())
    }

    fn unavailable(&self, error: WriteError) -> Error {
        let (message, source) = error.into_parts();
        let message = format!("cannot write to `{}`: {message}", self.spec.collection);
        Error::unavailable(self.path(), message, source)
    }

    fn path(&self) -> String {
        format!("projector `{}`", self.spec.name)
    }
}
