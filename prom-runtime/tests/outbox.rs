//! The outbox, natively, on the embedded store: document writes and publishes in one store
//! transaction ([`StoreTx`]) commit together or not at all — a committed one leaves both, an
//! invalid payload or a refused write the caller rolls back leaves neither, a dropped one
//! neither — and concurrent writers neither lose an update nor an event.

use prom_runtime::documents::{Documents, DocumentsExt, StoreTx};
use prom_runtime::{Error, EventBus, Producer, PublishOptions, Registry, SqliteBus};
use serde_json::{Value, json};
use std::sync::Arc;

const SPEC: &str = r#"
topics:
  order.placed:
    key: /orderId
    versions:
      1:
        schema:
          type: object
          required: [orderId, total]
          properties:
            orderId: { type: string }
            total: { type: integer, minimum: 0 }
"#;

fn producer(dir: &tempfile::TempDir) -> Producer<SqliteBus> {
    let registry = Registry::from_yaml("inline.yaml", SPEC).expect("registry");
    Producer::new(SqliteBus::open(dir.path()).expect("open"), Arc::new(registry))
}

async fn order(producer: &Producer<SqliteBus>, id: &str) -> Option<Value> {
    let mut tx = producer.transaction().expect("transaction");
    let doc = tx.get("orders", id).await.expect("get");
    tx.rollback().await;
    doc
}

async fn events(producer: &Producer<SqliteBus>) -> Vec<Value> {
    let records = producer
        .bus()
        .read_topic("order.placed", &prom_runtime::TopicPosition::start(), 10_000)
        .await
        .expect("read");
    records.into_iter().map(|r| r.payload.into_value()).collect()
}

async fn place(tx: &mut StoreTx, id: &str, total: i64) -> Result<(), Error> {
    tx.put("orders", id, json!({ "total": total, "status": "placed" })).await?;
    tx.publish("order.placed", json!({ "orderId": id, "total": total }), PublishOptions::default()).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_transaction_leaves_the_document_and_the_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let producer = producer(&dir);
    let mut tx = producer.transaction().expect("transaction");
    place(&mut tx, "o1", 42).await.expect("place");
    tx.commit().await.expect("commit");
    assert_eq!(order(&producer, "o1").await, Some(json!({ "_id": "o1", "total": 42, "status": "placed" })));
    assert_eq!(events(&producer).await, [json!({ "orderId": "o1", "total": 42 })]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_payload_or_a_refused_write_leaves_neither() {
    let dir = tempfile::tempdir().expect("tempdir");
    let producer = producer(&dir);

    // The payload breaks the schema: refused like any publish, and the caller rolls back.
    let mut tx = producer.transaction().expect("transaction");
    tx.put("orders", "o2", json!({ "total": -1 })).await.expect("put");
    let invalid = tx
        .publish("order.placed", json!({ "orderId": "o2", "total": -1 }), PublishOptions::default())
        .await
        .expect_err("invalid payload");
    assert!(
        matches!(&invalid, Error::Invalid { errors, .. } if errors.iter().any(|e| e.contains("`/total`"))),
        "{invalid}"
    );
    tx.rollback().await;

    // The user's write is refused (not an object) after the event was published in the
    // transaction; dropping the transaction rolls the event back.
    let mut tx = producer.transaction().expect("transaction");
    tx.publish("order.placed", json!({ "orderId": "o3", "total": 3 }), PublishOptions::default())
        .await
        .expect("publish");
    let refused = tx.put("orders", "o3", json!([1, 2])).await.expect_err("not an object");
    assert!(matches!(&refused, Error::InvalidDocument { key, .. } if key == "o3"), "{refused}");
    drop(tx);

    assert_eq!(order(&producer, "o2").await, None);
    assert_eq!(order(&producer, "o3").await, None);
    assert!(events(&producer).await.is_empty(), "no event of a rolled-back transaction is stored");
    assert_eq!(producer.bus().heads("order.placed").await.expect("head").total(), 0, "no offset was used up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_past_its_timeout_is_rolled_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let producer = producer(&dir);
    let options = prom_runtime::documents::TxOptions {
        timeout: std::time::Duration::from_millis(200),
        ..Default::default()
    };
    let mut tx = producer.transaction_with(options).expect("transaction");
    place(&mut tx, "o4", 4).await.expect("place");
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let late = tx.get("orders", "o4").await.expect_err("timed out");
    assert!(
        matches!(&late, Error::TransactionAborted { reason } if reason.contains("held the store's writer")),
        "{late}"
    );
    assert!(matches!(tx.commit().await, Err(Error::TransactionAborted { .. })));
    assert_eq!(order(&producer, "o4").await, None);
    assert!(events(&producer).await.is_empty());
    // The store's writer is free again.
    producer
        .publish("order.placed", json!({ "orderId": "o5", "total": 5 }), PublishOptions::default())
        .await
        .expect("publish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_lose_no_update_and_no_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let producer = producer(&dir);
    let (writers, each) = (8, 25);
    let mut tasks = Vec::new();
    for w in 0..writers {
        let producer = producer.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..each {
                let mut tx = producer.transaction().expect("transaction");
                // Read-modify-write of one shared counter: transactions are serialized.
                let count: i64 = tx
                    .get_as::<Value>("counters", "orders")
                    .await
                    .expect("get")
                    .map_or(0, |d| d["n"].as_i64().unwrap_or(0));
                tx.put("counters", "orders", json!({ "n": count + 1 })).await.expect("put");
                place(&mut tx, &format!("w{w}-{i}"), i).await.expect("place");
                tx.commit().await.expect("commit");
            }
        }));
    }
    for task in tasks {
        task.await.expect("join");
    }
    let mut tx = producer.transaction().expect("transaction");
    let counter = tx.get("counters", "orders").await.expect("get").expect("counter");
    tx.rollback().await;
    assert_eq!(counter["n"], json!(writers * each), "no lost update");
    let stored = events(&producer).await;
    assert_eq!(stored.len(), (writers * each) as usize, "one event per committed transaction");
    for w in 0..writers {
        for i in 0..each {
            assert!(order(&producer, &format!("w{w}-{i}")).await.is_some());
        }
    }
}
