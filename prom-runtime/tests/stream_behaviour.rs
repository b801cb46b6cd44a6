//! Streams on the bus: expected-version appends, gap-free versions, atomicity, chains,
//! snapshots and upcasting reads, through the validated `Producer` API.

mod common;

use common::Store;
use prom_runtime::stream::{ExpectedVersion, StreamId, chain};
use prom_runtime::{AnyBus, Error, EventBus, Producer, Registry};
use serde_json::{Value, json};
use std::sync::Arc;

/// Accounts (tamper-evident, string ids) and counters (integer ids); `money.deposited` has a
/// v2 that renamed `amount` to `cents`.
pub const SPEC: &str = include_str!("streams/streams.yaml");

fn producer(bus: AnyBus) -> Producer<AnyBus> {
    let registry = Registry::from_yaml("streams.yaml", SPEC).expect("the test spec lints clean");
    Producer::new(bus, Arc::new(registry))
}

fn account(id: &str) -> StreamId {
    StreamId::new("account", id)
}

fn opened(id: &str) -> (String, Value) {
    ("account.opened".to_owned(), json!({ "accountId": id, "owner": "ada" }))
}

fn deposited(id: &str, cents: i64) -> (String, Value) {
    ("money.deposited".to_owned(), json!({ "accountId": id, "cents": cents }))
}

async fn versions_gap_free_and_events_on_their_topics(store: &Store) {
    let p = producer(store.handle());
    let first =
        p.append(account("a1"), ExpectedVersion::NoStream, vec![opened("a1"), deposited("a1", 5)]).await;
    let first = first.expect("first append");
    assert_eq!((first.first_version, first.last_version), (1, 2));
    let second = p.append(account("a1"), ExpectedVersion::Exact(2), vec![deposited("a1", 7)]).await;
    assert_eq!(second.expect("second append").last_version, 3);
    let third = p.append(account("a1"), ExpectedVersion::Exists, vec![deposited("a1", 1)]).await;
    assert_eq!(third.expect("exists").last_version, 4);
    let any = p.append(account("a1"), ExpectedVersion::Any, vec![deposited("a1", 2)]).await;
    assert_eq!(any.expect("any").first_version, 5);
    assert_eq!(p.bus().stream_version(&account("a1")).await.expect("version"), Some(5));
    assert_eq!(p.bus().stream_version(&account("nobody")).await.expect("version"), None);

    let read = p.read_stream(&account("a1"), 0, 100).await.expect("read");
    let versions: Vec<u64> = read.iter().map(|r| r.version).collect();
    assert_eq!(versions, [1, 2, 3, 4, 5]);
    let cents: Vec<i64> =
        read[1..].iter().map(|r| r.record.payload["cents"].as_i64().unwrap_or(-1)).collect();
    assert_eq!(cents, [5, 7, 1, 2]);
    // Ordinary events: the topic holds them at the offsets the receipts named, and the
    // dual-write copies went along.
    let topic = p
        .bus()
        .read_topic("money.deposited", &prom_runtime::TopicPosition::start(), 100)
        .await
        .expect("topic read");
    assert_eq!(topic.len(), 4);
    assert_eq!(topic[0].id, read[1].record.id);
    assert_eq!(first.receipts[1].offset, topic[0].offset);
    assert_eq!(p.bus().heads("money.deposited.v2").await.expect("copy head").total(), 4);
    let after = p.read_stream(&account("a1"), 3, 1).await.expect("read after 3");
    assert_eq!(after.iter().map(|r| r.version).collect::<Vec<_>>(), [4]);
    store.cleanup().await;
}

async fn conflicts_carry_expected_and_actual_and_store_nothing(store: &Store) {
    let p = producer(store.handle());
    p.append(account("c1"), ExpectedVersion::NoStream, vec![opened("c1")]).await.expect("open");
    let head = p.bus().heads("money.deposited").await.expect("head").total();
    for (expected, actual) in [
        (ExpectedVersion::NoStream, Some(1)),
        (ExpectedVersion::Exact(0), Some(1)),
        (ExpectedVersion::Exact(3), Some(1)),
    ] {
        let error = p.append(account("c1"), expected, vec![deposited("c1", 1), deposited("c1", 2)]).await;
        assert_eq!(
            error,
            Err(Error::StreamConflict { stream: "account/c1".into(), expected, actual }),
            "{expected}"
        );
    }
    let missing = p.append(account("c2"), ExpectedVersion::Exists, vec![opened("c2")]).await;
    let Err(error) = missing else { panic!("appending to a missing stream with `exists` succeeded") };
    assert_eq!(
        error,
        Error::StreamConflict {
            stream: "account/c2".into(),
            expected: ExpectedVersion::Exists,
            actual: None
        }
    );
    let text = error.to_string();
    assert!(text.contains("expected version exists") && text.contains("does not exist"), "{text}");
    assert_eq!(
        p.bus().heads("money.deposited").await.expect("head").total(),
        head,
        "a conflict stored events"
    );
    assert_eq!(p.bus().stream_version(&account("c1")).await.expect("version"), Some(1));
    store.cleanup().await;
}

async fn bad_appends_are_refused_before_anything_is_stored(store: &Store) {
    let p = producer(store.handle());
    let invalid = p.append(account("b1"), ExpectedVersion::Any, vec![opened("b1"), deposited("b1", 0)]).await;
    let Err(Error::Invalid { topic, errors, .. }) = invalid else { panic!("{invalid:?}") };
    assert_eq!(topic, "money.deposited");
    assert!(errors.iter().any(|e| e.contains("/cents")), "{errors:?}");
    let foreign =
        p.append(account("b1"), ExpectedVersion::Any, vec![("counter.bumped".into(), json!({"counter": 1}))]);
    let Err(Error::NotAnAggregateEvent { aggregate, topic, events }) = foreign.await else {
        panic!("foreign topic")
    };
    assert_eq!((aggregate.as_str(), topic.as_str()), ("account", "counter.bumped"));
    assert_eq!(events, ["account.opened", "money.deposited"]);
    let other = p.append(account("b1"), ExpectedVersion::Any, vec![deposited("b2", 3)]).await;
    let Err(error @ Error::StreamIdMismatch { .. }) = other else { panic!("{other:?}") };
    assert!(error.to_string().contains("id `b2` at `/accountId`"), "{error}");
    let unknown = p.append(StreamId::new("acount", "1"), ExpectedVersion::Any, vec![opened("1")]).await;
    let Err(error @ Error::UnknownAggregate { .. }) = unknown else { panic!("{unknown:?}") };
    assert!(error.to_string().contains("did you mean `account`?"), "{error}");
    let empty = p.append(account("b1"), ExpectedVersion::Any, Vec::new()).await;
    assert!(matches!(empty, Err(Error::InvalidAppend { .. })), "{empty:?}");
    assert_eq!(p.bus().stream_version(&account("b1")).await.expect("version"), None);
    assert_eq!(p.bus().heads("account.opened").await.expect("head").total(), 0);
    store.cleanup().await;
}

async fn integer_ids_name_streams_in_decimal(store: &Store) {
    let p = producer(store.handle());
    let bump = |n: i64| ("counter.bumped".to_owned(), json!({ "counter": n }));
    let stream = StreamId::new("counter", "7");
    p.append(stream.clone(), ExpectedVersion::NoStream, vec![bump(7), bump(7)]).await.expect("append");
    let read = p.read_stream(&stream, 0, 10).await.expect("read");
    assert_eq!(read.len(), 2);
    assert!(read.iter().all(|r| r.link.is_none()), "counters are not tamper-evident");
    store.cleanup().await;
}

async fn tamper_evident_streams_chain_every_event(store: &Store) {
    let p = producer(store.handle());
    p.append(account("t1"), ExpectedVersion::NoStream, vec![opened("t1"), deposited("t1", 1)])
        .await
        .expect("a");
    p.append(account("t1"), ExpectedVersion::Exact(2), vec![deposited("t1", 2)]).await.expect("b");
    let raw = p.bus().read_stream(&account("t1"), 0, 10).await.expect("raw read");
    let mut prev = chain::GENESIS;
    for r in &raw {
        let link = r.link.expect("a tamper-evident stream links every event");
        assert_eq!(link.prev, prev, "version {}", r.version);
        assert_eq!(link.hash, chain::hash(&account("t1"), r.version, (&r.record).into(), &prev));
        prev = link.hash;
    }
    store.cleanup().await;
}

async fn stream_ids_are_sorted_and_paged(store: &Store) {
    let p = producer(store.handle());
    for id in ["b", "a", "d", "c"] {
        p.append(account(id), ExpectedVersion::NoStream, vec![opened(id)]).await.expect("append");
    }
    let bus = p.bus();
    assert_eq!(bus.stream_ids("account", None, 3).await.expect("ids"), ["a", "b", "c"]);
    assert_eq!(bus.stream_ids("account", Some("c".into()), 3).await.expect("ids"), ["d"]);
    assert!(bus.stream_ids("counter", None, 10).await.expect("ids").is_empty());
    store.cleanup().await;
}

async fn snapshots_keep_the_highest_version(store: &Store) {
    let bus = store.handle();
    let stream = account("s1");
    assert_eq!(bus.load_snapshot(&stream).await.expect("load"), None);
    let snap = |version: u64| prom_runtime::stream::Snapshot {
        version,
        fingerprint: "Balance:1".into(),
        state: json!({ "cents": version * 10 }),
        ts: 1_700_000_000_000,
    };
    bus.save_snapshot(&stream, snap(20)).await.expect("save 20");
    bus.save_snapshot(&stream, snap(10)).await.expect("save 10");
    assert_eq!(bus.load_snapshot(&stream).await.expect("load"), Some(snap(20)));
    bus.save_snapshot(&stream, snap(30)).await.expect("save 30");
    assert_eq!(bus.load_snapshot(&stream).await.expect("load"), Some(snap(30)));
    store.cleanup().await;
}

async fn concurrent_writers_never_lose_an_update(store: &Store) {
    const WRITERS: usize = 8;
    const EACH: usize = 25;
    let mut tasks = Vec::new();
    for _ in 0..WRITERS {
        let p = producer(store.handle());
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0u32;
            for _ in 0..EACH {
                loop {
                    let version = p.bus().stream_version(&account("hot")).await.expect("version");
                    let expected = version.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
                    match p.append(account("hot"), expected, vec![deposited("hot", 1)]).await {
                        Ok(_) => break,
                        Err(Error::StreamConflict { .. }) => conflicts += 1,
                        Err(e) => panic!("append failed: {e}"),
                    }
                }
            }
            conflicts
        }));
    }
    for task in tasks {
        task.await.expect("writer");
    }
    let bus = store.handle();
    let read = bus.read_stream(&account("hot"), 0, 10_000).await.expect("read");
    let versions: Vec<u64> = read.iter().map(|r| r.version).collect();
    assert_eq!(versions, (1..=(WRITERS * EACH) as u64).collect::<Vec<_>>());
    let mut ids: Vec<_> = read.iter().map(|r| r.record.id).collect();
    ids.dedup();
    assert_eq!(ids.len(), WRITERS * EACH);
    store.cleanup().await;
}

backend_suite!(
    versions_gap_free_and_events_on_their_topics,
    conflicts_carry_expected_and_actual_and_store_nothing,
    bad_appends_are_refused_before_anything_is_stored,
    integer_ids_name_streams_in_decimal,
    tamper_evident_streams_chain_every_event,
    stream_ids_are_sorted_and_paged,
    snapshots_keep_the_highest_version,
    concurrent_writers_never_lose_an_update,
);

#[test]
fn the_spec_declares_aggregate_facts() {
    let system = prom_runtime::system::lint_yaml("streams.yaml", SPEC).expect("lints clean");
    let account = system.aggregate("account").expect("account is declared");
    assert_eq!(
        *account,
        prom_runtime::system::Aggregate {
            name: "account".into(),
            description: Some("A bank account.".into()),
            id: "/accountId".into(),
            events: vec!["account.opened".into(), "money.deposited".into()],
            snapshot_every: Some(10),
            tamper_evident: true,
        }
    );
    let counter = system.aggregate("counter").expect("counter is declared");
    assert_eq!((counter.snapshot_every, counter.tamper_evident), (None, false));
    assert_eq!(system.aggregates.len(), 2);
}
