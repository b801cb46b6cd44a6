//! The transactional projector's behaviour with one document-API handler, on every store: the
//! embedded store always, MongoDB when `PROM_MONGO_URL` names a server (feature `mongo`). One case
//! table, run per store: every event's effects exactly once (also with events of one key queued
//! behind another's, and across a restart), a failing or panicking handler retried, an event that
//! always fails dead-lettered exactly once while later events go on.

mod common;

use prom_runtime::EventRecord;
use prom_runtime::consumer::SubscribeOptions;
use prom_runtime::documents::{Declared, Documents, DocumentsExt, TxOptions};
use prom_runtime::project::{DocTxFuture, EmbeddedTxProjector, TransactionalSpec, TxStats};
use prom_runtime::retry::RetryPolicy;
use prom_runtime::runner::FailurePolicy;
use prom_runtime::{EventBus, Producer, PublishOptions, Registry, SqliteBus};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
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
            fail: { type: string, enum: [once, always, panic] }
projectors:
  ledger:
    kind: transactional
    topic: ledger.entry
    handler: crate::ledger
    collection: effects
    indexes: [{ keys: { kind: 1 } }]
"#;

/// Events whose first attempt failed already (the "once" cases), across stores.
static FAILED_ONCE: Mutex<Option<HashSet<String>>> = Mutex::new(None);

fn first_attempt(id: &str) -> bool {
    let mut failed = FAILED_ONCE.lock().unwrap_or_else(|e| e.into_inner());
    failed.get_or_insert_with(HashSet::new).insert(id.to_owned())
}

/// The handler under test: a counter per event (exactly once means 1) and each account's sum.
fn ledger<'a>(event: &'a EventRecord, docs: &'a mut dyn Documents) -> DocTxFuture<'a> {
    Box::pin(async move {
        let id = event.id.to_string();
        match event.payload["fail"].as_str() {
            Some("always") => return Err(format!("event {id} always fails").into()),
            Some("once") if first_attempt(&id) => return Err("the first attempt fails".into()),
            Some("panic") if first_attempt(&id) => panic!("the handler panics on its first attempt"),
            _ => {}
        }
        let count = docs.get("effects", &id).await?.map_or(0, |d| d["count"].as_i64().unwrap_or(0));
        docs.put("effects", &id, json!({ "kind": "effect", "count": count + 1 })).await?;
        let account = event.payload["account"].as_str().unwrap_or("?");
        let mut sum: Value = docs.get_as("sums", account).await?.unwrap_or(json!({ "sum": 0, "events": 0 }));
        sum["sum"] = json!(sum["sum"].as_i64().unwrap_or(0) + event.payload["amount"].as_i64().unwrap_or(0));
        sum["events"] = json!(sum["events"].as_i64().unwrap_or(0) + 1);
        docs.put("sums", account, sum).await?;
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

fn opts(member: &str) -> SubscribeOptions {
    SubscribeOptions {
        member: Some(member.into()),
        poll_timeout: Duration::from_millis(50),
        batch_size: 10,
        ..SubscribeOptions::default()
    }
}

fn policy() -> FailurePolicy {
    let retry = RetryPolicy {
        max_attempts: 3,
        backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
    };
    FailurePolicy { retry, dlq: true }
}

/// One store the case table runs on (with what keeps its data: the directory, the database).
enum Store {
    Embedded(Producer<SqliteBus>, #[allow(dead_code)] tempfile::TempDir),
    #[cfg(feature = "mongo")]
    Mongo(Producer<prom_runtime::bus::mongo::MongoBus>, common::mongo::Target),
}

type Running =
    (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<prom_runtime::Result<()>>, Arc<TxStats>);

impl Store {
    fn stores() -> Vec<Store> {
        let (registry, _) = registry();
        let registry = Arc::new(registry);
        let dir = tempfile::tempdir().expect("tempdir");
        let bus = SqliteBus::open(dir.path()).expect("open");
        #[allow(unused_mut)]
        let mut stores = vec![Store::Embedded(Producer::new(bus, registry.clone()), dir)];
        #[cfg(feature = "mongo")]
        if let Some(target) = common::mongo::Target::from_env() {
            stores.push(Store::Mongo(Producer::new(target.open(), registry), target));
        }
        stores
    }

    fn name(&self) -> &'static str {
        match self {
            Store::Embedded(..) => "embedded",
            #[cfg(feature = "mongo")]
            Store::Mongo(..) => "mongo",
        }
    }

    fn start(&self, member: &str) -> Running {
        let (_, spec) = registry();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        match self {
            Store::Embedded(producer, _) => {
                let projector = EmbeddedTxProjector::new(producer.clone(), spec, opts(member), policy());
                let stats = projector.stats();
                (stop, tokio::spawn(projector.run(ledger, shutdown)), stats)
            }
            #[cfg(feature = "mongo")]
            Store::Mongo(producer, _) => {
                use prom_runtime::project::{DocsOnMongo, TransactionalProjector};
                let declared = spec.declared.clone();
                let projector = TransactionalProjector::new(producer.clone(), spec, opts(member), policy());
                let stats = projector.stats();
                let handler = DocsOnMongo::new(Arc::new(ledger), declared);
                (stop, tokio::spawn(projector.run(handler, shutdown)), stats)
            }
        }
    }

    async fn publish(&self, payload: Value) {
        let receipt = match self {
            Store::Embedded(p, _) => p.publish("ledger.entry", payload, PublishOptions::default()).await,
            #[cfg(feature = "mongo")]
            Store::Mongo(p, _) => p.publish("ledger.entry", payload, PublishOptions::default()).await,
        };
        receipt.expect("publish");
    }

    async fn dead_letters(&self) -> usize {
        let read = match self {
            Store::Embedded(p, _) => {
                p.bus().read_topic("dlq.ledger.entry", &prom_runtime::TopicPosition::start(), 10_000).await
            }
            #[cfg(feature = "mongo")]
            Store::Mongo(p, _) => {
                p.bus().read_topic("dlq.ledger.entry", &prom_runtime::TopicPosition::start(), 10_000).await
            }
        };
        read.expect("read dlq").len()
    }

    /// Every effect counter, and the sums of `accounts`, through the document API.
    async fn state(&self, accounts: &[String]) -> (Vec<i64>, BTreeMap<String, Value>) {
        let declared = Declared::none().with("effects", "kind");
        async fn read(docs: &mut dyn Documents, accounts: &[String]) -> (Vec<i64>, BTreeMap<String, Value>) {
            let effects = docs.find("effects", "kind", json!("effect")).await.expect("find effects");
            let counts = effects.iter().map(|d| d["count"].as_i64().unwrap_or(-1)).collect();
            let mut sums = BTreeMap::new();
            for account in accounts {
                if let Some(sum) = docs.get("sums", account).await.expect("sum") {
                    sums.insert(account.clone(), json!({ "sum": sum["sum"], "events": sum["events"] }));
                }
            }
            (counts, sums)
        }
        match self {
            Store::Embedded(p, _) => {
                let mut tx = p.transaction_with(TxOptions { declared, ..TxOptions::default() }).expect("tx");
                let state = read(&mut tx, accounts).await;
                tx.rollback().await;
                state
            }
            #[cfg(feature = "mongo")]
            Store::Mongo(p, _) => {
                let bus = p.bus();
                let mut session = bus.client().start_session().await.expect("session");
                let mut docs =
                    prom_runtime::documents::MongoDocuments::new(bus.database(), &mut session, &declared);
                read(&mut docs, accounts).await
            }
        }
    }

    async fn cleanup(&self) {
        #[cfg(feature = "mongo")]
        if let Store::Mongo(_, target) = self {
            target.drop_database().await;
        }
    }
}

async fn stop((stop, task, _): Running) {
    let _ = stop.send(());
    task.await.expect("join").expect("the projector ran without error");
}

/// Waits (90 s at most, against hangs) until `done(stats)` holds.
async fn wait(what: &str, stats: &TxStats, done: impl Fn(&TxStats) -> bool) {
    let started = Instant::now();
    while !done(stats) {
        assert!(started.elapsed() < Duration::from_secs(90), "{what}: timed out with {stats:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One case: events published, then what the store must hold.
async fn exactly_once_across_interleaved_keys_and_a_restart(store: &Store) {
    let accounts: Vec<String> = (0..3).map(|a| format!("a{a}")).collect();
    let mut expected: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    // Published before the projector starts: batches hold events of several keys with later
    // events of the same key queued behind them — the cursor must not skip those.
    for n in 0..60_i64 {
        let account = &accounts[(n % 7 % 3) as usize];
        store.publish(json!({ "n": n, "account": account, "amount": n + 1 })).await;
        let e = expected.entry(account.clone()).or_default();
        e.0 += n + 1;
        e.1 += 1;
    }
    let running = store.start("m1");
    wait("60 applied", &running.2, |s| s.applied.load(Relaxed) == 60).await;
    stop(running).await;
    for n in 60..65_i64 {
        store.publish(json!({ "n": n, "account": "a0", "amount": 1 })).await;
        let e = expected.entry("a0".into()).or_default();
        e.0 += 1;
        e.1 += 1;
    }
    let running = store.start("m2");
    wait("5 more applied", &running.2, |s| s.applied.load(Relaxed) == 5).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop(running).await;
    let (counts, sums) = store.state(&accounts).await;
    assert_eq!(counts.len(), 65, "{}: one effect document per event", store.name());
    assert!(
        counts.iter().all(|&c| c == 1),
        "{}: every effect applied exactly once: {counts:?}",
        store.name()
    );
    let want: BTreeMap<String, Value> = expected
        .iter()
        .map(|(a, (sum, events))| (a.clone(), json!({ "sum": sum, "events": events })))
        .collect();
    assert_eq!(sums, want, "{}", store.name());
}

async fn failures_are_retried_then_dead_lettered_once(store: &Store) {
    let accounts = vec!["f".to_owned()];
    store.publish(json!({ "n": 1, "account": "f", "amount": 1, "fail": "once" })).await;
    store.publish(json!({ "n": 2, "account": "f", "amount": 10, "fail": "always" })).await;
    store.publish(json!({ "n": 3, "account": "f", "amount": 100, "fail": "panic" })).await;
    store.publish(json!({ "n": 4, "account": "f", "amount": 1000 })).await;
    let running = store.start("m1");
    wait("3 applied, 1 dead-lettered", &running.2, |s| {
        s.applied.load(Relaxed) == 3 && s.dead_lettered.load(Relaxed) == 1
    })
    .await;
    assert!(running.2.retried.load(Relaxed) >= 4, "{}: {:?}", store.name(), running.2);
    stop(running).await;
    // A restart finds everything applied or dead-lettered: nothing happens twice.
    let running = store.start("m2");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(running.2.applied.load(Relaxed), 0, "{}", store.name());
    stop(running).await;
    assert_eq!(store.dead_letters().await, 1, "{}: dead-lettered exactly once", store.name());
    let (counts, sums) = store.state(&accounts).await;
    assert_eq!(counts, [1, 1, 1], "{}", store.name());
    assert_eq!(sums["f"], json!({ "sum": 1101, "events": 3 }), "{}", store.name());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_on_every_store() {
    for store in Store::stores() {
        exactly_once_across_interleaved_keys_and_a_restart(&store).await;
        store.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_and_dead_letters_on_every_store() {
    for store in Store::stores() {
        failures_are_retried_then_dead_lettered_once(&store).await;
        store.cleanup().await;
    }
}
