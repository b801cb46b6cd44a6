//! `prom rebuild` on the embedded store, with real `prom` processes and a real store file.
//!
//! The rebuild is killed with SIGKILL at random points, ten times, while a reader polls the
//! projection table: every read is the old projection or the new one (never empty, never half
//! built), a killed rebuild resumes from its checkpoint, and the last run's table is the fold of
//! every event. A second test runs the rebuild (killed too) next to a live `prom run` and a
//! publisher: afterwards the table is the fold of every event and the changefeed holds exactly
//! one event per change — nothing lost, nothing applied twice.

use prom_runtime::{EventBus, GroupId, Producer, PublishOptions, Registry, SqliteBus};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const PROM: &str = env!("CARGO_BIN_EXE_prom");
const KEYS: u64 = 40;

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
  ledger.entry:
    versions:
      1:
        schema: { type: object }
projectors:
  processes:
    kind: changelog
    topic: process.state
    collection: processes
    version: /seq
    indexes:
      - keys: { n: 1 }
  ledger:
    kind: transactional
    topic: ledger.entry
    handler: crate::ledger
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

type Rows = BTreeMap<String, Value>;

/// The per-key fold of `events` under the projector's rules, and the changefeed operations it
/// implies per key.
fn fold(events: &[Value]) -> (Rows, BTreeMap<String, Vec<String>>) {
    let mut rows = Rows::new();
    let mut feed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for payload in events {
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

/// Random events: mostly newer versions, some stale ones, some tombstones.
fn events(rng: &mut Lcg, seqs: &mut [i64], count: u64, base: u64) -> Vec<Value> {
    (0..count)
        .map(|i| {
            let k = rng.next(KEYS) as usize;
            let roll = rng.next(10);
            let seq = if roll == 0 { seqs[k] - 1 } else { seqs[k] + 1 };
            seqs[k] = seqs[k].max(seq);
            if roll == 1 {
                json!({ "processId": format!("k{k}"), "seq": seq, "_deleted": true })
            } else {
                json!({ "processId": format!("k{k}"), "seq": seq, "n": base + i })
            }
        })
        .collect()
}

async fn publish(producer: &Producer<SqliteBus>, payloads: &[Value]) {
    for chunk in payloads.chunks(200) {
        let items: Vec<_> = chunk
            .iter()
            .map(|p| ("process.state".to_string(), p.clone(), PublishOptions::default()))
            .collect();
        producer.publish_all(items).await.expect("publish");
    }
}

struct Store {
    dir: tempfile::TempDir,
    bus: SqliteBus,
    producer: Producer<SqliteBus>,
}

fn store() -> Store {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("spec.yaml"), SPEC).expect("write spec");
    let linted = prom_spec::lint_str("spec.yaml", SPEC);
    assert!(!linted.has_errors(), "{}", linted.render());
    let registry = Arc::new(Registry::from_spec(&linted.spec).expect("registry"));
    let bus = SqliteBus::open(dir.path().join("store")).expect("open");
    let producer = Producer::new(bus.clone(), registry);
    Store { dir, bus, producer }
}

fn prom(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(PROM);
    command.current_dir(dir).env_remove("PROM_MONGO_URL").args(["--store", "store"]).args(args);
    command
}

/// Starts `prom rebuild` with stdout and stderr in files (`rebuild-<n>.out/.err`).
fn spawn_rebuild(dir: &Path, n: usize, batch: &str) -> Child {
    let out = std::fs::File::create(dir.join(format!("rebuild-{n}.out"))).expect("out");
    let err = std::fs::File::create(dir.join(format!("rebuild-{n}.err"))).expect("err");
    prom(dir, &["rebuild", "--specs", "spec.yaml", "processes", "--batch-size", batch])
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .expect("spawn prom rebuild")
}

/// Starts `prom run` (the live projector) with its stderr in `run.log`.
fn spawn_run(dir: &Path) -> Child {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("run.log")).expect("log");
    prom(dir, &["run", "--specs", "spec.yaml"])
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("run")
}

fn stop(child: &mut Child) {
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill -INT");
    let status = child.wait().expect("wait");
    assert!(status.success(), "prom exited with {status}");
}

/// The projection table's rows (`None` when the table does not exist).
fn table(conn: &rusqlite::Connection, table: &str) -> rusqlite::Result<Rows> {
    let mut stmt = conn.prepare(&format!("SELECT key, doc FROM \"{table}\""))?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    rows.map(|row| row.map(|(key, doc)| (key, serde_json::from_str(&doc).unwrap_or(Value::Null)))).collect()
}

fn connect(store: &Store) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(store.bus.path()).expect("open");
    conn.busy_timeout(Duration::from_secs(10)).expect("busy timeout");
    conn
}

fn checkpoint(conn: &rusqlite::Connection) -> Option<i64> {
    conn.query_row("SELECT position FROM proj__rebuild WHERE collection = 'processes'", [], |r| r.get(0)).ok()
}

async fn wait_caught_up(bus: &SqliteBus) {
    let group = GroupId::new("process.state", "projector.processes");
    let deadline = Instant::now() + Duration::from_secs(120);
    while prom_runtime::consumer::lag(bus, &group, 3).await.expect("lag") > 0 {
        assert!(Instant::now() < deadline, "the live projector did not catch up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A reader polling the table until stopped: counts reads that are neither `old` nor `new`.
struct Reader {
    stop: Arc<AtomicBool>,
    reads: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<Vec<String>>,
}

fn reader(store: &Store, old: Rows, new: Rows) -> Reader {
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let conn = connect(store);
    let (stopped, counted) = (stop.clone(), reads.clone());
    let thread = std::thread::spawn(move || {
        let mut wrong = Vec::new();
        while !stopped.load(Ordering::Relaxed) {
            match table(&conn, "proj_processes") {
                Ok(rows) if rows == old || rows == new => {}
                Ok(rows) => {
                    wrong.push(format!("a read of {} rows is neither projection: {rows:?}", rows.len()))
                }
                Err(e) => wrong.push(format!("a read failed: {e}")),
            }
            counted.fetch_add(1, Ordering::Relaxed);
        }
        wrong
    });
    Reader { stop, reads, thread }
}

impl Reader {
    fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let wrong = self.thread.join().expect("reader");
        (self.reads.load(Ordering::Relaxed), wrong)
    }
}

fn report(output: &Output) -> Value {
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "prom rebuild failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not a JSON report ({e}): {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_killed_ten_times_resumes_and_readers_only_see_the_old_or_the_new_projection() {
    let store = store();
    let dir = store.dir.path();
    let mut rng = Lcg(11);
    let mut seqs = [0_i64; KEYS as usize];
    let published = events(&mut rng, &mut seqs, 8000, 0);
    publish(&store.producer, &published).await;
    let (new, _) = fold(&published);
    // The live projector builds the table, which then goes wrong (as after a projection bug):
    // rows lost and fields changed behind its back.
    let mut run = spawn_run(dir);
    wait_caught_up(&store.bus).await;
    stop(&mut run);
    let conn = connect(&store);
    assert_eq!(table(&conn, "proj_processes").expect("table"), new, "the live projection is the fold");
    conn.execute_batch(
        "DELETE FROM proj_processes WHERE key IN ('k1', 'k2', 'k3');
         UPDATE proj_processes SET doc = json_set(doc, '$.n', -1) WHERE key > 'k2';",
    )
    .expect("damage");
    let old = table(&conn, "proj_processes").expect("table");
    assert_ne!(old, new);
    let reader = reader(&store, old.clone(), new.clone());

    let mut mid_rebuild = 0;
    let mut swapped_before = 0;
    for n in 0..10 {
        // Batches of 10 and a kill soon after the checkpoint shows this run at work (a new or a
        // moved checkpoint): a fixed delay proved too long once a rebuild of 8,000 events took
        // under 100 ms.
        let before = checkpoint(&conn);
        let mut child = spawn_rebuild(dir, n, "10");
        let deadline = Instant::now() + Duration::from_secs(30);
        while checkpoint(&conn).is_none_or(|position| Some(position) == before)
            && Instant::now() < deadline
            && child.try_wait().expect("poll the rebuild").is_none()
        {
            std::thread::sleep(Duration::from_micros(200));
        }
        std::thread::sleep(Duration::from_millis(rng.next(20)));
        child.kill().expect("kill -9");
        child.wait().expect("wait");
        match checkpoint(&conn) {
            Some(position) => {
                assert!(position <= 8000, "checkpoint {position}");
                mid_rebuild += 1;
            }
            None if table(&conn, "proj_processes").expect("table") == new => swapped_before += 1,
            None => {}
        }
    }
    // The last run finishes (resuming the checkpoint of the last kill, if any).
    let output = prom(dir, &["rebuild", "--specs", "spec.yaml", "processes"]).output().expect("rebuild");
    let last = report(&output);
    let (reads, wrong) = reader.finish();
    assert!(
        wrong.is_empty(),
        "{} of {reads} reads saw neither projection: {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(3)]
    );
    assert!(reads > 100, "the reader read only {reads} times");
    assert_eq!(table(&conn, "proj_processes").expect("table"), new, "the rebuilt table is the fold");
    assert_eq!(checkpoint(&conn), None, "the checkpoint is gone after the swap");
    let shadow: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_schema WHERE name LIKE 'proj_processes__rebuild%'", [], |r| {
            r.get(0)
        })
        .expect("schema");
    assert_eq!(shadow, 0, "neither the shadow table nor its indexes are left");
    let index: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name = 'proj_processes__n_1' AND tbl_name = 'proj_processes'", [], |r| r.get(0))
        .expect("schema");
    assert_eq!(index, 1, "the declared index is on the new table under its own name");
    assert_eq!(last["position"], json!(8000));
    assert_eq!(last["rows"], json!(new.len()));
    // Kills landed mid-rebuild, and a later run resumed from a checkpoint rather than from 0.
    assert!(
        mid_rebuild >= 3,
        "only {mid_rebuild} of 10 kills landed mid-rebuild ({swapped_before} after a swap)"
    );
    let resumed = (0..10).any(|n| {
        let err = std::fs::read_to_string(dir.join(format!("rebuild-{n}.err"))).unwrap_or_default();
        err.lines().any(|l| l.starts_with("resuming the rebuild of `processes` from offset "))
    }) || last["resumed_from"].as_i64().is_some_and(|p| p > 0);
    assert!(resumed, "no run resumed from a checkpoint");
    eprintln!("{mid_rebuild} of 10 kills mid-rebuild, {swapped_before} after a swap, {reads} reads");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_next_to_a_live_projector_loses_nothing_and_applies_nothing_twice() {
    let store = store();
    let dir = store.dir.path();
    let mut rng = Lcg(5);
    let mut seqs = [0_i64; KEYS as usize];
    let mut published = events(&mut rng, &mut seqs, 3000, 0);
    publish(&store.producer, &published).await;
    let mut run = spawn_run(dir);
    // Events keep arriving while rebuilds run (and are killed) next to the live projector.
    for round in 0..6u64 {
        let more = events(&mut rng, &mut seqs, 300, 10_000 * (round + 1));
        let mut child = spawn_rebuild(dir, round as usize, "50");
        publish(&store.producer, &more).await;
        published.extend(more);
        if round < 3 {
            std::thread::sleep(Duration::from_millis(rng.next(800)));
            child.kill().expect("kill -9");
            child.wait().expect("wait");
        } else {
            let status = child.wait().expect("wait");
            let err = std::fs::read_to_string(dir.join(format!("rebuild-{round}.err"))).unwrap_or_default();
            assert!(status.success(), "rebuild {round}: {err}");
        }
    }
    wait_caught_up(&store.bus).await;
    stop(&mut run);
    let (rows, feed) = fold(&published);
    let conn = connect(&store);
    let stored = table(&conn, "proj_processes").expect("table");
    let differ: Vec<_> = rows
        .keys()
        .chain(stored.keys())
        .filter(|k| rows.get(*k) != stored.get(*k))
        .map(|k| format!("{k}: fold {:?} / table {:?}", rows.get(k), stored.get(k)))
        .collect();
    assert!(differ.is_empty(), "the table is not the fold of every event: {differ:?}");
    // One changefeed event per change of the fold, in order: none lost, none twice.
    let mut fed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for event in store
        .bus
        .read_topic("processes.changed", &prom_runtime::TopicPosition::start(), 1_000_000)
        .await
        .expect("feed")
    {
        let key = event.payload["key"].as_str().unwrap_or_default().to_string();
        fed.entry(key).or_default().push(event.payload["operation"].as_str().unwrap_or_default().to_string());
    }
    assert_eq!(fed, feed, "the changefeed has one event per change");
    let applied: i64 =
        conn.query_row("SELECT count(*) FROM proj__applied", [], |r| r.get(0)).expect("ledger");
    assert_eq!(applied, 0, "the ledger is empty once the cursors pass everything");
}

#[test]
fn unknown_and_transactional_projectors_and_an_empty_topic() {
    let store = store();
    let dir = store.dir.path();
    let output = prom(dir, &["rebuild", "--specs", "spec.yaml", "procesess"]).output().expect("rebuild");
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("the spec declares no projector `procesess`"), "{err}");
    assert!(err.contains("did you mean `processes`?"), "{err}");

    let output = prom(dir, &["rebuild", "--specs", "spec.yaml", "ledger"]).output().expect("rebuild");
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("projector `ledger` is a transactional projector"), "{err}");
    assert!(err.contains("only changelog projectors can be rebuilt"), "{err}");

    let output = prom(dir, &["rebuild", "--specs", "spec.yaml", "processes", "--batch-size", "0"])
        .output()
        .expect("rebuild");
    assert_eq!(output.status.code(), Some(2), "{}", String::from_utf8_lossy(&output.stderr));

    // Nothing published: the rebuild swaps in an empty table and says so.
    let output = prom(dir, &["rebuild", "--specs", "spec.yaml", "processes"]).output().expect("rebuild");
    let done = report(&output);
    assert_eq!(done["events"], json!(0));
    assert_eq!(done["rows"], json!(0));
    assert_eq!(done["position"], json!(0));
    assert_eq!(done["resumed_from"], Value::Null);
    // Piped stderr shows no bar (no terminal control characters).
    assert!(!output.stderr.contains(&0x1b), "{}", String::from_utf8_lossy(&output.stderr));
    let conn = connect(&store);
    assert_eq!(table(&conn, "proj_processes").expect("the table exists"), Rows::new());
}
