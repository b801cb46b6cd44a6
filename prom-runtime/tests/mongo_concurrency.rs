//! Many publishers at once on MongoDB: 64 tasks over two clients (each with its own group
//! committer, as two processes have) publish single events and batches to one topic. Each
//! partition's offsets stay gap-free, per-key order holds, dedup keys are stored once (inside one group commit and
//! across clients), and one failing publish in a group does not fail the others.
#![cfg(feature = "mongo")]

mod common;

use common::mongo::Target;
use prom_runtime::bus::mongo::MongoBus;
use prom_runtime::{EventBus, NewEvent, Receipt};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};

const TOPIC: &str = "load";
const TASKS: usize = 64;
const PER_TASK: usize = 12;
const PARTITIONS: u32 = 4;

/// Each published event's id and dedup key with its receipt, in publish order.
type Published = Vec<((uuid::Uuid, Option<String>), Receipt)>;

/// What task `task` publishes as its `n`th call: single events, every fourth call a batch of
/// three, and every third call a dedup key all tasks with the same `task % 8` share.
fn call(task: usize, n: usize) -> Vec<NewEvent> {
    let key = format!("k{task}");
    let partition = u32::try_from(task).expect("small") % PARTITIONS;
    let event =
        |i: usize| NewEvent::new(TOPIC, json!({ "task": task, "n": n, "i": i })).keyed(&key, partition);
    let mut events: Vec<NewEvent> = if n % 4 == 3 { (0..3).map(event).collect() } else { vec![event(0)] };
    if n.is_multiple_of(3) {
        let last = events.pop().expect("one event at least");
        events.push(last.dedup(format!("shared-{}-{n}", task % 8)));
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_publishers_keep_offsets_order_and_dedup() {
    let Some(target) = Target::from_env() else { return };
    let buses = [target.open_async().await, target.open_async().await];
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let bus: MongoBus = buses[task % 2].clone();
        tasks.push(tokio::spawn(async move {
            let mut receipts = Vec::new();
            for n in 0..PER_TASK {
                let events = call(task, n);
                let ids: Vec<_> = events.iter().map(|e| (e.id, e.dedup.clone())).collect();
                let got = bus.publish(events).await.expect("publish");
                assert_eq!(got.len(), ids.len(), "one receipt per event");
                receipts.extend(ids.into_iter().zip(got));
            }
            (task, receipts)
        }));
    }
    let mut all: Vec<(usize, Published)> = Vec::new();
    for task in tasks {
        all.push(task.await.expect("publisher task"));
    }
    let bus = &buses[0];
    let stored =
        bus.read_topic(TOPIC, &prom_runtime::TopicPosition::start(), usize::MAX).await.expect("read");
    // Gap-free per partition: offsets 1..=n, each once, in every partition.
    let mut per_partition: BTreeMap<u32, Vec<i64>> = BTreeMap::new();
    for event in &stored {
        per_partition.entry(event.partition).or_default().push(event.offset);
    }
    assert_eq!(per_partition.len(), PARTITIONS as usize, "every partition was written");
    for (partition, offsets) in &mut per_partition {
        offsets.sort_unstable();
        let n = i64::try_from(offsets.len()).expect("small");
        assert_eq!(*offsets, (1..=n).collect::<Vec<_>>(), "partition {partition}: gap-free and unique");
        let tail = bus.read(TOPIC, *partition, n - 1, 10).await.expect("read the partition");
        assert_eq!(
            tail.iter().map(|e| e.offset).collect::<Vec<_>>(),
            [n],
            "partition {partition} ends at {n}"
        );
    }
    let heads = bus.heads(TOPIC).await.expect("heads");
    for (partition, offsets) in &per_partition {
        assert_eq!(heads.at(*partition), i64::try_from(offsets.len()).expect("small"), "head of {partition}");
    }
    assert_eq!(heads.total(), i64::try_from(stored.len()).expect("small"), "heads count every event");
    let by_offset: HashMap<(u32, i64), &prom_runtime::EventRecord> =
        stored.iter().map(|e| ((e.partition, e.offset), e)).collect();
    let mut dedup: BTreeMap<String, Vec<Receipt>> = BTreeMap::new();
    let mut fresh = 0usize;
    for (task, receipts) in &all {
        let mut last = 0;
        for ((id, key), receipt) in receipts {
            if let Some(key) = key {
                dedup.entry(key.clone()).or_default().push(*receipt);
            }
            if receipt.duplicate {
                continue;
            }
            fresh += 1;
            // Every acknowledged event is stored at its receipt's offset.
            let event =
                by_offset.get(&(receipt.partition, receipt.offset)).expect("an acknowledged event is stored");
            assert_eq!(event.id, *id, "receipt offset {} holds the published event", receipt.offset);
            assert_eq!(event.key.as_deref(), Some(format!("k{task}").as_str()));
            // Per key (one task = one key): offsets increase in publish order.
            assert!(receipt.offset > last, "task {task}: offset {} after {last}", receipt.offset);
            last = receipt.offset;
        }
    }
    assert_eq!(fresh, stored.len(), "exactly the non-duplicate receipts are stored");
    for (key, receipts) in &dedup {
        let first = receipts[0];
        assert!(
            receipts
                .iter()
                .all(|r| r.id == first.id && r.offset == first.offset && r.partition == first.partition),
            "{key}: one event"
        );
        assert_eq!(receipts.iter().filter(|r| !r.duplicate).count(), 1, "{key}: stored once");
    }
    let stored_keys = stored.iter().filter(|e| e.payload["n"].as_u64().is_some_and(|n| n % 3 == 0)).count();
    assert!(stored_keys >= dedup.len(), "every dedup key has its event");
    target.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_publish_does_not_fail_the_others_in_its_group() {
    let Some(target) = Target::from_env() else { return };
    let bus = target.open_async().await;
    // Larger than MongoDB's 16 MiB document limit: the server refuses this event.
    let huge = NewEvent::new(TOPIC, json!({ "blob": "x".repeat(17 << 20) }));
    let mut tasks = Vec::new();
    for i in 0..32 {
        let bus = bus.clone();
        tasks.push(tokio::spawn(
            async move { bus.publish(vec![NewEvent::new(TOPIC, json!({ "i": i }))]).await },
        ));
    }
    let failing = {
        let bus = bus.clone();
        tokio::spawn(async move { bus.publish(vec![huge]).await })
    };
    for i in 32..64 {
        let bus = bus.clone();
        tasks.push(tokio::spawn(
            async move { bus.publish(vec![NewEvent::new(TOPIC, json!({ "i": i }))]).await },
        ));
    }
    let err = failing.await.expect("task").expect_err("a 17 MiB event is refused");
    assert!(!err.to_string().is_empty());
    let mut offsets = Vec::new();
    for task in tasks {
        let receipts = task.await.expect("task").expect("the small publishes succeed");
        offsets.push(receipts[0].offset);
    }
    offsets.sort_unstable();
    assert_eq!(offsets, (1..=64).collect::<Vec<i64>>(), "the refused event took no offset");
    assert_eq!(bus.heads(TOPIC).await.expect("head").total(), 64);
    target.drop_database().await;
}
