//! Time travel on real stores, one case table over the embedded store and MongoDB (when
//! `PROM_MONGO_URL` names one): the state of a key at a time through upserts, stale versions and
//! tombstones, snapshots reused without changing answers (also when publish times are out of
//! offset order), and `prom time-travel` end to end.

mod common;

use common::Store;
use prom_runtime::record::{SCHEMA_VERSION, format_ts};
use prom_runtime::timetravel::{FoldSpec, TimeTravel, Travelled};
use prom_runtime::{AnyBus, EventBus, NewEvent, Registry};
use serde_json::{Value, json};
use std::process::Command;
use std::sync::Arc;

use common::PROCESS_STATE_SPEC as SPEC;

/// A base time, so the events sit at readable offsets from it.
const T0: i64 = 1_800_000_000_000;

/// The embedded store, and MongoDB when one is given.
fn stores() -> Vec<Store> {
    #[allow(unused_mut)]
    let mut stores = vec![Store::sqlite()];
    #[cfg(feature = "mongo")]
    stores.extend(Store::mongo());
    stores
}

struct Fixture {
    store: Store,
    bus: AnyBus,
    registry: Arc<Registry>,
    fold: FoldSpec,
}

fn fixture(store: Store) -> Fixture {
    let linted = prom_spec::lint_str("inline.yaml", SPEC);
    assert!(!linted.has_errors(), "{}", linted.render());
    let registry = Arc::new(Registry::from_spec(&linted.spec).expect("registry"));
    let fold = FoldSpec::for_topic(
        &prom_runtime::system::System::from_spec(&linted.spec),
        &registry,
        "process.state",
    )
    .expect("fold");
    let bus = store.handle();
    Fixture { store, bus, registry, fold }
}

impl Fixture {
    /// Publishes one event of `key` stamped at `T0 + at` (the store keeps the given time).
    async fn publish(&self, key: &str, at: i64, payload: Value) {
        let mut event = NewEvent::new("process.state", payload).keyed(key, 0).header(SCHEMA_VERSION, "1");
        event.ts = T0 + at;
        self.bus.publish(vec![event]).await.expect("publish");
    }

    async fn travel(&self, every: u64) -> TimeTravel {
        TimeTravel::on(&self.bus, self.registry.clone(), self.fold.clone())
            .await
            .expect("time travel")
            .snapshot_every(every)
    }
}

fn state(seq: i64, status: &str) -> Value {
    json!({ "processId": "p1", "seq": seq, "status": status, "_id": "p1" })
}

/// Status `s` of process `key` at `seq`, stamped `T0 + at`, on partition 0.
fn status_event(key: &str, seq: i64, at: i64) -> NewEvent {
    let mut e = NewEvent::new("process.state", json!({ "processId": key, "seq": seq, "status": "s" }))
        .keyed(key, 0)
        .header(SCHEMA_VERSION, "1");
    e.ts = T0 + at;
    e
}

async fn at(travel: &TimeTravel, key: &str, t: i64) -> Travelled {
    travel.state_at(key, T0 + t).await.expect("state at")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_at_a_time_follows_the_changelog_rules_and_snapshots_keep_it() {
    for store in stores() {
        let f = fixture(store);
        let name = f.store.name();
        f.publish("p1", 1000, json!({ "processId": "p1", "seq": 1, "status": "up" })).await;
        f.publish("p2", 1500, json!({ "processId": "p2", "seq": 9, "status": "other key" })).await;
        f.publish("p1", 2000, json!({ "processId": "p1", "seq": 2, "status": "down" })).await;
        f.publish("p1", 3000, json!({ "processId": "p1", "seq": 1, "status": "stale" })).await;
        f.publish("p1", 3500, json!({ "processId": "p1", "seq": "not a number" })).await; // dead-lettered
        f.publish("p1", 4000, json!({ "processId": "p1", "seq": 3, "_deleted": true })).await;
        f.publish("p1", 5000, json!({ "processId": "p1", "seq": 4, "status": "back" })).await;
        f.publish("p1", 6000, Value::Null).await;

        let expected = [
            (500, None),
            (1000, Some(state(1, "up"))),
            (2500, Some(state(2, "down"))),
            (3999, Some(state(2, "down"))),
            (4000, None),
            (5500, Some(state(4, "back"))),
            (7000, None),
        ];
        let plain = f.travel(0).await;
        for (t, want) in &expected {
            let got = at(&plain, "p1", *t).await;
            assert_eq!(&got.state, want, "{name}: at T0+{t}");
            assert_eq!((got.from_snapshot, got.snapshots_written), (None, 0), "{name}");
        }
        assert_eq!(at(&plain, "nobody", 7000).await.state, None, "{name}");

        // Every 2 events: the latest answer stores snapshots, and then every answer is the same,
        // starting from the nearest snapshot at or before its time.
        let snapshotting = f.travel(2).await;
        let first = at(&snapshotting, "p1", 7000).await;
        assert_eq!((first.state, first.events, first.snapshots_written), (None, 7, 3), "{name}");
        for (t, want) in &expected {
            let got = at(&snapshotting, "p1", *t).await;
            assert_eq!(&got.state, want, "{name}: at T0+{t} with snapshots");
            assert_eq!(got.snapshots_written, 0, "{name}: already stored");
            if *t >= 2000 {
                assert!(got.from_snapshot.is_some(), "{name}: at T0+{t}: {got:?}");
            }
        }
        let last = at(&snapshotting, "p1", 7000).await;
        assert_eq!((last.events, last.from_snapshot.is_some()), (1, true), "{name}: {last:?}");
        f.store.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_stay_right_when_publish_times_are_out_of_offset_order() {
    for store in stores() {
        let f = fixture(store);
        let name = f.store.name();
        f.publish("p1", 1000, json!({ "processId": "p1", "seq": 1, "status": "one" })).await;
        f.publish("p1", 3000, json!({ "processId": "p1", "seq": 2, "status": "two" })).await;
        // Published after seq 2 but stamped earlier (a skewed clock).
        f.publish("p1", 2000, json!({ "processId": "p1", "seq": 3, "status": "three" })).await;
        let travel = f.travel(1).await;
        let early = at(&travel, "p1", 2500).await;
        assert_eq!(early.state, Some(state(3, "three")), "{name}");
        // Only the snapshot before the left-out event (seq 2) covers every event up to its offset.
        assert_eq!(early.snapshots_written, 1, "{name}");
        let later = at(&travel, "p1", 3500).await;
        assert_eq!(later.state, Some(state(3, "three")), "{name}");
        let again = at(&travel, "p1", 2500).await;
        assert_eq!(again.state, Some(state(3, "three")), "{name}: {again:?}");
        assert_eq!(at(&travel, "p1", 1500).await.state, Some(state(1, "one")), "{name}");
        f.store.cleanup().await;
    }
}

/// A key with more events than one read page: the fold pages through them, and a snapshot
/// part-way makes the next answer read only what follows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_histories_are_read_in_pages_and_snapshots_bound_the_next_read() {
    for store in stores() {
        let f = fixture(store);
        let name = f.store.name();
        let events: Vec<NewEvent> = (1..=2500).map(|seq| status_event("p1", seq, seq)).collect();
        for chunk in events.chunks(500) {
            f.bus.publish(chunk.to_vec()).await.expect("publish");
        }
        let travel = f.travel(1000).await;
        let first = at(&travel, "p1", 2400).await;
        assert_eq!(first.state, Some(state(2400, "s")), "{name}");
        assert_eq!((first.events, first.snapshots_written), (2400, 2), "{name}");
        let next = at(&travel, "p1", 2500).await;
        assert_eq!(next.state, Some(state(2500, "s")), "{name}");
        assert_eq!((next.from_snapshot.is_some(), next.events), (true, 500), "{name}: {next:?}");
        f.store.cleanup().await;
    }
}

/// Keys published together (one batch, one partition: one chunk on MongoDB): each key's state
/// is folded from its own events only, from any time inside the batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_published_in_one_batch_travel_apart() {
    for store in stores() {
        let f = fixture(store);
        let name = f.store.name();
        let events: Vec<NewEvent> =
            (1..=40).map(|n| status_event(if n % 2 == 0 { "p2" } else { "p1" }, n, n * 10)).collect();
        f.bus.publish(events).await.expect("publish");
        for every in [0, 3] {
            let travel = f.travel(every).await;
            for t in [5, 10, 15, 20, 205, 400, 1000] {
                let seq = |parity: i64| (1..=40).filter(|n| n % 2 == parity && n * 10 <= t).max();
                let want = |key: &str, seq: Option<i64>| {
                    seq.map(|s| json!({ "processId": key, "seq": s, "status": "s", "_id": key }))
                };
                let p1 = at(&travel, "p1", t).await;
                assert_eq!(p1.state, want("p1", seq(1)), "{name}: p1 at T0+{t}, snapshots every {every}");
                let p2 = at(&travel, "p2", t).await;
                assert_eq!(p2.state, want("p2", seq(0)), "{name}: p2 at T0+{t}, snapshots every {every}");
            }
        }
        f.store.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prom_time_travel_prints_the_state_as_json() {
    for store in stores() {
        let f = fixture(store);
        let name = f.store.name();
        f.publish("p1", 1000, json!({ "processId": "p1", "seq": 1, "status": "up" })).await;
        f.publish("p1", 2000, json!({ "processId": "p1", "seq": 2, "_deleted": true })).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let specs = dir.path().join("spec.yaml");
        std::fs::write(&specs, SPEC).expect("write spec");
        let run = |store_args: Vec<String>, at: String| {
            let output = Command::new(env!("CARGO_BIN_EXE_prom"))
                .env_remove("PROM_MONGO_URL")
                .current_dir(dir.path())
                .args(store_args)
                .arg("time-travel")
                .arg("--specs")
                .arg(&specs)
                .args(["process.state", "p1", "--at", &at])
                .output()
                .expect("run prom");
            let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
            (output.status.code(), String::from_utf8_lossy(&output.stdout).into_owned(), stderr)
        };
        let (code, stdout, stderr) = run(f.store.cli_args(), format_ts(T0 + 1500));
        assert_eq!(code, Some(0), "{name}: {stderr}");
        assert_eq!(serde_json::from_str::<Value>(&stdout).expect("JSON"), state(1, "up"), "{name}");
        let (code, stdout, stderr) = run(f.store.cli_args(), format_ts(T0 + 2500));
        assert_eq!((code, stdout.trim()), (Some(0), "null"), "{name}: {stderr}");
        let (code, _, stderr) = run(f.store.cli_args(), "yesterday".into());
        assert_eq!(code, Some(1), "{name}");
        assert!(stderr.contains("RFC 3339"), "{name}: {stderr}");
        if f.store.dir().is_some() {
            // A mistyped store directory is an error, not an empty history.
            let missing = dir.path().join("nowhere").display().to_string();
            let (code, stdout, stderr) = run(vec!["--store".into(), missing], format_ts(T0 + 1500));
            assert_eq!((code, stdout.as_str()), (Some(1), ""), "{stderr}");
            assert!(stderr.contains("no embedded store at") && stderr.contains("--store DIR"), "{stderr}");
        }
        f.store.cleanup().await;
    }
}

/// The embedded store finds a key's events through its index, not by scanning the topic.
#[test]
fn the_embedded_store_reads_a_key_through_its_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(prom_runtime::SqliteBus::open(dir.path()).expect("create"));
    let conn = rusqlite::Connection::open(dir.path().join("events.db")).expect("open");
    let plan: Vec<String> = conn
        .prepare(
            "EXPLAIN QUERY PLAN SELECT off FROM events \
             WHERE topic = ?1 AND key = ?2 AND off > ?3 AND ts <= ?4 ORDER BY off LIMIT 10",
        )
        .and_then(|mut s| s.query_map(["t", "k", "0", "0"], |r| r.get::<_, String>(3))?.collect())
        .expect("plan");
    assert!(plan.iter().any(|p| p.contains("events_topic_key_off")), "{plan:?}");
    assert!(!plan.iter().any(|p| p.contains("TEMP B-TREE")), "no sort: {plan:?}");
}
