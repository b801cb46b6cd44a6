//! Every read of stored events on MongoDB: the one module that knows how events lie on disk.
//! The bus, its offset counters, `prom status` and time travel read through it.
//!
//! Events are written to `chunks` ([`super::chunk`]: one document per partition per
//! transaction). A database of an earlier release also holds per-event documents in `events`
//! (see [`super::layout`]), which opening a bus freezes: nothing writes there any more, so in
//! every partition those events come before every chunk, and a reader past a partition's last
//! one ([`Legacy`], looked up once per topic and process) no longer queries `events` at all.

use super::chunk::ChunkDoc;
use super::docs::EventDoc;
use super::layout::{CHUNKS, EVENTS, PARTITIONS, VERSION_INDEX, version_of};
use crate::bus::TopicPosition;
use crate::record::Receipt;
use futures_util::TryStreamExt;
use mongodb::action::Action;
use mongodb::bson::{Bson, Document, doc};
use mongodb::error::Result;
use mongodb::options::Hint;
use mongodb::{ClientSession, Collection, Database};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

fn events(db: &Database) -> Collection<EventDoc> {
    db.collection(EVENTS)
}

fn chunks(db: &Database) -> Collection<ChunkDoc> {
    db.collection(CHUNKS)
}

fn documents(db: &Database, name: &str) -> Collection<Document> {
    db.collection(name)
}

fn limit_of(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The newest per-event document of each partition of a topic in the frozen `events`
/// collection, looked up once per topic.
#[derive(Default)]
pub struct Legacy {
    heads: Mutex<HashMap<String, Arc<BTreeMap<i64, i64>>>>,
}

impl Legacy {
    /// The newest offset of each partition of `topic` holding per-event documents.
    pub async fn heads(&self, db: &Database, topic: &str) -> Result<Arc<BTreeMap<i64, i64>>> {
        if let Some(heads) = self.lock().get(topic) {
            return Ok(heads.clone());
        }
        // One distinct scan and one lookup per partition on `topic_part_off`: no document read,
        // however many the topic has.
        let mut heads = BTreeMap::new();
        for part in documents(db, EVENTS).distinct("part", doc! { "topic": topic }).await? {
            let Some(part) = part.as_i64() else { continue };
            if let Some(last) = newest_in(db, EVENTS, None, topic, part).await? {
                heads.insert(part, last);
            }
        }
        let heads = Arc::new(heads);
        self.lock().insert(topic.to_owned(), heads.clone());
        Ok(heads)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<BTreeMap<i64, i64>>>> {
        // Only inserts of complete values happen under the lock; a poisoned one is still sound.
        self.heads.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Where a read starts: after an offset of one partition, or after a position of the topic.
#[derive(Clone, Copy)]
pub enum From<'a> {
    /// One partition, after this offset.
    Partition(u32, i64),
    /// Every partition, each after its offset in the position.
    Topic(&'a TopicPosition),
}

impl From<'_> {
    /// The offset of `part` the read starts after (`None`: a partition this read leaves out).
    fn after(&self, part: i64) -> Option<i64> {
        let part = u32::try_from(part).ok()?;
        match self {
            From::Partition(p, after) => (*p == part).then_some(*after),
            From::Topic(position) => Some(position.at(part)),
        }
    }

    /// The filter and sort of the read on `field` (`off` of an event, `last` of a chunk).
    ///
    /// Topic-wide: every listed partition past its own offset, every other one past the floor,
    /// sorted by partition then offset, so each partition's events come as a prefix of what is
    /// after the position without a merge of per-partition cursors (a topic-wide reader reads on
    /// until it is empty).
    fn filter(&self, topic: &str, field: &str) -> (Document, Document) {
        let sort = doc! { "part": 1, field: 1 };
        let from = match self {
            From::Partition(p, after) => {
                return (doc! { "topic": topic, "part": i64::from(*p), field: { "$gt": after } }, sort);
            }
            From::Topic(from) => from,
        };
        if from.parts().is_empty() {
            return (doc! { "topic": topic, field: { "$gt": from.floor() } }, sort);
        }
        let listed: Vec<i64> = from.parts().keys().map(|&p| i64::from(p)).collect();
        let mut branches: Vec<Document> = from
            .parts()
            .iter()
            .map(|(&p, &offset)| doc! { "part": i64::from(p), field: { "$gt": offset } })
            .collect();
        branches.push(doc! { "part": { "$nin": listed }, field: { "$gt": from.floor() } });
        (doc! { "topic": topic, "$or": branches }, sort)
    }

    /// Whether a partition of the read still has per-event documents after its start.
    fn reaches(&self, legacy: &BTreeMap<i64, i64>) -> bool {
        legacy.iter().any(|(&part, &last)| self.after(part).is_some_and(|after| after < last))
    }
}

/// Up to `limit` events of `topic` after `from`, sorted by partition then offset.
///
/// Chunks are read in two steps: their spans first (`topic_part_last` covers it, no document
/// fetched), then only the chunks holding the first `limit` events, so a page never fetches
/// a long chunk's events beyond it.
pub async fn page(
    db: &Database,
    legacy: &Legacy,
    topic: &str,
    from: From<'_>,
    limit: usize,
) -> Result<Vec<EventDoc>> {
    let mut out = Vec::new();
    let old = legacy.heads(db, topic).await?;
    let merge = from.reaches(&old);
    if merge {
        let (filter, sort) = from.filter(topic, "off");
        out = events(db).find(filter).sort(sort).limit(limit_of(limit)).await?.try_collect().await?;
    }
    let (filter, sort) = from.filter(topic, "last");
    let spans: Vec<Document> = documents(db, CHUNKS)
        .find(filter)
        .sort(sort.clone())
        .projection(doc! { "_id": 0, "part": 1, "off": 1, "last": 1 })
        .limit(limit_of(limit))
        .await?
        .try_collect()
        .await?;
    // The last chunk needed of each partition, and where that partition's read starts.
    let mut wanted: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    let mut counted = 0i64;
    for span in &spans {
        let (Ok(part), Ok(off), Ok(last)) = (span.get_i64("part"), span.get_i64("off"), span.get_i64("last"))
        else {
            continue;
        };
        let Some(after) = from.after(part) else { continue };
        wanted.entry(part).or_insert((after, last)).1 = last;
        // Saturating: the spans come from the store, and a hand-edited one must not overflow.
        counted = counted.saturating_add(last.saturating_sub(off.saturating_sub(1).max(after)));
        if counted >= limit_of(limit) {
            break;
        }
    }
    if !wanted.is_empty() {
        let branches: Vec<Document> = wanted
            .iter()
            .map(|(part, (after, upto))| doc! { "part": part, "last": { "$gt": after, "$lte": upto } })
            .collect();
        let mut cursor = chunks(db).find(doc! { "topic": topic, "$or": branches }).sort(sort).await?;
        while let Some(chunk) = cursor.try_next().await? {
            let after = from.after(chunk.part).unwrap_or(i64::MAX);
            out.extend(chunk.into_docs().filter(|d| d.off > after));
        }
    }
    if merge {
        // Stable: per-event documents come first within a partition, as their offsets do.
        out.sort_by_key(|d| (d.part, d.off));
    }
    out.truncate(limit);
    Ok(out)
}

/// The event `id` of `topic`.
pub async fn by_id(db: &Database, topic: &str, id: Uuid) -> Result<Option<EventDoc>> {
    let id = super::docs::bson_uuid(id);
    if let Some(chunk) = chunks(db).find_one(doc! { "evs._id": id, "topic": topic }).await? {
        return Ok(chunk.into_docs().find(|d| d.id == id));
    }
    events(db).find_one(doc! { "_id": id, "topic": topic }).await
}

/// How many events of the partition lie after `after`.
pub async fn count_after(
    db: &Database,
    legacy: &Legacy,
    topic: &str,
    partition: u32,
    after: i64,
) -> Result<u64> {
    let part = i64::from(partition);
    let mut n = 0;
    if legacy.heads(db, topic).await?.get(&part).is_some_and(|&last| last > after) {
        n += events(db)
            .count_documents(doc! { "topic": topic, "part": part, "off": { "$gt": after } })
            .await?;
    }
    let pipeline = [
        doc! { "$match": { "topic": topic, "part": part, "last": { "$gt": after } } },
        doc! { "$group": {
            "_id": Bson::Null,
            "n": { "$sum": { "$subtract": ["$last", { "$max": [{ "$subtract": ["$off", 1_i64] }, after] }] } },
        } },
    ];
    let sums: Vec<Document> = documents(db, CHUNKS).aggregate(pipeline).await?.try_collect().await?;
    let chunked = sums.first().and_then(|s| s.get_i64("n").ok()).unwrap_or(0);
    Ok(n + u64::try_from(chunked).unwrap_or(0))
}

/// A topic and partition (`None`: any, for stream entries written before per-partition offsets).
pub type Partition<'a> = (&'a str, Option<i64>);

/// The events of a stream: those of the chunks named (by id), and the per-event documents at
/// the listed offsets of each partition (entries of an earlier release); in no particular order.
pub async fn stream_events(
    db: &Database,
    places: &[(Partition<'_>, Vec<i64>)],
    chunk_ids: &[mongodb::bson::Uuid],
) -> Result<Vec<EventDoc>> {
    let mut out = Vec::new();
    if !chunk_ids.is_empty() {
        let mut cursor = chunks(db).find(doc! { "_id": { "$in": chunk_ids } }).await?;
        while let Some(chunk) = cursor.try_next().await? {
            out.extend(chunk.into_docs());
        }
    }
    if !places.is_empty() {
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
        let old: Vec<EventDoc> = events(db).find(doc! { "$or": any }).await?.try_collect().await?;
        out.extend(old);
    }
    Ok(out)
}

/// The documents `filter` finds in `name`, with `projection`, in `session`'s snapshot when one
/// is given.
async fn find_in(
    db: &Database,
    name: &str,
    session: Option<&mut ClientSession>,
    filter: Document,
    projection: Document,
) -> Result<Vec<Document>> {
    let coll = documents(db, name);
    match session {
        Some(s) => {
            let mut cursor = coll.find(filter).projection(projection).session(&mut *s).await?;
            cursor.stream(s).try_collect().await
        }
        None => coll.find(filter).projection(projection).await?.try_collect().await,
    }
}

/// The stored events of `topic` carrying one of `keys` as dedup key, by key (in `session`'s
/// snapshot when one is given); `legacy`: whether `events` may hold some of the topic's.
pub async fn dedup(
    db: &Database,
    mut session: Option<&mut ClientSession>,
    legacy: bool,
    topic: &str,
    keys: &[String],
) -> Result<HashMap<String, Receipt>> {
    let receipt = |id: &Bson, offset: i64, part: i64| {
        Some(Receipt { id: uuid_of(id)?, offset, partition: u32::try_from(part).ok()?, duplicate: true })
    };
    let mut found = HashMap::new();
    let filter = doc! { "topic": topic, "dedups": { "$in": keys } };
    let projection = doc! { "part": 1, "off": 1, "evs._id": 1, "evs.dedup": 1 };
    for chunk in find_in(db, CHUNKS, session.as_deref_mut(), filter, projection).await? {
        let (Ok(part), Ok(off), Ok(evs)) =
            (chunk.get_i64("part"), chunk.get_i64("off"), chunk.get_array("evs"))
        else {
            continue;
        };
        for (i, ev) in evs.iter().enumerate() {
            let Some(offset) = super::chunk::offset_at(off, i) else { break };
            let Some(ev) = ev.as_document() else { continue };
            let Ok(key) = ev.get_str("dedup") else { continue };
            if !keys.iter().any(|k| k == key) {
                continue;
            }
            if let Some(r) = ev.get("_id").and_then(|id| receipt(id, offset, part)) {
                found.insert(key.to_owned(), r);
            }
        }
    }
    if legacy {
        let filter = doc! { "topic": topic, "dedup": { "$in": keys } };
        let projection = doc! { "_id": 1, "off": 1, "part": 1, "dedup": 1 };
        for d in find_in(db, EVENTS, session, filter, projection).await? {
            let (Ok(key), Ok(off), Ok(part)) = (d.get_str("dedup"), d.get_i64("off"), d.get_i64("part"))
            else {
                continue;
            };
            if let Some(r) = d.get("_id").and_then(|id| receipt(id, off, part)) {
                found.insert(key.to_owned(), r);
            }
        }
    }
    Ok(found)
}

fn uuid_of(value: &Bson) -> Option<Uuid> {
    match value {
        Bson::Binary(b) => Uuid::from_slice(&b.bytes).ok(),
        _ => None,
    }
}

/// The highest offset stored in the partition (in `session`'s snapshot when one is given); one
/// indexed lookup in each collection.
pub async fn newest_offset(
    db: &Database,
    mut session: Option<&mut ClientSession>,
    topic: &str,
    part: i64,
) -> Result<Option<i64>> {
    let chunked = newest_in(db, CHUNKS, session.as_deref_mut(), topic, part).await?;
    Ok(chunked.max(newest_in(db, EVENTS, session, topic, part).await?))
}

/// The highest offset in collection `name` (`last` of a chunk, `off` of a per-event document).
async fn newest_in(
    db: &Database,
    name: &str,
    session: Option<&mut ClientSession>,
    topic: &str,
    part: i64,
) -> Result<Option<i64>> {
    let field = if name == CHUNKS { "last" } else { "off" };
    let newest = documents(db, name)
        .find_one(doc! { "topic": topic, "part": part })
        .sort(doc! { field: -1 })
        .projection(doc! { field: 1 })
        .optional(session, |find, s| find.session(s))
        .await?;
    Ok(newest.and_then(|d| d.get_i64(field).ok()))
}

/// The first offset of each partition of `topic` holding an event with `ts >= at_ms`.
pub async fn firsts_since(db: &Database, topic: &str, at_ms: i64) -> Result<BTreeMap<u32, i64>> {
    let pipeline = [
        doc! { "$match": { "topic": topic, "ts": { "$gte": at_ms } } },
        doc! { "$group": { "_id": "$part", "first": { "$min": "$off" } } },
    ];
    let old: Vec<Document> = documents(db, EVENTS).aggregate(pipeline).await?.try_collect().await?;
    let mut firsts: BTreeMap<u32, i64> = old
        .iter()
        .filter_map(|d| Some((u32::try_from(d.get_i64("_id").ok()?).ok()?, d.get_i64("first").ok()?)))
        .collect();
    // The first chunk of each partition with a late enough event holds its first such event.
    let pipeline = [
        doc! { "$match": { "topic": topic, "tsmax": { "$gte": at_ms } } },
        doc! { "$group": { "_id": "$part", "off": { "$min": "$off" } } },
    ];
    let starts: Vec<Document> = documents(db, CHUNKS).aggregate(pipeline).await?.try_collect().await?;
    for start in starts {
        let (Ok(part), Ok(off)) = (start.get_i64("_id"), start.get_i64("off")) else { continue };
        let Ok(partition) = u32::try_from(part) else { continue };
        if firsts.contains_key(&partition) {
            // Per-event documents come before every chunk of their partition.
            continue;
        }
        let chunk = chunks(db).find_one(doc! { "topic": topic, "part": part, "off": off }).await?;
        let first = chunk.and_then(|c| c.into_docs().find(|d| d.ts >= at_ms)).map(|d| d.off);
        if let Some(first) = first {
            firsts.insert(partition, first);
        }
    }
    Ok(firsts)
}

/// Every partition of `topic` holding an event.
pub async fn partitions(db: &Database, topic: &str) -> Result<Vec<u32>> {
    let mut stored = documents(db, CHUNKS).distinct("part", doc! { "topic": topic }).await?;
    stored.extend(documents(db, EVENTS).distinct("part", doc! { "topic": topic }).await?);
    let mut parts: Vec<u32> = stored.iter().filter_map(|p| u32::try_from(p.as_i64()?).ok()).collect();
    parts.sort_unstable();
    parts.dedup();
    Ok(parts)
}

/// How many events of `topic` are stored at each schema version (`None`: without a readable
/// `x-schema-version`): the counts each partition's counter keeps for its chunks, plus the
/// per-event documents counted over the `topic_version` index (no document fetched).
pub async fn versions(db: &Database, topic: &str) -> Result<BTreeMap<Option<u32>, u64>> {
    let mut counts = BTreeMap::new();
    let counters: Vec<Document> = documents(db, PARTITIONS)
        .find(doc! { "topic": topic })
        .projection(doc! { "vs": 1 })
        .await?
        .try_collect()
        .await?;
    for counter in &counters {
        let Ok(vs) = counter.get_document("vs") else { continue };
        for (key, n) in vs {
            let n = n.as_i64().or_else(|| n.as_i32().map(i64::from)).unwrap_or(0);
            *counts.entry(version_of(key)).or_insert(0) += u64::try_from(n).unwrap_or(0);
        }
    }
    let pipeline =
        vec![doc! { "$match": { "topic": topic } }, doc! { "$group": { "_id": "$v", "n": { "$sum": 1 } } }];
    let events = documents(db, EVENTS);
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

/// `key`'s events after `after`, in offset order, read until `keep` says stop (`false`).
/// The frozen per-event documents are queried only while some partition has one past `after`
/// (the key's partition is not known here).
async fn key_scan(
    db: &Database,
    legacy: &Legacy,
    topic: &str,
    key: &str,
    after: i64,
    old_filter: Document,
    mut keep: impl FnMut(EventDoc) -> bool,
) -> Result<()> {
    if legacy.heads(db, topic).await?.values().any(|&last| last > after) {
        let mut filter = doc! { "topic": topic, "key": key, "off": { "$gt": after } };
        filter.extend(old_filter);
        let mut old = events(db).find(filter).sort(doc! { "off": 1 }).await?;
        while let Some(event) = old.try_next().await? {
            if !keep(event) {
                return Ok(());
            }
        }
    }
    let filter = doc! { "topic": topic, "evs.key": key, "last": { "$gt": after } };
    let mut cursor = chunks(db).find(filter).sort(doc! { "last": 1 }).await?;
    while let Some(chunk) = cursor.try_next().await? {
        for event in chunk.into_docs().filter(|d| d.off > after && d.key.as_deref() == Some(key)) {
            if !keep(event) {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// The offset of the first event of `key` after `after` published later than `at_ms`.
pub async fn key_first_after(
    db: &Database,
    legacy: &Legacy,
    topic: &str,
    key: &str,
    after: i64,
    at_ms: i64,
) -> Result<Option<i64>> {
    let mut first = None;
    key_scan(db, legacy, topic, key, after, doc! { "ts": { "$gt": at_ms } }, |event| {
        if event.ts > at_ms {
            first = Some(event.off);
        }
        first.is_none()
    })
    .await?;
    Ok(first)
}

/// Up to `limit` of `key`'s events after `after` published at or before `at_ms`, in offset
/// order.
pub async fn key_events(
    db: &Database,
    legacy: &Legacy,
    topic: &str,
    key: &str,
    after: i64,
    at_ms: i64,
    limit: usize,
) -> Result<Vec<EventDoc>> {
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    key_scan(db, legacy, topic, key, after, doc! { "ts": { "$lte": at_ms } }, |event| {
        if event.ts <= at_ms {
            out.push(event);
        }
        out.len() < limit
    })
    .await?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_topic_read_filters_each_listed_partition_past_its_own_offset() {
        let after = TopicPosition::after(7);
        let (filter, sort) = From::Topic(&after).filter("t", "off");
        assert_eq!(filter, doc! { "topic": "t", "off": { "$gt": 7_i64 } });
        assert_eq!(sort, doc! { "part": 1, "off": 1 });
        let from = TopicPosition::with_parts(3, [(1, 9), (4, 5)]);
        let (filter, sort) = From::Topic(&from).filter("t", "last");
        let branches = vec![
            doc! { "part": 1_i64, "last": { "$gt": 9_i64 } },
            doc! { "part": 4_i64, "last": { "$gt": 5_i64 } },
            doc! { "part": { "$nin": [1_i64, 4_i64] }, "last": { "$gt": 3_i64 } },
        ];
        assert_eq!(filter, doc! { "topic": "t", "$or": branches });
        assert_eq!(sort, doc! { "part": 1, "last": 1 }, "partition by partition, on topic_part_last");
    }

    #[test]
    fn a_read_reaches_per_event_documents_only_before_their_last() {
        let legacy: BTreeMap<i64, i64> = [(0, 10), (2, 4)].into();
        assert!(From::Partition(0, 9).reaches(&legacy));
        assert!(!From::Partition(0, 10).reaches(&legacy));
        assert!(!From::Partition(1, 0).reaches(&legacy), "partition 1 has none");
        let past = TopicPosition::with_parts(10, [(2, 4)]);
        assert!(!From::Topic(&past).reaches(&legacy));
        assert!(From::Topic(&TopicPosition::after(5)).reaches(&legacy));
    }
}
