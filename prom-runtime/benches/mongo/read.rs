//! The `read` section: a consumer's page reads through `MongoBus::read` (chunks: a few documents
//! per page) against raw `find`s of the same events stored as per-event documents (the layout
//! before chunks), both parsing every event's headers and payload.

use super::{Bench, PUBLISH_BATCH, TOPIC, event_docs, publish_batch, rate, raw_events};
use futures_util::TryStreamExt;
use prom_runtime::EventBus;
use prom_runtime::bus::mongo::MongoBus;
use prom_runtime::bus::mongo::mongodb::bson::{self, doc};
use prom_runtime::bus::mongo::mongodb::{Collection, Database};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Batches published before reading (8 partitions, so ~62 events per chunk).
const BATCHES: usize = 40;
/// Events per page, as a consumer asks for.
const PAGE: usize = 500;
const ROUNDS: usize = 9;
const PARTITIONS: u32 = 8;

/// A per-event document as the raw side reads it.
#[derive(Deserialize)]
#[allow(dead_code)] // Read to parse them, as the bus does.
struct RawEvent {
    #[serde(rename = "_id")]
    id: bson::Uuid,
    topic: String,
    off: i64,
    key: Option<String>,
    part: i64,
    ts: i64,
    headers: String,
    payload: String,
}

/// Every partition read page by page through the bus; returns the time and the events read.
async fn bus_side(bus: &MongoBus) -> (Duration, usize) {
    let start = Instant::now();
    let mut n = 0;
    for p in 0..PARTITIONS {
        let mut after = 0;
        loop {
            let page = bus.read(TOPIC, p, after, PAGE).await.expect("MongoBus::read");
            let Some(last) = page.last() else { break };
            after = last.offset;
            n += page.len();
        }
    }
    (start.elapsed(), n)
}

/// The same pages from per-event documents: `find` on `topic_part_off`, headers and payload
/// parsed.
async fn raw_side(coll: &Collection<RawEvent>) -> (Duration, usize) {
    let start = Instant::now();
    let mut n = 0;
    for p in 0..PARTITIONS {
        let mut after = 0;
        loop {
            let filter = doc! { "topic": TOPIC, "part": i64::from(p), "off": { "$gt": after } };
            let page: Vec<RawEvent> = coll
                .find(filter)
                .sort(doc! { "off": 1 })
                .limit(PAGE as i64)
                .await
                .expect("find")
                .try_collect()
                .await
                .expect("read");
            let Some(last) = page.last() else { break };
            after = last.off;
            for e in &page {
                let headers: BTreeMap<String, String> = serde_json::from_str(&e.headers).expect("headers");
                let payload: Value = serde_json::from_str(&e.payload).expect("payload");
                std::hint::black_box((headers, payload));
            }
            n += page.len();
        }
    }
    (start.elapsed(), n)
}

impl Bench {
    pub(super) async fn read(&mut self) {
        let name = self.fresh();
        let bus = MongoBus::open_database(&self.url, Some(&name)).await.expect("open MongoBus");
        let (_client, raw_db): (_, Database) = self.raw_database().await;
        let raw = raw_events(&raw_db).await;
        let mut offsets: BTreeMap<u32, i64> = BTreeMap::new();
        for b in 0..BATCHES {
            let batch = publish_batch(b);
            // Per-partition offsets, as the bus numbers them.
            let mut docs = event_docs(&batch, &mut 0);
            for (doc, event) in docs.iter_mut().zip(&batch) {
                let next = offsets.entry(event.partition).or_default();
                *next += 1;
                doc.insert("off", *next);
            }
            raw.insert_many(docs).await.expect("insert_many");
            bus.publish(batch).await.expect("MongoBus::publish");
        }
        let typed: Collection<RawEvent> = raw_db.collection(raw.name());
        let (mut bus_times, mut raw_times) = (Vec::new(), Vec::new());
        let events = BATCHES * PUBLISH_BATCH;
        for r in 0..ROUNDS {
            let sides = if r % 2 == 0 { [true, false] } else { [false, true] };
            for through_bus in sides {
                let (took, n) = if through_bus { bus_side(&bus).await } else { raw_side(&typed).await };
                assert_eq!(n, events, "every event read");
                if through_bus {
                    bus_times.push(took)
                } else {
                    raw_times.push(took)
                };
            }
        }
        bus.database().drop().await.expect("drop");
        raw_db.drop().await.expect("drop");
        let (bus_time, raw_time) = (super::median(&mut bus_times), super::median(&mut raw_times));
        println!(
            "read ({events} events over {PARTITIONS} partitions, published in batches of {PUBLISH_BATCH}, read \
             partition by partition in pages of {PAGE}; median of {ROUNDS} rounds, sides alternating)"
        );
        println!(
            "  raw find of per-event documents, headers and payload parsed (the layout before): {:>9.0} ev/s (baseline)",
            rate(events, raw_time)
        );
        println!(
            "  MongoBus::read from chunks (span listing + chunk fetch, records built)         : {:>9.0} ev/s   {:.2}x\n",
            rate(events, bus_time),
            raw_time.as_secs_f64() / bus_time.as_secs_f64()
        );
    }
}
