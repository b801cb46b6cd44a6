//! MongoDB with access control, as production runs it: an application account with only
//! `readWrite` (here `readWriteAnyDatabase`, MongoDB's usual application role) runs everything,
//! and is told what it lacks instead of failing. Without `collMod` opening a database of the
//! per-event layout cannot freeze `events` (a warning; an account that has it freezes it later),
//! and without read access to `local.oplog.rs` `prom status` and the metrics leave out the
//! oplog window with a note, rather than the whole status.
//!
//! Starts a mongod of its own with `--auth` (`scripts/mongo.sh start-auth`), so it runs only
//! when asked: `PROM_MONGO_AUTH=1` (scripts/test.sh sets it).
#![cfg(feature = "mongo")]

mod common;

use prom_runtime::bus::mongo::mongodb::bson::{Document, doc};
use prom_runtime::bus::mongo::mongodb::{Client, Database};
use prom_runtime::bus::mongo::{MongoBus, layout};
use prom_runtime::consumer::{SubscribeOptions, Subscription};
use prom_runtime::record::SCHEMA_VERSION;
use prom_runtime::stream::{ExpectedVersion, StreamAppend, StreamId};
use prom_runtime::{EventBus, NewEvent};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// A one-node replica set with access control of this test's own; stopped (data deleted) on drop.
struct AuthServer {
    state: tempfile::TempDir,
    /// The URL of `prom-root` (role `root`).
    root: String,
    /// The URL of `prom-app` (role `readWriteAnyDatabase`).
    app: String,
}

impl AuthServer {
    fn start() -> Option<AuthServer> {
        if std::env::var("PROM_MONGO_AUTH").map_or(true, |v| v != "1") {
            eprintln!("skipped: set PROM_MONGO_AUTH=1 to run the access-control tests");
            return None;
        }
        let state = tempfile::tempdir().expect("state dir");
        let out = mongo_sh(state.path(), "start-auth");
        assert!(out.status.success(), "scripts/mongo.sh start-auth failed: {}", text(&out.stderr));
        let urls = text(&out.stdout);
        let mut lines = urls.lines();
        let (root, app) = (lines.next().expect("root URL"), lines.next().expect("app URL"));
        Some(AuthServer { root: root.to_owned(), app: app.to_owned(), state })
    }

    /// `url` with `database` in its path, as `prom --mongo` takes it.
    fn with_database(url: &str, database: &str) -> String {
        let (hosts, query) = url.split_once("/?").expect("mongodb://HOST:PORT/?OPTIONS");
        format!("{hosts}/{database}?{query}")
    }
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        let _ = mongo_sh(self.state.path(), "stop-auth");
    }
}

fn mongo_sh(state: &Path, command: &str) -> Output {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/mongo.sh");
    Command::new("bash")
        .arg(script)
        .arg(command)
        .env("PROM_MONGO_STATE", state)
        .output()
        .expect("run scripts/mongo.sh")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn prom(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_prom"))
        .env_remove("PROM_MONGO_URL")
        .args(args)
        .output()
        .expect("run prom")
}

const TOPIC: &str = "process.state";

fn state(seq: i64) -> Value {
    json!({ "processId": "h:1", "host": "h", "name": "api", "status": "running", "seq": seq })
}

fn event(seq: i64) -> NewEvent {
    NewEvent::new(TOPIC, state(seq)).keyed("h:1", 0).header(SCHEMA_VERSION, "1")
}

/// The validator on `events`, if it has one.
async fn events_validator(db: &Database) -> Option<Document> {
    let mut listed = db.list_collections().filter(doc! { "name": layout::EVENTS }).await.expect("list");
    let mut validator = None;
    while listed.advance().await.expect("next") {
        validator = listed.deserialize_current().expect("collection").options.validator;
    }
    validator
}

/// Writes two events of partition 0 in the per-event layout of earlier releases, as `root`.
async fn write_per_event_layout(db: &Database) {
    let old: Vec<Document> = (1..=2_i64)
        .map(|off| {
            doc! {
                "_id": prom_runtime::bus::mongo::mongodb::bson::Uuid::new(), "topic": TOPIC, "off": off,
                "key": "h:1", "part": 0_i64, "ts": 1_700_000_000_000_i64 + off,
                "headers": json!({ SCHEMA_VERSION: "1" }).to_string(), "payload": state(off).to_string(), "v": 1_i64,
            }
        })
        .collect();
    db.collection::<Document>(layout::EVENTS).insert_many(old).await.expect("old events");
    db.collection::<Document>(layout::PARTITIONS)
        .insert_one(doc! { "topic": TOPIC, "part": 0_i64, "head": 2_i64 })
        .await
        .expect("old counter");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_account_runs_prom_and_is_told_what_it_lacks() {
    let Some(server) = AuthServer::start() else { return };
    let database = format!("prom_access_{}", uuid::Uuid::now_v7().simple());
    let root = Client::with_uri_str(&server.root).await.expect("root client");
    let root_db = root.database(&database);
    write_per_event_layout(&root_db).await;

    // Opening as the application: no `collMod`, so `events` stays writable (a warning says so).
    let bus = MongoBus::open_database(&server.app, Some(&database)).await.expect("the app account opens");
    assert_eq!(events_validator(&root_db).await, None, "the app account cannot freeze `events`");

    // Publishing, reading, a group's cursor, a stream and time-travel reads all work.
    let receipts = bus.publish((3..=5).map(event).collect()).await.expect("publish");
    assert_eq!(receipts.iter().map(|r| r.offset).collect::<Vec<_>>(), [3, 4, 5]);
    let read = bus.read(TOPIC, 0, 0, 10).await.expect("read");
    let seqs: Vec<i64> = read.iter().map(|e| e.payload["seq"].as_i64().expect("seq")).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5], "the old documents, then the chunks");
    let opts =
        SubscribeOptions { partitions: 4, poll_timeout: Duration::from_millis(100), ..Default::default() };
    let mut sub = Subscription::new(bus.clone(), TOPIC, "app-readers", opts).expect("subscribe");
    let mut seen = 0;
    while seen < 5 {
        let batch = sub.poll().await.expect("poll");
        for d in &batch {
            sub.ack(d);
        }
        seen += batch.len();
    }
    sub.commit().await.expect("commit");
    sub.close().await.expect("leave the group");
    let stream = StreamId::new("process", "h:1");
    bus.append(StreamAppend::new(stream.clone(), ExpectedVersion::NoStream, vec![event(6)]))
        .await
        .expect("append");
    assert_eq!(bus.read_stream(&stream, 0, 10).await.expect("read the stream").len(), 1);

    // `prom status` answers in full but for the oplog window, and says why.
    let specs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs");
    let specs = specs.to_str().expect("utf-8");
    let app_url = AuthServer::with_database(&server.app, &database);
    let out = prom(&["--mongo", &app_url, "status", "--specs", specs, "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let status: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(status["oplog_window_seconds"], Value::Null, "{status}");
    let why = status["oplog_unreadable"].as_str().expect("a reason");
    assert!(why.contains("clusterMonitor") && why.contains("local.oplog.rs"), "{why}");
    let topic = status["topics"].as_array().expect("topics").iter().find(|t| t["name"] == TOPIC).cloned();
    assert_eq!(topic.expect("the topic")["head"], 6, "{status}");
    let out = prom(&["--mongo", &app_url, "status", "--specs", specs]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(
        table.contains("unreadable (see note)") && table.contains("note: this account may not read"),
        "{table}"
    );

    // The root account reads the oplog window, and its open freezes `events` for everyone.
    let root_url = AuthServer::with_database(&server.root, &database);
    let out = prom(&["--mongo", &root_url, "status", "--specs", specs, "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let status: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert!(status["oplog_window_seconds"].as_f64().is_some_and(|w| w >= 0.0), "{status}");
    assert_eq!(status["oplog_unreadable"], Value::Null, "{status}");
    drop(MongoBus::open_database(&server.root, Some(&database)).await.expect("the root account opens"));
    assert!(
        events_validator(&root_db).await.is_some(),
        "opened by an account with collMod, `events` is frozen"
    );
    let refused = bus
        .database()
        .collection::<Document>(layout::EVENTS)
        .insert_one(doc! { "topic": TOPIC, "off": 9_i64, "part": 0_i64 })
        .await
        .expect_err("frozen for the app account too");
    assert!(refused.to_string().contains("Document failed validation"), "{refused}");
    root_db.drop().await.expect("drop the test database");
    root.shutdown().await;
}
