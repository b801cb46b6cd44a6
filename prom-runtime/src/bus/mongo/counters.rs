//! Offsets per (topic, partition): one counter document per partition in `partitions`, bumped
//! inside the writing transaction (one `find_one_and_update` for one partition; one update of
//! all of them and one read back for several, whatever their number).
//!
//! Two transactions writing one partition conflict on its counter, so only one commits and the
//! other retries on a newer snapshot: a partition's offsets are gap-free, unique and become
//! visible in order. Writers of different partitions touch different documents and never
//! conflict (on a sharded cluster the counter lives on its partition's shard, see the README's
//! "Layout and sharding").
//!
//! A partition without a counter (new, or written before per-partition offsets) starts above
//! both the highest offset stored in it and its topic's counter of the earlier layout, so after
//! an upgrade every partition's offsets keep increasing, every cursor stays valid, and an event
//! of the earlier layout is still the only one of its topic at its offset.

use super::MongoBus;
use super::docs::EventDoc;
use super::layout::{PARTITIONS, TOPICS, version_key};
use super::stored;
use super::txn::{Abort, TxResult};
use crate::bus::TopicPosition;
use futures_util::TryStreamExt;
use mongodb::ClientSession;
use mongodb::bson::{Document, doc};
use mongodb::options::ReturnDocument;
use std::collections::BTreeMap;

/// Offsets reserved for the events of one transaction, handed out in order per partition.
pub struct Reserved {
    next: BTreeMap<(String, i64), i64>,
}

/// What one transaction takes of a partition: offsets, and its events by schema version.
#[derive(Default)]
struct Need {
    n: i64,
    versions: BTreeMap<String, i64>,
}

impl Need {
    /// The counter's `$inc` of this need.
    fn inc(&self) -> Document {
        let mut inc = doc! { "head": self.n };
        for (key, n) in &self.versions {
            inc.insert(format!("vs.{key}"), *n);
        }
        inc
    }
}

impl Reserved {
    /// Reserves one offset per document of `docs` on its partition's counter (and counts them
    /// by schema version there, for `prom status`): one round trip for one partition, two for
    /// several (whatever their number).
    pub async fn reserve<'a>(
        bus: &MongoBus,
        s: &mut ClientSession,
        docs: impl IntoIterator<Item = &'a EventDoc>,
    ) -> TxResult<Reserved> {
        let mut needed: BTreeMap<(String, i64), Need> = BTreeMap::new();
        for doc in docs {
            let need = needed.entry((doc.topic.clone(), doc.part)).or_default();
            need.n += 1;
            *need.versions.entry(version_key(doc.v)).or_default() += 1;
        }
        let mut next = BTreeMap::new();
        if needed.is_empty() {
            // Every event of the transaction is already stored (dedup): nothing to number.
            return Ok(Reserved { next });
        }
        if let [((topic, part), need)] = needed.iter().collect::<Vec<_>>()[..] {
            let first = match bump_one(bus, s, topic, *part, need).await? {
                Some(first) => first,
                None => create(bus, s, topic, *part, need).await?,
            };
            next.insert((topic.clone(), *part), first);
            return Ok(Reserved { next });
        }
        let mut bumped = bump_many(bus, s, &needed).await?;
        for ((topic, part), need) in needed {
            let first = match bumped.remove(&(topic.clone(), part)) {
                Some(head) => head - need.n + 1,
                None => create(bus, s, &topic, part, &need).await?,
            };
            next.insert((topic, part), first);
        }
        Ok(Reserved { next })
    }

    /// The next reserved offset of `doc`'s partition.
    pub fn take(&mut self, doc: &EventDoc) -> i64 {
        // Every document was counted in `reserve`; 0 (never a valid offset) cannot be reached.
        self.next.get_mut(&(doc.topic.clone(), doc.part)).map_or(0, |o| {
            *o += 1;
            *o - 1
        })
    }
}

fn corrupt(bus: &MongoBus, topic: &str, part: i64, e: impl std::fmt::Display) -> Abort {
    Abort::Fail(bus.err(format!("the offset counter of `{topic}` partition {part} is corrupt: {e}")))
}

/// Bumps the counter of (`topic`, `part`) by `need`; returns the first of its offsets, or
/// `None` when the partition has no counter yet.
async fn bump_one(
    bus: &MongoBus,
    s: &mut ClientSession,
    topic: &str,
    part: i64,
    need: &Need,
) -> TxResult<Option<i64>> {
    let n = need.n;
    let bumped = bus
        .coll(PARTITIONS)
        .find_one_and_update(doc! { "topic": topic, "part": part }, doc! { "$inc": need.inc() })
        .return_document(ReturnDocument::After)
        .session(&mut *s)
        .await?;
    let Some(counter) = bumped else { return Ok(None) };
    let head = counter.get_i64("head").map_err(|e| corrupt(bus, topic, part, e))?;
    Ok(Some(head - n + 1))
}

/// Bumps every counter of `needed` by its count with one update, then reads them back (the
/// transaction reads its own writes): two round trips for any number of partitions, where a
/// `find_one_and_update` each would take one per partition. Returns the new heads of the
/// partitions that have a counter.
async fn bump_many(
    bus: &MongoBus,
    s: &mut ClientSession,
    needed: &BTreeMap<(String, i64), Need>,
) -> TxResult<BTreeMap<(String, i64), i64>> {
    let mut per_topic: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    // For each field to add to (`head`, `vs.<version>`): what each partition adds.
    let mut adds: BTreeMap<String, Vec<Document>> = BTreeMap::new();
    for ((topic, part), need) in needed {
        per_topic.entry(topic).or_default().push(*part);
        let case = doc! { "$and": [{ "$eq": ["$topic", topic] }, { "$eq": ["$part", part] }] };
        adds.entry("head".to_owned()).or_default().push(doc! { "case": case.clone(), "then": need.n });
        for (key, n) in &need.versions {
            adds.entry(format!("vs.{key}")).or_default().push(doc! { "case": case.clone(), "then": n });
        }
    }
    let filter = doc! {
        "$or": per_topic.iter().map(|(topic, parts)| doc! { "topic": topic, "part": { "$in": parts } }).collect::<Vec<_>>()
    };
    let mut set = Document::new();
    for (field, branches) in adds {
        let by = doc! { "$switch": { "branches": branches, "default": 0i64 } };
        set.insert(field.clone(), doc! { "$add": [{ "$ifNull": [format!("${field}"), 0i64] }, by] });
    }
    let update = vec![doc! { "$set": set }];
    let counters = bus.coll(PARTITIONS);
    counters.update_many(filter.clone(), update).session(&mut *s).await?;
    let mut cursor =
        counters.find(filter).projection(doc! { "topic": 1, "part": 1, "head": 1 }).session(&mut *s).await?;
    let read: Vec<Document> = cursor.stream(&mut *s).try_collect().await?;
    let mut heads = BTreeMap::new();
    for counter in read {
        let (Ok(topic), Ok(part)) = (counter.get_str("topic"), counter.get_i64("part")) else { continue };
        let head = counter.get_i64("head").map_err(|e| corrupt(bus, topic, part, e))?;
        heads.insert((topic.to_string(), part), head);
    }
    Ok(heads)
}

/// Creates the counter of a partition's first write in this layout with `need` taken;
/// returns the first offset. A concurrent first writer makes one of the two inserts conflict
/// (write conflict or the unique `topic_part` index) and retry.
async fn create(bus: &MongoBus, s: &mut ClientSession, topic: &str, part: i64, need: &Need) -> TxResult<i64> {
    let start = start_of(bus, s, topic, part).await?;
    let versions: Document = need.versions.iter().map(|(k, n)| (k.clone(), (*n).into())).collect();
    bus.coll(PARTITIONS)
        .insert_one(doc! { "topic": topic, "part": part, "head": start + need.n, "vs": versions })
        .session(&mut *s)
        .await?;
    Ok(start + 1)
}

/// Where a partition without a counter starts: above its stored events and above its topic's
/// counter of the earlier layout.
async fn start_of(bus: &MongoBus, s: &mut ClientSession, topic: &str, part: i64) -> TxResult<i64> {
    let legacy = bus.coll(TOPICS).find_one(doc! { "_id": topic }).session(&mut *s).await?;
    let legacy = legacy.and_then(|d| d.get_i64("head").ok()).unwrap_or(0);
    let last = stored::newest_offset(bus.database(), Some(&mut *s), topic, part).await?.unwrap_or(0);
    Ok(legacy.max(last))
}

/// The position after every event of `topic`: each partition at its counter, the partitions
/// without one at the earlier layout's topic counter (above all their events; every counter
/// starts above it).
pub async fn heads(bus: &MongoBus, topic: &str) -> mongodb::error::Result<TopicPosition> {
    let counters: Vec<Document> =
        bus.coll(PARTITIONS).find(doc! { "topic": topic }).await?.try_collect().await?;
    let legacy = bus.coll(TOPICS).find_one(doc! { "_id": topic }).await?;
    let floor = legacy.and_then(|d| d.get_i64("head").ok()).unwrap_or(0);
    let parts = counters.iter().filter_map(|c| {
        let part = u32::try_from(c.get_i64("part").ok()?).ok()?;
        Some((part, c.get_i64("head").ok()?))
    });
    Ok(TopicPosition::with_parts(floor, parts))
}

/// Each partition of `topic` just before its first event with `ts >= at_ms`, or after its last
/// event when it has none such.
pub async fn before_time(bus: &MongoBus, topic: &str, at_ms: i64) -> mongodb::error::Result<TopicPosition> {
    let heads = heads(bus, topic).await?;
    let firsts = stored::firsts_since(bus.database(), topic, at_ms).await?;
    // Every partition listed, as partitions of the earlier layout have no counter and stand at
    // the floor of `heads`, which may be past their events after `at_ms`.
    let holding = stored::partitions(bus.database(), topic).await?;
    let partitions = holding.into_iter().chain(heads.parts().keys().copied());
    let parts: Vec<(u32, i64)> =
        partitions.map(|p| (p, firsts.get(&p).map_or_else(|| heads.at(p), |first| first - 1))).collect();
    Ok(TopicPosition::with_parts(0, parts))
}
