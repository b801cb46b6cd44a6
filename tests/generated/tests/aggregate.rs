//! The generated `cart` aggregate over real stores (MemoryBus and the embedded SQLite store):
//! a load from snapshots equals the full fold over random streams and random snapshot
//! intervals; a snapshot of another fingerprint, or one that does not decode, is discarded and
//! the stream folded from its first event; stored v1 events are folded as their latest version.

use prom_generated_tests::constructs::{self, cart, cart_checked_out, cart_opened, item_added};
use prom_runtime::aggregate::{Snapshots, Stream, fingerprint};
use prom_runtime::stream::{ExpectedVersion, Snapshot, StreamAppend, StreamId};
use prom_runtime::{EventBus, MemoryBus, NewEvent, Producer, SqliteBus};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;

/// A cart folded from its events; `folded` counts events, so a skipped one shows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Cart {
    shopper: Option<String>,
    items: BTreeMap<String, i64>,
    spent_cents: i64,
    checked_out: bool,
    folded: u64,
}

impl cart::State for Cart {
    fn on_cart_opened(&mut self, event: &cart_opened::Latest) {
        self.shopper = Some(event.shopper.clone());
        self.folded += 1;
    }

    fn on_item_added(&mut self, event: &item_added::Latest) {
        *self.items.entry(event.sku.clone()).or_default() += event.quantity;
        self.spent_cents += event.quantity * event.price_cents;
        self.folded += 1;
    }

    fn on_cart_checked_out(&mut self, _: &cart_checked_out::Latest) {
        self.checked_out = true;
        self.folded += 1;
    }
}

fn producer<B: EventBus>(bus: B) -> Producer<B> {
    constructs::wire(bus).expect("wire").producer().clone()
}

/// Events of cart `id`: opened, then `items` items, then checked out.
fn events(id: &str, items: &[(u8, u8)]) -> Vec<cart::Event> {
    let mut events = vec![cart_opened::Latest { cart_id: id.into(), shopper: "ada".into() }.into()];
    events.extend(items.iter().map(|(sku, qty)| {
        item_added::Latest {
            cart_id: id.into(),
            sku: format!("sku-{}", sku % 4),
            quantity: i64::from(*qty) + 1,
            price_cents: i64::from(*sku) * 10,
        }
        .into()
    }));
    events.push(cart_checked_out::Latest { cart_id: id.into() }.into());
    events
}

fn full_fold(events: &[cart::Event]) -> Cart {
    let mut state = Cart::default();
    cart::STREAM.of::<Cart>().fold(&mut state, events);
    state
}

fn with_every(every: u64) -> Stream<cart::Aggregate, Cart> {
    Stream::new(cart::fold::<Cart>).with_snapshots(Snapshots::new(every, fingerprint::<Cart>(1)))
}

/// Appends `events` in batches of `batch`, each expecting the version before it, through a
/// stream that snapshots every `every` events; then checks that a load with snapshots equals
/// a load without and the fold of the events.
async fn snapshot_load_equals_full_fold<B: EventBus>(
    bus: B,
    id: &str,
    events: Vec<cart::Event>,
    every: u64,
    batch: usize,
) {
    let producer = producer(bus);
    let stream = with_every(every);
    let mut version = 0;
    for chunk in events.chunks(batch) {
        let expected = if version == 0 { ExpectedVersion::NoStream } else { ExpectedVersion::Exact(version) };
        let appended = stream.append(&producer, id, expected, chunk.to_vec()).await.expect("append");
        assert_eq!(appended.first_version, version + 1);
        version = appended.last_version;
        // Loads in between write snapshots too; the final answer must not depend on them.
        let loaded = stream.load(&producer, id).await.expect("load");
        assert_eq!(loaded.version, version);
    }
    stream.snapshot_now(&producer, id).await.expect("snapshot");
    let expected = full_fold(&events);
    let plain = Stream::<cart::Aggregate, Cart>::new(cart::fold::<Cart>)
        .load(&producer, id)
        .await
        .expect("full load");
    let snapshotted = stream.load(&producer, id).await.expect("snapshot load");
    assert_eq!(plain.state, expected);
    assert_eq!(plain.version, events.len() as u64);
    assert_eq!(snapshotted, plain, "every {every}, batches of {batch}");
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn on_memory_a_snapshot_load_equals_the_full_fold(
        items in prop::collection::vec((any::<u8>(), any::<u8>()), 0..40),
        every in 1_u64..12,
        batch in 1_usize..7,
    ) {
        runtime().block_on(snapshot_load_equals_full_fold(MemoryBus::new(), "c-1", events("c-1", &items), every, batch));
    }
}

proptest! {
    // Each append is a durable commit: fewer cases on disk.
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    #[test]
    fn on_sqlite_a_snapshot_load_equals_the_full_fold(
        items in prop::collection::vec((any::<u8>(), any::<u8>()), 0..25),
        every in 1_u64..8,
        batch in 1_usize..5,
    ) {
        let dir = tempfile::tempdir().expect("temp dir");
        let bus = SqliteBus::open(dir.path()).expect("open");
        runtime().block_on(snapshot_load_equals_full_fold(bus, "c-1", events("c-1", &items), every, batch));
    }
}

/// Stores `events` as stream `id` without snapshots and returns the producer.
async fn stored<B: EventBus>(bus: B, id: &str, events: &[cart::Event]) -> Producer<B> {
    let producer = producer(bus);
    cart::STREAM.append(&producer, id, ExpectedVersion::NoStream, events.to_vec()).await.expect("append");
    producer
}

async fn snapshots_fall_back_to_a_full_fold<B: EventBus>(bus: B) {
    let doctored = Cart { shopper: Some("mallory".into()), folded: 100, ..Cart::default() };
    let doctored = serde_json::to_value(&doctored).expect("json");
    // Each case on a stream of its own: a load that folded many events writes a fresh snapshot.
    let cases = [
        // A usable snapshot is used: the doctored state at version 3 shows through, plus the 2
        // events after it. This is what makes the fallbacks below observable.
        ("used", fingerprint::<Cart>(1), doctored.clone(), true),
        // Another fingerprint (the state's version bumped, or another type): discarded.
        ("fingerprint", fingerprint::<Cart>(2), doctored.clone(), false),
        ("type", fingerprint::<String>(1), doctored, false),
        // The right fingerprint but a state that does not decode: discarded, never resumed at
        // its version with a default state (that would skip the first three events).
        ("undecodable", fingerprint::<Cart>(1), json!({ "items": "not a map" }), false),
    ];
    for (id, fingerprint, state, used) in cases {
        let events = events(id, &[(1, 1), (2, 2), (3, 3)]);
        let producer = stored(bus.clone(), id, &events).await;
        let snapshot = Snapshot { version: 3, fingerprint, state, ts: 0 };
        bus.save_snapshot(&StreamId::new(cart::NAME, id), snapshot).await.expect("save");
        let loaded = cart::STREAM.load::<Cart, B>(&producer, id).await.expect("load");
        assert_eq!(loaded.version, 5, "{id}");
        if used {
            assert_eq!(
                (loaded.state.shopper.as_deref(), loaded.state.folded),
                (Some("mallory"), 102),
                "{id}"
            );
        } else {
            assert_eq!(loaded.state, full_fold(&events), "{id}: the snapshot is discarded");
            assert_eq!(loaded.state.folded, 5, "{id}: no event skipped");
        }
    }
}

#[tokio::test]
async fn on_memory_unusable_snapshots_fall_back_to_a_full_fold() {
    snapshots_fall_back_to_a_full_fold(MemoryBus::new()).await;
}

#[tokio::test]
async fn on_sqlite_unusable_snapshots_fall_back_to_a_full_fold() {
    let dir = tempfile::tempdir().expect("temp dir");
    snapshots_fall_back_to_a_full_fold(SqliteBus::open(dir.path()).expect("open")).await;
}

#[tokio::test]
async fn a_stored_v1_event_is_folded_as_the_latest_version() {
    let bus = MemoryBus::new();
    let producer = producer(bus.clone());
    cart::STREAM
        .append(&producer, "c-2", ExpectedVersion::NoStream, events("c-2", &[])[..1].to_vec())
        .await
        .expect("open");
    // An `item.added` v1 event, as a writer built before v2 stored it (`qty`, no price).
    let v1 = NewEvent::new(item_added::NAME, json!({ "cartId": "c-2", "sku": "sku-1", "qty": 3 }))
        .header("x-schema-version", "1");
    let append = StreamAppend::new(StreamId::new(cart::NAME, "c-2"), ExpectedVersion::Exact(1), vec![v1]);
    bus.append(append).await.expect("append v1");
    let loaded = cart::STREAM.load::<Cart, MemoryBus>(&producer, "c-2").await.expect("load");
    assert_eq!(loaded.version, 2);
    assert_eq!(loaded.state.items.get("sku-1"), Some(&3), "`qty` renamed to `quantity`");
    assert_eq!(loaded.state.spent_cents, 0, "`price_cents` defaulted");
}

#[tokio::test]
async fn an_event_of_another_topic_in_a_stream_fails_the_load_naming_it() {
    let bus = MemoryBus::new();
    let producer = producer(bus.clone());
    let stray =
        NewEvent::new("tree.node", json!({ "root": { "label": "x" } })).header("x-schema-version", "1");
    let append = StreamAppend::new(StreamId::new(cart::NAME, "c-3"), ExpectedVersion::NoStream, vec![stray]);
    bus.append(append).await.expect("a raw append stores what it is given");
    let error = cart::STREAM.load::<Cart, MemoryBus>(&producer, "c-3").await.expect_err("cannot fold");
    let message = error.to_string();
    assert!(
        message.starts_with("stream `cart/c-3` version 1 (`tree.node` offset 1) cannot be folded"),
        "{message}"
    );
    assert!(
        message.contains("`cart` streams hold only `cart.opened`, `item.added`, `cart.checked.out` events"),
        "{message}"
    );
}

#[tokio::test]
async fn handle_passes_the_decide_error_through_and_appends_nothing() {
    let producer = producer(MemoryBus::new());
    let rejected = cart::STREAM
        .handle(
            &producer,
            "c-4",
            |state: &Cart| if state.shopper.is_none() { Err("no such cart") } else { Ok(vec![]) },
        )
        .await
        .expect_err("rejected");
    assert_eq!(rejected.rejected(), Some(&"no such cart"));
    assert_eq!(
        producer.bus().stream_version(&StreamId::new(cart::NAME, "c-4")).await.expect("version"),
        None
    );

    let opened = cart::STREAM
        .handle(&producer, "c-4", |_: &Cart| Ok::<_, String>(events("c-4", &[])[..1].to_vec()))
        .await
        .expect("opened");
    assert_eq!((opened.version, opened.attempts), (1, 1));
    let nothing =
        cart::STREAM.handle(&producer, "c-4", |_: &Cart| Ok::<_, String>(vec![])).await.expect("no events");
    assert_eq!((nothing.version, nothing.appended.is_none()), (1, true));
}
