//! Topic-wide positions (one offset per partition) against every store, and against a memory
//! bus that numbers offsets per partition (not `ordered`), as a sharded store may.

mod common;

use common::Store;
use prom_runtime::consumer::{Start, SubscribeOptions, Subscription};
use prom_runtime::{AnyBus, EventBus, EventRecord, GroupId, MemoryBus, NewEvent, TopicPosition};
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Duration;
use uuid::Uuid;

backend_suite!(
    read_topic_returns_exactly_the_events_after_a_position,
    heads_are_after_every_event,
    position_before_time_splits_at_the_time,
    position_of_is_just_after_the_event,
    wait_returns_when_a_partition_passes_what_was_seen,
    init_cursors_starts_each_partition_at_its_own_offset,
    groups_start_at_latest_and_after_an_event,
);

/// The same tests on a memory bus numbering offsets per partition.
mod per_partition {
    macro_rules! unordered {
        ($($name:ident),* $(,)?) => {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let bus: prom_runtime::AnyBus = prom_runtime::MemoryBus::per_partition().into();
                    super::$name(&super::common::Store::of(bus)).await;
                }
            )*
        };
    }
    unordered!(
        read_topic_returns_exactly_the_events_after_a_position,
        heads_are_after_every_event,
        position_before_time_splits_at_the_time,
        position_of_is_just_after_the_event,
        wait_returns_when_a_partition_passes_what_was_seen,
        init_cursors_starts_each_partition_at_its_own_offset,
        groups_start_at_latest_and_after_an_event,
    );
}

const PARTITIONS: u32 = 4;

/// Publishes events `range` to `topic`, event `n` keyed `k<n>` in partition `n % 4` (partition
/// 3 gets only every other round, so partitions' offsets drift apart), one batch per 7 events;
/// returns their ids in publish order.
async fn publish(bus: &AnyBus, topic: &str, range: std::ops::Range<u32>) -> Vec<Uuid> {
    let events: Vec<NewEvent> = range
        .map(|n| {
            let partition = if n % 8 == 7 { 1 } else { n % PARTITIONS };
            NewEvent::new(topic, json!({ "n": n })).keyed(format!("k{n}"), partition)
        })
        .collect();
    let ids = events.iter().map(|e| e.id).collect();
    for batch in events.chunks(7) {
        bus.publish(batch.to_vec()).await.expect("publish");
    }
    ids
}

async fn all(bus: &AnyBus, topic: &str) -> Vec<EventRecord> {
    bus.read_topic(topic, &TopicPosition::start(), usize::MAX).await.expect("read")
}

/// Reads `topic` from `from` in pages of `page`, advancing as a reader does.
async fn read_on(bus: &AnyBus, topic: &str, from: &TopicPosition, page: usize) -> Vec<EventRecord> {
    let (mut at, mut out) = (from.clone(), Vec::new());
    loop {
        let got = bus.read_topic(topic, &at, page).await.expect("read");
        if got.is_empty() {
            return out;
        }
        assert!(got.len() <= page);
        for record in &got {
            at.advance(record, bus.ordered());
        }
        out.extend(got);
    }
}

fn ids(records: &[EventRecord]) -> BTreeSet<Uuid> {
    records.iter().map(|r| r.id).collect()
}

/// Each partition's events in offset order, and (on an ordered store) the whole in offset order.
fn assert_in_order(bus: &AnyBus, records: &[EventRecord]) {
    for p in 0..PARTITIONS {
        let offsets: Vec<i64> = records.iter().filter(|r| r.partition == p).map(|r| r.offset).collect();
        assert!(offsets.windows(2).all(|w| w[0] < w[1]), "partition {p}: {offsets:?}");
    }
    if bus.ordered() {
        assert!(records.windows(2).all(|w| w[0].offset < w[1].offset), "topic order");
    }
}

async fn read_topic_returns_exactly_the_events_after_a_position(store: &Store) {
    let bus = store.handle();
    publish(&bus, "t", 0..40).await;
    let every = all(&bus, "t").await;
    assert_eq!(every.len(), 40);
    assert_in_order(&bus, &every);
    // Positions a reader can hold: one number; past some events per partition; a mix.
    let mut unordered = TopicPosition::start();
    for record in &every[..15] {
        unordered.advance(record, false);
    }
    let mixed = TopicPosition::with_parts(every[3].offset.min(2), [(2, every[20].offset), (3, 1)]);
    for from in [TopicPosition::start(), TopicPosition::after(every[9].offset), unordered, mixed] {
        let expected: BTreeSet<Uuid> =
            every.iter().filter(|r| r.offset > from.at(r.partition)).map(|r| r.id).collect();
        let whole = bus.read_topic("t", &from, usize::MAX).await.expect("read");
        assert_eq!(ids(&whole), expected, "{} from {from}", store.name());
        assert_eq!(whole.len(), expected.len());
        assert_in_order(&bus, &whole);
        for page in [1, 3, 16] {
            let paged = read_on(&bus, "t", &from, page).await;
            assert_eq!(paged.len(), expected.len(), "no event twice, page {page} from {from}");
            assert_eq!(ids(&paged), expected, "page {page} from {from}");
        }
    }
    assert!(bus.read_topic("none", &TopicPosition::start(), 10).await.expect("read").is_empty());
}

async fn heads_are_after_every_event(store: &Store) {
    let bus = store.handle();
    assert_eq!(bus.heads("t").await.expect("heads"), TopicPosition::start());
    publish(&bus, "t", 0..30).await;
    let heads = bus.heads("t").await.expect("heads");
    let every = all(&bus, "t").await;
    for p in 0..PARTITIONS {
        let last = every.iter().filter(|r| r.partition == p).map(|r| r.offset).max();
        assert!(last.is_some_and(|last| last <= heads.at(p)), "partition {p} of {heads}");
    }
    assert_eq!(heads.total(), 30, "heads count the events: {heads}");
    assert!(bus.read_topic("t", &heads, 10).await.expect("read").is_empty());
    if bus.ordered() {
        assert_eq!(heads.to_string(), "30", "one number on an ordered store");
    }
}

async fn position_before_time_splits_at_the_time(store: &Store) {
    let bus = store.handle();
    let before = publish(&bus, "t", 0..12).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let at = prom_runtime::record::now_ms();
    tokio::time::sleep(Duration::from_millis(2)).await;
    let after = publish(&bus, "t", 12..30).await;
    let position = bus.position_before_time("t", at).await.expect("position");
    let read = bus.read_topic("t", &position, usize::MAX).await.expect("read");
    assert_eq!(ids(&read), after.iter().copied().collect(), "{} at {position}", store.name());
    assert!(ids(&read).is_disjoint(&before.into_iter().collect()));
    let future = bus.position_before_time("t", at + 3_600_000).await.expect("position");
    assert_eq!(future, bus.heads("t").await.expect("heads"));
    let past = bus.position_before_time("t", 0).await.expect("position");
    assert_eq!(bus.read_topic("t", &past, usize::MAX).await.expect("read").len(), 30);
}

async fn position_of_is_just_after_the_event(store: &Store) {
    let bus = store.handle();
    let published = publish(&bus, "t", 0..30).await;
    let every = all(&bus, "t").await;
    for index in [0, 9, 17, 29] {
        let position = bus.position_of("t", published[index]).await.expect("position").expect("found");
        let read = bus.read_topic("t", &position, usize::MAX).await.expect("read");
        let later: BTreeSet<Uuid> = published[index + 1..].iter().copied().collect();
        let what = format!("{} after event {index} ({position})", store.name());
        assert_after(store, &every, published[index], &read, &later, &what);
    }
    assert_eq!(bus.position_of("t", Uuid::nil()).await.expect("position"), None);
    assert_eq!(bus.position_of("other", published[3]).await.expect("position"), None);
}

async fn wait_returns_when_a_partition_passes_what_was_seen(store: &Store) {
    let bus = store.handle();
    publish(&bus, "t", 0..10).await;
    let seen = bus.heads("t").await.expect("heads");
    let started = tokio::time::Instant::now();
    bus.wait("t", &seen, Duration::from_millis(150)).await;
    assert!(started.elapsed() >= Duration::from_millis(140), "nothing new: the wait lasts its timeout");
    let publisher = bus.clone();
    let late = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let event = NewEvent::new("t", json!({ "n": 99 })).keyed("late", 2);
        publisher.publish(vec![event]).await.expect("publish");
    });
    let started = tokio::time::Instant::now();
    bus.wait("t", &seen, Duration::from_secs(20)).await;
    assert!(started.elapsed() < Duration::from_secs(20), "a new event ends the wait");
    late.await.expect("publisher");
    let new = bus.read_topic("t", &seen, 10).await.expect("read");
    assert_eq!(new.iter().map(|r| r.partition).collect::<Vec<_>>(), [2]);
    // A position past the floor in some partition waits like any other.
    let mut ahead = bus.heads("t").await.expect("heads");
    ahead.set(1, ahead.at(1) + 5);
    let started = tokio::time::Instant::now();
    bus.wait("t", &ahead, Duration::from_millis(150)).await;
    assert!(started.elapsed() >= Duration::from_millis(140), "{ahead}: nothing past it");
}

async fn init_cursors_starts_each_partition_at_its_own_offset(store: &Store) {
    let bus = store.handle();
    let group = GroupId::new("t", "g");
    let start = TopicPosition::with_parts(2, [(1, 5)]);
    let cursors = bus.init_cursors(&group, vec![0, 1, 2], &start).await.expect("init");
    assert_eq!(cursors.into_iter().collect::<Vec<_>>(), [(0, 2), (1, 5), (2, 2)]);
    let again = bus.init_cursors(&group, vec![1, 3], &TopicPosition::after(9)).await.expect("init");
    assert_eq!(again.into_iter().collect::<Vec<_>>(), [(1, 5), (3, 9)], "existing cursors stay");
}

async fn groups_start_at_latest_and_after_an_event(store: &Store) {
    let bus = store.handle();
    let published = publish(&bus, "t", 0..24).await;
    let opts = |start| SubscribeOptions {
        start,
        partitions: PARTITIONS,
        poll_timeout: Duration::from_millis(100),
        ..SubscribeOptions::default()
    };
    let mut after = Subscription::subscribe(bus.clone(), "t", "after", opts(Start::After(published[10])))
        .await
        .expect("subscribe");
    let mut latest =
        Subscription::subscribe(bus.clone(), "t", "latest", opts(Start::Latest)).await.expect("subscribe");
    latest.start().await.expect("start");
    let more = publish(&bus, "t", 24..32).await;
    let want_after: BTreeSet<Uuid> = published[11..].iter().chain(&more).copied().collect();
    let got =
        if timed(store) { drain_all(&mut after).await } else { drain(&mut after, want_after.len()).await };
    let every = all(&bus, "t").await;
    let got: Vec<EventRecord> = every.iter().filter(|r| got.contains(&r.id)).cloned().collect();
    assert_after(store, &every, published[10], &got, &want_after, store.name());
    assert_eq!(drain(&mut latest, more.len()).await, more.into_iter().collect());
}

/// Whether the store positions other partitions by publish time (MongoDB: no commit order
/// across partitions), so a position after an event may also hold back events published in
/// the same millisecond before it.
fn timed(store: &Store) -> bool {
    store.name() == "mongodb"
}

/// `read` (what a reader after event `id` got) is exactly `later`, or on a [`timed`] store
/// holds `later` and otherwise only events published no earlier than `id`'s millisecond.
fn assert_after(
    store: &Store,
    every: &[EventRecord],
    id: Uuid,
    read: &[EventRecord],
    later: &BTreeSet<Uuid>,
    what: &str,
) {
    if !timed(store) {
        assert_eq!(ids(read), *later, "{what}");
        return;
    }
    assert!(ids(read).is_superset(later), "{what}: every later event");
    let at = every.iter().find(|r| r.id == id).map(|r| r.ts).expect("the event is stored");
    for record in read.iter().filter(|r| !later.contains(&r.id)) {
        assert!(record.ts >= at, "{what}: {} was published before the event's millisecond", record.id);
    }
}

/// Polls (acking) until a poll brings nothing; the ids.
async fn drain_all(sub: &mut Subscription<AnyBus>) -> BTreeSet<Uuid> {
    let mut got = BTreeSet::new();
    for _ in 0..100 {
        let batch = sub.poll().await.expect("poll");
        if batch.is_empty() && !got.is_empty() {
            break;
        }
        for delivery in batch {
            sub.ack(&delivery);
            assert!(got.insert(delivery.record.id), "no event twice");
        }
    }
    got
}

/// Polls (acking) until `want` events arrived; their ids.
async fn drain(sub: &mut Subscription<AnyBus>, want: usize) -> BTreeSet<Uuid> {
    let mut got = Vec::new();
    for _ in 0..100 {
        if got.len() >= want {
            break;
        }
        for delivery in sub.poll().await.expect("poll") {
            sub.ack(&delivery);
            got.push(delivery.record.id);
        }
    }
    assert_eq!(got.len(), want, "exactly the events after the start");
    got.into_iter().collect()
}

#[test]
fn a_per_partition_bus_numbers_each_partition_from_1() {
    let bus = MemoryBus::per_partition();
    assert!(!bus.ordered());
    assert!(MemoryBus::new().ordered());
}
