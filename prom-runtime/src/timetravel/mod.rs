//! Time travel: the state of one key of a changelog topic as it was at a past time, on the
//! embedded store and on MongoDB.
//!
//! The state at `T` is what the changelog projector would have stored after the key's events
//! published at or before `T` (in offset order): upserts, tombstones and the version guard,
//! with the same rules as the projector's guarded writes ([`crate::project`]). It starts from
//! the nearest stored snapshot at or before `T` and folds the key's later events up to `T`.
//!
//! Snapshots are written here, by the fold itself, every `snapshot_every` events of a key: the
//! log is append-only, so the state after the key's events up to an offset never changes and
//! may be computed by whoever reads it first, without slowing the projector down. A snapshot
//! records the latest publish time it covers, and is used for `T` only when that time is at or
//! before `T`, which keeps it right even when publish times are not in offset order. Its `fp`
//! (key and version pointers, latest schema version) keeps a changed spec from reusing
//! snapshots folded under other rules.
//!
//! [`fold`] holds the rules; [`sqlite`] and [`mongo`] only find snapshots and events and
//! store snapshots (the table `key_snapshots`, the collection `snapshots`).

mod fold;
#[cfg(feature = "mongo")]
mod mongo;
mod sqlite;

use crate::bus::SqliteBus;
use crate::error::{Error, Result};
use crate::project::plan::Pointers;
use crate::record::EventRecord;
use crate::registry::Registry;
use crate::system::{ProjectorKind, System};
use serde_json::{Number, Value};
use std::sync::Arc;

pub use fold::State;

/// The MongoDB collection holding time-travel snapshots.
pub const SNAPSHOTS: &str = "snapshots";

/// The embedded store's table holding time-travel snapshots.
pub const SNAPSHOT_TABLE: &str = "key_snapshots";

/// Events of a key read from the store at a time.
const PAGE: usize = 1000;

/// Events of a key folded between two snapshots, by default.
pub const DEFAULT_SNAPSHOT_EVENTS: u64 = 100;

/// How a topic's events become documents: the changelog projector's pointers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoldSpec {
    /// The topic.
    pub topic: String,
    /// Key and version pointers (the key must be the topic's key: events are found by it).
    pub pointers: Pointers,
}

impl FoldSpec {
    /// The fold of `topic`: its changelog projectors' pointers, or the topic's key without a
    /// version guard when no changelog projector reads it.
    pub fn for_topic(system: &System, registry: &Registry, topic: &str) -> Result<FoldSpec> {
        let schema = registry.topic(topic)?;
        let mut found: Vec<(String, Pointers)> = Vec::new();
        for projector in &system.projectors {
            if matches!(projector.kind, ProjectorKind::Changelog(_)) && projector.topic == topic {
                let resolved = crate::project::EmbeddedSpec::from_system(projector, system, registry)?;
                found.push((resolved.name, resolved.pointers));
            }
        }
        let pointers = match found.as_slice() {
            [] => {
                let key = schema.key.clone().ok_or_else(|| {
                    Error::system(format!("topic `{topic}`"), "declares no `key`, so it has no per-key state")
                })?;
                Pointers { key, version: None, key_is_event_key: true }
            }
            [(_, first), rest @ ..] => {
                if let Some((other, _)) = rest.iter().find(|(_, p)| p != first) {
                    return Err(Error::system(
                        format!("topic `{topic}`"),
                        format!(
                            "changelog projectors `{}` and `{other}` read it with different key or \
                             version pointers, so its state at a time is ambiguous",
                            found[0].0
                        ),
                    ));
                }
                first.clone()
            }
        };
        if !pointers.key_is_event_key {
            return Err(Error::system(
                format!("topic `{topic}`"),
                format!(
                    "the changelog key `{}` is not the topic's key, so its events cannot be found by \
                     key; declare it as the topic's `key`",
                    pointers.key
                ),
            ));
        }
        Ok(FoldSpec { topic: topic.to_string(), pointers })
    }
}

/// The state of a key at a time, and how it was computed.
#[derive(Debug, Clone, PartialEq)]
pub struct Travelled {
    /// The document (as the projector stores it, `_id` included), or `None` when absent.
    pub state: Option<Value>,
    /// The offset of the snapshot the fold started from.
    pub from_snapshot: Option<i64>,
    /// Events read after the snapshot.
    pub events: u64,
    /// Snapshots this call stored.
    pub snapshots_written: u64,
}

/// A stored time-travel snapshot: the state of a key after its events up to `off`.
#[derive(Debug, Clone, PartialEq)]
pub struct KeySnapshot {
    /// The topic.
    pub topic: String,
    /// The key.
    pub key: String,
    /// The fold's fingerprint.
    pub fp: String,
    /// The offset of the last event it covers.
    pub off: i64,
    /// The latest publish time among the events it covers.
    pub ts: i64,
    /// The document, or `None` when absent.
    pub state: Option<Value>,
    /// The document's version.
    pub version: Option<Number>,
}

/// Where the events and snapshots are.
#[derive(Clone)]
enum Store {
    Sqlite(SqliteBus),
    #[cfg(feature = "mongo")]
    Mongo(mongo::MongoStore),
}

/// Answers "what was the state of this key at time T" for one topic.
#[derive(Clone)]
pub struct TimeTravel {
    store: Store,
    registry: Arc<Registry>,
    fold: FoldSpec,
    fingerprint: String,
    snapshot_every: u64,
}

impl std::fmt::Debug for TimeTravel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let store = match &self.store {
            Store::Sqlite(bus) => format!("{bus:?}"),
            #[cfg(feature = "mongo")]
            Store::Mongo(_) => "MongoDB".to_owned(),
        };
        f.debug_struct("TimeTravel").field("store", &store).field("fold", &self.fold).finish_non_exhaustive()
    }
}

impl TimeTravel {
    /// Time travel over `fold.topic` in `db` (the MongoDB bus's database); creates the snapshot
    /// index, and freezes the per-event documents of an earlier release as opening a bus does.
    #[cfg(feature = "mongo")]
    pub async fn new(db: mongodb::Database, registry: Arc<Registry>, fold: FoldSpec) -> Result<TimeTravel> {
        let store = mongo::MongoStore::new(db).await?;
        Ok(TimeTravel::with_store(Store::Mongo(store), registry, fold))
    }

    /// Time travel over `fold.topic` on the embedded store `bus` (a store opened read-only
    /// answers too, without storing snapshots).
    pub fn on_sqlite(bus: SqliteBus, registry: Arc<Registry>, fold: FoldSpec) -> TimeTravel {
        TimeTravel::with_store(Store::Sqlite(bus), registry, fold)
    }

    /// Time travel over `fold.topic` on `bus` (the embedded store or MongoDB); the in-memory bus
    /// keeps no history to travel in.
    pub async fn on<B: crate::EventBus>(
        bus: &B,
        registry: Arc<Registry>,
        fold: FoldSpec,
    ) -> Result<TimeTravel> {
        if let Some(sqlite) = bus.as_sqlite() {
            return Ok(TimeTravel::on_sqlite(sqlite.clone(), registry, fold));
        }
        #[cfg(feature = "mongo")]
        if let Some(mongo) = bus.as_mongo() {
            let store = mongo::MongoStore::of_bus(mongo).await?;
            return Ok(TimeTravel::with_store(Store::Mongo(store), registry, fold));
        }
        Err(Error::setting(
            "time travel",
            "it needs the embedded store or MongoDB; the in-memory bus keeps no stored history to travel in",
        ))
    }

    fn with_store(store: Store, registry: Arc<Registry>, fold: FoldSpec) -> TimeTravel {
        let latest = registry.topic(&fold.topic).map(|t| t.latest()).unwrap_or_default();
        let fingerprint = format!(
            "key={};version={};v{latest}",
            fold.pointers.key,
            fold.pointers.version.as_deref().unwrap_or("")
        );
        TimeTravel { store, registry, fold, fingerprint, snapshot_every: DEFAULT_SNAPSHOT_EVENTS }
    }

    /// Stores a snapshot every `events` events of a key (0: never store any).
    pub fn snapshot_every(mut self, events: u64) -> TimeTravel {
        self.snapshot_every = events;
        self
    }

    /// The topic travelled in.
    pub fn topic(&self) -> &str {
        &self.fold.topic
    }

    /// The state of `key` at `at_ms` (ms since the epoch).
    pub async fn state_at(&self, key: &str, at_ms: i64) -> Result<Travelled> {
        let snapshot = self.snapshot(key, at_ms).await?;
        let (start, base) = match &snapshot {
            Some(s) => ((State { doc: s.state.clone(), version: s.version.clone() }, s.ts), s.off),
            None => ((State::default(), i64::MIN), 0),
        };
        // Snapshots must cover every event up to their offset, so none is stored at or past the
        // first event after `at_ms` (which this fold leaves out).
        let below = self.first_after(key, base, at_ms).await?.unwrap_or(i64::MAX);
        let admit = self.admit();
        let mut fold = fold::Fold::new(
            &self.fold,
            &self.registry,
            &self.fingerprint,
            key,
            admit,
            self.snapshot_every,
            below,
            start,
        );
        let mut after = base;
        loop {
            let page = self.events(key, after, at_ms).await?;
            let full = page.len() == PAGE;
            for record in page {
                after = record.offset;
                fold.push(record);
            }
            if !full {
                break;
            }
        }
        let folded = fold.finish();
        let snapshots_written = self.store(folded.pending).await;
        Ok(Travelled {
            state: folded.state.doc,
            from_snapshot: snapshot.map(|s| s.off),
            events: folded.read,
            snapshots_written,
        })
    }

    fn admit(&self) -> fold::Admit {
        match &self.store {
            Store::Sqlite(_) => sqlite::admit,
            #[cfg(feature = "mongo")]
            Store::Mongo(_) => mongo::admit,
        }
    }

    async fn snapshot(&self, key: &str, at_ms: i64) -> Result<Option<KeySnapshot>> {
        match &self.store {
            Store::Sqlite(bus) => {
                sqlite::snapshot(bus, &self.fold.topic, key, &self.fingerprint, at_ms).await
            }
            #[cfg(feature = "mongo")]
            Store::Mongo(m) => m.snapshot(&self.fold.topic, key, &self.fingerprint, at_ms).await,
        }
    }

    async fn first_after(&self, key: &str, after: i64, at_ms: i64) -> Result<Option<i64>> {
        match &self.store {
            Store::Sqlite(bus) => bus.first_key_event_after(&self.fold.topic, key, after, at_ms).await,
            #[cfg(feature = "mongo")]
            Store::Mongo(m) => m.first_after(&self.fold.topic, key, after, at_ms).await,
        }
    }

    async fn events(&self, key: &str, after: i64, at_ms: i64) -> Result<Vec<EventRecord>> {
        match &self.store {
            Store::Sqlite(bus) => bus.key_events(&self.fold.topic, key, after, at_ms, PAGE).await,
            #[cfg(feature = "mongo")]
            Store::Mongo(m) => m.events(&self.fold.topic, key, after, at_ms, PAGE).await,
        }
    }

    /// Stores snapshots; returns how many were new. Failures are not errors: a snapshot only
    /// saves work (a concurrent reader may have stored the same one, the store be read-only, or
    /// a document be too large).
    async fn store(&self, pending: Vec<KeySnapshot>) -> u64 {
        if pending.is_empty() {
            return 0;
        }
        let stored = match &self.store {
            Store::Sqlite(bus) => bus.save_key_snapshots(pending).await,
            #[cfg(feature = "mongo")]
            Store::Mongo(m) => Ok(m.store(pending).await),
        };
        stored.unwrap_or_else(|e| {
            tracing::debug!(topic = %self.fold.topic, "time-travel snapshots not stored: {e}");
            0
        })
    }
}
