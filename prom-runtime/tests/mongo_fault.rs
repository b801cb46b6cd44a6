//! Fault suite: the real `prom serve` and `prom run --mongo` ride out MongoDB outages and heal by
//! themselves, and no `prom` command ever prints a driver panic on exit.
//!
//! The outage test runs a mongod of its own (`scripts/mongo.sh` with its own state directory),
//! so freezing and killing it leaves the shared test server alone. Like every MongoDB test it
//! runs when the test run promised MongoDB (`PROM_MONGO_URL`, or `PROM_REQUIRE_MONGO=1`).
#![cfg(all(feature = "mongo", unix))]

mod common;

use common::mongo::Target;
use common::serve::Server;
use futures_util::TryStreamExt;
use prom_runtime::bus::mongo::MongoBus;
use prom_runtime::bus::mongo::mongodb::bson::{Document, doc};
use prom_runtime::bus::mongo::mongodb::{ClientSession, Database};
use prom_runtime::changefeed::resume::STATES;
use prom_runtime::consumer::SubscribeOptions;
use prom_runtime::project::{TransactionalProjector, TransactionalSpec, TxFuture};
use prom_runtime::retry::RetryPolicy;
use prom_runtime::runner::FailurePolicy;
use prom_runtime::{EventBus, EventRecord, Producer, PublishOptions, Registry};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const PROM: &str = env!("CARGO_BIN_EXE_prom");

/// A projector feeding a changefeed (no user code), plus a consumer of the changes for
/// `prom run`; the transactional projector runs in this test's process (the CLI skips it).
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
  process-effects:
    kind: transactional
    topic: process.state
    handler: crate::effects
changefeeds:
  processes-changed:
    collection: processes
    topic: processes.changed
    full_document: updateLookup
consumers:
  audit:
    topic: processes.changed
"#;

/// Keys published in every round.
const KEYS: [&str; 4] = ["p0", "p1", "p2", "p3"];

/// How long the server is down in each outage (longer than the driver's 10 s server
/// selection timeout, which used to be fatal).
const OUTAGE: Duration = Duration::from_secs(22);

/// A mongod of this test's own, started by `scripts/mongo.sh`; stopped (data deleted) on drop.
struct OwnMongo {
    state: tempfile::TempDir,
    url: String,
}

impl OwnMongo {
    fn start() -> OwnMongo {
        let state = tempfile::tempdir().expect("state dir");
        let mut own = OwnMongo { state, url: String::new() };
        own.url = own.script("start").trim().to_string();
        own
    }

    /// Runs `scripts/mongo.sh COMMAND` on this server; returns its stdout.
    fn script(&self, command: &str) -> String {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/mongo.sh");
        let out = Command::new("bash")
            .arg(script)
            .arg(command)
            .env("PROM_MONGO_STATE", self.state.path())
            .env_remove("PROM_MONGO_PORT")
            .output()
            .expect("run scripts/mongo.sh");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "scripts/mongo.sh {command} failed: {stderr}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The URL with `database` in its path, as `prom --mongo` takes it.
    fn url(&self, database: &str) -> String {
        match self.url.split_once("/?") {
            Some((hosts, query)) => format!("{hosts}/{database}?{query}"),
            None => panic!("unexpected URL from scripts/mongo.sh: {}", self.url),
        }
    }
}

impl Drop for OwnMongo {
    fn drop(&mut self) {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/mongo.sh");
        let _ =
            Command::new("bash").arg(script).arg("stop").env("PROM_MONGO_STATE", self.state.path()).output();
    }
}

/// A running `prom` process whose stderr lines are all kept.
struct Prom {
    name: &'static str,
    server: Server,
    seen: Vec<String>,
}

impl Prom {
    fn spawn(name: &'static str, args: &[&str]) -> Prom {
        Prom { name, server: Server::spawn(args), seen: Vec::new() }
    }

    fn drain(&mut self) {
        while let Ok(line) = self.server.lines.try_recv() {
            self.seen.push(line);
        }
    }

    /// Waits (at most `within`) until a line after the first `from` lines contains `needle`;
    /// returns the index after it.
    async fn wait_for(&mut self, from: usize, needle: &str, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        loop {
            self.drain();
            if let Some(at) = self.seen.iter().skip(from).position(|l| l.contains(needle)) {
                return from + at + 1;
            }
            assert!(
                Instant::now() < deadline,
                "{} printed no `{needle}` within {within:?}; it printed:\n{}",
                self.name,
                self.seen[from..].join("\n")
            );
            self.assert_alive();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn assert_alive(&mut self) {
        if let Some(status) = self.server.child.try_wait().expect("wait") {
            self.drain();
            panic!("{} exited ({status}); it printed:\n{}", self.name, self.seen.join("\n"));
        }
    }
}

/// One `prom` process under test with its database.
struct Subject {
    prom: Prom,
    bus: MongoBus,
    producer: Producer<MongoBus>,
}

impl Subject {
    /// Publishes round `seq` (one state change per key) and a stale event that must change
    /// nothing.
    async fn publish_round(&self, seq: i64) {
        for key in KEYS {
            let payload = json!({ "processId": key, "seq": seq, "status": format!("round-{seq}") });
            self.producer
                .publish("process.state", payload, PublishOptions::default())
                .await
                .expect("publish");
        }
        let stale = json!({ "processId": KEYS[0], "seq": 0, "status": "stale" });
        self.producer.publish("process.state", stale, PublishOptions::default()).await.expect("publish");
    }

    /// Waits until the projection holds round `seq` for every key and the changefeed topic holds
    /// `seq` changes per key; then checks there is exactly that (nothing lost or repeated).
    async fn assert_caught_up(&mut self, seq: i64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let want: Vec<Document> = KEYS
            .iter()
            .map(|key| doc! { "_id": key, "processId": key, "seq": seq, "status": format!("round-{seq}") })
            .collect();
        loop {
            let projected: Vec<Document> = self
                .bus
                .database()
                .collection::<Document>("processes")
                .find(doc! {})
                .sort(doc! { "_id": 1 })
                .await
                .expect("find")
                .try_collect()
                .await
                .expect("documents");
            let changes = self.changes().await;
            let per_key_done = KEYS
                .iter()
                .all(|key| changes.iter().filter(|e| e.key.as_deref() == Some(key)).count() as i64 >= seq);
            if projected == want && per_key_done {
                break;
            }
            self.prom.assert_alive();
            assert!(
                Instant::now() < deadline,
                "{} did not catch up with round {seq}: projection {projected:?}, {} changes",
                self.prom.name,
                changes.len()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // Late duplicates would show up now.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let changes = self.changes().await;
        for key in KEYS {
            let of_key: Vec<&EventRecord> =
                changes.iter().filter(|e| e.key.as_deref() == Some(key)).collect();
            let ops: Vec<&str> =
                of_key.iter().map(|e| e.payload["operation"].as_str().unwrap_or("?")).collect();
            assert_eq!(of_key.len() as i64, seq, "{}: changes of {key}: {ops:?}", self.prom.name);
            assert_eq!(ops[0], "insert", "{}: changes of {key}: {ops:?}", self.prom.name);
            let last = of_key.last().map(|e| e.payload["document"]["seq"].clone());
            assert_eq!(last, Some(json!(seq)), "{}: the last change of {key}", self.prom.name);
        }
        assert_eq!(changes.len(), KEYS.len() * usize::try_from(seq).expect("seq"), "{}", self.prom.name);
    }

    async fn changes(&self) -> Vec<EventRecord> {
        self.bus
            .read_topic("processes.changed", &prom_runtime::TopicPosition::start(), 1000)
            .await
            .expect("read the changefeed topic")
    }
}

/// The transactional handler: one counter per event id, in the transaction (exactly once
/// means every counter ends at 1).
fn count_effect<'a>(
    event: &'a EventRecord,
    db: &'a Database,
    session: &'a mut ClientSession,
) -> TxFuture<'a> {
    Box::pin(async move {
        db.collection::<Document>("effects")
            .update_one(doc! { "_id": event.id.to_string() }, doc! { "$inc": { "count": 1 } })
            .upsert(true)
            .session(&mut *session)
            .await?;
        Ok(())
    })
}

/// Starts the spec's transactional projector in this process, on `bus`, until `stop` turns true.
fn start_transactional(
    bus: &MongoBus,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<prom_runtime::Result<()>> {
    let linted = prom_spec::lint_str("fault.yaml", SPEC);
    let registry = Registry::from_spec(&linted.spec).expect("registry");
    let spec = TransactionalSpec::from_system(
        prom_runtime::system::System::from_spec(&linted.spec).projector("process-effects").expect("declared"),
        &registry,
    )
    .expect("transactional spec");
    let policy = FailurePolicy { retry: RetryPolicy::default(), dlq: true };
    let producer = Producer::new(bus.clone(), Arc::new(registry));
    let projector = TransactionalProjector::new(producer, spec, SubscribeOptions::default(), policy);
    let mut stop = stop.clone();
    tokio::spawn(projector.run(count_effect, async move {
        let _ = stop.wait_for(|s| *s).await;
    }))
}

/// Waits until every event of `process.state` has its effect, each exactly once.
async fn assert_effects_exactly_once(bus: &MongoBus) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let events = bus
            .read_topic("process.state", &prom_runtime::TopicPosition::start(), 1000)
            .await
            .expect("read the topic");
        let effects: Vec<Document> = bus
            .database()
            .collection::<Document>("effects")
            .find(doc! {})
            .await
            .expect("find")
            .try_collect()
            .await
            .expect("effects");
        let twice: Vec<&Document> = effects.iter().filter(|d| d.get_i32("count").unwrap_or(0) != 1).collect();
        assert!(twice.is_empty(), "effects applied more than once: {twice:?}");
        if effects.len() == events.len() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the transactional projector did not catch up: {} effects for {} events",
            effects.len(),
            events.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn subject(mongo: &OwnMongo, specs: &Path, name: &'static str) -> Subject {
    let database = format!("fault_{}", name.replace(' ', "_"));
    let url = mongo.url(&database);
    let specs = specs.to_str().expect("a UTF-8 path");
    let args: Vec<&str> = match name {
        "prom serve" => vec!["serve", "--specs", specs, "--mongo", &url, "--listen", "127.0.0.1:0"],
        // The spec's consumer stands in for a service's, so its lag shows the chain caught up.
        _ => vec!["--mongo", &url, "run", "--specs", specs, "--progress", "5", "--stand-in", "audit"],
    };
    let mut prom = Prom::spawn(name, &args);
    prom.wait_for(0, "running changefeed `processes-changed`", Duration::from_secs(30)).await;
    let bus = MongoBus::open(&url).await.expect("open the test's own MongoDB");
    // The feed watches from the cluster time it stores at start; wait for it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let states = bus.database().collection::<Document>(STATES);
    while states.find_one(doc! { "_id": "processes-changed" }).await.expect("state").is_none() {
        assert!(Instant::now() < deadline, "{name}: the changefeed did not start in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let linted = prom_spec::lint_str("fault.yaml", SPEC);
    let registry = Arc::new(Registry::from_spec(&linted.spec).expect("registry"));
    let producer = Producer::new(bus.clone(), registry);
    Subject { prom, bus, producer }
}

/// Waits until both processes reported the outage and then the reconnection (each task
/// reports for itself; one report of each per process is enough here).
async fn assert_reported(subjects: &mut [Subject], from: &[usize]) -> Vec<usize> {
    let mut next = Vec::new();
    for (subject, &from) in subjects.iter_mut().zip(from) {
        let at = subject.prom.wait_for(from, "MongoDB unreachable", Duration::from_secs(60)).await;
        let at = subject.prom.wait_for(at, "MongoDB reconnected", Duration::from_secs(60)).await;
        next.push(at);
    }
    next
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prom_serve_and_prom_run_ride_out_mongodb_outages() {
    // Runs only where the test run promised MongoDB (scripts/test.sh does); the server is ours.
    if Target::from_env().is_none() {
        return;
    }
    let suite = async {
        let mongo = OwnMongo::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let specs = dir.path().join("spec.yaml");
        std::fs::write(&specs, SPEC).expect("write spec");
        let mut subjects =
            vec![subject(&mongo, &specs, "prom serve").await, subject(&mongo, &specs, "prom run").await];
        for s in &subjects {
            s.publish_round(1).await;
        }
        for s in &mut subjects {
            s.assert_caught_up(1).await;
        }
        // A transactional projector in this process rides the same outages.
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let transactional = start_transactional(&subjects[1].bus, &stopped);
        assert_effects_exactly_once(&subjects[1].bus).await;
        let mut from: Vec<usize> = subjects.iter().map(|s| s.prom.seen.len()).collect();

        // Frozen: connections stay open and nothing answers.
        mongo.script("pause");
        tokio::time::sleep(OUTAGE).await;
        mongo.script("resume");
        from = assert_reported(&mut subjects, &from).await;
        for s in &subjects {
            s.publish_round(2).await;
        }
        for s in &mut subjects {
            s.assert_caught_up(2).await;
        }

        // Killed, then restarted on the same data and port.
        mongo.script("kill");
        tokio::time::sleep(OUTAGE).await;
        mongo.script("restart");
        assert_reported(&mut subjects, &from).await;
        for s in &subjects {
            s.publish_round(3).await;
        }
        for s in &mut subjects {
            s.assert_caught_up(3).await;
        }
        assert_effects_exactly_once(&subjects[1].bus).await;
        let _ = stop.send(true);
        let stopped = tokio::time::timeout(Duration::from_secs(30), transactional).await;
        stopped.expect("the transactional projector stops").expect("its task").expect("it ran without error");

        // The consumer of `prom run` caught up too, and both still stop cleanly.
        let run = &mut subjects[1].prom;
        let progress = run.seen.len();
        run.wait_for(progress, "[audit] handled=", Duration::from_secs(30)).await;
        let line = loop {
            let at = run.wait_for(run.seen.len(), "[audit] handled=", Duration::from_secs(30)).await;
            let line = run.seen[at - 1].clone();
            if line.ends_with("lag=0") {
                break line;
            }
        };
        assert!(line.contains("failed=0"), "{line}");
        for s in &mut subjects {
            s.prom.assert_alive();
            s.prom.server.terminate().await;
            s.prom.drain();
            let reports: Vec<&String> = s.prom.seen.iter().filter(|l| l.contains("MongoDB")).collect();
            eprintln!("{} reported:\n{reports:#?}", s.prom.name);
        }
    };
    tokio::time::timeout(Duration::from_secs(180), suite).await.expect("the fault suite hung");
}

/// `prom publish --mongo` many times in a row: every run stores its event and exits 0, and none
/// prints a panic (the driver's background tasks used to panic when the runtime dropped them).
#[test]
fn prom_publish_never_prints_a_panic_on_exit() {
    let Some(target) = Target::from_env() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let specs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../specs");
    let url = target.url_with_database();
    let heartbeat =
        r#"{"pid": 7, "name": "api", "host": "h1", "cpu_pct": 0.5, "mem_mib": 12, "region": "eu"}"#;
    let runs = 100;
    for run in 0..runs {
        let out = Command::new(PROM)
            .current_dir(dir.path())
            .env_remove("PROM_MONGO_URL")
            .env("RUST_BACKTRACE", "1")
            .args(["--mongo", &url, "publish", "--specs"])
            .arg(&specs)
            .args(["heartbeat.received", heartbeat])
            .output()
            .expect("run prom publish");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "run {run} printed a panic:\n{stderr}");
        assert!(out.status.success(), "run {run} failed: {stderr}");
    }
    let heads = tokio::runtime::Runtime::new().expect("runtime").block_on(async {
        let bus = target.open_async().await;
        let head = bus.heads("heartbeat.received").await.expect("head").total();
        target.drop_database().await;
        head
    });
    assert_eq!(heads, runs, "every run stored its event");
}
