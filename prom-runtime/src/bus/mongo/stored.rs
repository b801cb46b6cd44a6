//! Every read of stored events on MongoDB: the one module that knows how events lie in the
//! `events` collection (one document per event, see [`super::layout`]). The bus, its offset
//! counters, `prom status` and time travel read through it, so a change of that layout (for
//! example, a batch's events of one partition in one document, see `docs/benchmarks.md`) touches
//! this module and the writers only.

use super::docs::EventDoc;
use super::layout::{EVENTS, VERSION_INDEX};
use crate::record::Receipt;
use futures_util::TryStreamExt;
use mongodb::action::Action;
use mongodb::bson::{Bson, Document, doc};
use mongodb::error::Result;
use mongodb::options::Hint;
use mongodb::{ClientSession, Collection, Database};
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

fn events(db: &Database) -> Collection<EventDoc> {
    db.collection(EVENTS)
}

fn documents(db: &Database) -> Collection<Document> {
    db.collection(EVENTS)
}

/// Up to `limit` events matching `filter` (on `topic`, `part`, `off` and `key`), in `sort` order.
pub async fn page(db: &Database, filter: Document, sort: Document, limit: usize) -> Result<Vec<EventDoc>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    events(db).find(filter).sort(sort).limit(limit).await?.try_collect().await
}

/// The event `id` of `topic`.
pub async fn by_id(db: &Database, topic: &str, id: Uuid) -> Result<Option<EventDoc>> {
    events(db).find_one(doc! { "_id": super::docs::bson_uuid(id), "topic": topic }).await
}

/// How many events of the partition lie after `after`.
pub async fn count_after(db: &Database, topic: &str, partition: u32, after: i64) -> Result<u64> {
    events(db)
        .count_documents(doc! { "topic": topic, "part": i64::from(partition), "off": { "$gt": after } })
        .await
}

/// A topic and partition (`None`: any, for stream entries written before per-partition offsets).
pub type Partition<'a> = (&'a str, Option<i64>);

/// The events at the listed offsets of each partition; in no particular order.
pub async fn at_offsets(db: &Database, places: &[(Partition<'_>, Vec<i64>)]) -> Result<Vec<EventDoc>> {
    let any: Vec<Document> = places
        .iter()
        .map(|((topic, part), offs)| {
            let mut filter = doc! { "topic": *topic, "off": { "$in": offs } };
            if let Some(part) = part {
                filter.insert("part", *part);
            }
            filter
        })
        .collect();
    events(db).find(doc! { "$or": any }).await?.try_collect().await
}

/// The stored events of `topic` carrying one of `keys` as dedup key, by key (in `session`'s
/// snapshot when one is given).
pub async fn dedup(
    db: &Database,
    session: Option<&mut ClientSession>,
    topic: &str,
    keys: &[String],
) -> Result<HashMap<String, Receipt>> {
    let filter = doc! { "topic": topic, "dedup": { "$in": keys } };
    let projection = doc! { "_id": 1, "off": 1, "part": 1, "dedup": 1 };
    let coll = documents(db);
    let docs: Vec<Document> = match session {
        Some(s) => {
            let mut cursor = coll.find(filter).projection(projection).session(&mut *s).await?;
            cursor.stream(s).try_collect().await?
        }
        None => coll.find(filter).projection(projection).await?.try_collect().await?,
    };
    Ok(docs
        .iter()
        .filter_map(|d| {
            let receipt = Receipt {
                id: uuid_of(d.get("_id")?)?,
                offset: d.get_i64("off").ok()?,
                partition: u32::try_from(d.get_i64("part").ok()?).ok()?,
                duplicate: true,
            };
            Some((d.get_str("dedup").ok()?.to_string(), receipt))
        })
        .collect())
}

fn uuid_of(value: &Bson) -> Option<Uuid> {
    match value {
        Bson::Binary(b) => Uuid::from_slice(&b.bytes).ok(),
        _ => None,
    }
}

/// The highest offset stored in the partition (in `session`'s snapshot when one is given);
/// one indexed lookup.
pub async fn newest_offset(
    db: &Database,
    session: Option<&mut ClientSession>,
    topic: &str,
    part: i64,
) -> Result<Option<i64>> {
    let newest = documents(db)
        .find_one(doc! { "topic": topic, "part": part })
        .sort(doc! { "off": -1 })
        .projection(doc! { "off": 1 })
        .optional(session, |find, s| find.session(s))
        .await?;
    Ok(newest.and_then(|d| d.get_i64("off").ok()))
}

/// The first offset of each partition of `topic` holding an event with `ts >= at_ms`.
pub async fn firsts_since(db: &Database, topic: &str, at_ms: i64) -> Result<BTreeMap<u32, i64>> {
    let pipeline = [
        doc! { "$match": { "topic": topic, "ts": { "$gte": at_ms } } },
        doc! { "$group": { "_id": "$part", "first": { "$min": "$off" } } },
    ];
    let firsts: Vec<Document> = documents(db).aggregate(pipeline).await?.try_collect().await?;
    Ok(firsts
        .iter()
        .filter_map(|d| Some((u32::try_from(d.get_i64("_id").ok()?).ok()?, d.get_i64("first").ok()?)))
        .collect())
}

/// Every partition of `topic` holding an event.
pub async fn partitions(db: &Database, topic: &str) -> Result<Vec<u32>> {
    let stored = documents(db).distinct("part", doc! { "topic": topic }).await?;
    Ok(stored.iter().filter_map(|p| u32::try_from(p.as_i64()?).ok()).collect())
}

/// How many events of `topic` are stored at each schema version (`None`: without a readable
/// `x-schema-version`), counted over the `topic_version` index (no document fetched).
pub async fn versions(db: &Database, topic: &str) -> Result<BTreeMap<Option<u32>, u64>> {
    let pipeline =
        vec![doc! { "$match": { "topic": topic } }, doc! { "$group": { "_id": "$v", "n": { "$sum": 1 } } }];
    let events = documents(db);
    // Every open creates the index; a deployment only ever opened by an older prom lacks it,
    // and is then counted over another index of `topic` (documents fetched, no payload parsed).
    let names = events.list_index_names().await?;
    let hint = names.iter().any(|n| n == VERSION_INDEX).then(|| Hint::Name(VERSION_INDEX.to_owned()));
    let groups: Vec<Document> = events
        .aggregate(pipeline)
        .optional(hint, |aggregate, hint| aggregate.hint(hint))
        .await?
        .try_collect()
        .await?;
    let mut counts = BTreeMap::new();
    for group in groups {
        let version = match group.get("_id") {
            Some(Bson::Int64(v)) => u32::try_from(*v).ok(),
            Some(Bson::Int32(v)) => u32::try_from(*v).ok(),
            _ => None,
        };
        let n = group.get_i64("n").ok().or_else(|| group.get_i32("n").ok().map(i64::from)).unwrap_or(0);
        *counts.entry(version).or_insert(0) += u64::try_from(n).unwrap_or(0);
    }
    Ok(counts)
}

/// The offset of the first event of `key` after `after` published later than `at_ms`.
pub async fn key_first_after(
    db: &Database,
    topic: &str,
    key: &str,
    after: i64,
    at_ms: i64,
) -> Result<Option<i64>> {
    let late = documents(db)
        .find_one(doc! { "topic": topic, "key": key, "off": { "$gt": after }, "ts": { "$gt": at_ms } })
        .sort(doc! { "off": 1 })
        .projection(doc! { "off": 1 })
        .await?;
    Ok(late.and_then(|d| d.get_i64("off").ok()))
}

/// Up to `limit` of `key`'s events after `after` published at or before `at_ms`, in offset
/// order, as `T` (the fields a caller needs; it decides what an unreadable event becomes).
pub async fn key_events<T: DeserializeOwned + Send + Sync>(
    db: &Database,
    topic: &str,
    key: &str,
    after: i64,
    at_ms: i64,
    limit: usize,
) -> Result<Vec<T>> {
    let filter = doc! { "topic": topic, "key": key, "off": { "$gt": after }, "ts": { "$lte": at_ms } };
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    db.collection::<T>(EVENTS).find(filter).sort(doc! { "off": 1 }).limit(limit).await?.try_collect().await
}
