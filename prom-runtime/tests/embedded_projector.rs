//! The changelog projector on the embedded store (SQLite files in temp dirs): the behaviour the
//! MongoDB projector has (`mongo_projector.rs`) — upserts by key, tombstones (`_deleted` and
//! null), the version guard against stored versions of every kind, `$` strings kept as data,
//! declared indexes, dead letters, resuming after the committed cursor — plus the changefeed of
//! the projected table, published from the projector's own transaction.

use prom_runtime::consumer::SubscribeOptions;
use prom_runtime::project::{EmbeddedProjector, EmbeddedSpec};
use prom_runtime::system::System;
use prom_runtime::{EventBus, GroupId, NewEvent, Producer, PublishOptions, Registry, SqliteBus};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

const SPEC: &str = r#"
topics:
  process.state:
    key: /processId
    partitions: 2
    versions:
      1:
        schema:
          type: object
          required: [processId, seq]
          properties:
            processId: { type: string }
            seq: { type: integer }
            status: { type: string }
            host: { type: string }
            _deleted: { type: boolean }
  processes.changed:
    key: /key
    versions:
      1:
        schema:
          type: object
          required: [operation, key]
          properties:
            operation: { type: string, enum: [insert, update, replace, delete] }
            key: { type: string }
            document: { type: [object, "null"] }
projectors:
  processes:
    kind: changelog
    topic: process.state
    collection: processes
    version: /seq
    indexes: [{ keys: { host: 1, status: 1 } }, { keys: { status: 1 }, name: by_status }]
changefeeds:
  processes-changed:
    collection: processes
    topic: processes.changed
"#;

struct Fixture {
    _dir: tempfile::TempDir,
    producer: Producer<SqliteBus>,
    spec: EmbeddedSpec,
}

fn fixture(yaml: &str) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let linted = prom_spec::lint_str("inline.yaml", yaml);
    assert!(!linted.has_errors(), "{}", linted.render());
    let registry = Registry::from_spec(&linted.spec).expect("registry");
    let system = System::from_spec(&linted.spec);
    let spec =
        EmbeddedSpec::from_system(system.projector("processes").expect("declared"), &system, &registry)
            .expect("spec");
    let bus = SqliteBus::open(dir.path()).expect("open");
    Fixture { _dir: dir, producer: Producer::new(bus, Arc::new(registry)), spec }
}

impl Fixture {
    fn projector(&self) -> EmbeddedProjector {
        let opts = SubscribeOptions {
            member: Some("p1".into()),
            poll_timeout: Duration::from_millis(100),
            ..SubscribeOptions::default()
        };
        EmbeddedProjector::new(self.producer.clone(), self.spec.clone(), opts)
    }

    async fn publish(&self, payload: Value) {
        self.producer.publish("process.state", payload, PublishOptions::default()).await.expect("publish");
    }

    fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.producer.bus().path()).expect("open the store file")
    }

    fn docs(&self) -> Vec<Value> {
        let conn = self.db();
        let Ok(mut stmt) = conn.prepare("SELECT doc FROM proj_processes ORDER BY key") else {
            return Vec::new();
        };
        let rows = stmt.query_map([], |r| r.get::<_, String>(0)).expect("query");
        rows.map(|r| serde_json::from_str(&r.expect("row")).expect("json")).collect()
    }

    /// Runs a projector until it consumed `events` and the table holds `want` (or fails after
    /// 15 s), then stops it.
    async fn project_until(&self, events: u64, want: &[Value]) -> Arc<prom_runtime::project::EmbeddedStats> {
        let projector = self.projector();
        let stats = projector.stats();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(projector.run(async move {
            let _ = stopped.await;
        }));
        let mut last = Vec::new();
        for _ in 0..150 {
            last = self.docs();
            if last == want && stats.events.load(Ordering::Relaxed) >= events {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = stop.send(());
        running.await.expect("projector task").expect("projector run");
        assert_eq!(last, want);
        stats
    }

    async fn feed(&self) -> Vec<prom_runtime::EventRecord> {
        self.producer
            .bus()
            .read_topic("processes.changed", &prom_runtime::TopicPosition::start(), 1000)
            .await
            .expect("read the feed")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projector_follows_the_topic_and_commits_with_its_writes() {
    let f = fixture(SPEC);
    for seq in 1..=5 {
        f.publish(json!({ "processId": "a", "seq": seq, "host": "h1", "status": format!("s{seq}") })).await;
    }
    f.publish(json!({ "processId": "b", "seq": 7, "host": "h2", "status": "up" })).await;
    f.publish(json!({ "processId": "b", "seq": 6, "host": "h2", "status": "stale" })).await;
    f.publish(json!({ "processId": "c", "seq": 1, "host": "h3", "status": "up" })).await;
    f.publish(json!({ "processId": "c", "seq": 2, "_deleted": true })).await;
    f.publish(json!({ "processId": "d", "seq": 1, "host": "h4", "status": "up" })).await;
    // A null tombstone, published raw (no schema admits null), found through the event key.
    let bus = f.producer.bus();
    let partition = prom_runtime::partition::partition_for(Some("d"), 2);
    bus.publish(vec![NewEvent::new("process.state", Value::Null).keyed("d", partition)])
        .await
        .expect("publish");
    // An event without a schema version cannot be decoded: dead-lettered, not blocking.
    let bad = NewEvent::new("process.state", json!({ "processId": "e", "seq": 1 })).keyed("e", 0);
    bus.publish(vec![bad]).await.expect("publish");

    let want = [
        json!({ "_id": "a", "processId": "a", "seq": 5, "host": "h1", "status": "s5" }),
        json!({ "_id": "b", "processId": "b", "seq": 7, "host": "h2", "status": "up" }),
    ];
    let stats = f.project_until(12, &want).await;
    assert_eq!(stats.events.load(Ordering::Relaxed), 12);
    assert_eq!(stats.dead_lettered.load(Ordering::Relaxed), 1);

    let group = GroupId::new("process.state", f.spec.group());
    let cursors = bus.cursors(&group).await.expect("cursors");
    for p in 0..2 {
        let left = bus.count_after("process.state", p, cursors.get(&p).copied().unwrap_or(0)).await;
        assert_eq!(left.expect("count"), 0, "partition {p} fully committed: {cursors:?}");
    }
    let letters =
        bus.read_topic("dlq.process.state", &prom_runtime::TopicPosition::start(), 10).await.expect("dlq");
    assert_eq!(letters.len(), 1);
    assert!(letters[0].payload["error"].as_str().unwrap_or("").contains("cannot decode"), "{letters:?}");

    // The declared indexes are expression indexes on the fields, used by a filter on them.
    let conn = f.db();
    let names: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'proj_processes' ORDER BY name")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("indexes");
    assert!(names.contains(&"proj_processes__by_status".into()), "{names:?}");
    assert!(names.contains(&"proj_processes__host_1_status_1".into()), "{names:?}");
    let plan: String = conn
        .query_row(
            "EXPLAIN QUERY PLAN SELECT doc FROM proj_processes WHERE json_extract(doc, '$.\"status\"') = 'up'",
            [],
            |r| r.get(3),
        )
        .expect("plan");
    assert!(plan.contains("proj_processes__by_status"), "{plan}");

    // A restart resumes after the committed cursor: only the new event is consumed.
    f.publish(json!({ "processId": "b", "seq": 8, "host": "h2", "status": "down" })).await;
    let mut want = want.to_vec();
    want[1] = json!({ "_id": "b", "processId": "b", "seq": 8, "host": "h2", "status": "down" });
    let stats = f.project_until(1, &want).await;
    assert_eq!(stats.events.load(Ordering::Relaxed), 1);
    assert_eq!(stats.upserted.load(Ordering::Relaxed), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guard_orders_stored_versions_and_stores_dollar_strings_as_they_are() {
    let f = fixture(SPEC);
    f.projector().create_table().await.expect("table");
    let conn = f.db();
    for (key, doc) in [
        ("missing", json!({ "_id": "missing", "status": "no version" })),
        ("null", json!({ "_id": "null", "seq": null, "status": "null version" })),
        ("text", json!({ "_id": "text", "seq": "9", "status": "a version of another type" })),
        ("bool", json!({ "_id": "bool", "seq": true, "status": "a boolean version" })),
    ] {
        conn.execute("INSERT INTO proj_processes (key, doc) VALUES (?1, ?2)", [key, &doc.to_string()])
            .expect("insert");
    }
    // `$`-prefixed strings and field names are data.
    let new = json!({
        "processId": "new", "seq": 1, "status": "$status", "host": "$$ROOT",
        "meta": { "$note": "$literal" }, "$set": { "status": "injected" },
    });
    for payload in [
        json!({ "processId": "missing", "seq": 1, "status": "up" }),
        json!({ "processId": "null", "seq": 1, "status": "up" }),
        json!({ "processId": "text", "seq": 1, "status": "up" }),
        json!({ "processId": "bool", "seq": 5, "status": "up" }),
        new.clone(),
    ] {
        f.publish(payload).await;
    }
    let mut expected_new = new.clone();
    expected_new["_id"] = json!("new");
    let want = [
        json!({ "_id": "bool", "seq": true, "status": "a boolean version" }),
        json!({ "_id": "missing", "processId": "missing", "seq": 1, "status": "up" }),
        expected_new,
        json!({ "_id": "null", "processId": "null", "seq": 1, "status": "up" }),
        json!({ "_id": "text", "seq": "9", "status": "a version of another type" }),
    ];
    let stats = f.project_until(5, &want).await;
    assert_eq!((stats.upserted.load(Ordering::Relaxed), stats.skipped.load(Ordering::Relaxed)), (3, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nested_version_guards_too() {
    let yaml = SPEC.replace("version: /seq", "version: /meta/seq").replace(
        "seq: { type: integer }",
        "seq: { type: integer }\n            meta: { type: object, properties: { seq: { type: integer } } }",
    );
    let f = fixture(&yaml);
    let event = |seq: i64, status: &str| json!({ "processId": "a", "seq": 0, "meta": { "seq": seq }, "status": status });
    f.publish(event(2, "up")).await;
    f.project_until(
        1,
        &[json!({ "_id": "a", "processId": "a", "seq": 0, "meta": { "seq": 2 }, "status": "up" })],
    )
    .await;
    f.publish(event(1, "stale")).await;
    f.publish(json!({ "processId": "a", "seq": 0, "meta": { "seq": 1 }, "_deleted": true })).await;
    let stats = f
        .project_until(
            2,
            &[json!({ "_id": "a", "processId": "a", "seq": 0, "meta": { "seq": 2 }, "status": "up" })],
        )
        .await;
    assert_eq!(stats.skipped.load(Ordering::Relaxed), 2, "a stale update and a stale tombstone");
    f.publish(json!({ "processId": "a", "seq": 0, "meta": { "seq": 2 }, "_deleted": true })).await;
    let stats = f.project_until(1, &[]).await;
    assert_eq!(stats.deleted.load(Ordering::Relaxed), 1, "a tombstone of the stored version deletes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_a_unique_index_refuses_is_dead_lettered() {
    let yaml =
        SPEC.replace("{ keys: { status: 1 }, name: by_status }", "{ keys: { host: 1 }, unique: true }");
    let f = fixture(&yaml);
    f.publish(json!({ "processId": "a", "seq": 1, "host": "h1" })).await;
    f.publish(json!({ "processId": "b", "seq": 1, "host": "h1" })).await;
    f.publish(json!({ "processId": "c", "seq": 1, "host": "h2" })).await;
    let stats = f
        .project_until(
            3,
            &[
                json!({ "_id": "a", "processId": "a", "seq": 1, "host": "h1" }),
                json!({ "_id": "c", "processId": "c", "seq": 1, "host": "h2" }),
            ],
        )
        .await;
    assert_eq!(stats.dead_lettered.load(Ordering::Relaxed), 1);
    let letters = f
        .producer
        .bus()
        .read_topic("dlq.process.state", &prom_runtime::TopicPosition::start(), 10)
        .await
        .expect("dlq");
    assert_eq!(letters.len(), 1, "{letters:?}");
    let error = letters[0].payload["error"].as_str().unwrap_or("");
    assert!(error.contains("UNIQUE") && error.contains("unique index"), "{error}");
    assert_eq!(letters[0].payload["original"]["payload"]["processId"], "b", "{letters:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_changefeed_is_published_with_the_writes_and_never_again() {
    let f = fixture(SPEC);
    f.publish(json!({ "processId": "a", "seq": 1, "status": "up" })).await;
    f.project_until(1, &[json!({ "_id": "a", "processId": "a", "seq": 1, "status": "up" })]).await;
    f.publish(json!({ "processId": "a", "seq": 2, "status": "down" })).await;
    f.publish(json!({ "processId": "a", "seq": 1, "status": "stale" })).await;
    f.project_until(2, &[json!({ "_id": "a", "processId": "a", "seq": 2, "status": "down" })]).await;
    f.publish(json!({ "processId": "a", "seq": 3, "_deleted": true })).await;
    let stats = f.project_until(1, &[]).await;
    assert_eq!(stats.fed.load(Ordering::Relaxed), 1);
    let feed = f.feed().await;
    let seen: Vec<(String, Value, Option<String>)> = feed
        .iter()
        .map(|e| {
            let op = e.payload["operation"].as_str().unwrap_or("").to_string();
            (op, e.payload["document"].clone(), e.headers.get("x-change-operation").cloned())
        })
        .collect();
    assert_eq!(
        seen,
        [
            (
                "insert".into(),
                json!({ "_id": "a", "processId": "a", "seq": 1, "status": "up" }),
                Some("insert".into())
            ),
            (
                "update".into(),
                json!({ "_id": "a", "processId": "a", "seq": 2, "status": "down" }),
                Some("update".into())
            ),
            ("delete".into(), Value::Null, Some("delete".into())),
        ],
        "the stale event changed nothing, so nothing was fed for it"
    );
    assert!(feed.iter().all(|e| e.key.as_deref() == Some("a")));
    // A restart finds nothing to do and feeds nothing again.
    let before = f.feed().await.len();
    f.project_until(0, &[]).await;
    assert_eq!(f.feed().await.len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changefeed_event_its_topic_refuses_stops_the_projector_and_commits_nothing() {
    // The feed's topic requires a field the change events lack: a spec error, not data to skip.
    let yaml = SPEC.replace("required: [operation, key]", "required: [operation, key, extra]");
    let f = fixture(&yaml);
    f.publish(json!({ "processId": "a", "seq": 1, "status": "up" })).await;
    let projector = f.projector();
    let outcome = tokio::time::timeout(Duration::from_secs(15), projector.run(std::future::pending())).await;
    let error = outcome.expect("the projector stops by itself").expect_err("a refused feed event fails");
    let text = error.to_string();
    assert!(text.contains("changefeed `processes-changed`") && text.contains("extra"), "{text}");
    assert!(f.docs().is_empty(), "the row write was rolled back with the feed event");
    let cursors =
        f.producer.bus().cursors(&GroupId::new("process.state", f.spec.group())).await.expect("cursors");
    assert!(cursors.values().all(|&c| c == 0), "{cursors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_on_the_embedded_store_runs_its_changelog_projectors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bus = SqliteBus::open(dir.path()).expect("open");
    let pipeline = prom_runtime::Pipeline::from_yaml(bus.clone(), SPEC).expect("pipeline");
    let payload = json!({ "processId": "a", "seq": 1, "status": "up" });
    pipeline.producer().publish("process.state", payload, PublishOptions::default()).await.expect("publish");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(pipeline.run(async move {
        let _ = stopped.await;
    }));
    let mut feed = Vec::new();
    for _ in 0..150 {
        feed = bus
            .read_topic("processes.changed", &prom_runtime::TopicPosition::start(), 10)
            .await
            .expect("feed");
        if !feed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop.send(());
    running.await.expect("task").expect("pipeline");
    assert_eq!(feed.len(), 1, "the projector ran and fed its table's changefeed");
    assert_eq!(
        feed[0].payload["document"],
        json!({ "_id": "a", "processId": "a", "seq": 1, "status": "up" })
    );
}
