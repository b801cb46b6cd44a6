//! The transactional projector against a real MongoDB: a child process projecting while events
//! flow is SIGKILLed at random points, many times; afterwards every event's effect is applied
//! exactly once. Also: handler retries, dead letters, and a redelivered event being skipped.
//!
//! The child is this test binary re-executed with `PROM_TXN_CHILD_DB` set.
#![cfg(feature = "mongo")]

mod common;

use common::mongo::Target;
use futures_util::TryStreamExt;
use prom_runtime::bus::mongo::MongoBus;
use prom_runtime::bus::mongo::mongodb::bson::{Bson, Document, doc};
use prom_runtime::bus::mongo::mongodb::{ClientSession, Collection, Database};
use prom_runtime::consumer::SubscribeOptions;
use prom_runtime::project::{HandlerError, TransactionalProjector, TransactionalSpec, TxFuture, TxHandler};
use prom_runtime::retry::RetryPolicy;
use prom_runtime::runner::FailurePolicy;
use prom_runtime::{EventBus, EventRecord, Producer, PublishOptions, Registry};
use serde_json::json;
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
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
            fail: { type: string, enum: [once, always] }
projectors:
  ledger:
    kind: transactional
    topic: ledger.entry
    handler: crate::ledger
"#;

const ACCOUNTS: u64 = 5;

fn registry() -> (Registry, TransactionalSpec) {
    let linted = prom_spec::lint_str("inline.yaml", SPEC);
    assert!(!linted.has_errors(), "{}", linted.render());
    let registry = Registry::from_spec(&linted.spec).expect("registry");
    let spec = TransactionalSpec::from_system(
        prom_runtime::system::System::from_spec(&linted.spec).projector("ledger").expect("declared"),
        &registry,
    )
    .expect("spec");
    (registry, spec)
}

fn projector(bus: MongoBus, member: &str, policy: FailurePolicy) -> TransactionalProjector {
    let (registry, spec) = registry();
    let opts = SubscribeOptions {
        member: Some(member.into()),
        poll_timeout: Duration::from_millis(50),
        batch_size: 10,
        ..SubscribeOptions::default()
    };
    TransactionalProjector::new(Producer::new(bus, Arc::new(registry)), spec, opts, policy)
}

/// The handler under test: two writes per event, both in the transaction — a counter keyed by
/// event id (exactly once means it ends at 1) and the account's running sum.
struct Ledger;

impl TxHandler for Ledger {
    fn handle<'a>(
        &'a self,
        event: &'a EventRecord,
        db: &'a Database,
        session: &'a mut ClientSession,
    ) -> TxFuture<'a> {
        Box::pin(apply(db, event, session))
    }
}

async fn apply(db: &Database, event: &EventRecord, session: &mut ClientSession) -> Result<(), HandlerError> {
    let amount = event.payload["amount"].as_i64().unwrap_or(0);
    let account = event.payload["account"].as_str().unwrap_or("?");
    let id = event.id.to_string();
    match event.payload["fail"].as_str() {
        Some("always") => return Err(HandlerError::failed(format!("event {id} always fails"))),
        Some("once") => {
            // The first attempt records itself outside the transaction, then fails (rolled back).
            let attempts = db.collection::<Document>("attempts");
            let first =
                attempts.update_one(doc! { "_id": &id }, doc! { "$inc": { "n": 1 } }).upsert(true).await?;
            if first.upserted_id.is_some() {
                return Err(HandlerError::failed("first attempt fails"));
            }
        }
        _ => {}
    }
    let effects = db.collection::<Document>("effects");
    effects
        .update_one(doc! { "_id": &id }, doc! { "$inc": { "count": 1 } })
        .upsert(true)
        .session(&mut *session)
        .await?;
    db.collection::<Document>("sums")
        .update_one(doc! { "_id": account }, doc! { "$inc": { "sum": amount, "events": 1 } })
        .upsert(true)
        .session(&mut *session)
        .await?;
    Ok(())
}

fn policy(max_attempts: u32, dlq: bool) -> FailurePolicy {
    let retry = RetryPolicy {
        max_attempts,
        backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
    };
    FailurePolicy { retry, dlq }
}

#[test]
fn txn_crash_child() {
    let (Ok(url), Ok(db)) = (std::env::var("PROM_TXN_CHILD_URL"), std::env::var("PROM_TXN_DB")) else {
        return;
    };
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    runtime.block_on(async move {
        let bus = MongoBus::open_database(&url, Some(&db)).await.expect("open");
        let projector = projector(bus.clone(), "child", policy(3, true));
        let ledger = Ledger;
        projector.run(ledger, std::future::pending()).await.expect("run");
    });
}

/// Aborts the transactions a killed child left open, as an operator would (the server would
/// otherwise hold them, and their locks, for `transactionLifetimeLimitSeconds`).
async fn kill_orphans(bus: &MongoBus, app: &str) -> usize {
    let admin = bus.client().database("admin");
    let pipeline = vec![
        doc! { "$currentOp": { "allUsers": true, "idleSessions": true } },
        doc! { "$match": { "clientMetadata.application.name": app, "lsid": { "$exists": true } } },
    ];
    let ops: Vec<Document> =
        admin.aggregate(pipeline).await.expect("currentOp").try_collect().await.expect("ops");
    let ids: Vec<Bson> =
        ops.iter().filter_map(|op| op.get_document("lsid").ok().cloned()).map(Bson::from).collect();
    if !ids.is_empty() {
        admin.run_command(doc! { "killSessions": ids.clone() }).await.expect("killSessions");
    }
    ids.len()
}

fn spawn_child(target: &Target, app: &str) -> std::process::Child {
    let separator = if target.url.contains('?') { '&' } else { '?' };
    Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "txn_crash_child", "--nocapture", "--test-threads=1"])
        .env("PROM_TXN_CHILD_URL", format!("{}{separator}appName={app}", target.url))
        .env("PROM_TXN_DB", &target.database)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
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

async fn all(coll: Collection<Document>) -> Vec<Document> {
    coll.find(doc! {}).await.expect("find").try_collect().await.expect("documents")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_applies_every_event_exactly_once() {
    if std::env::var("PROM_TXN_CHILD_URL").is_ok() {
        return;
    }
    let Some(target) = Target::from_env() else { return };
    let app = format!("prom-txn-{}", &target.database[target.database.len() - 8..]);
    let bus = target.open_async().await;
    let (registry, _) = registry();
    let producer = Producer::new(bus.clone(), Arc::new(registry));
    let seed =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(7, |d| d.as_nanos() as u64);
    let mut rng = Lcg(seed);

    // Events flow the whole time the children run and are killed.
    let publisher = {
        let producer = producer.clone();
        tokio::spawn(async move {
            let mut n = 0u64;
            let mut expected: BTreeMap<String, (i64, i64)> = BTreeMap::new();
            // At least 4 s and at least 300 events, however slow the machine is.
            let stop = Instant::now() + Duration::from_millis(4000);
            while Instant::now() < stop || n < 300 {
                let account = format!("a{}", n % ACCOUNTS);
                let amount = i64::try_from(n % 17).unwrap_or(0) + 1;
                let payload = json!({ "n": n, "account": account, "amount": amount });
                producer.publish("ledger.entry", payload, PublishOptions::default()).await.expect("publish");
                let entry = expected.entry(account).or_default();
                entry.0 += amount;
                entry.1 += 1;
                n += 1;
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
            (n, expected)
        })
    };
    let (mut kills, mut orphans) = (0, 0);
    while !publisher.is_finished() {
        let mut child = spawn_child(&target, &app);
        tokio::time::sleep(Duration::from_millis(150 + rng.next(350))).await;
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        kills += 1;
        orphans += kill_orphans(&bus, &app).await;
    }
    let (published, expected) = publisher.await.expect("publisher");
    let before_drain =
        bus.database().collection::<Document>("effects").count_documents(doc! {}).await.expect("count");

    // A last member drains what is left, in this process.
    let drained = projector(bus.clone(), "child", policy(3, true));
    let stats = drained.stats();
    let effects = bus.database().collection::<Document>("effects");
    let count = effects.clone();
    let until_done = async move {
        let deadline = Instant::now() + Duration::from_secs(30);
        while count.count_documents(doc! {}).await.expect("count") < published && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    drained.run(Ledger, until_done).await.expect("drain");

    let docs = all(effects).await;
    let twice: Vec<&Document> = docs.iter().filter(|d| d.get_i32("count").unwrap_or(0) != 1).collect();
    assert!(twice.is_empty(), "effects not applied exactly once: {twice:?} (seed {seed})");
    assert_eq!(docs.len() as u64, published, "every event applied (seed {seed})");
    let sums: BTreeMap<String, (i64, i64)> = all(bus.database().collection("sums"))
        .await
        .iter()
        .map(|d| {
            let id = d.get_str("_id").unwrap_or("?").to_string();
            let number = |f: &str| match d.get(f) {
                Some(Bson::Int32(v)) => i64::from(*v),
                Some(Bson::Int64(v)) => *v,
                _ => -1,
            };
            (id, (number("sum"), number("events")))
        })
        .collect();
    assert_eq!(sums, expected, "per-account sums (seed {seed})");
    assert!(
        kills >= 5 && published > 200,
        "too few kills ({kills}) or events ({published}) to mean anything"
    );
    eprintln!(
        "{published} events, {kills} kills ({orphans} open transactions aborted), {before_drain} applied by the \
         children, {} re-delivered and skipped in the drain",
        stats.already_applied.load(Relaxed)
    );
    target.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_handlers_retry_then_dead_letter_without_effects() {
    if std::env::var("PROM_TXN_CHILD_URL").is_ok() {
        return;
    }
    let Some(target) = Target::from_env() else { return };
    let bus = target.open_async().await;
    let (registry, _) = registry();
    let producer = Producer::new(bus.clone(), Arc::new(registry));
    let events = [
        json!({ "n": 0, "account": "a", "amount": 1 }),
        json!({ "n": 1, "account": "a", "amount": 10, "fail": "once" }),
        json!({ "n": 2, "account": "a", "amount": 100, "fail": "always" }),
        json!({ "n": 3, "account": "a", "amount": 1000 }),
    ];
    for payload in events {
        producer.publish("ledger.entry", payload, PublishOptions::default()).await.expect("publish");
    }
    let first = projector(bus.clone(), "m1", policy(3, true));
    let stats = first.stats();
    let progress = stats.clone();
    let until_done = async move {
        let deadline = Instant::now() + Duration::from_secs(20);
        let done = || progress.applied.load(Relaxed) + progress.dead_lettered.load(Relaxed);
        while done() < 4 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    first.run(Ledger, until_done).await.expect("run");

    let sums = all(bus.database().collection("sums")).await;
    assert_eq!(sums.len(), 1);
    assert_eq!(sums[0].get_i64("sum").or_else(|_| sums[0].get_i32("sum").map(i64::from)).ok(), Some(1011));
    let letters = bus
        .read_topic("dlq.ledger.entry", &prom_runtime::TopicPosition::start(), 10)
        .await
        .expect("dead letters");
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].payload["original"]["payload"]["n"], 2);
    assert_eq!(letters[0].payload["attempts"], 3);
    assert_eq!((stats.applied.load(Relaxed), stats.dead_lettered.load(Relaxed)), (3, 1));
    assert!(stats.retried.load(Relaxed) >= 3, "one retry for `once`, two for `always`");

    // A second member of the group starting from the same cursor finds nothing left to apply.
    let again = projector(bus.clone(), "m2", policy(3, true));
    let again_stats = again.stats();
    again.run(Ledger, tokio::time::sleep(Duration::from_millis(300))).await.expect("rerun");
    assert_eq!(again_stats.applied.load(Relaxed), 0);
    target.drop_database().await;
}
