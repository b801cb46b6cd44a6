//! Exactly-once effects of the transactional projector on the embedded store under SIGKILL: a
//! child process projecting while events keep flowing is killed with SIGKILL at random points,
//! many times, and restarted. After every kill the store holds each event's effects whole or
//! not at all (a handler's writes, the ledger and the cursor commit together), and nothing the
//! cursor covers is missing; after a last run drains the topic every event's effect is present
//! exactly once and the checkpoint is the head.
//!
//! The handler writes through the document API: a per-event marker (it counts how often the
//! event was applied, so exactly once means 1) and a per-account counter (events and sum). The
//! child is this test binary re-executed with `PROM_ETX_CHILD_DIR` set, as in
//! `mongo_transactional.rs`.

use prom_runtime::EventRecord;
use prom_runtime::consumer::SubscribeOptions;
use prom_runtime::documents::Documents;
use prom_runtime::project::{DocTxFuture, EmbeddedTxProjector, TransactionalSpec};
use prom_runtime::retry::RetryPolicy;
use prom_runtime::runner::FailurePolicy;
use prom_runtime::{EventBus, GroupId, Producer, PublishOptions, Registry, SqliteBus};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

const SPEC: &str = r#"
topics:
  ledger.entry:
    key: /account
    partitions: 2
    versions:
      1:
        schema:
          type: object
          required: [n, account, amount]
          properties:
            n: { type: integer }
            account: { type: string }
            amount: { type: integer }
projectors:
  ledger:
    kind: transactional
    topic: ledger.entry
    handler: crate::ledger
"#;

const ACCOUNTS: u64 = 5;
const TOPIC: &str = "ledger.entry";
const GROUP: &str = "projector.ledger";

/// The handler under test: the event's marker (applied how often) and its account's counter,
/// both read-modify-write through the documents of the projector's transaction.
fn ledger<'a>(event: &'a EventRecord, docs: &'a mut dyn Documents) -> DocTxFuture<'a> {
    Box::pin(async move {
        let n = event.payload["n"].as_i64().ok_or("the event has no `n`")?;
        let account = event.payload["account"].as_str().ok_or("the event has no `account`")?;
        let amount = event.payload["amount"].as_i64().ok_or("the event has no `amount`")?;
        let marker = n.to_string();
        let applied = docs.get("markers", &marker).await?.map_or(0, |d| d["applied"].as_i64().unwrap_or(0));
        docs.put("markers", &marker, json!({ "account": account, "applied": applied + 1 })).await?;
        let counter = docs.get("counters", account).await?.unwrap_or(json!({ "events": 0, "sum": 0 }));
        let events = counter["events"].as_i64().unwrap_or(0) + 1;
        let sum = counter["sum"].as_i64().unwrap_or(0) + amount;
        docs.put("counters", account, json!({ "events": events, "sum": sum })).await?;
        Ok(())
    })
}

fn registry() -> (Registry, TransactionalSpec) {
    let system = prom_runtime::system::lint_yaml("inline.yaml", SPEC).expect("spec");
    let registry = Registry::from_system(&system).expect("registry");
    let spec = TransactionalSpec::from_system(system.projector("ledger").expect("declared"), &registry)
        .expect("spec");
    (registry, spec)
}

fn projector(bus: SqliteBus) -> EmbeddedTxProjector {
    let (registry, spec) = registry();
    let opts = SubscribeOptions {
        member: Some("child".into()),
        poll_timeout: Duration::from_millis(50),
        batch_size: 10,
        ..SubscribeOptions::default()
    };
    let retry = RetryPolicy {
        max_attempts: 3,
        backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
    };
    EmbeddedTxProjector::new(
        Producer::new(bus, Arc::new(registry)),
        spec,
        opts,
        FailurePolicy { retry, dlq: true },
    )
}

#[test]
fn etx_crash_child() {
    let Ok(dir) = std::env::var("PROM_ETX_CHILD_DIR") else { return };
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    runtime.block_on(async move {
        let bus = SqliteBus::open(&dir).expect("open");
        projector(bus).run(ledger, std::future::pending()).await.expect("run");
    });
}

/// Starts a child projecting the store in `dir` (its stderr appended to `dir/../child.log`: a
/// file, not a pipe nobody reads).
fn spawn_child(store: &Path, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("log");
    Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "etx_crash_child", "--nocapture", "--test-threads=1"])
        .env("PROM_ETX_CHILD_DIR", store)
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn child")
}

/// A small deterministic generator (no extra dependency); the seed is printed on failure.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}

/// Every document of `collection`, by key (none before the handler first wrote to it).
fn documents(conn: &rusqlite::Connection, collection: &str) -> BTreeMap<String, Value> {
    let Ok(mut stmt) = conn.prepare(&format!("SELECT key, doc FROM proj_{collection}")) else {
        return BTreeMap::new();
    };
    stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .expect("query")
        .map(|r| {
            let (key, doc) = r.expect("row");
            (key, serde_json::from_str(&doc).expect("stored JSON"))
        })
        .collect()
}

/// How many events have their marker (the handler's first table appears with its first event).
fn markers(bus: &SqliteBus) -> usize {
    let conn = rusqlite::Connection::open(bus.path()).expect("open");
    conn.query_row("SELECT count(*) FROM proj_markers", [], |r| r.get::<_, i64>(0))
        .map_or(0, |n| usize::try_from(n).unwrap_or(0))
}

/// What the store holds after a kill.
struct Observed {
    /// Events whose marker is present.
    applied: usize,
    /// Events the committed cursors cover.
    covered: usize,
}

/// Checks the store (with no projector running) against the events it holds: every marker says
/// 1 and names a stored event, each counter is exactly the fold of the events whose markers are
/// present (a handler's two writes committed together), and every event the cursors cover has
/// its marker.
async fn check(bus: &SqliteBus, seed: u64) -> Observed {
    let cursors = bus.cursors(&GroupId::new(TOPIC, GROUP)).await.expect("cursors");
    let conn = rusqlite::Connection::open(bus.path()).expect("open");
    let markers = documents(&conn, "markers");
    let counters = documents(&conn, "counters");
    // Read after the effects: the publisher goes on, so these are a superset of what was projected.
    let stored =
        bus.read_topic(TOPIC, &prom_runtime::TopicPosition::start(), 10_000_000).await.expect("read events");
    let twice: Vec<(&String, &Value)> = markers.iter().filter(|(_, d)| d["applied"] != json!(1)).collect();
    assert!(twice.is_empty(), "events applied more than once: {twice:?} (seed {seed})");
    let mut expected: BTreeMap<String, Value> = BTreeMap::new();
    let (mut covered, mut applied) = (0, 0);
    for event in &stored {
        let (n, account, amount) = (&event.payload["n"], &event.payload["account"], &event.payload["amount"]);
        let (Some(n), Some(account), Some(amount)) = (n.as_u64(), account.as_str(), amount.as_i64()) else {
            panic!("stored event at offset {} is not what was published: {}", event.offset, event.payload);
        };
        let has_marker = markers.contains_key(&n.to_string());
        if cursors.get(&event.partition).is_some_and(|c| event.offset <= *c) {
            covered += 1;
            assert!(
                has_marker,
                "event {n} (offset {}) is below the cursors {cursors:?} but has no effect (seed {seed})",
                event.offset
            );
        }
        if has_marker {
            applied += 1;
            let counter = expected.entry(account.to_owned()).or_insert(json!({ "events": 0, "sum": 0 }));
            counter["events"] = json!(counter["events"].as_i64().unwrap_or(0) + 1);
            counter["sum"] = json!(counter["sum"].as_i64().unwrap_or(0) + amount);
        }
    }
    assert_eq!(applied, markers.len(), "markers of events that were never published (seed {seed})");
    let counters: BTreeMap<String, Value> = counters
        .into_iter()
        .map(|(key, doc)| (key, json!({ "events": doc["events"], "sum": doc["sum"] })))
        .collect();
    assert_eq!(counters, expected, "counters are not the fold of the applied events (seed {seed})");
    Observed { applied, covered }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_applies_every_event_exactly_once() {
    if std::env::var("PROM_ETX_CHILD_DIR").is_ok() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, log) = (dir.path().join("store"), dir.path().join("child.log"));
    let bus = SqliteBus::open(&store).expect("open");
    let (registry, _) = registry();
    let producer = Producer::new(bus.clone(), Arc::new(registry));
    let seed =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(7, |d| d.as_nanos() as u64);
    let mut rng = Lcg(seed);

    // Events flow the whole time the children run and are killed.
    let publisher = {
        let producer = producer.clone();
        tokio::spawn(async move {
            let mut published = Vec::new();
            // At least 4 s and at least 400 events, however slow the machine is.
            let stop = Instant::now() + Duration::from_millis(4000);
            let mut n = 0_u64;
            while Instant::now() < stop || n < 400 {
                let account = format!("a{}", n % ACCOUNTS);
                let amount = i64::try_from(n % 17).unwrap_or(0) + 1;
                let payload = json!({ "n": n, "account": account, "amount": amount });
                let receipt =
                    producer.publish(TOPIC, payload, PublishOptions::default()).await.expect("publish");
                published.push((n, receipt.offset, receipt.partition, account, amount));
                n += 1;
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
            published
        })
    };
    let (mut kills, mut progressed) = (0, 0);
    while !publisher.is_finished() || progressed < 5 {
        let before = markers(&bus);
        let mut child = spawn_child(&store, &log);
        // Kill it while it projects: once it has applied something, at a random point after.
        let started = Instant::now();
        while markers(&bus) == before && started.elapsed() < Duration::from_secs(20) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.next(300))).await;
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        kills += 1;
        // Consistent at every kill point.
        if check(&bus, seed).await.applied > before {
            progressed += 1;
        }
        assert!(kills < 100, "the children stopped making progress (seed {seed})");
    }
    let published = publisher.await.expect("publisher");
    let after_kills = check(&bus, seed).await;

    // A last member drains what is left, in this process.
    let drained = projector(bus.clone());
    let stats = drained.stats();
    let group = GroupId::new(TOPIC, GROUP);
    let lag_bus = bus.clone();
    let until_done = async move {
        let deadline = Instant::now() + Duration::from_secs(60);
        while prom_runtime::consumer::lag(&lag_bus, &group, 2).await.expect("lag") > 0
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    drained.run(ledger, until_done).await.expect("drain");

    let done = check(&bus, seed).await;
    let child_log = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(done.applied, published.len(), "every event applied (seed {seed}): {child_log}");
    assert_eq!(done.covered, published.len(), "the cursors cover every event (seed {seed})");
    // The checkpoint is the head: each partition's cursor is its last event's offset.
    let mut heads: BTreeMap<u32, i64> = BTreeMap::new();
    for (_, offset, partition, _, _) in &published {
        let head = heads.entry(*partition).or_default();
        *head = (*head).max(*offset);
    }
    let cursors = bus.cursors(&GroupId::new(TOPIC, GROUP)).await.expect("cursors");
    assert_eq!(cursors, heads.into_iter().collect(), "checkpoint = head (seed {seed})");
    // Nothing is left in the applied-offsets ledger once the cursors passed every event.
    let conn = rusqlite::Connection::open(bus.path()).expect("open");
    let ledger_rows: i64 = conn
        .query_row("SELECT count(*) FROM proj__applied WHERE grp = ?1", [GROUP], |r| r.get(0))
        .expect("ledger");
    assert_eq!(ledger_rows, 0, "ledger emptied (seed {seed})");
    assert!(published.len() >= 400, "too few events ({})", published.len());
    eprintln!(
        "{} events, {kills} kills ({progressed} mid-projection), {} applied by the children ({} covered by their \
         cursors), {} applied and {} re-delivered and skipped by the drain",
        published.len(),
        after_kills.applied,
        after_kills.covered,
        stats.applied.load(Relaxed),
        stats.already_applied.load(Relaxed),
    );
}
