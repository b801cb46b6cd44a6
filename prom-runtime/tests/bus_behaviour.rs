//! The bus contract and consumer-group semantics, run against every backend.

mod common;

use common::Store;
use prom_runtime::consumer::{AckMode, Delivery, Start, SubscribeOptions, Subscription};
use prom_runtime::{AnyBus, EventBus, GroupId, NewEvent};
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Duration;

backend_suite!(
    publish_assigns_monotonic_offsets_and_time_ordered_ids,
    dedup_keys_store_an_event_once,
    group_reads_everything_once_and_resumes_after_its_cursor,
    cursor_never_passes_an_unacked_event,
    nack_redelivers_before_later_events_of_the_same_key,
    max_in_flight_bounds_unacked_events,
    filter_skips_events_and_moves_the_cursor,
    auto_ack_commits_at_the_next_poll,
    start_latest_is_fixed_when_the_group_first_starts,
    start_at_time_and_after_id,
    operator_can_get_and_set_cursors,
    members_split_partitions_and_take_over_when_one_stops,
    one_member_of_a_partitioned_topic_gets_each_event_once_in_key_order,
);

fn opts() -> SubscribeOptions {
    SubscribeOptions { poll_timeout: Duration::from_millis(200), ..SubscribeOptions::default() }
}

fn ev(topic: &str, n: i64, key: &str) -> NewEvent {
    NewEvent::new(topic, json!({ "n": n })).keyed(key, 0)
}

async fn publish_n(bus: &AnyBus, topic: &str, range: std::ops::Range<i64>, keys: usize) {
    let events = range.map(|n| ev(topic, n, &format!("k{}", n as usize % keys))).collect();
    bus.publish(events).await.expect("publish");
}

fn numbers(batch: &[Delivery]) -> Vec<i64> {
    batch.iter().map(|d| d.record.payload["n"].as_i64().unwrap_or(-1)).collect()
}

/// Polls until `want` events arrived (acking each), or panics after a few seconds.
async fn drain(sub: &mut Subscription<AnyBus>, want: usize) -> Vec<i64> {
    let mut got = Vec::new();
    for _ in 0..50 {
        if got.len() >= want {
            break;
        }
        let batch = sub.poll().await.expect("poll");
        for d in &batch {
            sub.ack(d);
        }
        got.extend(numbers(&batch));
    }
    assert_eq!(got.len(), want, "got {got:?}");
    got
}

async fn publish_assigns_monotonic_offsets_and_time_ordered_ids(store: &Store) {
    let bus = store.handle();
    let first = bus.publish(vec![ev("t", 1, "a"), ev("t", 2, "b")]).await.expect("publish");
    let second = bus.publish(vec![ev("t", 3, "a"), ev("other", 1, "a")]).await.expect("publish");
    let offsets: Vec<i64> = first.iter().chain(&second).map(|r| r.offset).collect();
    assert_eq!(offsets, [1, 2, 3, 1], "offsets are per topic and start at 1");
    let events = bus.read_topic("t", &prom_runtime::TopicPosition::start(), 10).await.expect("read");
    assert_eq!(events.iter().map(|e| e.offset).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(events.windows(2).all(|w| w[0].id < w[1].id), "UUIDv7 ids sort by time");
    assert_eq!(events[1].payload, json!({ "n": 2 }));
    assert_eq!(bus.heads("t").await.expect("head").total(), 3);
    assert_eq!(
        bus.read_topic("t", &prom_runtime::TopicPosition::after(1), 1).await.expect("read")[0].offset,
        2
    );
    // Another handle (another process, for SQLite) sees the same data and continues the offsets.
    let other = store.handle();
    assert_eq!(other.publish(vec![ev("t", 4, "c")]).await.expect("publish")[0].offset, 4);
}

async fn dedup_keys_store_an_event_once(store: &Store) {
    let bus = store.handle();
    let a = bus.publish(vec![ev("t", 1, "a").dedup("x"), ev("t", 2, "a").dedup("x")]).await.expect("publish");
    assert!(!a[0].duplicate && a[1].duplicate && a[1].id == a[0].id);
    let b = bus.publish(vec![ev("t", 3, "a").dedup("x"), ev("t", 4, "a").dedup("y")]).await.expect("publish");
    assert!(b[0].duplicate && b[0].offset == 1 && !b[1].duplicate);
    assert_eq!(bus.read_topic("t", &prom_runtime::TopicPosition::start(), 10).await.expect("read").len(), 2);
    let existing = bus.existing_dedup("t", vec!["x".into(), "z".into(), "y".into()]).await.expect("dedup");
    assert_eq!(existing, ["x", "y"]);
}

async fn group_reads_everything_once_and_resumes_after_its_cursor(store: &Store) {
    let bus = store.handle();
    publish_n(&bus, "t", 0..30, 3).await;
    let mut sub = Subscription::new(bus.clone(), "t", "g", opts()).expect("subscribe");
    let got = drain(&mut sub, 30).await;
    let mut sorted = got.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..30).collect::<Vec<_>>());
    for key in 0..3 {
        let of_key: Vec<i64> = got.iter().copied().filter(|n| n % 3 == key).collect();
        assert!(of_key.windows(2).all(|w| w[0] < w[1]), "per-key order: {of_key:?}");
    }
    sub.close().await.expect("close");
    assert_eq!(bus.cursors(&GroupId::new("t", "g")).await.expect("cursors")[&0], 30);
    publish_n(&bus, "t", 30..35, 3).await;
    let mut again = Subscription::new(store.handle(), "t", "g", opts()).expect("subscribe");
    assert_eq!(drain(&mut again, 5).await.len(), 5, "only the new events");
    assert!(again.poll().await.expect("poll").is_empty());
}

async fn cursor_never_passes_an_unacked_event(store: &Store) {
    let bus = store.handle();
    publish_n(&bus, "t", 0..3, 3).await;
    let member = Some("m1".to_string());
    let mut sub =
        Subscription::new(bus.clone(), "t", "g", SubscribeOptions { member: member.clone(), ..opts() })
            .expect("subscribe");
    let batch = sub.poll().await.expect("poll");
    assert_eq!(numbers(&batch), [0, 1, 2]);
    // The first event fails; the later ones succeed.
    sub.ack(&batch[1]);
    sub.ack(&batch[2]);
    sub.commit().await.expect("commit");
    assert_eq!(bus.cursors(&GroupId::new("t", "g")).await.expect("cursors")[&0], 0);
    drop(sub); // a crash: no close, no leave
    let mut restarted = Subscription::new(store.handle(), "t", "g", SubscribeOptions { member, ..opts() })
        .expect("subscribe");
    let again = restarted.poll().await.expect("poll");
    assert_eq!(numbers(&again)[0], 0, "the failed event is delivered again");
}

async fn nack_redelivers_before_later_events_of_the_same_key(store: &Store) {
    let bus = store.handle();
    bus.publish(vec![ev("t", 1, "a"), ev("t", 2, "a"), ev("t", 3, "b")]).await.expect("publish");
    let mut sub = Subscription::new(bus.clone(), "t", "g", opts()).expect("subscribe");
    let batch = sub.poll().await.expect("poll");
    assert_eq!(numbers(&batch), [1, 3], "one event per key at a time");
    sub.nack(&batch[0], Duration::from_millis(50));
    sub.ack(&batch[1]);
    let retry = sub.poll().await.expect("poll");
    assert_eq!((numbers(&retry), retry[0].attempt), (vec![1], 2));
    sub.ack(&retry[0]);
    let next = sub.poll().await.expect("poll");
    assert_eq!(numbers(&next), [2]);
    sub.ack(&next[0]);
    sub.commit().await.expect("commit");
    assert_eq!(bus.cursors(&GroupId::new("t", "g")).await.expect("cursors")[&0], 3);
}

async fn max_in_flight_bounds_unacked_events(store: &Store) {
    let bus = store.handle();
    publish_n(&bus, "t", 0..10, 10).await;
    let o = SubscribeOptions { max_in_flight: 3, poll_timeout: Duration::from_millis(50), ..opts() };
    let mut sub = Subscription::new(bus, "t", "g", o).expect("subscribe");
    let first = sub.poll().await.expect("poll");
    assert_eq!(first.len(), 3);
    assert!(sub.poll().await.expect("poll").is_empty(), "nothing more until something is acked");
    sub.ack(&first[0]);
    let second = sub.poll().await.expect("poll");
    assert_eq!(numbers(&second), [3]);
    assert_eq!(sub.in_flight(), 3);
}

async fn filter_skips_events_and_moves_the_cursor(store: &Store) {
    let bus = store.handle();
    publish_n(&bus, "t", 0..10, 10).await;
    let filter: prom_runtime::consumer::Filter = std::sync::Arc::new(|e| e.payload["n"].as_i64() == Some(9));
    let mut sub =
        Subscription::new(bus.clone(), "t", "g", SubscribeOptions { filter: Some(filter), ..opts() })
            .expect("subscribe");
    assert_eq!(drain(&mut sub, 1).await, [9]);
    sub.commit().await.expect("commit");
    assert_eq!(bus.cursors(&GroupId::new("t", "g")).await.expect("cursors")[&0], 10);
}

async fn auto_ack_commits_at_the_next_poll(store: &Store) {
    let bus = store.handle();
    publish_n(&bus, "t", 0..5, 5).await;
    let mut sub = Subscription::new(bus.clone(), "t", "g", SubscribeOptions { ack: AckMode::Auto, ..opts() })
        .expect("subscribe");
    assert_eq!(sub.poll().await.expect("poll").len(), 5);
    assert!(sub.poll().await.expect("poll").is_empty());
    assert_eq!(bus.cursors(&GroupId::new("t", "g")).await.expect("cursors")[&0], 5);
}

async fn start_latest_is_fixed_when_the_group_first_starts(store: &Store) {
    let bus = store.handle();
    publish_n(&bus, "t", 0..3, 1).await;
    let latest = || SubscribeOptions { start: Start::Latest, member: Some("m".into()), ..opts() };
    let mut sub = Subscription::new(bus.clone(), "t", "g", latest()).expect("subscribe");
    assert!(sub.poll().await.expect("poll").is_empty(), "latest starts after the newest event");
    drop(sub);
    // Published while the group was down, before it ever committed: still delivered.
    publish_n(&bus, "t", 3..5, 1).await;
    let mut again = Subscription::new(store.handle(), "t", "g", latest()).expect("subscribe");
    assert_eq!(drain(&mut again, 2).await, [3, 4]);
}

async fn start_at_time_and_after_id(store: &Store) {
    let bus = store.handle();
    let mut early = ev("t", 0, "a");
    early.ts -= 60_000;
    let receipts = bus.publish(vec![early, ev("t", 1, "a"), ev("t", 2, "a")]).await.expect("publish");
    let at = SubscribeOptions { start: Start::Time(prom_runtime::record::now_ms() - 30_000), ..opts() };
    let mut sub = Subscription::new(bus.clone(), "t", "by-time", at).expect("subscribe");
    assert_eq!(drain(&mut sub, 2).await, [1, 2]);
    let after = SubscribeOptions { start: Start::After(receipts[1].id), ..opts() };
    let mut sub = Subscription::new(bus.clone(), "t", "by-id", after).expect("subscribe");
    assert_eq!(drain(&mut sub, 1).await, [2]);
    let missing = uuid::Uuid::now_v7();
    let unknown = SubscribeOptions { start: Start::After(missing), ..opts() };
    let mut sub = Subscription::new(bus, "t", "bad", unknown).expect("subscribe");
    let err = sub.poll().await.expect_err("unknown id");
    assert!(
        matches!(&err, prom_runtime::Error::UnknownStartEvent { group, topic, id }
            if group == "bad" && topic == "t" && *id == missing),
        "{err:?}"
    );
    assert!(err.to_string().contains("no such event"), "{err}");
}

async fn operator_can_get_and_set_cursors(store: &Store) {
    let bus = store.handle();
    publish_n(&bus, "t", 0..5, 1).await;
    let group = GroupId::new("t", "g");
    bus.commit(&group, None, vec![(0, 3)]).await.expect("set cursor");
    let mut sub = Subscription::new(bus.clone(), "t", "g", opts()).expect("subscribe");
    assert_eq!(drain(&mut sub, 2).await, [3, 4]);
    sub.close().await.expect("close");
    bus.commit(&group, None, vec![(0, 1)]).await.expect("rewind");
    assert_eq!(bus.cursors(&group).await.expect("cursors")[&0], 1, "an operator may move a cursor back");
    let err = bus.commit(&group, Some("stranger"), vec![(0, 5)]).await.expect_err("fenced");
    assert!(matches!(err, prom_runtime::Error::LeaseLost { .. }), "{err}");
}

async fn members_split_partitions_and_take_over_when_one_stops(store: &Store) {
    let bus = store.handle();
    let parts = 4;
    let events: Vec<NewEvent> = (0..40)
        .map(|n| {
            let key = format!("k{n}");
            let p = prom_runtime::partition::partition_for(Some(&key), parts);
            NewEvent::new("t", json!({ "n": n })).keyed(key, p)
        })
        .collect();
    bus.publish(events).await.expect("publish");
    let o = |m: &str| SubscribeOptions {
        partitions: parts,
        partitioned: true,
        member: Some(m.into()),
        // Long enough that a loaded machine (MongoDB round trips of hundreds of ms) does not
        // expire a member between its own polls; each member's view is then current.
        member_ttl: Duration::from_millis(2000),
        poll_timeout: Duration::from_millis(50),
        batch_size: 2,
        ..opts()
    };
    let mut a = Subscription::new(store.handle(), "t", "g", o("a")).expect("subscribe");
    let mut b = Subscription::new(store.handle(), "t", "g", o("b")).expect("subscribe");
    let mut seen = Vec::new();
    let mut split = false;
    for _ in 0..100 {
        for sub in [&mut a, &mut b] {
            let batch = sub.poll().await.expect("poll");
            for d in &batch {
                sub.ack(d);
            }
            seen.extend(numbers(&batch));
        }
        let (pa, pb): (BTreeSet<u32>, BTreeSet<u32>) =
            (a.partitions().into_iter().collect(), b.partitions().into_iter().collect());
        assert!(pa.is_disjoint(&pb), "a partition is held by two members: {pa:?} {pb:?}");
        split |= !pa.is_empty() && !pb.is_empty();
        // Distinct events: a hand-over redelivers what was acked after the last commit.
        seen.sort_unstable();
        seen.dedup();
        if seen.len() >= 40 && split {
            break;
        }
    }
    assert!(split, "both members got partitions");
    assert_eq!(seen.len(), 40);
    // `b` stops without leaving; after its TTL `a` takes everything over.
    drop(b);
    tokio::time::sleep(Duration::from_millis(2200)).await;
    for _ in 0..10 {
        a.poll().await.expect("poll");
        if a.partitions().len() == parts as usize {
            break;
        }
    }
    assert_eq!(a.partitions(), [0, 1, 2, 3]);
}

/// A run that promised a MongoDB server must test it, so a build without the backend fails.
#[cfg(not(feature = "mongo"))]
#[test]
fn mongo_backend_is_built_when_a_server_was_promised() {
    assert!(
        std::env::var("PROM_REQUIRE_MONGO").as_deref() != Ok("1"),
        "PROM_REQUIRE_MONGO=1, but prom-runtime was built without the `mongo` feature; \
         run `cargo test --features prom-runtime/mongo`"
    );
}

/// A member holding every partition of a topic: pages that hit the in-flight limit, a filter,
/// and events published while it reads.
async fn one_member_of_a_partitioned_topic_gets_each_event_once_in_key_order(store: &Store) {
    let bus = store.handle();
    let parts = 4u32;
    let keyed = |range: std::ops::Range<i64>| -> Vec<NewEvent> {
        range
            .map(|n| {
                let key = n % 10;
                NewEvent::new("t", json!({ "n": n }))
                    .keyed(format!("k{key}"), (key % i64::from(parts)) as u32)
            })
            .collect()
    };
    bus.publish(keyed(0..600)).await.expect("publish");
    let options = SubscribeOptions {
        partitions: parts,
        batch_size: 50,
        max_in_flight: 120,
        filter: Some(std::sync::Arc::new(|e: &prom_runtime::EventRecord| {
            e.payload["n"].as_i64().is_some_and(|n| n % 7 != 0)
        })),
        ..opts()
    };
    let mut sub = Subscription::new(bus.clone(), "t", "g", options.clone()).expect("subscribe");
    let want: Vec<i64> = (0..900).filter(|n| n % 7 != 0).collect();
    let mut got = Vec::new();
    for round in 0..400 {
        if round == 3 {
            bus.publish(keyed(600..900)).await.expect("publish");
        }
        let batch = sub.poll().await.expect("poll");
        for d in &batch {
            sub.ack(d);
        }
        got.extend(numbers(&batch));
        if got.len() >= want.len() {
            break;
        }
    }
    let mut sorted = got.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, want, "each kept event once");
    for key in 0..10 {
        let of_key: Vec<i64> = got.iter().copied().filter(|n| n % 10 == key).collect();
        assert!(of_key.windows(2).all(|w| w[0] < w[1]), "per-key order of k{key}: {of_key:?}");
    }
    sub.close().await.expect("close");
    let mut again = Subscription::new(store.handle(), "t", "g", options).expect("subscribe");
    assert!(again.poll().await.expect("poll").is_empty(), "the group's cursors passed every event");
}
