//! Offsets per (topic, partition) on MongoDB: publishes spanning partitions number each
//! partition on its own and stay atomic, one dedup key published to two partitions at once is
//! stored once, and a database of the earlier layout (one offset sequence per topic) keeps
//! working after the upgrade with every partition's offsets still increasing.
#![cfg(feature = "mongo")]

mod common;

use common::mongo::Target;
use prom_runtime::bus::mongo::mongodb::bson::{Document, doc};
use prom_runtime::bus::mongo::mongodb::options::IndexOptions;
use prom_runtime::bus::mongo::mongodb::{Client, IndexModel};
use prom_runtime::bus::mongo::{MongoBus, layout};
use prom_runtime::stream::{ExpectedVersion, StreamAppend, StreamId};
use prom_runtime::{EventBus, NewEvent, TopicPosition};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

const TOPIC: &str = "parts";

fn event(partition: u32, n: usize) -> NewEvent {
    NewEvent::new(TOPIC, json!({ "n": n })).keyed(format!("k{partition}"), partition)
}

/// Offsets of `receipts`, per partition, in receipt order.
fn by_partition(receipts: &[prom_runtime::Receipt]) -> BTreeMap<u32, Vec<i64>> {
    let mut out: BTreeMap<u32, Vec<i64>> = BTreeMap::new();
    for r in receipts {
        out.entry(r.partition).or_default().push(r.offset);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_spanning_partitions_numbers_each_and_stays_atomic() {
    let Some(target) = Target::from_env() else { return };
    let bus = target.open_async().await;
    let receipts =
        bus.publish(vec![event(0, 0), event(1, 1), event(0, 2), event(2, 3)]).await.expect("publish");
    let expected: BTreeMap<u32, Vec<i64>> = [(0, vec![1, 2]), (1, vec![1]), (2, vec![1])].into();
    assert_eq!(by_partition(&receipts), expected, "each partition counts from 1");
    // One event the server refuses (over 16 MiB) fails the whole publish: the other partitions'
    // events are not stored and their offsets are not used up.
    let huge = NewEvent::new(TOPIC, json!({ "blob": "x".repeat(17 << 20) })).keyed("k2", 2);
    bus.publish(vec![event(1, 4), huge]).await.expect_err("a 17 MiB event is refused");
    let next = bus.publish(vec![event(1, 5), event(2, 6)]).await.expect("publish");
    let expected: BTreeMap<u32, Vec<i64>> = [(1, vec![2]), (2, vec![2])].into();
    assert_eq!(by_partition(&next), expected, "the refused publish took no offset");
    let stored = bus.read(TOPIC, 1, 0, 10).await.expect("read");
    let ns: Vec<u64> = stored.iter().filter_map(|e| e.payload["n"].as_u64()).collect();
    assert_eq!(ns, [1, 5], "nothing of the refused publish is stored");
    let heads = bus.heads(TOPIC).await.expect("heads");
    assert_eq!((heads.at(0), heads.at(1), heads.at(2), heads.at(3)), (2, 2, 2, 0));
    target.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_dedup_key_published_to_two_partitions_at_once_is_stored_once() {
    let Some(target) = Target::from_env() else { return };
    // Two clients, as two processes: each has its own group committer.
    let buses = [target.open_async().await, target.open_async().await];
    for round in 0..20usize {
        let key = format!("once-{round}");
        let racers: Vec<_> = (0..2u32)
            .map(|side| {
                let bus: MongoBus = buses[side as usize].clone();
                let event = event(side, round).dedup(key.clone());
                tokio::spawn(async move { bus.publish(vec![event]).await })
            })
            .collect();
        let mut receipts = Vec::new();
        for racer in racers {
            receipts.extend(racer.await.expect("publisher task").expect("publish"));
        }
        let [a, b] = receipts[..] else { panic!("two receipts") };
        assert_eq!((a.id, a.partition, a.offset), (b.id, b.partition, b.offset), "round {round}: one event");
        assert_eq!(u8::from(a.duplicate) + u8::from(b.duplicate), 1, "round {round}: stored once");
    }
    let stored = buses[0].read_topic(TOPIC, &TopicPosition::start(), usize::MAX).await.expect("read");
    assert_eq!(stored.len(), 20, "one event per dedup key");
    let existing =
        buses[1].existing_dedup(TOPIC, vec!["once-3".into(), "never".into()]).await.expect("dedup");
    assert_eq!(existing, ["once-3"]);
    target.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_clients_publishing_across_the_same_partitions_keep_them_gap_free() {
    two_clients_keep_partitions_gap_free(false).await;
}

/// What a sharded cluster gets: each group commit holds one partition's publishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_groups_per_partition_two_clients_keep_the_partitions_gap_free() {
    two_clients_keep_partitions_gap_free(true).await;
}

async fn two_clients_keep_partitions_gap_free(per_partition: bool) {
    let Some(target) = Target::from_env() else { return };
    // Two clients, as two processes: their group transactions reserve the same partitions'
    // counters (created by whichever comes first) and conflict.
    let buses = [target.open_async().await, target.open_async().await];
    for bus in &buses {
        bus.group_per_partition(per_partition);
    }
    let mut tasks = Vec::new();
    for task in 0..32usize {
        let bus: MongoBus = buses[task % 2].clone();
        tasks.push(tokio::spawn(async move {
            let mut published = Vec::new();
            for n in 0..8usize {
                // Single events, and publishes spanning two or three of the four partitions.
                let partitions: Vec<u32> = match n % 3 {
                    0 => vec![u32::try_from(task % 4).expect("small")],
                    1 => vec![0, 2],
                    _ => vec![3, 1, 2],
                };
                let events: Vec<NewEvent> = partitions.iter().map(|&p| event(p, task * 100 + n)).collect();
                let ids: Vec<_> = events.iter().map(|e| e.id).collect();
                let receipts = bus.publish(events).await.expect("publish");
                assert_eq!(receipts.iter().map(|r| r.partition).collect::<Vec<_>>(), partitions);
                published.extend(ids.into_iter().zip(receipts));
            }
            published
        }));
    }
    let mut published = Vec::new();
    for task in tasks {
        published.extend(task.await.expect("publisher task"));
    }
    let stored = buses[1].read_topic(TOPIC, &TopicPosition::start(), usize::MAX).await.expect("read");
    assert_eq!(stored.len(), published.len(), "every event stored once");
    let ids: BTreeSet<_> = stored.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), stored.len(), "no event stored twice");
    let mut per_partition: BTreeMap<u32, Vec<i64>> = BTreeMap::new();
    for e in &stored {
        per_partition.entry(e.partition).or_default().push(e.offset);
    }
    for (partition, offsets) in &mut per_partition {
        offsets.sort_unstable();
        let n = i64::try_from(offsets.len()).expect("small");
        assert_eq!(
            *offsets,
            (1..=n).collect::<Vec<_>>(),
            "partition {partition}: 1..{n}, gap-free and unique"
        );
    }
    let at: BTreeMap<(u32, i64), uuid::Uuid> =
        stored.iter().map(|e| ((e.partition, e.offset), e.id)).collect();
    for (id, receipt) in &published {
        assert_eq!(
            at.get(&(receipt.partition, receipt.offset)),
            Some(id),
            "the receipt names where the event is"
        );
    }
    let heads = buses[0].heads(TOPIC).await.expect("heads");
    assert_eq!(heads.total(), i64::try_from(stored.len()).expect("small"), "heads count every event");
    target.drop_database().await;
}

/// Writes what the layout before per-partition offsets stored: ten events numbered 1..=10
/// across partitions 0-2 (`n % 3`), the topic counter at 10, the unique `topic_off` index, and
/// a stream entry without a partition pointing at offset 4.
async fn write_old_layout(target: &Target) {
    let client = Client::with_uri_str(&target.url).await.expect("client");
    let db = client.database(&target.database);
    let events = db.collection::<Document>(layout::EVENTS);
    let index = |keys: Document, name: &str, unique: bool| {
        IndexModel::builder()
            .keys(keys)
            .options(IndexOptions::builder().name(name.to_string()).unique(unique).build())
            .build()
    };
    events
        .create_indexes([
            index(doc! { "topic": 1, "off": 1 }, "topic_off", true),
            index(doc! { "topic": 1, "part": 1, "off": 1 }, "topic_part_off", false),
        ])
        .await
        .expect("old indexes");
    let old: Vec<Document> = (1..=10i64)
        .map(|off| {
            doc! {
                "_id": prom_runtime::bus::mongo::mongodb::bson::Uuid::new(),
                "topic": TOPIC,
                "off": off,
                "key": format!("k{}", off % 3),
                "part": off % 3,
                "ts": 1_700_000_000_000i64 + off,
                "headers": "{}",
                "payload": json!({ "old": off }).to_string(),
            }
        })
        .collect();
    events.insert_many(old).await.expect("old events");
    db.collection::<Document>(layout::TOPICS)
        .insert_one(doc! { "_id": TOPIC, "head": 10i64 })
        .await
        .expect("old counter");
    db.collection::<Document>(layout::STREAMS)
        .insert_one(doc! { "aggregate": "acct", "id": "a1", "version": 1i64, "topic": TOPIC, "off": 4i64 })
        .await
        .expect("old stream entry");
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_of_the_per_topic_layout_keeps_working() {
    let Some(target) = Target::from_env() else { return };
    write_old_layout(&target).await;
    let bus = target.open_async().await;
    // The indexes are those of the new layout (opening twice, as a second process does, too).
    let _second = target.open_async().await;
    let indexes: Vec<IndexModel> = {
        use futures_util::TryStreamExt;
        let events = bus.database().collection::<Document>(layout::EVENTS);
        events.list_indexes().await.expect("indexes").try_collect().await.expect("indexes")
    };
    let unique = |name: &str| {
        let found = indexes.iter().find(|m| m.options.as_ref().and_then(|o| o.name.as_deref()) == Some(name));
        found.map(|m| m.options.as_ref().and_then(|o| o.unique).unwrap_or(false))
    };
    assert_eq!(unique("topic_part_off"), Some(true), "one offset per partition, enforced");
    assert_eq!(unique("topic_off"), None, "partitions share offsets: the old unique index is gone");
    assert_eq!(bus.heads(TOPIC).await.expect("heads"), TopicPosition::after(10), "the old counter");

    // Partitions 0 and 2 hold old events, 3 is new: all continue above the old topic counter.
    let receipts = bus
        .publish(vec![event(0, 0), event(0, 1), event(2, 2), event(3, 3), event(0, 4)])
        .await
        .expect("publish after the upgrade");
    let expected: BTreeMap<u32, Vec<i64>> = [(0, vec![11, 12, 13]), (2, vec![11]), (3, vec![11])].into();
    assert_eq!(by_partition(&receipts), expected);
    let heads = bus.heads(TOPIC).await.expect("heads");
    assert_eq!((heads.at(0), heads.at(1), heads.at(2), heads.at(3), heads.at(4)), (13, 10, 11, 11, 10));
    // The old counter counts the old events (numbered 1..=10 topic-wide, gap-free) and every
    // partition's counter starts at it, so the heads still count every event: 10 + 3 + 1 + 1.
    assert_eq!(heads.total(), 15, "heads count the old and the new events once each");
    for partition in 0..4u32 {
        let offsets: Vec<i64> =
            bus.read(TOPIC, partition, 0, 100).await.expect("read").iter().map(|e| e.offset).collect();
        assert!(offsets.windows(2).all(|w| w[0] < w[1]), "partition {partition} increases: {offsets:?}");
    }
    // A cursor committed before the upgrade (partition 0 at offset 6) resumes with what follows.
    let after: Vec<i64> = bus.read(TOPIC, 0, 6, 100).await.expect("read").iter().map(|e| e.offset).collect();
    assert_eq!(after, [9, 11, 12, 13]);

    // The stream entry without a partition still finds its event; the stream keeps growing.
    let stream = StreamId::new("acct", "a1");
    let append = StreamAppend::new(stream.clone(), ExpectedVersion::Exact(1), vec![event(1, 9)]);
    let appended = bus.append(append).await.expect("append after the upgrade");
    assert_eq!((appended.first_version, appended.receipts[0].offset), (2, 11));
    let read = bus.read_stream(&stream, 0, 10).await.expect("read the stream");
    let payloads: Vec<_> = read.iter().map(|r| r.record.payload.clone()).collect();
    assert_eq!(payloads, [json!({ "old": 4 }), json!({ "n": 9 })]);
    target.drop_database().await;
}
