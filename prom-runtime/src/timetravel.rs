//! Time travel: the state of one key of a changelog topic as it was at a past time.
//!
//! The state at `T` is what the changelog projector would have stored after the key's events
//! published at or before `T` (in offset order): upserts, tombstones and the version guard,
//! with the same rules as the server-side writes in [`crate::project::write`]. It starts from
//! the nearest stored snapshot at or before `T` and folds the key's later events up to `T`.
//!
//! Snapshots live in the `snapshots` collection and are written here, by the fold itself, every
//! `snapshot_every` events of a key: the log is append-only, so the state after the key's events
//! up to an offset never changes and may be computed by whoever reads it first, without slowing
//! the projector down. A snapshot records the latest publish time it covers, and is used for
//! `T` only when that time is at or before `T`, which keeps it right even when publish times are
//! not in offset order. Its `fp` (key and version pointers, latest schema version) keeps a
//! changed spec from reusing snapshots folded under other rules.

use crate::bus::mongo::layout;
use crate::error::{Error, Result};
use crate::outage;
use crate::project::plan::{self, Change, Op, Pointers};
use crate::record::{EventRecord, Headers};
use crate::registry::Registry;
use crate::system::{ProjectorKind, System};
use futures_util::TryStreamExt;
use mongodb::bson::{self, Bson, Document, doc};
use mongodb::options::IndexOptions;
use mongodb::{Collection, Database, IndexModel};
use serde::Deserialize;
use serde_json::{Number, Value};
use std::cmp::Ordering;
use std::sync::Arc;

/// The collection holding time-travel snapshots.
pub const SNAPSHOTS: &str = "snapshots";

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
                let resolved = crate::project::ChangelogSpec::from_system(projector, registry)?;
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

/// Answers "what was the state of this key at time T" for one topic.
pub struct TimeTravel {
    db: Database,
    registry: Arc<Registry>,
    fold: FoldSpec,
    fingerprint: String,
    snapshot_every: u64,
}

/// A key's folded state: the document and its version.
#[derive(Debug, Clone, Default)]
struct State {
    doc: Option<Document>,
    version: Option<Number>,
}

/// The fields of a stored event the fold needs.
#[derive(Debug, Deserialize)]
struct StoredEvent {
    #[serde(rename = "_id")]
    id: bson::Uuid,
    off: i64,
    ts: i64,
    part: i64,
    headers: String,
    payload: String,
}

impl TimeTravel {
    /// Time travel over `fold.topic` in `db` (the bus's database); creates the snapshot index.
    pub async fn new(db: Database, registry: Arc<Registry>, fold: FoldSpec) -> Result<TimeTravel> {
        let latest = registry.topic(&fold.topic)?.latest();
        let fingerprint = format!(
            "key={};version={};v{latest}",
            fold.pointers.key,
            fold.pointers.version.as_deref().unwrap_or("")
        );
        let index = IndexModel::builder()
            .keys(doc! { "topic": 1, "key": 1, "fp": 1, "off": -1 })
            .options(IndexOptions::builder().name("topic_key_fp_off".to_string()).unique(true).build())
            .build();
        db.collection::<Document>(SNAPSHOTS).create_index(index).await.map_err(|e| {
            outage::mongo::error(SNAPSHOTS, format!("cannot create the index of `{SNAPSHOTS}`"), &e)
        })?;
        Ok(TimeTravel { db, registry, fold, fingerprint, snapshot_every: DEFAULT_SNAPSHOT_EVENTS })
    }

    /// Stores a snapshot every `events` events of a key (0: never store any).
    pub fn snapshot_every(mut self, events: u64) -> TimeTravel {
        self.snapshot_every = events;
        self
    }

    /// The state of `key` at `at_ms` (ms since the epoch).
    pub async fn state_at(&self, key: &str, at_ms: i64) -> Result<Travelled> {
        let topic = &self.fold.topic;
        let snapshots = self.db.collection::<Document>(SNAPSHOTS);
        let filter = doc! { "topic": topic, "key": key, "fp": &self.fingerprint, "ts": { "$lte": at_ms } };
        let snapshot =
            snapshots.find_one(filter).sort(doc! { "off": -1 }).await.map_err(|e| self.err("read", &e))?;
        let (mut state, base, mut max_ts) = match &snapshot {
            Some(s) => (
                restore(s, &self.fold.topic)?,
                s.get_i64("off").unwrap_or(0),
                s.get_i64("ts").unwrap_or(i64::MIN),
            ),
            None => (State::default(), 0, i64::MIN),
        };
        let events = self.db.collection::<StoredEvent>(layout::EVENTS);
        // Snapshots must cover every event up to their offset, so none is stored at or past the
        // first event after `at_ms` (which this fold leaves out).
        let late = events
            .find_one(doc! { "topic": topic, "key": key, "off": { "$gt": base }, "ts": { "$gt": at_ms } })
            .sort(doc! { "off": 1 })
            .await
            .map_err(|e| self.err("read", &e))?;
        let snapshot_below = late.map_or(i64::MAX, |e| e.off);
        let filter = doc! { "topic": topic, "key": key, "off": { "$gt": base }, "ts": { "$lte": at_ms } };
        let mut cursor =
            events.find(filter).sort(doc! { "off": 1 }).await.map_err(|e| self.err("read", &e))?;
        let mut read = 0;
        let mut pending = Vec::new();
        while let Some(stored) = cursor.try_next().await.map_err(|e| self.err("read", &e))? {
            read += 1;
            max_ts = max_ts.max(stored.ts);
            let offset = stored.off;
            if let Some(change) = self.change_of(key, stored) {
                apply(&mut state, change);
            }
            if self.snapshot_every > 0 && read % self.snapshot_every == 0 && offset < snapshot_below {
                pending.push(self.snapshot_doc(key, offset, max_ts, &state));
            }
        }
        let snapshots_written = self.store(&snapshots, pending).await;
        Ok(Travelled {
            state: state.doc.map(|d| Bson::Document(d).into_relaxed_extjson()),
            from_snapshot: snapshot.as_ref().map(|_| base),
            events: read,
            snapshots_written,
        })
    }

    /// The change an event makes, or `None` for events the projector dead-letters.
    fn change_of(&self, key: &str, stored: StoredEvent) -> Option<Change> {
        let headers: Headers = serde_json::from_str(&stored.headers).ok()?;
        let payload: Value = serde_json::from_str(&stored.payload).ok()?;
        let record = EventRecord {
            id: uuid::Uuid::from_bytes(stored.id.bytes()),
            topic: self.fold.topic.clone(),
            key: Some(key.to_string()),
            partition: u32::try_from(stored.part).ok()?,
            ts: stored.ts,
            headers,
            payload,
            caused_by: None,
            sid: None,
            offset: stored.off,
        };
        // Like the projector: a null tombstone has nothing to upcast or validate.
        let record = if record.payload.is_null() { record } else { self.registry.decode(record).ok()? };
        plan::change_of(&record, &self.fold.pointers).ok()
    }

    fn snapshot_doc(&self, key: &str, off: i64, ts: i64, state: &State) -> Document {
        doc! {
            "topic": &self.fold.topic,
            "key": key,
            "fp": &self.fingerprint,
            "off": off,
            "ts": ts,
            "state": state.doc.clone().map_or(Bson::Null, Bson::Document),
            // As text, so the version reads back exactly (integers beyond i64, decimals).
            "version": state.version.as_ref().map_or(Bson::Null, |v| Bson::String(v.to_string())),
        }
    }

    /// Stores snapshots; returns how many were new. Failures are not errors: a snapshot only
    /// saves work (a concurrent reader may have stored the same one, or a document be too large).
    async fn store(&self, snapshots: &Collection<Document>, pending: Vec<Document>) -> u64 {
        if pending.is_empty() {
            return 0;
        }
        let total = pending.len();
        let stored = match snapshots.insert_many(pending).ordered(false).await {
            Ok(done) => done.inserted_ids.len(),
            Err(e) => match *e.kind {
                // Unordered: everything but the failed statements was stored.
                mongodb::error::ErrorKind::InsertMany(ref failure) => {
                    total.saturating_sub(failure.write_errors.as_ref().map_or(total, Vec::len))
                }
                _ => 0,
            },
        };
        stored as u64
    }

    fn err(&self, what: &str, e: &mongodb::error::Error) -> Error {
        outage::mongo::error(
            format!("time travel on `{}`", self.fold.topic),
            format!("cannot {what} MongoDB"),
            e,
        )
    }
}

/// A state from a stored snapshot.
fn restore(snapshot: &Document, topic: &str) -> Result<State> {
    let corrupt = |field: &'static str| Error::CorruptSnapshot { topic: topic.to_owned(), field };
    let doc = match snapshot.get("state") {
        Some(Bson::Document(d)) => Some(d.clone()),
        Some(Bson::Null) | None => None,
        Some(_) => return Err(corrupt("state")),
    };
    let version = match snapshot.get("version") {
        Some(Bson::String(text)) => Some(text.parse::<Number>().map_err(|_| corrupt("version"))?),
        Some(Bson::Null) | None => None,
        Some(_) => return Err(corrupt("version")),
    };
    Ok(State { doc, version })
}

/// Applies one change the way the projector's guarded writes do: an upsert replaces unless the
/// stored version is newer or equal; a delete removes unless the stored version is newer.
fn apply(state: &mut State, change: Change) {
    let admits = |stored: &Option<Number>, equal_passes: bool| match (stored, &change.version) {
        (Some(stored), Some(new)) => match plan::compare_versions(stored, new) {
            Ordering::Less => true,
            Ordering::Equal => equal_passes,
            Ordering::Greater => false,
        },
        // Unguarded: no version on one side, so the server's filter is `_id` alone.
        _ => true,
    };
    match change.op {
        Op::Upsert(value) => {
            if state.doc.is_none() || admits(&state.version, false) {
                // The projector dead-letters a payload MongoDB cannot store, so the fold skips it.
                let Ok(doc) = bson::to_document(&value) else { return };
                state.version = change.version.clone();
                state.doc = Some(doc);
            }
        }
        Op::Delete => {
            if state.doc.is_some() && admits(&state.version, true) {
                *state = State::default();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(version: Option<i64>, delete: bool) -> Change {
        Change {
            key: "k".into(),
            version: version.map(Number::from),
            op: if delete { Op::Delete } else { Op::Upsert(serde_json::json!({ "_id": "k", "v": version })) },
            offset: 0,
        }
    }

    fn fold(changes: &[(Option<i64>, bool)]) -> Option<Document> {
        let mut state = State::default();
        for (version, delete) in changes {
            apply(&mut state, change(*version, *delete));
        }
        state.doc
    }

    #[test]
    fn the_fold_follows_the_guarded_writes() {
        assert_eq!(
            fold(&[(Some(1), false), (Some(3), false), (Some(2), false)]),
            Some(doc! { "_id": "k", "v": 3_i64 })
        );
        assert_eq!(fold(&[(Some(2), false), (Some(2), false)]).map(|d| d.len()), Some(2), "equal: kept");
        assert_eq!(fold(&[(Some(2), false), (Some(1), true)]).map(|d| d.len()), Some(2), "stale delete");
        assert_eq!(fold(&[(Some(2), false), (Some(2), true)]), None, "delete at the same version");
        assert_eq!(fold(&[(Some(2), false), (None, true)]), None, "null tombstone");
        assert_eq!(fold(&[(Some(5), false), (None, true), (Some(1), false)]).map(|d| d.len()), Some(2));
        assert_eq!(fold(&[(None, false), (None, false)]).map(|d| d.len()), Some(2));
    }
}
