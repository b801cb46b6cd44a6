//! Streams on MongoDB: `prom_streams` maps (aggregate, id, version) to an event's topic,
//! partition and offset (with its chain link; entries written before per-partition offsets have
//! no partition, and their (topic, offset) is unique: see [`super::counters`]), inserted in the same transaction as the events; a unique index
//! on (aggregate, id, version) is the backstop against two writers both taking a version.
//! `prom_snapshots` holds one snapshot per stream.

use super::MongoBus;
use super::counters::Reserved;
use super::docs::{EventDoc, Row};
use super::layout::{SNAPSHOTS, STREAMS};
use super::stored::{self, Partition};
use super::txn::{Abort, TxResult, transaction};
use crate::error::Result;
use crate::record::HeadersText;
use crate::stream::chain::{self, GENESIS};
use crate::stream::{
    Appended, ChainLink, ExpectedVersion, Snapshot, StreamAppend, StreamId, StreamRecord, check_expected,
};
use futures_util::TryStreamExt;
use mongodb::ClientSession;
use mongodb::bson::{Binary, Bson, Document, doc, spec::BinarySubtype};
use std::collections::HashMap;

/// An append with its documents serialized before the transaction (retries do not redo it).
pub struct Job {
    stream: StreamId,
    expected: ExpectedVersion,
    tamper_evident: bool,
    events: Vec<(Row, crate::record::NewEvent)>,
    copies: Vec<Row>,
}

/// Checks and serializes `append`.
pub fn job(append: StreamAppend) -> Result<Job> {
    append.check()?;
    let StreamAppend { stream, expected, events, tamper_evident, copies } = append;
    let rows = super::docs::rows(&events)?;
    Ok(Job {
        stream,
        expected,
        tamper_evident,
        events: rows.into_iter().zip(events).collect(),
        copies: super::docs::rows(&copies)?,
    })
}

/// Appends in one transaction; a racing writer that took the same version makes this attempt
/// fail (write conflict or duplicate key), and the retry re-reads the version, so the caller
/// gets [`crate::Error::StreamConflict`] with the version that won.
pub async fn append(bus: &MongoBus, job: Job) -> Result<Appended> {
    transaction!(bus, |bus, s| attempt(bus, s, &job))
}

fn binary(bytes: &[u8; 32]) -> Bson {
    Bson::Binary(Binary { subtype: BinarySubtype::Generic, bytes: bytes.to_vec() })
}

fn signed(version: u64) -> i64 {
    i64::try_from(version).unwrap_or(i64::MAX)
}

fn stream_filter(stream: &StreamId) -> Document {
    doc! { "aggregate": &stream.aggregate, "id": &stream.id }
}

/// The latest stream document (version and hash).
async fn last(
    bus: &MongoBus,
    s: Option<&mut ClientSession>,
    stream: &StreamId,
) -> mongodb::error::Result<Option<Document>> {
    let coll = bus.coll(STREAMS);
    let find = coll.find_one(stream_filter(stream)).sort(doc! { "version": -1 });
    match s {
        Some(s) => find.session(s).await,
        None => find.await,
    }
}

pub(super) async fn attempt(bus: &MongoBus, s: &mut ClientSession, job: &Job) -> TxResult<Appended> {
    let stream = &job.stream;
    let last = last(bus, Some(&mut *s), stream).await?;
    let actual = last.as_ref().and_then(|d| d.get_i64("version").ok()).map(|v| u64::try_from(v).unwrap_or(0));
    check_expected(stream, job.expected, actual).map_err(Abort::Fail)?;
    let mut prev = last
        .as_ref()
        .and_then(|d| d.get_binary_generic("hash").ok())
        .and_then(|h| <[u8; 32]>::try_from(h.as_slice()).ok())
        .unwrap_or(GENESIS);
    // Offsets for every event and copy, reserved on their partitions' counters.
    let rows = job.events.iter().map(|(r, _)| &r.doc).chain(job.copies.iter().map(|r| &r.doc));
    let mut offsets = Reserved::reserve(bus, s, rows).await?;
    let first_version = actual.unwrap_or(0) + 1;
    let mut docs: Vec<EventDoc> = Vec::new();
    let mut links: Vec<Document> = Vec::new();
    let mut receipts = Vec::with_capacity(job.events.len());
    for (version, (row, event)) in (first_version..).zip(&job.events) {
        let offset = offsets.take(&row.doc);
        let mut entry = doc! {
            "aggregate": &stream.aggregate,
            "id": &stream.id,
            "version": signed(version),
            "topic": &row.doc.topic,
            "part": row.doc.part,
            "off": offset,
        };
        if job.tamper_evident {
            let link = chain::link(stream, version, event.into(), prev);
            prev = link.hash;
            entry.insert("prev", binary(&link.prev));
            entry.insert("hash", binary(&link.hash));
        } else {
            prev = GENESIS;
        }
        docs.push(EventDoc { off: offset, ..row.doc.clone() });
        links.push(entry);
        receipts.push(crate::record::Receipt {
            id: row.id,
            offset,
            partition: row.partition,
            duplicate: false,
        });
    }
    for row in &job.copies {
        docs.push(EventDoc { off: offsets.take(&row.doc), ..row.doc.clone() });
    }
    // Each entry names the chunk holding its event, so a stream read fetches chunks by id.
    let chunks = super::chunk::chunks(docs);
    let holder: HashMap<_, _> = chunks.iter().flat_map(|c| c.evs.iter().map(|e| (e.id, c.id))).collect();
    for (entry, (row, _)) in links.iter_mut().zip(&job.events) {
        if let Some(chunk) = holder.get(&row.doc.id) {
            entry.insert("chunk", *chunk);
        }
    }
    super::publish::write(bus, s, chunks).await?;
    bus.coll(STREAMS).insert_many(links).session(&mut *s).await?;
    let last_version = first_version + receipts.len() as u64 - 1;
    Ok(Appended { first_version, last_version, receipts })
}

/// Up to `limit` events of `stream` after `after`, in version order (a version whose event is
/// gone is left out; verification reports the gap).
pub async fn read(bus: &MongoBus, stream: &StreamId, after: u64, limit: usize) -> Result<Vec<StreamRecord>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let mut filter = stream_filter(stream);
    filter.insert("version", doc! { "$gt": signed(after) });
    let entries: Vec<Document> = bus
        .coll(STREAMS)
        .find(filter)
        .sort(doc! { "version": 1 })
        .limit(i64::try_from(limit).unwrap_or(i64::MAX))
        .await
        .map_err(|e| bus.db("cannot read the stream", &e))?
        .try_collect()
        .await
        .map_err(|e| bus.db("cannot read the stream", &e))?;
    // Chunks to fetch by id; per-event documents of an earlier release by (topic, partition)
    // and offset (entries of the per-topic layout have no partition).
    let mut chunk_ids: Vec<mongodb::bson::Uuid> = Vec::new();
    let mut wanted: Vec<(Partition<'_>, Vec<i64>)> = Vec::new();
    for entry in &entries {
        if let Some(id) = chunk_of(entry) {
            if !chunk_ids.contains(&id) {
                chunk_ids.push(id);
            }
            continue;
        }
        let Some((topic, part, off)) = place(entry) else { continue };
        match wanted.iter_mut().find(|(at, _)| *at == (topic, part)) {
            Some((_, offs)) => offs.push(off),
            None => wanted.push(((topic, part), vec![off])),
        }
    }
    if wanted.is_empty() && chunk_ids.is_empty() {
        return Ok(Vec::new());
    }
    let events = stored::stream_events(bus.database(), &wanted, &chunk_ids)
        .await
        .map_err(|e| bus.db("cannot read the stream's events", &e))?;
    let mut by_place: HashMap<(String, i64), Vec<EventDoc>> = HashMap::new();
    for event in events {
        by_place.entry((event.topic.clone(), event.off)).or_default().push(event);
    }
    let mut out = Vec::with_capacity(entries.len());
    for entry in &entries {
        let (Some((topic, part, off)), Ok(version)) = (place(entry), entry.get_i64("version")) else {
            continue;
        };
        let Some(found) = by_place.get_mut(&(topic.to_owned(), off)) else { continue };
        let Some(i) = found.iter().position(|e| part.is_none_or(|p| e.part == p)) else { continue };
        let record = found.swap_remove(i).into_record(&mut HeadersText::default()).map_err(|e| bus.err(e))?;
        out.push(StreamRecord { version: u64::try_from(version).unwrap_or(0), record, link: link(entry) });
    }
    Ok(out)
}

/// The chunk holding a stream entry's event (entries of earlier releases name none).
fn chunk_of(entry: &Document) -> Option<mongodb::bson::Uuid> {
    match entry.get("chunk")? {
        Bson::Binary(b) => {
            Some(mongodb::bson::Uuid::from_bytes(<[u8; 16]>::try_from(b.bytes.as_slice()).ok()?))
        }
        _ => None,
    }
}

/// Where a stream entry's event is stored: topic, partition (`None` in entries written before
/// per-partition offsets, whose offset alone is unique in the topic) and offset.
fn place(entry: &Document) -> Option<(&str, Option<i64>, i64)> {
    Some((entry.get_str("topic").ok()?, entry.get_i64("part").ok(), entry.get_i64("off").ok()?))
}

/// The stored link; a hash of the wrong size or type reads as all ones, which no chain
/// produces, so verification reports it as broken.
fn link(entry: &Document) -> Option<ChainLink> {
    let bytes = |name: &str| match entry.get(name) {
        None | Some(Bson::Null) => None,
        Some(Bson::Binary(b)) => Some(<[u8; 32]>::try_from(b.bytes.as_slice()).unwrap_or([0xff; 32])),
        Some(_) => Some([0xff; 32]),
    };
    match (bytes("prev"), bytes("hash")) {
        (None, None) => None,
        (prev, hash) => {
            Some(ChainLink { prev: prev.unwrap_or([0xff; 32]), hash: hash.unwrap_or([0xff; 32]) })
        }
    }
}

/// The stream's version.
pub async fn version(bus: &MongoBus, stream: &StreamId) -> Result<Option<u64>> {
    let last = last(bus, None, stream).await.map_err(|e| bus.db("cannot read the stream version", &e))?;
    Ok(last.and_then(|d| d.get_i64("version").ok()).map(|v| u64::try_from(v).unwrap_or(0)))
}

/// Stream ids of `aggregate` after `after`, sorted.
pub async fn ids(
    bus: &MongoBus,
    aggregate: &str,
    after: Option<String>,
    limit: usize,
) -> Result<Vec<String>> {
    let mut filter = doc! { "aggregate": aggregate };
    if let Some(after) = after {
        filter.insert("id", doc! { "$gt": after });
    }
    let pipeline = [
        doc! { "$match": filter },
        doc! { "$group": { "_id": "$id" } },
        doc! { "$sort": { "_id": 1 } },
        doc! { "$limit": i64::try_from(limit).unwrap_or(i64::MAX).max(1) },
    ];
    let found: Vec<Document> = bus
        .coll(STREAMS)
        .aggregate(pipeline)
        .await
        .map_err(|e| bus.db("cannot list streams", &e))?
        .try_collect()
        .await
        .map_err(|e| bus.db("cannot list streams", &e))?;
    let mut ids: Vec<String> =
        found.iter().filter_map(|d| d.get_str("_id").ok().map(str::to_owned)).collect();
    ids.truncate(limit);
    Ok(ids)
}

/// Stores `snapshot` unless a higher version is stored.
pub async fn save_snapshot(
    bus: &MongoBus,
    stream: &StreamId,
    snapshot: Snapshot,
    state: String,
) -> Result<()> {
    let id = doc! { "aggregate": &stream.aggregate, "id": &stream.id };
    let update = doc! { "$set": {
        "version": signed(snapshot.version),
        "fingerprint": snapshot.fingerprint,
        "state": state,
        "ts": snapshot.ts,
    } };
    let result = bus
        .coll(SNAPSHOTS)
        .update_one(doc! { "_id": id, "version": { "$lte": signed(snapshot.version) } }, update)
        .upsert(true)
        .await;
    match result {
        Ok(_) => Ok(()),
        // A higher version is stored: the filter missed it and the upsert collided with its _id.
        Err(e) if is_duplicate_key(&e) => Ok(()),
        Err(e) => Err(bus.db("cannot save the snapshot", &e)),
    }
}

fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    use mongodb::error::{ErrorKind, WriteFailure};
    matches!(e.kind.as_ref(), ErrorKind::Write(WriteFailure::WriteError(w)) if w.code == 11000)
}

/// The stored snapshot; one whose state is not JSON (changed behind the store's back) is
/// skipped with a warning, so the stream is folded from its start instead.
pub async fn load_snapshot(bus: &MongoBus, stream: &StreamId) -> Result<Option<Snapshot>> {
    let id = doc! { "aggregate": &stream.aggregate, "id": &stream.id };
    let found = bus
        .coll(SNAPSHOTS)
        .find_one(doc! { "_id": id })
        .await
        .map_err(|e| bus.db("cannot load the snapshot", &e))?;
    let Some(found) = found else { return Ok(None) };
    let parsed = (|| {
        let version = u64::try_from(found.get_i64("version").ok()?).ok()?;
        let fingerprint = found.get_str("fingerprint").ok()?.to_owned();
        let ts = found.get_i64("ts").ok()?;
        let state = serde_json::from_str(found.get_str("state").ok()?).ok()?;
        Some(Snapshot { version, fingerprint, state, ts })
    })();
    if parsed.is_none() {
        tracing::warn!(stream = %stream, "the stored snapshot is unreadable; it is ignored");
    }
    Ok(parsed)
}
