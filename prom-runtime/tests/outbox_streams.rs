//! Stream appends inside the embedded store's transaction ([`StoreTx::append`]): the expected
//! version is checked in the transaction, so documents, publishes and the append commit
//! together; a conflict fails the append with `Error::StreamConflict` and the commit stores
//! nothing of the transaction; concurrent writers lose no update.

use prom_runtime::documents::{Documents, StoreTx};
use prom_runtime::outbox::Outbox;
use prom_runtime::stream::{ExpectedVersion, StreamId};
use prom_runtime::{Error, EventBus, Producer, PublishOptions, Registry, SqliteBus};
use serde_json::{Value, json};
use std::sync::Arc;

const SPEC: &str = include_str!("streams/streams.yaml");

fn producer(dir: &tempfile::TempDir) -> Producer<SqliteBus> {
    let registry = Registry::from_yaml("streams.yaml", SPEC).expect("spec");
    Producer::new(SqliteBus::open(dir.path()).expect("open"), Arc::new(registry))
}

fn deposit(id: &str, cents: i64) -> (String, Value) {
    ("money.deposited".to_owned(), json!({ "accountId": id, "cents": cents }))
}

async fn doc(producer: &Producer<SqliteBus>, collection: &str, key: &str) -> Option<Value> {
    let mut tx = producer.transaction().expect("transaction");
    let found = tx.get(collection, key).await.expect("get");
    tx.rollback().await;
    found
}

async fn head(producer: &Producer<SqliteBus>, topic: &str) -> i64 {
    producer.bus().heads(topic).await.expect("head").total()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_commits_with_the_documents_and_publishes_of_its_transaction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = producer(&dir);
    let stream = StreamId::new("account", "a1");
    let mut tx = p.transaction().expect("transaction");
    tx.put("payments", "pay-1", json!({ "account": "a1", "cents": 5 })).await.expect("put");
    let appended = tx
        .append(
            stream.clone(),
            ExpectedVersion::NoStream,
            vec![("account.opened".into(), json!({ "accountId": "a1", "owner": "ada" })), deposit("a1", 5)],
        )
        .await
        .expect("append");
    assert_eq!((appended.first_version, appended.last_version), (1, 2));
    // Through the trait generated code uses.
    let more = Outbox::append(&mut tx, stream.clone(), ExpectedVersion::Exact(2), vec![deposit("a1", 7)])
        .await
        .expect("append again");
    assert_eq!(more.last_version, 3);
    tx.publish("counter.bumped", json!({ "counter": 1 }), PublishOptions::default()).await.expect("publish");
    tx.commit().await.expect("commit");

    assert_eq!(p.bus().stream_version(&stream).await.expect("version"), Some(3));
    assert!(doc(&p, "payments", "pay-1").await.is_some());
    assert_eq!(head(&p, "counter.bumped").await, 1);
    assert_eq!(head(&p, "money.deposited.v2").await, 2, "dual-write copies committed with the append");
    let report = prom_runtime::stream::verify(p.bus(), "account", Some("a1")).await.expect("verify");
    assert!(report.broken.is_none() && report.linked == 3, "the chain holds: {report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_commits_nothing_of_the_transaction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = producer(&dir);
    let stream = StreamId::new("account", "c1");
    p.append(stream.clone(), ExpectedVersion::NoStream, vec![deposit("c1", 1)]).await.expect("first");

    let mut tx = p.transaction().expect("transaction");
    tx.put("payments", "pay-2", json!({ "cents": 2 })).await.expect("put");
    tx.publish("counter.bumped", json!({ "counter": 2 }), PublishOptions::default()).await.expect("publish");
    let conflict = tx
        .append(stream.clone(), ExpectedVersion::NoStream, vec![deposit("c1", 2)])
        .await
        .expect_err("conflict");
    assert!(
        matches!(
            &conflict,
            Error::StreamConflict { expected: ExpectedVersion::NoStream, actual: Some(1), .. }
        ),
        "{conflict}"
    );
    let commit = tx.commit().await.expect_err("a transaction with a conflict does not commit");
    assert!(
        matches!(&commit, Error::TransactionAborted { reason } if reason.contains("expected version")),
        "{commit}"
    );
    assert_eq!(doc(&p, "payments", "pay-2").await, None);
    assert_eq!(head(&p, "counter.bumped").await, 0);
    assert_eq!(p.bus().stream_version(&stream).await.expect("version"), Some(1));
    assert_eq!(head(&p, "money.deposited").await, 1);

    // An invalid payload is refused before anything is written and does not doom it.
    let mut tx = p.transaction().expect("transaction");
    let invalid = tx
        .append(stream.clone(), ExpectedVersion::Exact(1), vec![deposit("c1", 0)])
        .await
        .expect_err("cents must be at least 1");
    assert!(
        matches!(&invalid, Error::Invalid { errors, .. } if errors.iter().any(|e| e.contains("/cents"))),
        "{invalid}"
    );
    let other = tx.append(stream.clone(), ExpectedVersion::Exact(1), vec![deposit("c2", 3)]).await;
    assert!(matches!(other, Err(Error::StreamIdMismatch { .. })), "{other:?}");
    tx.append(stream.clone(), ExpectedVersion::Exact(1), vec![deposit("c1", 3)]).await.expect("valid append");
    tx.commit().await.expect("commit");
    assert_eq!(p.bus().stream_version(&stream).await.expect("version"), Some(2));
}

/// One payment: the payment document and the deposit commit together, the deposit expecting
/// the version read before the transaction; a conflict retries the whole transaction.
async fn pay(p: &Producer<SqliteBus>, stream: &StreamId, payment: String) -> u32 {
    let mut attempts = 0;
    loop {
        attempts += 1;
        assert!(attempts < 500, "{payment}: never committed");
        let version = p.bus().stream_version(stream).await.expect("version").unwrap_or(0);
        let mut tx: StoreTx = p.transaction().expect("transaction");
        tx.put("payments", &payment, json!({ "version": version + 1 })).await.expect("put");
        match tx.append(stream.clone(), ExpectedVersion::Exact(version), vec![deposit(&stream.id, 1)]).await {
            Ok(_) => {
                tx.commit().await.expect("commit");
                return attempts;
            }
            Err(Error::StreamConflict { .. }) => tx.rollback().await,
            Err(e) => panic!("{payment}: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_transactions_lose_no_update() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = producer(&dir);
    let stream = StreamId::new("account", "hot");
    p.append(stream.clone(), ExpectedVersion::NoStream, vec![deposit("hot", 1)]).await.expect("open");
    let (writers, each) = (6, 20);
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (p, stream) = (p.clone(), stream.clone());
        tasks.push(tokio::spawn(async move {
            let mut attempts = 0;
            for i in 0..each {
                attempts += pay(&p, &stream, format!("w{w}-{i}")).await;
            }
            attempts
        }));
    }
    for task in tasks {
        task.await.expect("writer");
    }
    let total = writers * each + 1;
    let records = p.read_stream(&stream, 0, 10_000).await.expect("read");
    let versions: Vec<u64> = records.iter().map(|r| r.version).collect();
    assert_eq!(versions, (1..=total).collect::<Vec<_>>(), "versions gap-free, none lost");
    for w in 0..writers {
        for i in 0..each {
            let payment = doc(&p, "payments", &format!("w{w}-{i}")).await.expect("every payment committed");
            let at = payment["version"].as_u64().expect("version");
            assert_eq!(records[usize::try_from(at - 1).expect("small")].version, at);
        }
    }
    assert_eq!(head(&p, "money.deposited").await, i64::try_from(total).expect("small"));
}
