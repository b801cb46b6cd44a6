//! Offsets per (topic, partition): one counter document per partition in `partitions`, bumped
//! with `$inc` inside the writing transaction.
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
use super::layout::{EVENTS, PARTITIONS, TOPICS};
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

impl Reserved {
    /// Reserves one offset per document of `docs` on its partition's counter.
    pub async fn reserve<'a>(
        bus: &MongoBus,
        s: &mut ClientSession,
        docs: impl IntoIterator<Item = &'a EventDoc>,
    ) -> TxResult<Reserved> {
        let mut needed: BTreeMap<(String, i64), i64> = BTreeMap::new();
        for doc in docs {
            *needed.entry((doc.topic.clone(), doc.part)).or_default() += 1;
        }
        let mut next = BTreeMap::new();
        // In (topic, partition) order, so every writer takes counters in the same order.
        for ((topic, part), n) in needed {
            let first = reserve(bus, s, &topic, part, n).await?;
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

/// Bumps the counter of (`topic`, `part`) by `n`; returns the first of the `n` offsets.
async fn reserve(bus: &MongoBus, s: &mut ClientSession, topic: &str, part: i64, n: i64) -> TxResult<i64> {
    let counters = bus.coll(PARTITIONS);
    let filter = doc! { "topic": topic, "part": part };
    let bumped = counters
        .find_one_and_update(filter, doc! { "$inc": { "head": n } })
        .return_document(ReturnDocument::After)
        .session(&mut *s)
        .await?;
    if let Some(counter) = bumped {
        let head = counter.get_i64("head").map_err(|e| {
            Abort::Fail(bus.err(format!("the offset counter of `{topic}` partition {part} is corrupt: {e}")))
        })?;
        return Ok(head - n + 1);
    }
    // The partition's first write in this layout. A concurrent first writer makes one of the
    // two inserts conflict (write conflict or the unique `topic_part` index) and retry.
    let start = start_of(bus, s, topic, part).await?;
    counters.insert_one(doc! { "topic": topic, "part": part, "head": start + n }).session(&mut *s).await?;
    Ok(start + 1)
}

/// Where a partition without a counter starts: above its stored events and above its topic's
/// counter of the earlier layout.
async fn start_of(bus: &MongoBus, s: &mut ClientSession, topic: &str, part: i64) -> TxResult<i64> {
    let legacy = bus.coll(TOPICS).find_one(doc! { "_id": topic }).session(&mut *s).await?;
    let legacy = legacy.and_then(|d| d.get_i64("head").ok()).unwrap_or(0);
    let last = bus
        .coll(EVENTS)
        .find_one(doc! { "topic": topic, "part": part })
        .sort(doc! { "off": -1 })
        .projection(doc! { "off": 1 })
        .session(&mut *s)
        .await?;
    let last = last.and_then(|d| d.get_i64("off").ok()).unwrap_or(0);
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
    let pipeline = [
        doc! { "$match": { "topic": topic, "ts": { "$gte": at_ms } } },
        doc! { "$group": { "_id": "$part", "first": { "$min": "$off" } } },
    ];
    let firsts: Vec<Document> = bus.coll(EVENTS).aggregate(pipeline).await?.try_collect().await?;
    let firsts: BTreeMap<u32, i64> = firsts
        .iter()
        .filter_map(|d| Some((u32::try_from(d.get_i64("_id").ok()?).ok()?, d.get_i64("first").ok()?)))
        .collect();
    // Every partition listed, as partitions of the earlier layout have no counter and stand at
    // the floor of `heads`, which may be past their events after `at_ms`.
    let stored = bus.coll(EVENTS).distinct("part", doc! { "topic": topic }).await?;
    let partitions =
        stored.iter().filter_map(|p| u32::try_from(p.as_i64()?).ok()).chain(heads.parts().keys().copied());
    let parts: Vec<(u32, i64)> =
        partitions.map(|p| (p, firsts.get(&p).map_or_else(|| heads.at(p), |first| first - 1))).collect();
    Ok(TopicPosition::with_parts(0, parts))
}
