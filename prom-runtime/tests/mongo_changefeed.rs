//! Changefeeds against a real MongoDB: changes republished with their headers, a restart with
//! no gap and no duplicate (also when the stored token is behind what was published), the
//! `operations` filter, and both `on_lost_resume` policies (the lost resume point is a real
//! token rewritten to a cluster time long before the oplog starts).
#![cfg(feature = "mongo")]

mod common;

use common::mongo::Target;
use futures_util::TryStreamExt;
use prom_runtime::bus::mongo::MongoBus;
use prom_runtime::bus::mongo::mongodb::bson::{Document, doc};
use prom_runtime::changefeed::resume::{GAPS, STATES};
use prom_runtime::changefeed::{CHANGE_OPERATION, CLUSTER_TIME, ChangefeedRunner, ChangefeedSpec};
use prom_runtime::{EventBus, EventRecord, Producer, Registry};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const SPEC: &str = r#"
topics:
  processes.changed:
    key: /key
    versions:
      1:
        schema: &change
          type: object
          required: [operation, key]
          properties:
            operation: { type: string, enum: [insert, update, replace, delete] }
            key: { type: string }
            document: { type: [object, "null"] }
  inserts.only:
    key: /key
    versions:
      1:
        schema: *change
changefeeds:
  processes-changed:
    collection: processes
    topic: processes.changed
    full_document: updateLookup
    on_lost_resume: fail
  inserts:
    collection: processes
    topic: inserts.only
    operations: [insert]
    on_lost_resume: restart_from_now
"#;

struct Feed {
    stop: oneshot::Sender<()>,
    task: JoinHandle<prom_runtime::Result<()>>,
    stats: Arc<prom_runtime::changefeed::ChangefeedStats>,
}

fn runner(bus: &MongoBus, name: &str) -> ChangefeedRunner {
    let linted = prom_spec::lint_str("inline.yaml", SPEC);
    assert!(!linted.has_errors(), "{}", linted.render());
    let registry = Registry::from_spec(&linted.spec).expect("registry");
    let spec = ChangefeedSpec::from_system(
        prom_runtime::system::System::from_spec(&linted.spec).changefeed(name).expect("declared"),
        &registry,
    )
    .expect("spec");
    ChangefeedRunner::new(Producer::new(bus.clone(), Arc::new(registry)), spec)
}

/// Starts a feed and waits until it stored its start point (changes from then on are seen).
async fn start(bus: &MongoBus, name: &str) -> Feed {
    let feed = runner(bus, name);
    let stats = feed.stats();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(feed.run(async move {
        let _ = stopped.await;
    }));
    wait_for(|| async { state(bus, name).await.is_some() }).await;
    // The stream opens right after the start point is stored; changes made in between are
    // still read (the stream starts at that cluster time), so no further wait is needed.
    Feed { stop, task, stats }
}

impl Feed {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.expect("join").expect("changefeed");
    }
}

async fn wait_for<F, Fut>(mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn state(bus: &MongoBus, name: &str) -> Option<Document> {
    bus.database().collection::<Document>(STATES).find_one(doc! { "_id": name }).await.expect("state")
}

async fn events(bus: &MongoBus, topic: &str) -> Vec<EventRecord> {
    bus.read_topic(topic, &prom_runtime::TopicPosition::start(), 1000).await.expect("read")
}

async fn wait_head(bus: &MongoBus, topic: &str, head: i64) {
    wait_for(|| async { bus.heads(topic).await.expect("head").total() >= head }).await;
    // Nothing more arrives than expected.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(bus.heads(topic).await.expect("head").total(), head, "events on {topic}");
}

/// Rewrites the stored token's cluster time to 1970, long before any oplog's first entry.
async fn expire_token(bus: &MongoBus, name: &str) {
    let stored = state(bus, name).await.expect("state");
    let data = stored.get_document("token").and_then(|t| t.get_str("_data")).expect("a stored token");
    // `_data` is a KeyString: a type byte (0x82, timestamp), then seconds and increment.
    assert!(data.starts_with("82"), "unexpected token format {data}");
    let expired = format!("82{}{}", "0000000100000001", &data[18..]);
    let states = bus.database().collection::<Document>(STATES);
    states
        .update_one(doc! { "_id": name }, doc! { "$set": { "token._data": expired } })
        .await
        .expect("expire");
}

fn shape(events: &[EventRecord]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| {
            let op = e.payload["operation"].as_str().unwrap_or("?");
            (op.to_string(), e.payload["key"].as_str().unwrap_or("?").to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_are_republished_and_a_restart_has_no_gap_and_no_duplicate() {
    let Some(target) = Target::from_env() else { return };
    let bus = target.open_async().await;
    let processes = bus.database().collection::<Document>("processes");
    let feed = start(&bus, "processes-changed").await;
    processes.insert_one(doc! { "_id": "p1", "status": "running" }).await.expect("insert");
    processes.insert_one(doc! { "_id": "p2", "status": "running" }).await.expect("insert");
    processes
        .update_one(doc! { "_id": "p1" }, doc! { "$set": { "status": "stopped" } })
        .await
        .expect("update");
    processes.replace_one(doc! { "_id": "p2" }, doc! { "status": "unknown" }).await.expect("replace");
    processes.delete_one(doc! { "_id": "p2" }).await.expect("delete");
    wait_head(&bus, "processes.changed", 5).await;
    feed.stop().await;

    let published = events(&bus, "processes.changed").await;
    let expected =
        [("insert", "p1"), ("insert", "p2"), ("update", "p1"), ("replace", "p2"), ("delete", "p2")];
    let expected: Vec<(String, String)> =
        expected.iter().map(|(o, k)| (o.to_string(), k.to_string())).collect();
    assert_eq!(shape(&published), expected);
    assert_eq!(published[2].payload["document"], json!({ "_id": "p1", "status": "stopped" }), "updateLookup");
    assert_eq!(published[4].payload["document"], serde_json::Value::Null);
    assert_eq!(published[3].headers.get(CHANGE_OPERATION).map(String::as_str), Some("replace"));
    assert!(published.iter().all(|e| e.headers.get(CLUSTER_TIME).is_some_and(|t| t.contains('.'))));
    assert_eq!(published[0].key.as_deref(), Some("p1"));

    // Changes while stopped are published after the restart, exactly once.
    let behind = state(&bus, "processes-changed").await.expect("state");
    processes.insert_one(doc! { "_id": "p3" }).await.expect("insert");
    processes.insert_one(doc! { "_id": "p4" }).await.expect("insert");
    let feed = start(&bus, "processes-changed").await;
    wait_head(&bus, "processes.changed", 7).await;
    feed.stop().await;

    // A crash after publishing but before storing the token: the changes come again and are
    // recognised as published.
    let states = bus.database().collection::<Document>(STATES);
    states.replace_one(doc! { "_id": "processes-changed" }, behind).await.expect("rewind");
    let feed = start(&bus, "processes-changed").await;
    processes.insert_one(doc! { "_id": "p5" }).await.expect("insert");
    wait_head(&bus, "processes.changed", 8).await;
    let stats = feed.stats.clone();
    feed.stop().await;
    assert_eq!((stats.duplicates.load(Relaxed), stats.published.load(Relaxed)), (2, 1));
    let keys: Vec<String> =
        shape(&events(&bus, "processes.changed").await[5..]).into_iter().map(|(_, k)| k).collect();
    assert_eq!(keys, ["p3", "p4", "p5"]);
    target.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_filter_and_a_lost_resume_point_restarts_from_now_recording_the_gap() {
    let Some(target) = Target::from_env() else { return };
    let bus = target.open_async().await;
    let processes = bus.database().collection::<Document>("processes");
    let feed = start(&bus, "inserts").await;
    processes.insert_one(doc! { "_id": "x1" }).await.expect("insert");
    processes.update_one(doc! { "_id": "x1" }, doc! { "$set": { "a": 1 } }).await.expect("update");
    processes.delete_one(doc! { "_id": "x1" }).await.expect("delete");
    processes.insert_one(doc! { "_id": "x2" }).await.expect("insert");
    wait_head(&bus, "inserts.only", 2).await;
    feed.stop().await;
    let last = state(&bus, "inserts").await.expect("state");
    let from = last.get_timestamp("cluster_time").expect("cluster time");

    expire_token(&bus, "inserts").await;
    processes.insert_one(doc! { "_id": "x3" }).await.expect("insert (lost in the gap)");
    let feed = start(&bus, "inserts").await;
    wait_for(|| async { feed.stats.gaps.load(Relaxed) == 1 }).await;
    processes.insert_one(doc! { "_id": "x4" }).await.expect("insert");
    let keys = || async {
        shape(&events(&bus, "inserts.only").await).into_iter().map(|(_, k)| k).collect::<Vec<String>>()
    };
    wait_for(|| async { keys().await.last().is_some_and(|k| k == "x4") }).await;
    feed.stop().await;

    // x3 lies in the gap: it is published only if its cluster time is the restart time itself
    // (the new stream starts at that time, inclusive).
    let keys: Vec<String> = keys().await;
    assert!(keys == ["x1", "x2", "x4"] || keys == ["x1", "x2", "x3", "x4"], "{keys:?}");
    let gaps: Vec<Document> =
        bus.database().collection(GAPS).find(doc! {}).await.expect("gaps").try_collect().await.expect("gaps");
    assert_eq!(gaps.len(), 1);
    assert_eq!(gaps[0].get_str("feed").ok(), Some("inserts"));
    assert_eq!(gaps[0].get_timestamp("from").ok(), Some(from));
    let to = gaps[0].get_timestamp("to").expect("to");
    assert!(to > from, "the gap ends after it starts");
    target.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_resume_point_fails_with_what_to_do_when_the_policy_is_fail() {
    let Some(target) = Target::from_env() else { return };
    let bus = target.open_async().await;
    let feed = start(&bus, "processes-changed").await;
    bus.database()
        .collection::<Document>("processes")
        .insert_one(doc! { "_id": "p1" })
        .await
        .expect("insert");
    wait_head(&bus, "processes.changed", 1).await;
    feed.stop().await;
    expire_token(&bus, "processes-changed").await;

    let error = runner(&bus, "processes-changed").run(std::future::pending()).await.expect_err("lost");
    let message = error.to_string();
    assert!(message.contains("changefeed `processes-changed`"), "{message}");
    assert!(message.contains("no longer in the oplog"), "{message}");
    assert!(message.contains("on_lost_resume: restart_from_now"), "{message}");
    let gaps = bus.database().collection::<Document>(GAPS).count_documents(doc! {}).await.expect("count");
    assert_eq!(gaps, 0, "`fail` records no gap and publishes nothing");
    assert_eq!(bus.heads("processes.changed").await.expect("head").total(), 1);
    target.drop_database().await;
}
