//! The `chunks` collection: a transaction's events of one partition stored as **one** document.
//!
//! MongoDB's transactions cost per document written, so a publish of 500 events over 8
//! partitions writes 8 documents instead of 500 (1.32-1.39x raw `insert_many` of per-event
//! documents against 0.79-0.82x, `docs/benchmarks.md`), and a consumer reads a page as a few
//! documents. A chunk holds consecutive offsets `off..=last` of its partition; its events are
//! `evs`, in offset order (the event at `evs[i]` has offset `off + i`). Offsets come from the
//! partition's counter ([`super::counters`]), so chunks of one partition never overlap and become
//! visible in offset order, like the per-event documents of the layout before.

use super::docs::EventDoc;
use mongodb::bson;
use serde::{Deserialize, Serialize};

/// Most events in one chunk: a reader fetches whole chunks, so a page starting inside a long
/// chunk reads its earlier events for nothing.
const MAX_EVENTS: usize = 1000;
/// Most bytes of headers and payload text in one chunk, far below BSON's 16 MiB document limit
/// (a single larger event still gets a chunk of its own, and fails like any oversized document).
const MAX_BYTES: usize = 4 << 20;

/// Consecutive events of one partition, written by one transaction.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChunkDoc {
    /// The first event's id.
    #[serde(rename = "_id")]
    pub id: bson::Uuid,
    /// Topic name.
    pub topic: String,
    /// Partition.
    pub part: i64,
    /// The first event's offset.
    pub off: i64,
    /// The last event's offset.
    pub last: i64,
    /// The latest publish time of its events (ms since the epoch), for reads by time.
    pub tsmax: i64,
    /// Its events' dedup keys (absent without any, so the partial unique index skips it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dedups: Vec<String>,
    /// The events, in offset order.
    pub evs: Vec<ChunkEvent>,
}

/// One event of a chunk: an [`EventDoc`] without what the chunk holds for all of them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChunkEvent {
    /// The event id.
    #[serde(rename = "_id")]
    pub id: bson::Uuid,
    /// Partition key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Publish time (ms since the epoch).
    pub ts: i64,
    /// Headers as a JSON object.
    pub headers: String,
    /// Payload as JSON.
    pub payload: String,
    /// The causing event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caused_by: Option<bson::Uuid>,
    /// Session / stream id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Idempotency key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup: Option<String>,
    /// The `x-schema-version` header as a number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v: Option<i64>,
}

/// The offset of the `i`-th event of a chunk starting at `first`; `None` past the last offset
/// there is (only a document edited by hand gets there, and a reader must not overflow on it).
pub fn offset_at(first: i64, i: usize) -> Option<i64> {
    first.checked_add(i64::try_from(i).ok()?)
}

/// Groups numbered events into chunks: each run of consecutive offsets of one partition (in
/// the order given) becomes one chunk, split at [`MAX_EVENTS`] events or [`MAX_BYTES`].
pub fn chunks(docs: Vec<EventDoc>) -> Vec<ChunkDoc> {
    let mut out: Vec<ChunkDoc> = Vec::new();
    // The chunk still open for each partition, by index into `out`, with its size in bytes.
    let mut open: Vec<((String, i64), usize, usize)> = Vec::new();
    for doc in docs {
        let bytes = doc.headers.len() + doc.payload.len();
        let slot = open.iter().position(|((topic, part), _, _)| *part == doc.part && *topic == doc.topic);
        let joins = slot.is_some_and(|i| {
            let (_, at, size) = &open[i];
            let chunk = &out[*at];
            chunk.last + 1 == doc.off && chunk.evs.len() < MAX_EVENTS && size + bytes <= MAX_BYTES
        });
        match slot {
            Some(i) if joins => {
                let (_, at, size) = &mut open[i];
                *size += bytes;
                out[*at].push(doc);
            }
            Some(i) => {
                open[i].1 = out.len();
                open[i].2 = bytes;
                out.push(ChunkDoc::starting(doc));
            }
            None => {
                open.push(((doc.topic.clone(), doc.part), out.len(), bytes));
                out.push(ChunkDoc::starting(doc));
            }
        }
    }
    out
}

impl ChunkDoc {
    /// A chunk holding `doc` alone.
    fn starting(doc: EventDoc) -> ChunkDoc {
        let mut chunk = ChunkDoc {
            id: doc.id,
            topic: doc.topic.clone(),
            part: doc.part,
            off: doc.off,
            last: doc.off - 1,
            tsmax: doc.ts,
            dedups: Vec::new(),
            evs: Vec::new(),
        };
        chunk.push(doc);
        chunk
    }

    /// Appends `doc`, the event at offset `last + 1`.
    fn push(&mut self, doc: EventDoc) {
        self.last = doc.off;
        self.tsmax = self.tsmax.max(doc.ts);
        if let Some(key) = &doc.dedup {
            self.dedups.push(key.clone());
        }
        self.evs.push(ChunkEvent {
            id: doc.id,
            key: doc.key,
            ts: doc.ts,
            headers: doc.headers,
            payload: doc.payload,
            caused_by: doc.caused_by,
            sid: doc.sid,
            dedup: doc.dedup,
            v: doc.v,
        });
    }

    /// Its events as per-event documents, each with its offset.
    pub fn into_docs(self) -> impl Iterator<Item = EventDoc> {
        let ChunkDoc { topic, part, off, evs, .. } = self;
        evs.into_iter().enumerate().map_while(move |(i, e)| {
            Some(EventDoc {
                id: e.id,
                topic: topic.clone(),
                off: offset_at(off, i)?,
                key: e.key,
                part,
                ts: e.ts,
                headers: e.headers,
                payload: e.payload,
                caused_by: e.caused_by,
                sid: e.sid,
                dedup: e.dedup,
                v: e.v,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(part: i64, off: i64, payload: &str) -> EventDoc {
        EventDoc {
            id: bson::Uuid::new(),
            topic: "t".into(),
            off,
            key: None,
            part,
            ts: off,
            headers: "{}".into(),
            payload: payload.into(),
            caused_by: None,
            sid: None,
            dedup: (off % 2 == 0).then(|| format!("d{off}")),
            v: Some(1),
        }
    }

    #[test]
    fn each_partition_run_becomes_one_chunk_and_comes_back_as_it_went_in() {
        let docs = vec![doc(0, 1, "1"), doc(1, 7, "2"), doc(0, 2, "3"), doc(1, 8, "4"), doc(0, 3, "5")];
        let ids: Vec<_> = docs.iter().map(|d| (d.part, d.off, d.id)).collect();
        let chunks = chunks(docs);
        assert_eq!(chunks.len(), 2);
        assert_eq!((chunks[0].part, chunks[0].off, chunks[0].last, chunks[0].evs.len()), (0, 1, 3, 3));
        assert_eq!((chunks[1].part, chunks[1].off, chunks[1].last, chunks[1].tsmax), (1, 7, 8, 8));
        assert_eq!(chunks[0].dedups, vec!["d2".to_string()]);
        assert_eq!(chunks[0].id, ids[0].2, "a chunk is named by its first event");
        let back: Vec<_> =
            chunks.into_iter().flat_map(ChunkDoc::into_docs).map(|d| (d.part, d.off, d.id)).collect();
        let mut want = ids;
        want.sort_by_key(|(p, o, _)| (*p, *o));
        assert_eq!(back, want);
    }

    #[test]
    fn a_chunk_is_split_at_its_event_and_byte_limits_and_at_a_gap() {
        let many: Vec<EventDoc> = (1..=(MAX_EVENTS as i64 + 5)).map(|o| doc(0, o, "{}")).collect();
        let sizes: Vec<usize> = chunks(many).iter().map(|c| c.evs.len()).collect();
        assert_eq!(sizes, vec![MAX_EVENTS, 5]);
        let big = "x".repeat(MAX_BYTES / 2);
        let sizes: Vec<usize> = chunks(vec![doc(0, 1, &big), doc(0, 2, &big), doc(0, 3, "1")])
            .iter()
            .map(|c| c.evs.len())
            .collect();
        assert_eq!(sizes, vec![1, 2], "two halves and their headers do not fit in one chunk");
        let sizes: Vec<(i64, i64)> =
            chunks(vec![doc(0, 1, "1"), doc(0, 3, "1")]).iter().map(|c| (c.off, c.last)).collect();
        assert_eq!(sizes, vec![(1, 1), (3, 3)], "offsets of one chunk are consecutive");
    }
}
