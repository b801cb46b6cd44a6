//! Exactly-once projection on the embedded store: the real `prom run` projects a changelog topic
//! (with a changefeed on its table) and is killed with SIGKILL mid-projection, many times. After
//! every kill each key's row and changefeed events agree on one prefix of its events that holds
//! everything the committed cursors cover — the writes, the feed and the cursor commit together
//! or not at all, and a replay after the restart changes and feeds nothing twice. A last run
//! drains the topic: then the table is the fold of every event, with one feed event per change.

use prom_runtime::{EventBus, GroupId, Producer, PublishOptions, Registry, SqliteBus};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PROM: &str = env!("CARGO_BIN_EXE_prom");
const KEYS: u64 = 12;
const ROUNDS: u64 = 8;
const PER_ROUND: u64 = 1000;

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
            n: { type: integer }
            _deleted: { type: boolean }
  processes.changed:
    key: /key
    versions:
      1:
        schema:
          type: object
          required: [operation, key]
          properties:
            operation: { type: string }
            key: { type: string }
            document: { type: [object, "null"] }
projectors:
  processes:
    kind: changelog
    topic: process.state
    collection: processes
    version: /seq
changefeeds:
  processes-changed:
    collection: processes
    topic: processes.changed
"#;

/// A small deterministic generator (no new dependency for randomness).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

/// Starts `prom run` with its stderr appended to `dir/run.log` (a file, not a pipe: nobody
/// reads while it runs, and a full pipe would block it).
fn spawn_run(dir: &Path) -> Child {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("run.log")).expect("log");
    Command::new(PROM)
        .current_dir(dir)
        .env_remove("PROM_MONGO_URL")
        .args(["--store", "store", "run", "--specs", "spec.yaml", "--progress", "0.5"])
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn prom run")
}

/// The per-key fold of `events` (offset order) under the projector's rules, and the changefeed
/// operations it implies, per key.
fn fold(events: &[(i64, Value)]) -> (BTreeMap<String, Value>, BTreeMap<String, Vec<String>>) {
    let mut rows: BTreeMap<String, Value> = BTreeMap::new();
    let mut feed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (_, payload) in events {
        let key = payload["processId"].as_str().unwrap_or_default().to_string();
        let seq = payload["seq"].as_i64().unwrap_or_default();
        let stored = rows.get(&key).and_then(|doc| doc["seq"].as_i64());
        let op = if payload["_deleted"] == json!(true) {
            stored.filter(|&s| s <= seq).map(|_| "delete")
        } else {
            match stored {
                None => Some("insert"),
                Some(s) if s < seq => Some("update"),
                Some(_) => None,
            }
        };
        match op {
            Some("delete") => {
                rows.remove(&key);
            }
            Some(_) => {
                let mut doc = payload.clone();
                doc["_id"] = json!(key);
                rows.insert(key.clone(), doc);
            }
            None => continue,
        }
        feed.entry(key).or_default().push(op.unwrap_or_default().to_string());
    }
    (rows, feed)
}

/// Checks the store after a run: for every key, its row and its changefeed events are the fold
/// of one prefix of the key's events (so they agree: no feed event without its write, none twice,
/// none missing), and that prefix holds at least every event the committed cursors cover (so
/// nothing committed is lost). Events past the cursors may be applied already (a batch takes
/// one event per key, so its cursor can trail the newest write of a key); they are applied again
/// idempotently after a restart. Returns how many events the cursors cover.
async fn check(bus: &SqliteBus, published: &[(i64, u32, Value)]) -> usize {
    let cursors = bus.cursors(&GroupId::new("process.state", "projector.processes")).await.expect("cursors");
    let covered = |off: i64, part: u32| cursors.get(&part).is_some_and(|c| off <= *c);
    let mut per_key: BTreeMap<String, Vec<(i64, Value, bool)>> = BTreeMap::new();
    for (off, part, payload) in published {
        let key = payload["processId"].as_str().unwrap_or_default().to_string();
        per_key.entry(key).or_default().push((*off, payload.clone(), covered(*off, *part)));
    }
    let conn = rusqlite::Connection::open(bus.path()).expect("open");
    let stored: BTreeMap<String, Value> = match conn.prepare("SELECT key, doc FROM proj_processes") {
        Ok(mut stmt) => stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .expect("query")
            .map(|r| {
                let (key, doc) = r.expect("row");
                (key, serde_json::from_str(&doc).expect("json"))
            })
            .collect(),
        Err(_) => BTreeMap::new(),
    };
    let mut fed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for event in bus
        .read_topic("processes.changed", &prom_runtime::TopicPosition::start(), 1_000_000)
        .await
        .expect("feed")
    {
        let key = event.payload["key"].as_str().unwrap_or_default().to_string();
        fed.entry(key).or_default().push(event.payload["operation"].as_str().unwrap_or_default().to_string());
    }
    for (key, events) in &per_key {
        let at_least = events.iter().filter(|(_, _, c)| *c).count();
        let row = stored.get(key);
        let feed = fed.get(key).cloned().unwrap_or_default();
        let consistent = (at_least..=events.len()).any(|j| {
            let prefix: Vec<(i64, Value)> = events[..j].iter().map(|(o, p, _)| (*o, p.clone())).collect();
            let (rows, ops) = fold(&prefix);
            rows.get(key) == row && ops.get(key).cloned().unwrap_or_default() == feed
        });
        if !consistent && std::env::var("PROM_CRASH_DEBUG").is_ok() {
            let mut stmt = conn
                .prepare("SELECT dedup, json_extract(payload, '$.operation') FROM events WHERE topic = 'processes.changed' AND key = ?1 ORDER BY off")
                .expect("prepare");
            let fed: Vec<(String, String)> = stmt
                .query_map([key], |r| Ok((r.get(0)?, r.get(1)?)))
                .expect("q")
                .map(|r| r.expect("row"))
                .collect();
            for (off, payload, c) in events {
                eprintln!("E {off} {c} {payload}");
            }
            for (dedup, op) in fed {
                eprintln!("F {dedup} {op}");
            }
        }
        assert!(
            consistent,
            "key {key}: row {row:?} and feed {feed:?} are no fold of a prefix of its {} events holding the \
             {at_least} the cursors {cursors:?} cover",
            events.len()
        );
    }
    published.iter().filter(|(off, part, _)| covered(*off, *part)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_projection_then_restart_projects_every_event_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("spec.yaml"), SPEC).expect("write spec");
    let linted = prom_spec::lint_str("spec.yaml", SPEC);
    assert!(!linted.has_errors(), "{}", linted.render());
    let registry = Arc::new(Registry::from_spec(&linted.spec).expect("registry"));
    let bus = SqliteBus::open(dir.path().join("store")).expect("open");
    let producer = Producer::new(bus.clone(), registry);
    let mut rng = Lcg(7);
    let mut seqs = [0_i64; KEYS as usize];
    let mut published: Vec<(i64, u32, Value)> = Vec::new();
    let mut partial_kills = 0;
    for round in 0..ROUNDS {
        // The projector runs while the round is published, and is killed soon after.
        let mut child = spawn_run(dir.path());
        // Mostly newer versions, some stale ones, some tombstones.
        let mut items = Vec::new();
        for i in 0..PER_ROUND {
            let k = rng.next(KEYS) as usize;
            let roll = rng.next(10);
            let seq = if roll == 0 { seqs[k] - 1 } else { seqs[k] + 1 };
            seqs[k] = seqs[k].max(seq);
            let mut payload = json!({ "processId": format!("k{k}"), "seq": seq, "n": round * PER_ROUND + i });
            if roll == 1 {
                payload = json!({ "processId": format!("k{k}"), "seq": seq, "_deleted": true });
            }
            items.push(("process.state".to_string(), payload, PublishOptions::default()));
        }
        for chunk in items.chunks(50) {
            let receipts = producer.publish_all(chunk.to_vec()).await.expect("publish");
            for ((_, payload, _), receipt) in chunk.iter().zip(receipts) {
                published.push((receipt.offset, receipt.partition, payload.clone()));
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.next(50))).await;
        child.kill().expect("kill -9");
        child.wait().expect("wait");
        let covered = check(&bus, &published).await;
        if covered < published.len() {
            partial_kills += 1;
        }
    }
    // Drain: one more run until every event is covered, then stop it cleanly.
    let mut child = spawn_run(dir.path());
    let group = GroupId::new("process.state", "projector.processes");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let lag = prom_runtime::consumer::lag(&bus, &group, 2).await.expect("lag");
        if lag == 0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill -INT");
    let status = child.wait().expect("wait");
    let err = std::fs::read_to_string(dir.path().join("run.log")).unwrap_or_default();
    assert!(status.success(), "prom run exited with {status}: {err}");
    assert_eq!(check(&bus, &published).await, published.len(), "every event projected: {err}");
    // The kills are random; most must land mid-projection for the test to mean anything.
    assert!(partial_kills >= 1, "no kill landed mid-projection; {ROUNDS} rounds");
    eprintln!("{partial_kills} of {ROUNDS} kills landed mid-projection");
}
