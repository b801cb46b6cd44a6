//! Failover: a three-member replica set (`scripts/mongo.sh start3`) loses its primary to SIGKILL
//! a few times while events are published and consumed without pause. Afterwards every
//! acknowledged event is stored at its receipt's offset, the changelog projector (in a real
//! `prom run` process) holds the last state of every key, the changefeed's changes of each key
//! never go back and end at the last one, and no change is published twice (it resumed from
//! its token), and the
//! transactional projector applied each event exactly once.
//!
//! Starts three mongod of its own, so it runs only when asked: `PROM_MONGO_RS3=1`.
#![cfg(all(feature = "mongo", unix))]

mod common;

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
use prom_runtime::{EventBus, EventRecord, Producer, PublishOptions, Receipt, Registry};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A changelog projector feeding a changefeed; the transactional projector runs in this process.
const SPEC: &str = r#"
topics:
  process.state:
    key: /processId
    partitions: 4
    versions:
      1:
        schema:
          type: object
          required: [processId, seq]
          properties:
            processId: { type: string }
            seq: { type: integer }
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

/// One publisher task per key, each publishing seq 1, 2, ... without pause.
const KEYS: [&str; 6] = ["p0", "p1", "p2", "p3", "p4", "p5"];
/// How many times the primary is killed.
const KILLS: usize = 3;

/// A three-member replica set of this test's own; stopped (data deleted) on drop.
struct ReplicaSet {
    state: tempfile::TempDir,
    url: String,
}

impl ReplicaSet {
    fn start() -> ReplicaSet {
        let state = tempfile::tempdir().expect("state dir");
        let mut set = ReplicaSet { state, url: String::new() };
        set.url = set.script(&["start3"]).trim().to_string();
        set
    }

    fn script(&self, args: &[&str]) -> String {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/mongo.sh");
        let out = Command::new("bash")
            .arg(script)
            .args(args)
            .env("PROM_MONGO_STATE", self.state.path())
            .output()
            .expect("run scripts/mongo.sh");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "scripts/mongo.sh {args:?} failed: {stderr}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The member index listening on `port`.
    fn member_on(&self, port: &str) -> String {
        let members = self.script(&["members3"]);
        members
            .lines()
            .find_map(|line| {
                let mut fields = line.split_whitespace();
                let (n, p) = (fields.next()?, fields.next()?);
                (p == port).then(|| n.to_string())
            })
            .unwrap_or_else(|| panic!("no member listens on port {port}: {members}"))
    }

    fn url(&self, database: &str) -> String {
        match self.url.split_once("/?") {
            Some((hosts, query)) => format!("{hosts}/{database}?{query}"),
            None => panic!("unexpected URL from scripts/mongo.sh: {}", self.url),
        }
    }
}

impl Drop for ReplicaSet {
    fn drop(&mut self) {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/mongo.sh");
        let _ =
            Command::new("bash").arg(script).arg("stop3").env("PROM_MONGO_STATE", self.state.path()).output();
    }
}

/// The port of the current primary, as the driver's `hello` reports it.
async fn primary_port(bus: &MongoBus) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let hello = bus.client().database("admin").run_command(doc! { "hello": 1 }).await;
        if let Ok(Ok(primary)) = hello.as_ref().map(|h| h.get_str("primary")) {
            return primary.rsplit(':').next().expect("host:port").to_string();
        }
        assert!(Instant::now() < deadline, "no primary within 60 s: {hello:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The transactional handler: one counter per event id, in the transaction.
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

fn registry() -> Registry {
    let linted = prom_spec::lint_str("failover.yaml", SPEC);
    Registry::from_spec(&linted.spec).expect("registry")
}

fn start_transactional(
    bus: &MongoBus,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<prom_runtime::Result<()>> {
    let linted = prom_spec::lint_str("failover.yaml", SPEC);
    let registry = registry();
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

/// Publishes seq 1, 2, ... for `key` until `stop`; a publish that fails (the primary died) is
/// retried with the same dedup key, so it is stored once whether or not the failed attempt
/// committed. Returns the acknowledged receipts by seq.
async fn publisher(
    producer: Producer<MongoBus>,
    key: &'static str,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<(i64, Receipt)> {
    let mut acked = Vec::new();
    let mut seq = 1i64;
    while !*stop.borrow() {
        let options = PublishOptions { dedup: Some(format!("{key}-{seq}")), ..PublishOptions::default() };
        let payload = json!({ "processId": key, "seq": seq });
        match producer.publish("process.state", payload, options).await {
            Ok(receipt) => {
                acked.push((seq, receipt));
                seq += 1;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    acked
}

async fn find_all(db: &Database, collection: &str) -> Vec<Document> {
    db.collection::<Document>(collection)
        .find(doc! {})
        .await
        .expect("find")
        .try_collect()
        .await
        .expect("read")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_acknowledged_is_lost_when_the_primary_dies() {
    if std::env::var("PROM_MONGO_RS3").map_or(true, |v| v != "1") {
        eprintln!("skipped: set PROM_MONGO_RS3=1 to run the three-member failover test");
        return;
    }
    let set = ReplicaSet::start();
    let url = set.url("failover");
    let dir = tempfile::tempdir().expect("tempdir");
    let specs = dir.path().join("spec.yaml");
    std::fs::write(&specs, SPEC).expect("write spec");
    let specs = specs.to_str().expect("UTF-8 path");
    let mut prom =
        Server::spawn(&["--mongo", &url, "run", "--specs", specs, "--progress", "5", "--stand-in", "audit"]);
    let bus = MongoBus::open(&url).await.expect("open the replica set");
    let deadline = Instant::now() + Duration::from_secs(60);
    while bus
        .database()
        .collection::<Document>(STATES)
        .find_one(doc! { "_id": "processes-changed" })
        .await
        .ok()
        .flatten()
        .is_none()
    {
        assert!(Instant::now() < deadline, "the changefeed did not start in time");
        if let Some(status) = prom.child.try_wait().expect("wait") {
            panic!("prom run exited: {status}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let producer = Producer::new(bus.clone(), Arc::new(registry()));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let transactional = start_transactional(&bus, &stopped);
    let (stop_publishing, publishing) = tokio::sync::watch::channel(false);
    let publishers: Vec<_> =
        KEYS.iter().map(|&key| tokio::spawn(publisher(producer.clone(), key, publishing.clone()))).collect();

    for round in 0..KILLS {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let member = set.member_on(&primary_port(&bus).await);
        set.script(&["kill3", &member]);
        // Publishing goes on through the election; the killed member comes back as a secondary.
        tokio::time::sleep(Duration::from_secs(6)).await;
        let new_primary = set.member_on(&primary_port(&bus).await);
        assert_ne!(new_primary, member, "round {round}: a new primary was elected");
        set.script(&["restart3", &member]);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop_publishing.send(true).expect("stop publishing");
    let mut acked: BTreeMap<&str, Vec<(i64, Receipt)>> = BTreeMap::new();
    for (key, task) in KEYS.iter().zip(publishers) {
        acked.insert(key, task.await.expect("publisher"));
    }

    // Every acknowledged event is stored, at its receipt's offset, once.
    let stored = bus
        .read_topic("process.state", &prom_runtime::TopicPosition::start(), usize::MAX)
        .await
        .expect("read");
    // Gap-free per partition (offsets are numbered per partition), up to each partition's head.
    let heads = bus.heads("process.state").await.expect("head");
    let mut per_partition: BTreeMap<u32, Vec<i64>> = BTreeMap::new();
    for event in &stored {
        per_partition.entry(event.partition).or_default().push(event.offset);
    }
    for (partition, offsets) in &per_partition {
        let want: Vec<i64> = (1..=heads.at(*partition)).collect();
        assert_eq!(*offsets, want, "partition {partition}: offsets stay gap-free across failovers");
    }
    let by_offset: BTreeMap<(u32, i64), &EventRecord> =
        stored.iter().map(|e| ((e.partition, e.offset), e)).collect();
    for (key, receipts) in &acked {
        assert!(receipts.len() > 10, "{key}: publishing went on ({} acknowledged)", receipts.len());
        for (seq, receipt) in receipts {
            let event = by_offset
                .get(&(receipt.partition, receipt.offset))
                .unwrap_or_else(|| panic!("{key} seq {seq} is lost"));
            assert_eq!(event.payload["seq"], json!(seq), "{key}: offset {} holds seq {seq}", receipt.offset);
        }
        let stored_seqs: Vec<i64> = stored
            .iter()
            .filter(|e| e.key.as_deref() == Some(key))
            .filter_map(|e| e.payload["seq"].as_i64())
            .collect();
        let want: Vec<i64> = (1..=receipts.len() as i64).collect();
        // A publish whose acknowledgment was lost with the primary may be stored without a
        // receipt only as the last seq (the task retried it with the same dedup key).
        assert!(
            stored_seqs == want || stored_seqs == [want.clone(), vec![want.len() as i64 + 1]].concat(),
            "{key}: each seq stored once, in order: {stored_seqs:?}"
        );
    }

    // The changelog projector and the changefeed caught up. The projector collapses the events
    // of a key in one batch to the newest (after an election it catches up in large batches),
    // so a key has at most one change per event; its changes end at its last seq, and no
    // change (cluster time) is published twice.
    let last_seq = |key: &str| stored.iter().filter(|e| e.key.as_deref() == Some(key)).count() as i64;
    let change_seqs = |changes: &[EventRecord], key: &str| -> Vec<i64> {
        changes
            .iter()
            .filter(|e| e.key.as_deref() == Some(key))
            .filter_map(|e| e.payload["document"]["seq"].as_i64())
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let changes = bus
            .read_topic("processes.changed", &prom_runtime::TopicPosition::start(), usize::MAX)
            .await
            .expect("read changes");
        let projected = find_all(bus.database(), "processes").await;
        let done = KEYS.iter().all(|key| {
            let seq = projected
                .iter()
                .find(|d| d.get_str("_id") == Ok(key))
                .and_then(|d| d.get_i64("seq").ok().or(d.get_i32("seq").ok().map(i64::from)));
            seq == Some(last_seq(key)) && change_seqs(&changes, key).last() == Some(&last_seq(key))
        });
        if done {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let changes = bus
                .read_topic("processes.changed", &prom_runtime::TopicPosition::start(), usize::MAX)
                .await
                .expect("read changes");
            for key in KEYS {
                let seqs = change_seqs(&changes, key);
                // `updateLookup` shows the document as it is when the change is read, so seqs
                // may repeat; they never go back.
                assert!(seqs.windows(2).all(|w| w[0] <= w[1]), "{key}: changes go back: {seqs:?}");
                assert_eq!(seqs.last(), Some(&last_seq(key)), "{key}: the last change is the last event");
                assert_eq!(seqs.first(), Some(&1), "{key}: the first change is the insert of seq 1");
            }
            // Each change of the collection is published once: no cluster time twice.
            let times: Vec<&str> =
                changes.iter().filter_map(|e| e.headers.get("x-cluster-time").map(String::as_str)).collect();
            assert_eq!(times.len(), changes.len(), "every change carries its cluster time");
            let distinct: std::collections::BTreeSet<&str> = times.iter().copied().collect();
            assert_eq!(distinct.len(), times.len(), "a change was published twice");
            break;
        }
        if let Some(status) = prom.child.try_wait().expect("wait") {
            panic!("prom run exited: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "the projector and changefeed did not catch up: {} changes for {} events",
            changes.len(),
            stored.len()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // The transactional projector applied every event exactly once.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let effects = find_all(bus.database(), "effects").await;
        let twice: Vec<&Document> = effects.iter().filter(|d| d.get_i32("count").unwrap_or(0) != 1).collect();
        assert!(twice.is_empty(), "effects applied more than once: {twice:?}");
        if effects.len() == stored.len() {
            break;
        }
        if Instant::now() >= deadline || transactional.is_finished() {
            let dead = bus
                .read_topic("dlq.process.state", &prom_runtime::TopicPosition::start(), usize::MAX)
                .await
                .expect("read the DLQ");
            let reasons: Vec<_> = dead.iter().map(|e| &e.headers).take(3).collect();
            let ended = if transactional.is_finished() { "ended" } else { "still running" };
            panic!(
                "{} effects for {} events; the projector task {ended}; {} dead letters, first: {reasons:?}",
                effects.len(),
                stored.len(),
                dead.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    stop.send(true).expect("stop");
    transactional.await.expect("projector task").expect("the projector ends cleanly");
    drop(prom);
}
