//! Time travel's storage on MongoDB: snapshots in the collection `snapshots`, a key's events
//! read through the bus ([`crate::bus::mongo::stored`], on the `(topic, key, off)` index).

use super::{KeySnapshot, SNAPSHOTS};
use crate::bus::mongo::MongoBus;
use crate::bus::mongo::docs::EventDoc;
use crate::bus::mongo::layout;
use crate::bus::mongo::stored::{self, Legacy};
use crate::error::{Error, Result};
use crate::outage;
use crate::record::{EventRecord, Headers};
use mongodb::bson::{self, Bson, Document, doc};
use mongodb::options::IndexOptions;
use mongodb::{Collection, Database, IndexModel};
use serde_json::{Number, Value};
use std::sync::Arc;

/// A document as MongoDB gives it back (relaxed extended JSON), or `None` when it cannot be
/// stored (the projector dead-letters it).
pub fn admit(doc: Value) -> Option<Value> {
    bson::to_document(&doc).ok().map(|d| Bson::Document(d).into_relaxed_extjson())
}

/// The database holding the events and snapshots.
#[derive(Clone)]
pub struct MongoStore {
    db: Database,
    /// The frozen per-event documents' last offsets, so key reads past them skip `events`.
    legacy: Arc<Legacy>,
}

impl MongoStore {
    /// The store of `db` on its own: freezes the per-event documents of an earlier release as
    /// opening a bus does (so the offsets [`Legacy`] caches stay the last ones), then creates
    /// the snapshot index.
    pub async fn new(db: Database) -> Result<MongoStore> {
        layout::freeze_events(&db).await.map_err(|e| {
            outage::mongo::error(layout::EVENTS, format!("cannot freeze `{}`", layout::EVENTS), &e)
        })?;
        MongoStore::with_legacy(db, Arc::default()).await
    }

    /// The store of `bus`'s database, sharing what the bus knows of the frozen documents.
    pub async fn of_bus(bus: &MongoBus) -> Result<MongoStore> {
        MongoStore::with_legacy(bus.database().clone(), bus.legacy()).await
    }

    /// Creates the snapshot index.
    async fn with_legacy(db: Database, legacy: Arc<Legacy>) -> Result<MongoStore> {
        let index = IndexModel::builder()
            .keys(doc! { "topic": 1, "key": 1, "fp": 1, "off": -1 })
            .options(IndexOptions::builder().name("topic_key_fp_off".to_string()).unique(true).build())
            .build();
        db.collection::<Document>(SNAPSHOTS).create_index(index).await.map_err(|e| {
            outage::mongo::error(SNAPSHOTS, format!("cannot create the index of `{SNAPSHOTS}`"), &e)
        })?;
        Ok(MongoStore { db, legacy })
    }

    /// The nearest snapshot of `key` at or before `at_ms`.
    pub async fn snapshot(
        &self,
        topic: &str,
        key: &str,
        fp: &str,
        at_ms: i64,
    ) -> Result<Option<KeySnapshot>> {
        let filter = doc! { "topic": topic, "key": key, "fp": fp, "ts": { "$lte": at_ms } };
        let found = self
            .db
            .collection::<Document>(SNAPSHOTS)
            .find_one(filter)
            .sort(doc! { "off": -1 })
            .await
            .map_err(|e| err(topic, &e))?;
        found.map(|s| restore(&s, topic, key, fp)).transpose()
    }

    /// The offset of the first event of `key` after `after` published later than `at_ms`.
    pub async fn first_after(&self, topic: &str, key: &str, after: i64, at_ms: i64) -> Result<Option<i64>> {
        stored::key_first_after(&self.db, &self.legacy, topic, key, after, at_ms)
            .await
            .map_err(|e| err(topic, &e))
    }

    /// Up to `limit` events of `key` after `after` published at or before `at_ms`, in offset
    /// order; a stored event whose headers or payload are not JSON is left out (the projector
    /// dead-letters it).
    pub async fn events(
        &self,
        topic: &str,
        key: &str,
        after: i64,
        at_ms: i64,
        limit: usize,
    ) -> Result<Vec<EventRecord>> {
        let events = stored::key_events(&self.db, &self.legacy, topic, key, after, at_ms, limit)
            .await
            .map_err(|e| err(topic, &e))?;
        Ok(events.into_iter().map(|stored| record(topic, key, stored)).collect())
    }

    /// Stores snapshots; returns how many were new (an existing one is kept).
    pub async fn store(&self, pending: Vec<KeySnapshot>) -> u64 {
        let docs: Vec<Document> = pending.iter().filter_map(snapshot_doc).collect();
        if docs.is_empty() {
            return 0;
        }
        let total = docs.len();
        let snapshots: Collection<Document> = self.db.collection(SNAPSHOTS);
        let stored = match snapshots.insert_many(docs).ordered(false).await {
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
}

/// A stored event as a record; unreadable JSON becomes a payload the registry refuses.
fn record(topic: &str, key: &str, stored: EventDoc) -> EventRecord {
    let headers: Option<Headers> = serde_json::from_str(&stored.headers).ok();
    let payload: Option<Value> = serde_json::from_str(&stored.payload).ok();
    let readable = headers.is_some() && payload.is_some();
    let mut record = EventRecord {
        id: uuid::Uuid::from_bytes(stored.id.bytes()),
        topic: topic.to_owned(),
        key: Some(key.to_owned()),
        partition: u32::try_from(stored.part).unwrap_or(u32::MAX),
        ts: stored.ts,
        headers: headers.unwrap_or_default(),
        payload: payload.unwrap_or(Value::Null).into(),
        caused_by: None,
        sid: None,
        offset: stored.off,
    };
    if !readable {
        // Marked corrupt, so the fold skips it as the projector dead-letters it.
        record.headers.insert(crate::record::CORRUPT.to_owned(), "unreadable headers or payload".to_owned());
        record.payload = Value::String(stored.payload).into();
    }
    record
}

fn snapshot_doc(s: &KeySnapshot) -> Option<Document> {
    let state = match &s.state {
        Some(doc) => Bson::Document(bson::to_document(doc).ok()?),
        None => Bson::Null,
    };
    Some(doc! {
        "topic": &s.topic,
        "key": &s.key,
        "fp": &s.fp,
        "off": s.off,
        "ts": s.ts,
        "state": state,
        // As text, so the version reads back exactly (integers beyond i64, decimals).
        "version": s.version.as_ref().map_or(Bson::Null, |v| Bson::String(v.to_string())),
    })
}

/// A snapshot from its stored document.
fn restore(snapshot: &Document, topic: &str, key: &str, fp: &str) -> Result<KeySnapshot> {
    let corrupt = |field: &'static str| Error::CorruptSnapshot { topic: topic.to_owned(), field };
    let state = match snapshot.get("state") {
        Some(Bson::Document(d)) => Some(Bson::Document(d.clone()).into_relaxed_extjson()),
        Some(Bson::Null) | None => None,
        Some(_) => return Err(corrupt("state")),
    };
    let version = match snapshot.get("version") {
        Some(Bson::String(text)) => Some(text.parse::<Number>().map_err(|_| corrupt("version"))?),
        Some(Bson::Null) | None => None,
        Some(_) => return Err(corrupt("version")),
    };
    Ok(KeySnapshot {
        topic: topic.to_owned(),
        key: key.to_owned(),
        fp: fp.to_owned(),
        off: snapshot.get_i64("off").map_err(|_| corrupt("off"))?,
        ts: snapshot.get_i64("ts").map_err(|_| corrupt("ts"))?,
        state,
        version,
    })
}

fn err(topic: &str, e: &mongodb::error::Error) -> Error {
    outage::mongo::error(format!("time travel on `{topic}`"), "cannot read MongoDB", e)
}
