//! The changelog projector against a real MongoDB: upserts by key, tombstones, the version
//! guard (stored versions of every kind, nested versions, two racing writers, `$` in payloads),
//! repeated keys in one bulk write, declared indexes, dead letters and the cursor.
#![cfg(feature = "mongo")]

mod common;

use common::mongo::Target;
use futures_util::TryStreamExt;
use prom_runtime::bus::mongo::MongoBus;
use prom_runtime::bus::mongo::mongodb::bson::{Document, doc};
use prom_runtime::consumer::SubscribeOptions;
use prom_runtime::project::plan::{self, Change};
use prom_runtime::project::{ChangelogProjector, ChangelogSpec};
use prom_runtime::{EventBus, GroupId, NewEvent, Producer, PublishOptions, Registry};
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
projectors:
  processes:
    kind: changelog
    topic: process.state
    collection: processes
    version: /seq
    indexes: [{ keys: { host: 1, status: 1 } }, { keys: { status: 1 }, name: by_status }]
"#;

struct Fixture {
    target: Target,
    producer: Producer<MongoBus>,
    spec: ChangelogSpec,
}

async fn fixture() -> Option<Fixture> {
    let target = Target::from_env()?;
    let linted = prom_spec::lint_str("inline.yaml", SPEC);
    assert!(!linted.has_errors(), "{}", linted.render());
    let registry = Registry::from_spec(&linted.spec).expect("registry");
    let spec = ChangelogSpec::from_system(
        prom_runtime::system::System::from_spec(&linted.spec).projector("processes").expect("declared"),
        &registry,
    )
    .expect("spec");
    let producer = Producer::new(target.open_async().await, Arc::new(registry));
    Some(Fixture { target, producer, spec })
}

impl Fixture {
    fn projector(&self) -> ChangelogProjector<MongoBus> {
        let opts = SubscribeOptions {
            member: Some("p1".into()),
            poll_timeout: Duration::from_millis(100),
            ..SubscribeOptions::default()
        };
        let db = self.producer.bus().database().clone();
        ChangelogProjector::new(self.producer.clone(), db, self.spec.clone(), opts).expect("projector")
    }

    async fn publish(&self, payload: Value) {
        self.producer.publish("process.state", payload, PublishOptions::default()).await.expect("publish");
    }

    async fn docs(&self) -> Vec<Document> {
        let coll = self.producer.bus().database().collection::<Document>("processes");
        let cursor = coll.find(doc! {}).sort(doc! { "_id": 1 }).await.expect("find");
        cursor.try_collect().await.expect("documents")
    }

    /// Runs a projector until the collection holds `want` (or fails after 15 s), then stops it.
    async fn project_until(&self, want: &[Document]) {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(self.projector().run(async move {
            let _ = stopped.await;
        }));
        let mut last = Vec::new();
        for _ in 0..150 {
            last = self.docs().await;
            if last == want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = stop.send(());
        running.await.expect("projector task").expect("projector run");
        assert_eq!(last, want);
    }
}

fn record(offset: i64, payload: Value) -> prom_runtime::EventRecord {
    NewEvent::new("process.state", payload).into_record(offset)
}

fn changes(spec: &ChangelogSpec, events: &[(i64, Value)]) -> Vec<Change> {
    events
        .iter()
        .map(|(offset, payload)| plan::change_of(&record(*offset, payload.clone()), &spec.pointers))
        .collect::<Result<_, _>>()
        .expect("changes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_bulk_write_with_repeated_keys_keeps_the_newest_version() {
    let Some(f) = fixture().await else { return };
    let projector = f.projector();
    let first = changes(
        &f.spec,
        &[
            (1, json!({ "processId": "a", "seq": 1, "status": "up" })),
            (2, json!({ "processId": "b", "seq": 5, "status": "up" })),
            (3, json!({ "processId": "a", "seq": 3, "status": "busy" })),
            (4, json!({ "processId": "a", "seq": 2, "status": "stale" })),
            (5, json!({ "processId": "c", "seq": 1, "status": "up" })),
        ],
    );
    let outcome = projector.apply(first).await.expect("apply");
    assert_eq!((outcome.upserted, outcome.skipped), (3, 0));
    // Against the stored versions: b's 4 is stale, a's 4 is new, c is deleted at 2.
    let second = changes(
        &f.spec,
        &[
            (6, json!({ "processId": "b", "seq": 4, "status": "stale" })),
            (7, json!({ "processId": "a", "seq": 4, "status": "down" })),
            (8, json!({ "processId": "c", "seq": 2, "_deleted": true })),
            (9, json!({ "processId": "a", "seq": 4, "status": "same version, later" })),
        ],
    );
    let outcome = projector.apply(second).await.expect("apply");
    assert_eq!((outcome.upserted, outcome.deleted, outcome.skipped), (1, 1, 1));
    assert_eq!(
        f.docs().await,
        [
            doc! { "_id": "a", "processId": "a", "seq": 4_i64, "status": "same version, later" },
            doc! { "_id": "b", "processId": "b", "seq": 5_i64, "status": "up" },
        ]
    );
    // A stale tombstone leaves the newer document alone.
    let outcome = projector
        .apply(changes(&f.spec, &[(10, json!({ "processId": "b", "seq": 1, "_deleted": true }))]))
        .await
        .expect("apply");
    assert_eq!((outcome.deleted, outcome.skipped), (0, 1));
    assert_eq!(f.docs().await.len(), 2);
    f.target.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guard_orders_stored_versions_and_stores_dollar_strings_as_they_are() {
    let Some(f) = fixture().await else { return };
    let projector = f.projector();
    let coll = f.producer.bus().database().collection::<Document>("processes");
    let stored = [
        doc! { "_id": "missing", "status": "no version" },
        doc! { "_id": "null", "seq": null, "status": "null version" },
        doc! { "_id": "text", "seq": "9", "status": "a version of another type" },
    ];
    coll.insert_many(stored).await.expect("insert");
    // `$`-prefixed strings and field names are data, not field paths or update operators.
    let new = json!({
        "processId": "new", "seq": 1, "status": "$status", "host": "$$ROOT",
        "meta": { "$note": "$literal" }, "$set": { "status": "injected" },
    });
    let events = [
        (1, json!({ "processId": "missing", "seq": 1, "status": "up" })),
        (2, json!({ "processId": "null", "seq": 1, "status": "up" })),
        (3, json!({ "processId": "text", "seq": 1, "status": "up" })),
        (4, new.clone()),
    ];
    let outcome = projector.apply(changes(&f.spec, &events)).await.expect("apply");
    assert_eq!((outcome.upserted, outcome.skipped, outcome.rejected.len()), (3, 1, 0), "{outcome:?}");
    let docs = f.docs().await;
    assert_eq!(docs[0], doc! { "_id": "missing", "processId": "missing", "seq": 1_i64, "status": "up" });
    assert_eq!(
        docs[1],
        doc! {
            "_id": "new", "processId": "new", "seq": 1_i64, "status": "$status", "host": "$$ROOT",
            "meta": { "$note": "$literal" }, "$set": { "status": "injected" },
        }
    );
    assert_eq!(docs[2].get_str("status"), Ok("up"));
    assert_eq!(docs[3].get_str("status"), Ok("a version of another type"));
    // An identical replay changes nothing and counts as skipped.
    let outcome = projector.apply(changes(&f.spec, &events)).await.expect("apply");
    assert_eq!((outcome.upserted, outcome.skipped), (0, 4), "{outcome:?}");
    f.target.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nested_version_guards_too() {
    let Some(f) = fixture().await else { return };
    let mut spec = f.spec.clone();
    spec.pointers.version = Some("/meta/seq".into());
    let db = f.producer.bus().database().clone();
    let opts = SubscribeOptions { member: Some("p1".into()), ..SubscribeOptions::default() };
    let projector = ChangelogProjector::new(f.producer.clone(), db, spec.clone(), opts).expect("projector");
    let event = |offset: i64, seq: i64, status: &str| {
        (offset, json!({ "processId": "a", "meta": { "seq": seq }, "status": status }))
    };
    let outcome = projector.apply(changes(&spec, &[event(1, 2, "up")])).await.expect("apply");
    assert_eq!((outcome.upserted, outcome.skipped), (1, 0));
    let outcome = projector.apply(changes(&spec, &[event(2, 1, "stale")])).await.expect("apply");
    assert_eq!((outcome.upserted, outcome.skipped), (0, 1));
    let outcome = projector.apply(changes(&spec, &[event(3, 3, "down")])).await.expect("apply");
    assert_eq!((outcome.upserted, outcome.skipped), (1, 0));
    let stale_tombstone = (4, json!({ "processId": "a", "meta": { "seq": 2 }, "_deleted": true }));
    let outcome = projector.apply(changes(&spec, &[stale_tombstone])).await.expect("apply");
    assert_eq!((outcome.deleted, outcome.skipped), (0, 1));
    assert_eq!(f.docs().await[0].get_str("status"), Ok("down"));
    let tombstone = (5, json!({ "processId": "a", "meta": { "seq": 3 }, "_deleted": true }));
    let outcome = projector.apply(changes(&spec, &[tombstone])).await.expect("apply");
    assert_eq!((outcome.deleted, outcome.skipped), (1, 0));
    assert!(f.docs().await.is_empty());
    f.target.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_racing_over_the_same_keys_end_at_the_newest_version() {
    let Some(f) = fixture().await else { return };
    const KEYS: usize = 200;
    const VERSIONS: i64 = 10;
    let batch = |seq: i64| {
        let events: Vec<_> = (0..KEYS)
            .map(|k| (seq, json!({ "processId": format!("k{k}"), "seq": seq, "status": format!("s{seq}") })))
            .collect();
        changes(&f.spec, &events)
    };
    // One writer walks the odd versions up, the other the even ones down, starting at the
    // newest: every key is inserted by both at once, and the newest must win that race.
    let (up, down) = (f.projector(), f.projector());
    let ascending = async {
        for seq in (1..VERSIONS).step_by(2) {
            up.apply(batch(seq)).await.expect("apply");
        }
    };
    let descending = async {
        for seq in (2..=VERSIONS).rev().step_by(2) {
            down.apply(batch(seq)).await.expect("apply");
        }
    };
    tokio::join!(ascending, descending);
    let docs = f.docs().await;
    assert_eq!(docs.len(), KEYS);
    for doc in docs {
        assert_eq!(doc.get_i64("seq"), Ok(VERSIONS), "{doc}");
        assert_eq!(doc.get_str("status"), Ok(format!("s{VERSIONS}").as_str()), "{doc}");
    }
    let (up, down) = (up.stats(), down.stats());
    let written = up.upserted.load(Ordering::Relaxed) + down.upserted.load(Ordering::Relaxed);
    let skipped = up.skipped.load(Ordering::Relaxed) + down.skipped.load(Ordering::Relaxed);
    assert_eq!(written + skipped, KEYS as u64 * VERSIONS as u64);
    f.target.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projector_follows_the_topic_and_commits_after_writing() {
    let Some(f) = fixture().await else { return };
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
        doc! { "_id": "a", "processId": "a", "seq": 5_i64, "host": "h1", "status": "s5" },
        doc! { "_id": "b", "processId": "b", "seq": 7_i64, "host": "h2", "status": "up" },
    ];
    f.project_until(&want).await;

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

    let coll = bus.database().collection::<Document>("processes");
    let names = coll.list_index_names().await.expect("indexes");
    assert!(names.contains(&"by_status".to_string()) && names.contains(&"host_1_status_1".to_string()));

    // A restart resumes after the committed cursor: only the new event is consumed.
    f.publish(json!({ "processId": "b", "seq": 8, "host": "h2", "status": "down" })).await;
    let projector = f.projector();
    let stats = projector.stats();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(projector.run(async move {
        let _ = stopped.await;
    }));
    for _ in 0..150 {
        if stats.upserted.load(Ordering::Relaxed) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop.send(());
    running.await.expect("task").expect("run");
    assert_eq!(stats.events.load(Ordering::Relaxed), 1);
    assert_eq!(f.docs().await[1].get_str("status"), Ok("down"));
    f.target.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_the_server_refuses_is_dead_lettered() {
    let Some(f) = fixture().await else { return };
    // A unique index the data breaks: two processes on one host.
    let coll = f.producer.bus().database().collection::<Document>("processes");
    coll.create_index(
        prom_runtime::bus::mongo::mongodb::IndexModel::builder()
            .keys(doc! { "host": 1 })
            .options(prom_runtime::bus::mongo::mongodb::options::IndexOptions::builder().unique(true).build())
            .build(),
    )
    .await
    .expect("index");
    f.publish(json!({ "processId": "a", "seq": 1, "host": "h1" })).await;
    f.publish(json!({ "processId": "b", "seq": 1, "host": "h1" })).await;
    f.publish(json!({ "processId": "c", "seq": 1, "host": "h2" })).await;
    let projector = f.projector();
    let stats = projector.stats();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(projector.run(async move {
        let _ = stopped.await;
    }));
    for _ in 0..150 {
        if stats.upserted.load(Ordering::Relaxed) == 2 && stats.dead_lettered.load(Ordering::Relaxed) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop.send(());
    running.await.expect("task").expect("run");
    assert_eq!(f.docs().await.len(), 2);
    let letters = f
        .producer
        .bus()
        .read_topic("dlq.process.state", &prom_runtime::TopicPosition::start(), 10)
        .await
        .expect("dlq");
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert!(letters[0].payload["error"].as_str().unwrap_or("").contains("E11000"), "{letters:?}");
    f.target.drop_database().await;
}
