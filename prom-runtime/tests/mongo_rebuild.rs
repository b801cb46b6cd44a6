//! `prom rebuild --mongo` with real `prom` processes and a real replica set: SIGKILLed at random
//! points while a reader polls the collection (every read is the old or the new projection), a
//! later run resumes from its checkpoint and the final collection is the fold of every event;
//! the swap is refused while a live `prom run` holds the projector's group and goes through
//! once it stopped.
#![cfg(feature = "mongo")]

mod common;

use common::mongo::Target;
use mongodb::bson::{Document, doc};
use prom_runtime::{EventBus, GroupId, Producer, PublishOptions, Registry};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const PROM: &str = env!("CARGO_BIN_EXE_prom");
const KEYS: u64 = 30;

const SPEC: &str = r#"
topics:
  process.state:
    key: /processId
    partitions: 3
    versions:
      1:
        schema:
          type: object
          required: [processId, seq]
          properties:
            processId: { type: string }
            seq: { type: integer }
            n: { type: integer }
            _deleted: { type: boolean }
projectors:
  processes:
    kind: changelog
    topic: process.state
    collection: processes
    version: /seq
    indexes:
      - keys: { n: 1 }
"#;

struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

type Rows = BTreeMap<String, Value>;

/// The per-key fold of `events` under the projector's rules.
fn fold(events: &[Value]) -> Rows {
    let mut rows = Rows::new();
    for payload in events {
        let key = payload["processId"].as_str().unwrap_or_default().to_string();
        let seq = payload["seq"].as_i64().unwrap_or_default();
        let stored = rows.get(&key).and_then(|doc| doc["seq"].as_i64());
        if payload["_deleted"] == json!(true) {
            if stored.is_some_and(|s| s <= seq) {
                rows.remove(&key);
            }
        } else if stored.is_none_or(|s| s < seq) {
            let mut doc = payload.clone();
            doc["_id"] = json!(key);
            rows.insert(key, doc);
        }
    }
    rows
}

fn events(rng: &mut Lcg, count: u64) -> Vec<Value> {
    let mut seqs = [0_i64; KEYS as usize];
    (0..count)
        .map(|i| {
            let k = rng.next(KEYS) as usize;
            let roll = rng.next(10);
            let seq = if roll == 0 { seqs[k] - 1 } else { seqs[k] + 1 };
            seqs[k] = seqs[k].max(seq);
            if roll == 1 {
                json!({ "processId": format!("k{k}"), "seq": seq, "_deleted": true })
            } else {
                json!({ "processId": format!("k{k}"), "seq": seq, "n": i })
            }
        })
        .collect()
}

async fn rows(db: &mongodb::Database, collection: &str) -> mongodb::error::Result<Rows> {
    use futures_util::TryStreamExt;
    let docs: Vec<Document> =
        db.collection::<Document>(collection).find(doc! {}).await?.try_collect().await?;
    Ok(docs
        .into_iter()
        .map(|d| {
            let value: Value = mongodb::bson::from_document(d).unwrap_or(Value::Null);
            (value["_id"].as_str().unwrap_or_default().to_string(), value)
        })
        .collect())
}

struct Setup {
    target: Target,
    url: String,
    dir: tempfile::TempDir,
    db: mongodb::Database,
    published: Vec<Value>,
}

async fn setup(seed: u64, count: u64) -> Option<Setup> {
    let target = Target::from_env()?;
    let url = target.url_with_database();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("spec.yaml"), SPEC).expect("spec");
    let linted = prom_spec::lint_str("spec.yaml", SPEC);
    assert!(!linted.has_errors(), "{}", linted.render());
    let registry = Arc::new(Registry::from_spec(&linted.spec).expect("registry"));
    let bus = target.open_async().await;
    let db = bus.database().clone();
    let producer = Producer::new(bus, registry);
    let published = events(&mut Lcg(seed), count);
    for chunk in published.chunks(500) {
        let items = chunk.iter().map(|p| ("process.state".to_string(), p.clone(), PublishOptions::default()));
        producer.publish_all(items.collect()).await.expect("publish");
    }
    Some(Setup { target, url, dir, db, published })
}

fn prom(dir: &Path, url: &str, args: &[&str]) -> Command {
    let mut command = Command::new(PROM);
    command.current_dir(dir).env_remove("PROM_MONGO_URL").args(["--mongo", url]).args(args);
    command
}

fn report(output: &Output) -> Value {
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "prom rebuild failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not a JSON report ({e}): {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_rebuild_resumes_and_readers_only_see_the_old_or_the_new_collection() {
    let Some(setup) = setup(3, 4000).await else { return };
    let new = fold(&setup.published);
    // The old projection: wrong (rows lost, fields changed), as after a projection bug.
    let mut old = new.clone();
    old.remove("k1");
    for doc in old.values_mut() {
        doc["n"] = json!(-1);
    }
    let docs: Vec<Document> = old.values().map(|v| mongodb::bson::to_document(v).expect("bson")).collect();
    setup.db.collection::<Document>("processes").insert_many(docs).await.expect("old projection");
    assert_eq!(rows(&setup.db, "processes").await.expect("rows"), old);

    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let reader = {
        let (db, stop, reads, old, new) =
            (setup.db.clone(), stop.clone(), reads.clone(), old.clone(), new.clone());
        tokio::spawn(async move {
            let mut wrong = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match rows(&db, "processes").await {
                    Ok(rows) if rows == old || rows == new => {}
                    Ok(rows) => wrong.push(format!("{} rows, neither projection", rows.len())),
                    Err(e) => wrong.push(format!("a read failed: {e}")),
                }
                reads.fetch_add(1, Ordering::Relaxed);
            }
            wrong
        })
    };
    let mut rng = Lcg(17);
    let mut mid = 0;
    for n in 0..4 {
        let err = std::fs::File::create(setup.dir.path().join(format!("rebuild-{n}.err"))).expect("err");
        let mut child = prom(
            setup.dir.path(),
            &setup.url,
            &["rebuild", "--specs", "spec.yaml", "processes", "--batch-size", "40"],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::from(err))
        .spawn()
        .expect("spawn");
        tokio::time::sleep(Duration::from_millis(300 + rng.next(1500))).await;
        child.kill().expect("kill -9");
        child.wait().expect("wait");
        let checkpoint =
            setup.db.collection::<Document>("prom_rebuilds").find_one(doc! { "_id": "processes" }).await;
        // An offset on a store numbering the topic as one sequence, else a position per
        // partition as text (`0.3:120`): either way past the start.
        let started = |c: &Document| match c.get("position") {
            Some(mongodb::bson::Bson::Int64(offset)) => *offset > 0,
            Some(mongodb::bson::Bson::String(text)) => {
                text.parse::<prom_runtime::TopicPosition>().is_ok_and(|p| p.total() > 0)
            }
            _ => false,
        };
        if checkpoint.expect("checkpoint").as_ref().is_some_and(started) {
            mid += 1;
        }
    }
    let output = prom(setup.dir.path(), &setup.url, &["rebuild", "--specs", "spec.yaml", "processes"])
        .output()
        .expect("rebuild");
    let last = report(&output);
    stop.store(true, Ordering::Relaxed);
    let wrong = reader.await.expect("reader");
    let reads = reads.load(Ordering::Relaxed);
    assert!(
        wrong.is_empty(),
        "{} of {reads} reads saw neither projection: {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(3)]
    );
    assert!(reads > 10, "only {reads} reads");
    assert_eq!(rows(&setup.db, "processes").await.expect("rows"), new, "the rebuilt collection is the fold");
    assert!(mid >= 2, "only {mid} of 4 kills landed mid-rebuild");
    let resumed = (0..4).any(|n| {
        let err =
            std::fs::read_to_string(setup.dir.path().join(format!("rebuild-{n}.err"))).unwrap_or_default();
        err.contains("resuming the rebuild of `processes` from offset ")
    }) || last["resumed_from"].as_i64().is_some_and(|p| p > 0);
    assert!(resumed, "no run resumed from its checkpoint");
    let names = setup.db.list_collection_names().await.expect("names");
    assert!(!names.contains(&"processes__rebuild".to_string()), "{names:?}");
    let checkpoint =
        setup.db.collection::<Document>("prom_rebuilds").find_one(doc! { "_id": "processes" }).await;
    assert!(checkpoint.expect("checkpoint").is_none());
    let indexes = setup.db.collection::<Document>("processes").list_index_names().await.expect("indexes");
    assert!(indexes.contains(&"n_1".to_string()), "{indexes:?}");
    // The group's cursors moved to the last offset of each partition.
    let bus = setup.target.open_async().await;
    let cursors = bus.cursors(&GroupId::new("process.state", "projector.processes")).await.expect("cursors");
    let mut lasts = BTreeMap::new();
    for event in
        bus.read_topic("process.state", &prom_runtime::TopicPosition::start(), 100_000).await.expect("read")
    {
        lasts.insert(event.partition, event.offset);
    }
    assert_eq!(cursors, lasts);
    setup.target.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_swap_waits_for_the_live_projector_to_stop() {
    let Some(setup) = setup(9, 800).await else { return };
    let log = std::fs::File::create(setup.dir.path().join("run.log")).expect("log");
    let mut run = prom(setup.dir.path(), &setup.url, &["run", "--specs", "spec.yaml"])
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("prom run");
    // The live projector catches up (and holds the group's leases while it runs).
    let new = fold(&setup.published);
    let deadline = Instant::now() + Duration::from_secs(60);
    while rows(&setup.db, "processes").await.expect("rows") != new {
        assert!(
            Instant::now() < deadline,
            "prom run did not project: {}",
            std::fs::read_to_string(setup.dir.path().join("run.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let output = prom(setup.dir.path(), &setup.url, &["rebuild", "--specs", "spec.yaml", "processes"])
        .output()
        .expect("rebuild");
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(
        err.contains("projector `processes` is running (live members of group `projector.processes`"),
        "{err}"
    );
    assert!(err.contains("stop `prom run`"), "{err}");
    assert_eq!(rows(&setup.db, "processes").await.expect("rows"), new, "the live collection is untouched");
    Command::new("kill").args(["-INT", &run.id().to_string()]).status().expect("kill -INT");
    assert!(run.wait().expect("wait").success());
    let output = prom(setup.dir.path(), &setup.url, &["rebuild", "--specs", "spec.yaml", "processes"])
        .output()
        .expect("rebuild");
    let done = report(&output);
    assert!(done["resumed_from"].as_i64().is_some_and(|p| p > 0), "it resumed the refused run: {done}");
    assert_eq!(rows(&setup.db, "processes").await.expect("rows"), new);
    setup.target.drop_database().await;
}
