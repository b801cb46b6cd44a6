//! Streams and the stores underneath: a layout-1 embedded store is migrated, and an event
//! edited behind MongoDB's back is named by `prom verify --mongo`.

mod common;

use prom_runtime::stream::{ExpectedVersion, StreamId};
use prom_runtime::{EventBus, NewEvent, Producer, Registry, SqliteBus};
use std::sync::Arc;

const SPEC: &str = include_str!("streams/streams.yaml");

fn producer<B: EventBus>(bus: B) -> Producer<B> {
    Producer::new(bus, Arc::new(Registry::from_yaml("streams.yaml", SPEC).expect("spec")))
}

fn deposit(id: &str, cents: i64) -> (String, serde_json::Value) {
    ("money.deposited".to_owned(), serde_json::json!({ "accountId": id, "cents": cents }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layout_1_store_is_migrated_and_keeps_its_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bus = SqliteBus::open(dir.path()).expect("create");
    bus.publish(vec![NewEvent::new("money.deposited", serde_json::json!({ "old": true }))])
        .await
        .expect("publish");
    drop(bus);
    // Turn it into what layout 1 wrote: no stream tables, user_version 1.
    let db = rusqlite::Connection::open(dir.path().join("events.db")).expect("open");
    db.execute_batch(
        "DROP TABLE streams; DROP TABLE snapshots; DROP TABLE key_snapshots; \
         DROP INDEX events_topic_key_off; PRAGMA user_version = 1;",
    )
    .expect("downgrade");
    drop(db);

    let read_only = SqliteBus::open_read_only(dir.path()).expect("a read-only open accepts layout 1");
    assert_eq!(read_only.heads("money.deposited").await.expect("head").total(), 1);
    drop(read_only);

    let p = producer(SqliteBus::open(dir.path()).expect("migrate"));
    let version: i64 = rusqlite::Connection::open(dir.path().join("events.db"))
        .and_then(|c| c.pragma_query_value(None, "user_version", |r| r.get(0)))
        .expect("user_version");
    assert_eq!(version, 4);
    let appended =
        p.append(StreamId::new("account", "m"), ExpectedVersion::NoStream, vec![deposit("m", 3)]).await;
    let appended = appended.expect("append after the migration");
    assert_eq!((appended.last_version, appended.receipts[0].offset), (1, 2), "the old event keeps offset 1");
    let old =
        p.bus().read_topic("money.deposited", &prom_runtime::TopicPosition::start(), 10).await.expect("read");
    assert_eq!(old[0].payload, serde_json::json!({ "old": true }));
}

#[cfg(feature = "mongo")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prom_verify_names_an_event_edited_behind_mongodbs_back() {
    use mongodb::bson::{Document, doc};
    use std::process::Command;
    let Some(target) = common::mongo::Target::from_env() else { return };
    let bus = target.open_async().await;
    let p = producer(bus.clone());
    let stream = StreamId::new("account", "m1");
    for cents in 1..=3 {
        p.append(stream.clone(), ExpectedVersion::Any, vec![deposit("m1", cents)]).await.expect("append");
    }
    let url = target.url_with_database();
    let spec = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/streams/streams.yaml");
    let prom = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_prom"));
        let split = if args.first() == Some(&"stream") { 2 } else { 1 };
        command.args(&args[..split]).args(["--specs", spec, "--mongo", &url]).args(&args[split..]);
        command.env_remove("PROM_MONGO_URL").output().expect("run prom")
    };
    let out = prom(&["verify", "account"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let out = prom(&[
        "stream",
        "append",
        "account",
        "m1",
        "money.deposited",
        r#"{"accountId":"m1","cents":4}"#,
        "--expected-version",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("expected version 2, but the stream is at version 3"), "{stderr}");

    let entry: Document = bus
        .database()
        .collection::<Document>("prom_streams")
        .find_one(doc! { "aggregate": "account", "id": "m1", "version": 2_i64 })
        .await
        .expect("find")
        .expect("version 2 is stored");
    let off = entry.get_i64("off").expect("off");
    let edited = bus
        .database()
        .collection::<Document>("events")
        .update_one(
            doc! { "topic": "money.deposited", "off": off },
            doc! { "$set": { "payload": r#"{"accountId":"m1","cents":200}"# } },
        )
        .await
        .expect("update");
    assert_eq!(edited.modified_count, 1);
    let out = prom(&["verify", "account"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("stream `account/m1` breaks at version 2: the event was changed"), "{stderr}");
    target.drop_database().await;
}
