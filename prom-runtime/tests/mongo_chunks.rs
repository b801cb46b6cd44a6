//! Events stored as chunks on MongoDB (one document per partition per transaction): every read
//! of the bus finds each event where a per-event layout would, from any position inside a chunk;
//! a database of the per-event layout keeps its events readable, in front of the new ones, with
//! its dedup keys, stream entries, version counts and time travel honoured; once opened, a
//! process of an earlier release can no longer write per-event documents readers would miss; and
//! a database that never had any is never asked for them.
#![cfg(feature = "mongo")]

mod common;

use common::mongo::Target;
use prom_runtime::bus::mongo::layout;
use prom_runtime::bus::mongo::mongodb::Client;
use prom_runtime::bus::mongo::mongodb::bson::{Document, doc};
use prom_runtime::record::SCHEMA_VERSION;
use prom_runtime::stream::{ExpectedVersion, StreamAppend, StreamId};
use prom_runtime::{AnyBus, EventBus, NewEvent, TopicPosition};
use serde_json::json;
use std::collections::BTreeMap;

const TOPIC: &str = "chunked";
/// Publish times of the events written here: `BASE + n`.
const BASE: i64 = 1_800_000_000_000;

fn event(partition: u32, n: i64) -> NewEvent {
    let mut event = NewEvent::new(TOPIC, json!({ "n": n }))
        .keyed(format!("k{partition}"), partition)
        .header(SCHEMA_VERSION, "3");
    event.ts = BASE + n;
    event
}

/// `(partition, offset)` of what a read returned.
fn places(events: &[prom_runtime::EventRecord]) -> Vec<(u32, i64)> {
    events.iter().map(|e| (e.partition, e.offset)).collect()
}

async fn chunk_count(bus: &prom_runtime::bus::mongo::MongoBus) -> u64 {
    bus.database().collection::<Document>(layout::CHUNKS).count_documents(doc! {}).await.expect("count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_one_chunk_per_partition_and_reads_find_every_event_inside_them() {
    let Some(target) = Target::from_env() else { return };
    let bus = target.open_async().await;
    // 300 events over 3 partitions in one publish: three documents.
    let events: Vec<NewEvent> = (0..300).map(|n| event((n % 3) as u32, n)).collect();
    let ids: Vec<_> = events.iter().map(|e| e.id).collect();
    let receipts = bus.publish(events).await.expect("publish");
    assert_eq!(chunk_count(&bus).await, 3);
    assert!(receipts.iter().all(|r| (1..=100).contains(&r.offset)));

    // From inside a chunk, with limits that end inside it.
    let read = bus.read(TOPIC, 1, 37, 5).await.expect("read");
    assert_eq!(places(&read), (38..=42).map(|o| (1, o)).collect::<Vec<_>>());
    assert_eq!(read[0].payload["n"], json!(37 * 3 + 1), "the event published at that offset");
    assert_eq!(bus.read(TOPIC, 1, 99, 5).await.expect("read").len(), 1);
    assert!(bus.read(TOPIC, 1, 100, 5).await.expect("read").is_empty());
    // A second batch: reads cross from one chunk into the next.
    bus.publish((300..330).map(|n| event(1, n)).collect()).await.expect("publish");
    let read = bus.read(TOPIC, 1, 95, 10).await.expect("read");
    assert_eq!(places(&read), (96..=105).map(|o| (1, o)).collect::<Vec<_>>());
    assert_eq!(read[5].payload["n"], json!(300), "offset 101 starts the second batch");

    // Topic-wide, partition by partition, each after its own offset.
    let from = TopicPosition::with_parts(0, [(0, 98), (1, 128)]);
    let read = bus.read_topic(TOPIC, &from, 10).await.expect("read_topic");
    assert_eq!(
        places(&read),
        vec![(0, 99), (0, 100), (1, 129), (1, 130), (2, 1), (2, 2), (2, 3), (2, 4), (2, 5), (2, 6)]
    );
    let all = bus.read_topic(TOPIC, &TopicPosition::start(), 1000).await.expect("read_topic");
    assert_eq!(all.len(), 330);

    // Counting, looking up by id, by time, and the heads.
    assert_eq!(bus.count_after(TOPIC, 1, 60).await.expect("count"), 70);
    assert_eq!(bus.count_after(TOPIC, 2, 0).await.expect("count"), 100);
    let position = bus.position_of(TOPIC, ids[151]).await.expect("position").expect("found");
    assert_eq!(position.at(1), 51, "event 151 is partition 1's 51st");
    let before = bus.position_before_time(TOPIC, BASE + 151).await.expect("by time");
    assert_eq!((before.at(0), before.at(1), before.at(2)), (51, 50, 50));
    let heads = bus.heads(TOPIC).await.expect("heads");
    assert_eq!((heads.at(0), heads.at(1), heads.at(2)), (100, 130, 100));
    target.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedup_keys_inside_chunks_are_found_and_ids_stay_unique() {
    let Some(target) = Target::from_env() else { return };
    let bus = target.open_async().await;
    let events: Vec<NewEvent> = (0..50).map(|n| event(0, n).dedup(format!("d{n}"))).collect();
    bus.publish(events).await.expect("publish");
    let again = bus.publish(vec![event(0, 99).dedup("d17")]).await.expect("publish again");
    assert!(again[0].duplicate);
    assert_eq!((again[0].partition, again[0].offset), (0, 18), "the stored event's receipt");
    assert_eq!(bus.existing_dedup(TOPIC, vec!["d3".into(), "x".into()]).await.expect("dedup"), ["d3"]);

    // One id twice in one publish is refused at once (a unique index does not look inside one
    // document), and nothing of that publish is stored.
    let first = event(1, 1);
    let mut twin = event(1, 2);
    twin.id = first.id;
    let err = bus.publish(vec![first.clone(), twin]).await.expect_err("refused");
    assert!(err.to_string().contains("appears twice"), "{err}");
    assert!(bus.read(TOPIC, 1, 0, 10).await.expect("read").is_empty());
    // Across chunks, the unique index refuses it.
    bus.publish(vec![first.clone()]).await.expect("publish");
    let stored: Document = bus
        .database()
        .collection::<Document>(layout::CHUNKS)
        .find_one(doc! { "topic": TOPIC, "part": 1_i64 })
        .await
        .expect("find")
        .expect("the chunk");
    let evs = stored.get_array("evs").expect("evs").clone();
    let copy = doc! { "topic": TOPIC, "part": 1_i64, "off": 2_i64, "last": 2_i64, "evs": evs };
    let chunks = bus.database().collection::<Document>(layout::CHUNKS);
    assert!(chunks.insert_one(copy).await.is_err(), "a second chunk holding the same event id is refused");
    target.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_events_split_a_partition_into_several_chunks() {
    let Some(target) = Target::from_env() else { return };
    let bus = target.open_async().await;
    let big = |n: i64| NewEvent::new(TOPIC, json!({ "n": n, "blob": "x".repeat(3 << 20) })).keyed("k0", 0);
    bus.publish(vec![big(0), big(1), big(2), event(0, 3)]).await.expect("publish");
    assert_eq!(chunk_count(&bus).await, 3, "each 3 MiB event alone, the small one beside the last");
    let read = bus.read(TOPIC, 0, 1, 10).await.expect("read");
    let ns: Vec<_> = read.iter().map(|e| e.payload["n"].clone()).collect();
    assert_eq!(ns, [json!(1), json!(2), json!(3)]);
    target.drop_database().await;
}

/// Writes what the per-event layout of the previous release stored: partition 0 at offsets
/// 1..=5 (schema version 1, offset 3 with dedup key `old-d`), partition 1 at 1..=3 (version 2),
/// their counters, and a stream entry for partition 0's offset 2.
async fn write_per_event_layout(target: &Target) -> Vec<prom_runtime::bus::mongo::mongodb::bson::Uuid> {
    let client = Client::with_uri_str(&target.url).await.expect("client");
    let db = client.database(&target.database);
    let mut ids = Vec::new();
    let mut old: Vec<Document> = Vec::new();
    for (part, last, v) in [(0_i64, 5_i64, 1_i64), (1, 3, 2)] {
        for off in 1..=last {
            let id = prom_runtime::bus::mongo::mongodb::bson::Uuid::new();
            ids.push(id);
            let mut doc = doc! {
                "_id": id, "topic": TOPIC, "off": off, "key": format!("k{part}"), "part": part,
                "ts": BASE - 100 + off, "headers": "{}", "payload": json!({ "old": off }).to_string(), "v": v,
            };
            if (part, off) == (0, 3) {
                doc.insert("dedup", "old-d");
            }
            old.push(doc);
        }
    }
    db.collection::<Document>(layout::EVENTS).insert_many(old).await.expect("old events");
    db.collection::<Document>(layout::PARTITIONS)
        .insert_many([
            doc! { "topic": TOPIC, "part": 0_i64, "head": 5_i64 },
            doc! { "topic": TOPIC, "part": 1_i64, "head": 3_i64 },
        ])
        .await
        .expect("old counters");
    db.collection::<Document>(layout::STREAMS)
        .insert_one(doc! { "aggregate": "acct", "id": "a1", "version": 1_i64, "topic": TOPIC, "part": 0_i64, "off": 2_i64 })
        .await
        .expect("old stream entry");
    client.shutdown().await;
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_of_per_event_documents_reads_as_one_log_with_the_chunks() {
    let Some(target) = Target::from_env() else { return };
    let old_ids = write_per_event_layout(&target).await;
    let bus = target.open_async().await;

    // A process of the previous release can no longer write per-event documents.
    let refused = bus
        .database()
        .collection::<Document>(layout::EVENTS)
        .insert_one(doc! { "topic": TOPIC, "off": 6_i64, "part": 0_i64 })
        .await
        .expect_err("events is frozen");
    assert!(refused.to_string().contains("Document failed validation"), "{refused}");

    // New events continue each partition's offsets, in chunks.
    let receipts = bus.publish((0..30).map(|n| event((n % 3) as u32, n)).collect()).await.expect("publish");
    let first: BTreeMap<u32, i64> = receipts.iter().fold(BTreeMap::new(), |mut m, r| {
        m.entry(r.partition).or_insert(r.offset);
        m
    });
    assert_eq!(first, BTreeMap::from([(0, 6), (1, 4), (2, 1)]));

    // One log per partition: the old documents, then the chunks.
    let read = bus.read(TOPIC, 0, 0, 100).await.expect("read");
    assert_eq!(places(&read), (1..=15).map(|o| (0, o)).collect::<Vec<_>>());
    assert_eq!((&*read[4].payload, &*read[5].payload), (&json!({ "old": 5 }), &json!({ "n": 0 })));
    assert_eq!(places(&bus.read(TOPIC, 0, 3, 4).await.expect("read")), vec![(0, 4), (0, 5), (0, 6), (0, 7)]);
    let from = TopicPosition::with_parts(0, [(0, 4), (1, 2)]);
    let read = bus.read_topic(TOPIC, &from, 4).await.expect("read_topic");
    assert_eq!(places(&read), vec![(0, 5), (0, 6), (0, 7), (0, 8)]);
    let all = bus.read_topic(TOPIC, &from, 100).await.expect("read_topic");
    assert_eq!(all.len(), 11 + 11 + 10);
    assert_eq!(bus.count_after(TOPIC, 1, 1).await.expect("count"), 2 + 10);
    let old = bus.position_of(TOPIC, uuid::Uuid::from_bytes(old_ids[1].bytes())).await.expect("position");
    assert_eq!(old.expect("found").at(0), 2);
    let before = bus.position_before_time(TOPIC, BASE - 100 + 2).await.expect("by time");
    assert_eq!((before.at(0), before.at(1), before.at(2)), (1, 1, 0));

    // The old dedup key still answers with the old event.
    let again = bus.publish(vec![event(0, 99).dedup("old-d")]).await.expect("publish");
    assert!(again[0].duplicate);
    assert_eq!((again[0].partition, again[0].offset), (0, 3));

    // The old stream entry and a new one read as one stream.
    let stream = StreamId::new("acct", "a1");
    let append = StreamAppend::new(stream.clone(), ExpectedVersion::Exact(1), vec![event(0, 7)]);
    bus.append(append).await.expect("append");
    let read = bus.read_stream(&stream, 0, 10).await.expect("read the stream");
    let payloads: Vec<_> = read.iter().map(|r| r.record.payload.clone()).collect();
    assert_eq!(payloads, [json!({ "old": 2 }), json!({ "n": 7 })]);

    // `prom status` counts both: the old documents over their index, the chunks in the counters.
    let linted = prom_spec::lint_str(
        "inline.yaml",
        "topics:\n  chunked:\n    key: /n\n    partitions: 3\n    versions:\n      1:\n        schema: { type: object, \
         required: [n], properties: { n: { type: string } } }\n",
    );
    assert!(!linted.has_errors(), "{}", linted.render());
    let system = prom_runtime::system::System::from_spec(&linted.spec);
    let any: AnyBus = bus.clone().into();
    let status = prom_runtime::metrics::inspect::collect(&any, &system).await.expect("status");
    let topic = status.topics.iter().find(|t| t.name == TOPIC).expect("the topic");
    let counts: Vec<(Option<u32>, u64)> =
        topic.stored_versions.iter().map(|s| (s.version, s.events)).collect();
    assert_eq!(counts, vec![(Some(1), 5), (Some(2), 3), (Some(3), 31)], "{:?}", topic.stored_versions);
    target.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_edited_into_nonsense_is_an_error_not_a_panic() {
    let Some(target) = Target::from_env() else { return };
    let bus = target.open_async().await;
    bus.publish(vec![event(0, 1)]).await.expect("publish");
    let chunks = bus.database().collection::<Document>(layout::CHUNKS);
    // Offsets at the end of the range (two events where one offset is left), and events that are
    // not a list.
    let ev = |n: i64| {
        doc! { "_id": prom_runtime::bus::mongo::mongodb::bson::Uuid::new(), "ts": 0_i64, "headers": "{}", "payload": n.to_string() }
    };
    let near_end = doc! { "_id": prom_runtime::bus::mongo::mongodb::bson::Uuid::new(), "topic": TOPIC, "part": 1_i64, "off": i64::MAX, "last": i64::MAX, "tsmax": 0_i64, "evs": [ev(1), ev(2)] };
    chunks.insert_one(near_end).await.expect("insert");
    let nonsense =
        doc! { "topic": TOPIC, "part": 2_i64, "off": 1_i64, "last": 3_i64, "tsmax": 0_i64, "evs": "x" };
    chunks.insert_one(nonsense).await.expect("insert");
    let end: Vec<i64> = bus.read(TOPIC, 1, 0, 10).await.expect("read").iter().map(|e| e.offset).collect();
    assert_eq!(end, [i64::MAX], "no offset past the end: the extra event is not handed out");
    let err = bus.read(TOPIC, 2, 0, 10).await.expect_err("a chunk that is not one");
    assert!(err.to_string().contains("cannot read events"), "{err}");
    let all = bus.read_topic(TOPIC, &TopicPosition::start(), usize::MAX).await;
    assert!(all.is_err(), "the topic read meets the same chunk: {all:?}");
    assert_eq!(bus.read(TOPIC, 0, 0, 10).await.expect("the good partition").len(), 1);
    target.drop_database().await;
}

/// The registry and fold of [`common::PROCESS_STATE_SPEC`]'s `process.state`.
fn travel_setup() -> (std::sync::Arc<prom_runtime::Registry>, prom_runtime::timetravel::FoldSpec) {
    let linted = prom_spec::lint_str("inline.yaml", common::PROCESS_STATE_SPEC);
    assert!(!linted.has_errors(), "{}", linted.render());
    let registry = std::sync::Arc::new(prom_runtime::Registry::from_spec(&linted.spec).expect("registry"));
    let system = prom_runtime::system::System::from_spec(&linted.spec);
    let fold =
        prom_runtime::timetravel::FoldSpec::for_topic(&system, &registry, "process.state").expect("fold");
    (registry, fold)
}

/// Process `p1`'s state `seq`, stamped `BASE + seq`, on partition 0.
fn process_event(seq: i64) -> NewEvent {
    let mut event = NewEvent::new("process.state", json!({ "processId": "p1", "seq": seq }))
        .keyed("p1", 0)
        .header(SCHEMA_VERSION, "1");
    event.ts = BASE + seq;
    event
}

/// The sequence number of `p1`'s state at `BASE + at`.
async fn seq_at(travel: &prom_runtime::timetravel::TimeTravel, at: i64) -> Option<i64> {
    let travelled = travel.state_at("p1", BASE + at).await.expect("state at");
    travelled.state.map(|s| s["seq"].as_i64().expect("seq"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_travel_folds_a_key_across_the_frozen_events_and_the_chunks() {
    let Some(target) = Target::from_env() else { return };
    let client = Client::with_uri_str(&target.url).await.expect("client");
    let old: Vec<Document> = (1..=3_i64)
        .map(|seq| {
            doc! {
                "_id": prom_runtime::bus::mongo::mongodb::bson::Uuid::new(), "topic": "process.state",
                "off": seq, "key": "p1", "part": 0_i64, "ts": BASE + seq,
                "headers": json!({ SCHEMA_VERSION: "1" }).to_string(),
                "payload": json!({ "processId": "p1", "seq": seq }).to_string(), "v": 1_i64,
            }
        })
        .collect();
    let db = client.database(&target.database);
    db.collection::<Document>(layout::EVENTS).insert_many(old).await.expect("old events");
    db.collection::<Document>(layout::PARTITIONS)
        .insert_one(doc! { "topic": "process.state", "part": 0_i64, "head": 3_i64 })
        .await
        .expect("old counter");
    let bus = target.open_async().await;
    bus.publish((4..=6).map(process_event).collect()).await.expect("publish");

    let (registry, fold) = travel_setup();
    let any: AnyBus = bus.clone().into();
    let on_bus =
        prom_runtime::timetravel::TimeTravel::on(&any, registry.clone(), fold.clone()).await.expect("on");
    let on_db = prom_runtime::timetravel::TimeTravel::new(db.clone(), registry, fold).await.expect("new");
    for (name, travel) in
        [("on the bus", on_bus.snapshot_every(2)), ("on the database", on_db.snapshot_every(0))]
    {
        for (at, want) in [(0, None), (2, Some(2)), (3, Some(3)), (4, Some(4)), (9, Some(6))] {
            assert_eq!(seq_at(&travel, at).await, want, "{name}: p1 at BASE+{at}");
        }
    }
    client.shutdown().await;
    target.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_travel_on_a_database_without_per_event_documents_never_queries_them() {
    use prom_runtime::bus::mongo::mongodb::event::EventHandler;
    use prom_runtime::bus::mongo::mongodb::event::command::CommandEvent;
    use prom_runtime::bus::mongo::mongodb::options::ClientOptions;
    use std::sync::{Arc, Mutex};

    let Some(target) = Target::from_env() else { return };
    let bus = target.open_async().await;
    bus.publish((1..=5).map(process_event).collect()).await.expect("publish");

    // A client of its own that records the collection of every `find` it sends.
    let finds: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut options = ClientOptions::parse(&target.url).await.expect("options");
    let seen = finds.clone();
    options.command_event_handler = Some(EventHandler::callback(move |event: CommandEvent| {
        if let CommandEvent::Started(started) = event
            && started.command_name == "find"
            && let Ok(collection) = started.command.get_str("find")
        {
            seen.lock().expect("finds").push(collection.to_owned());
        }
    }));
    let client = Client::with_options(options).expect("client");
    let (registry, fold) = travel_setup();
    let travel = prom_runtime::timetravel::TimeTravel::new(client.database(&target.database), registry, fold)
        .await
        .expect("time travel")
        .snapshot_every(0);
    assert_eq!(seq_at(&travel, 3).await, Some(3));
    assert_eq!(seq_at(&travel, 9).await, Some(5));
    let finds = finds.lock().expect("finds").clone();
    assert!(finds.iter().any(|c| c == layout::CHUNKS), "the chunks were read: {finds:?}");
    assert!(!finds.iter().any(|c| c == layout::EVENTS), "`events` was queried: {finds:?}");
    client.shutdown().await;
    target.drop_database().await;
}
