//! Publishing: dedup check, offset allocation and insert in one transaction (of one publish,
//! or of a group of concurrent ones: see [`super::committer`]).

use super::MongoBus;
use super::chunk::ChunkDoc;
use super::counters::Reserved;
use super::docs::{EventDoc, Row};
use super::stored;
use super::txn::{Abort, TxResult, transaction};
use crate::error::Result;
use crate::record::Receipt;
use mongodb::ClientSession;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

/// Stores `rows` atomically; events whose dedup key is stored get the earlier event's receipt.
pub async fn publish(bus: &MongoBus, rows: Arc<Vec<Row>>) -> Result<Vec<Receipt>> {
    transaction!(bus, |bus, s| attempt(bus, s, &rows))
}

/// What one event of the batch becomes.
enum Plan {
    /// Already stored (dedup key seen before this batch).
    Stored(Receipt),
    /// A duplicate of the batch's event at this index.
    SameAs(usize),
    /// Written at the next offset of its partition.
    New,
}

pub(super) async fn attempt(bus: &MongoBus, s: &mut ClientSession, rows: &[Row]) -> TxResult<Vec<Receipt>> {
    // Dedup keys of the batch, per topic, checked against what is stored (in this snapshot).
    // One key published at once to two partitions (which share no counter) is missed by both
    // snapshots; the second insert then fails on the unique `topic_dedup` index (or conflicts on
    // its key), and the retry finds the stored event and answers with its receipt.
    let mut wanted: Vec<(&str, Vec<String>)> = Vec::new();
    for row in rows {
        if let Some(key) = &row.doc.dedup {
            match wanted.iter_mut().find(|(t, _)| *t == row.doc.topic) {
                Some((_, keys)) => keys.push(key.clone()),
                None => wanted.push((&row.doc.topic, vec![key.clone()])),
            }
        }
    }
    let mut stored: HashMap<(&str, String), Receipt> = HashMap::new();
    for (topic, keys) in &wanted {
        let legacy = !bus.legacy_heads(topic).await.map_err(Abort::Db)?.is_empty();
        for (key, receipt) in stored::dedup(bus.database(), Some(&mut *s), legacy, topic, keys).await? {
            stored.insert((topic, key), receipt);
        }
    }
    // Which events are new.
    let mut first: HashMap<(&str, &str), usize> = HashMap::new();
    let mut plans = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let topic = row.doc.topic.as_str();
        if let Some(key) = row.doc.dedup.as_deref() {
            if let Some(receipt) = stored.get(&(topic, key.to_string())) {
                plans.push(Plan::Stored(*receipt));
                continue;
            }
            if let Some(&earlier) = first.get(&(topic, key)) {
                plans.push(Plan::SameAs(earlier));
                continue;
            }
            first.insert((topic, key), i);
        }
        plans.push(Plan::New);
    }
    // Reserve each partition's offsets. Writing its counter makes concurrent publishers to the
    // partition conflict, so exactly one of them commits and the others retry on a newer snapshot.
    let new = rows.iter().zip(&plans).filter(|(_, p)| matches!(p, Plan::New)).map(|(r, _)| &r.doc);
    let mut offsets = Reserved::reserve(bus, s, new).await?;
    let mut docs: Vec<EventDoc> = Vec::new();
    let mut receipts: Vec<Receipt> = Vec::with_capacity(rows.len());
    for (row, plan) in rows.iter().zip(plans) {
        let receipt = match plan {
            Plan::Stored(receipt) => receipt,
            Plan::SameAs(earlier) => Receipt { duplicate: true, ..receipts[earlier] },
            Plan::New => {
                let offset = offsets.take(&row.doc);
                docs.push(EventDoc { off: offset, ..row.doc.clone() });
                Receipt { id: row.id, offset, partition: row.partition, duplicate: false }
            }
        };
        receipts.push(receipt);
    }
    write(bus, s, super::chunk::chunks(docs)).await?;
    Ok(receipts)
}

/// Inserts chunks of numbered events ([`super::chunk`]); the one writer of events, for
/// publishes and stream appends alike. An id twice among them is refused here: the unique
/// `event_id` index only compares different chunks.
pub(super) async fn write(bus: &MongoBus, s: &mut ClientSession, chunks: Vec<ChunkDoc>) -> TxResult<()> {
    if chunks.is_empty() {
        return Ok(());
    }
    let mut ids = std::collections::HashSet::new();
    if let Some(twice) = chunks.iter().flat_map(|c| &c.evs).find(|e| !ids.insert(e.id)) {
        return Err(Abort::Fail(bus.err(format!(
            "event id {} appears twice among the events of one publish; give each event an id of its own",
            Uuid::from_bytes(twice.id.bytes())
        ))));
    }
    bus.chunks().insert_many(chunks).session(&mut *s).await?;
    Ok(())
}
