//! MongoDB-specific bus behaviour: several processes publishing to one topic, and the errors a
//! user sees for an unusable server. (The shared contract runs in `bus_behaviour.rs`.)
#![cfg(feature = "mongo")]

mod common;

use common::mongo::Target;
use prom_runtime::bus::mongo::MongoBus;
use prom_runtime::{EventBus, NewEvent};
use serde_json::json;
use std::collections::BTreeSet;
use std::process::{Command, Stdio};

/// Set on child processes: the database they publish into.
const CHILD_DATABASE: &str = "PROM_TEST_CHILD_DATABASE";
/// Set on child processes: a label for their events.
const CHILD_LABEL: &str = "PROM_TEST_CHILD_LABEL";
const BATCHES: i64 = 25;

/// Each batch: 3 events on `t`, 1 on `u`, and one dedup key every process publishes too.
fn batch(label: &str, n: i64) -> Vec<NewEvent> {
    let ev = |topic: &str, i: i64| NewEvent::new(topic, json!({ "from": label, "n": n, "i": i }));
    vec![ev("t", 0), ev("u", 0), ev("t", 1), ev("t", 2).dedup(format!("shared-{n}"))]
}

async fn publish_all(bus: &MongoBus, label: &str) {
    for n in 0..BATCHES {
        bus.publish(batch(label, n)).await.expect("publish");
    }
}

/// Not a test on its own: the body of the child processes the next test starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_publisher() {
    let (Ok(database), Ok(label)) = (std::env::var(CHILD_DATABASE), std::env::var(CHILD_LABEL)) else {
        return;
    };
    let url = std::env::var("PROM_MONGO_URL").expect("the parent passes PROM_MONGO_URL");
    let bus = MongoBus::open_database(&url, Some(&database)).await.expect("open");
    publish_all(&bus, &label).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_stay_gap_free_with_publishers_in_several_processes() {
    let Some(target) = Target::from_env() else { return };
    let exe = std::env::current_exe().expect("test binary");
    let children: Vec<_> = (0..3)
        .map(|i| {
            Command::new(&exe)
                .args(["--exact", "child_publisher", "--test-threads=1", "--quiet"])
                .env(CHILD_DATABASE, &target.database)
                .env(CHILD_LABEL, format!("child-{i}"))
                // Captured: the children's own `test result` lines would count in the summary.
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start a child process")
        })
        .collect();
    // This process publishes at the same time, through two clients of its own.
    let (a, b) = (target.open_async().await, target.open_async().await);
    tokio::join!(publish_all(&a, "parent-a"), publish_all(&b, "parent-b"));
    for child in children {
        let out = child.wait_with_output().expect("wait");
        let log = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "a child publisher failed:\n{log}");
    }
    let publishers = 5;
    let events = a.read_topic("t", &prom_runtime::TopicPosition::start(), 10_000).await.expect("read");
    let expected_t = (publishers * BATCHES * 2 + BATCHES) as usize; // shared dedup keys stored once
    assert_eq!(events.len(), expected_t);
    let offsets: Vec<i64> = events.iter().map(|e| e.offset).collect();
    assert_eq!(offsets, (1..=expected_t as i64).collect::<Vec<_>>(), "gap-free and in order");
    assert_eq!(a.heads("t").await.expect("head").total(), expected_t as i64);
    let ids: BTreeSet<_> = events.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), expected_t, "ids are unique");
    // Per publisher, events keep their publish order.
    for label in ["child-0", "child-1", "child-2", "parent-a", "parent-b"] {
        let mine: Vec<(i64, i64)> = events
            .iter()
            .filter(|e| e.payload["from"] == label)
            .map(|e| (e.payload["n"].as_i64().unwrap_or(-1), e.payload["i"].as_i64().unwrap_or(-1)))
            .collect();
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "{label}: {mine:?}");
    }
    let u = b.read_topic("u", &prom_runtime::TopicPosition::start(), 10_000).await.expect("read");
    assert_eq!(
        u.iter().map(|e| e.offset).collect::<Vec<_>>(),
        (1..=publishers * BATCHES).collect::<Vec<_>>()
    );
    target.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_and_bad_url_give_clear_errors() {
    let err = MongoBus::open("mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300")
        .await
        .expect_err("nothing listens on port 1");
    let text = err.to_string();
    assert!(text.contains("cannot reach MongoDB") && text.contains("scripts/mongo.sh start"), "{text}");
    assert!(text.starts_with("store `mongodb://127.0.0.1:1/prom`"), "{text}");
    let err = MongoBus::open("postgres://nope").await.expect_err("not a MongoDB URL");
    assert!(err.to_string().contains("not a usable MongoDB URL"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_round_trip_exactly() {
    let Some(target) = Target::from_env() else { return };
    let bus = target.open_async().await;
    // What BSON cannot hold natively: a u64 above i64::MAX, `$` and `.` in keys, a NUL in a key.
    let payload = json!({ "big": u64::MAX, "$op": 1, "a.b": [1.5, null], "nul\u{0}key": { "x": "y" } });
    let mut event = NewEvent::new("t", payload.clone()).keyed("k", 3).header("x-source", "test");
    event.sid = Some("s1".into());
    event.caused_by = Some(uuid::Uuid::now_v7());
    let receipt = bus.publish(vec![event.clone()]).await.expect("publish");
    let stored = bus.read("t", 3, 0, 10).await.expect("read");
    assert_eq!(stored, [event.into_record(receipt[0].offset)]);
    target.drop_database().await;
}
