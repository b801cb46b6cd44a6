//! The real `prom` binary on MongoDB: `--mongo URL` and `PROM_MONGO_URL` pick it over the
//! embedded store, for every command; `prom run` runs the changelog projectors and changefeeds.
#![cfg(feature = "mongo")]

mod common;

use common::mongo::Target;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const PROM: &str = env!("CARGO_BIN_EXE_prom");
const HEARTBEAT: &str =
    r#"{"pid": 7, "name": "api", "host": "h1", "cpu_pct": 0.5, "mem_mib": 12, "region": "eu"}"#;

fn specs() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../specs").to_string_lossy().into_owned()
}

fn prom(dir: &Path, env_url: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(PROM);
    command.current_dir(dir).env_remove("PROM_MONGO_URL").args(args);
    if let Some(url) = env_url {
        command.env("PROM_MONGO_URL", url);
    }
    command.output().expect("run prom")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_and_tail_go_to_mongodb_with_the_flag_or_the_environment() {
    let Some(target) = Target::from_env() else { return };
    let url = target.url_with_database();
    let dir = tempfile::tempdir().expect("tempdir");
    let specs = specs();
    let out = prom(
        dir.path(),
        None,
        &["--mongo", &url, "publish", "--specs", &specs, "heartbeat.received", HEARTBEAT],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_string();
    assert!(!dir.path().join(".prom").exists(), "nothing was written to the embedded store");

    let out = prom(dir.path(), Some(&url), &["tail", "--specs", &specs, "heartbeat.received"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let events: Vec<serde_json::Value> =
        text(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["id"], id.as_str());

    let bus = target.open_async().await;
    use prom_runtime::EventBus;
    assert_eq!(bus.heads("heartbeat.received").await.expect("head").total(), 1);
    assert_eq!(bus.heads("heartbeat.received.v3").await.expect("head").total(), 1, "dual-written atomically");

    let out = prom(dir.path(), Some(&url), &["dlq", "list", "--specs", &specs, "heartbeat.received"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    target.drop_database().await;
}

#[test]
fn an_unreachable_server_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300";
    let out = prom(dir.path(), None, &["--mongo", url, "tail", "--specs", &specs(), "heartbeat.received"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("cannot reach MongoDB") && stderr.contains("scripts/mongo.sh start"), "{stderr}");
}

/// A projector feeding a changefeed feeding a consumer: `prom run` runs the whole chain.
#[cfg(unix)]
const CHAIN: &str = r#"
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
  process-stats:
    kind: transactional
    topic: process.state
    handler: crate::projectors::process_stats
changefeeds:
  processes-changed:
    collection: processes
    topic: processes.changed
    full_document: updateLookup
consumers:
  audit:
    topic: processes.changed
"#;

/// Waits for a progress line starting with `prefix` that reports `lag=0`: cursors are committed at
/// most every commit interval, so the lag of a caught-up pipeline can lag a report behind.
#[cfg(unix)]
fn settled(run: &common::serve::Server, prefix: &str) -> String {
    for _ in 0..100 {
        let line = run.wait_for_line(prefix);
        if line.ends_with("lag=0") {
            return line;
        }
    }
    panic!("`{prefix}` never reported lag=0");
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prom_run_projects_and_republishes_changes_until_sigterm() {
    use common::serve::Server;
    use prom_runtime::bus::mongo::mongodb::bson::{Document, doc};
    use prom_runtime::changefeed::resume::STATES;
    use prom_runtime::{EventBus, Producer, PublishOptions, Registry};
    use serde_json::json;
    use std::time::{Duration, Instant};

    let Some(target) = Target::from_env() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let specs = dir.path().join("spec.yaml");
    std::fs::write(&specs, CHAIN).expect("write spec");
    let specs = specs.to_str().expect("a UTF-8 path");
    let url = target.url_with_database();
    let mut run = Server::spawn(&[
        "--mongo",
        &url,
        "run",
        "--specs",
        specs,
        "--progress",
        "0.1",
        "--stand-in",
        "audit",
    ]);
    let started = run.lines_until("WARNING: running a printing stand-in for consumer `audit`").join("\n");
    for line in [
        "running projector `processes`: `process.state` → collection `processes`",
        "running changefeed `processes-changed`: `processes` → `processes.changed`",
        "skipping projector `process-stats`: a transactional projector runs its handler",
    ] {
        assert!(started.contains(line), "{started}");
    }

    // The feed watches from the cluster time it stores at start; changes after that are seen.
    let bus = target.open_async().await;
    let db = bus.database().clone();
    let deadline = Instant::now() + Duration::from_secs(20);
    let states = db.collection::<Document>(STATES);
    while states.find_one(doc! { "_id": "processes-changed" }).await.expect("state").is_none() {
        assert!(Instant::now() < deadline, "the changefeed did not start in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let linted = prom_spec::lint_str("inline.yaml", CHAIN);
    let registry = std::sync::Arc::new(Registry::from_spec(&linted.spec).expect("registry"));
    let producer = Producer::new(target.open_async().await, registry);
    for (key, seq, status) in [("p1", 1, "up"), ("p2", 1, "up"), ("p1", 2, "down"), ("p1", 1, "stale")] {
        let payload = json!({ "processId": key, "seq": seq, "status": status });
        producer.publish("process.state", payload, PublishOptions::default()).await.expect("publish");
    }

    // Projected, then republished: the last change of p1 carries its newest version.
    let want = [
        doc! { "_id": "p1", "processId": "p1", "seq": 2_i64, "status": "down" },
        doc! { "_id": "p2", "processId": "p2", "seq": 1_i64, "status": "up" },
    ];
    let deadline = Instant::now() + Duration::from_secs(20);
    let changes = loop {
        let changes = bus
            .read_topic("processes.changed", &prom_runtime::TopicPosition::start(), 100)
            .await
            .expect("read");
        let last_of_p1 = changes.iter().rev().find(|e| e.key.as_deref() == Some("p1"));
        let p2 = changes.iter().any(|e| e.key.as_deref() == Some("p2"));
        if p2 && last_of_p1.is_some_and(|e| e.payload["document"]["seq"] == 2) {
            break changes;
        }
        assert!(Instant::now() < deadline, "prom run did not project and republish in time: {changes:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let coll = db.collection::<Document>("processes");
    let projected: Vec<Document> = {
        use futures_util::TryStreamExt;
        coll.find(doc! {}).sort(doc! { "_id": 1 }).await.expect("find").try_collect().await.expect("docs")
    };
    assert_eq!(projected, want);

    // Progress lines: the projector consumed all four events, the consumer every change.
    let line = settled(&run, "[processes] events=4 ");
    assert!(line.contains("dead_lettered=0"), "{line}");
    settled(&run, &format!("[audit] handled={} ", changes.len()));
    run.wait_for_line("[processes-changed] published=");
    run.terminate().await;
    target.drop_database().await;
}
