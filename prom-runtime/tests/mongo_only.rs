//! `Pipeline::only` on MongoDB: a service runs only the projector it names; an unselected
//! transactional projector needs no handler, does not run, and its group keeps its events for
//! the service that runs it later.
#![cfg(feature = "mongo")]

mod common;

use common::mongo::Target;
use prom_runtime::bus::mongo::mongodb::bson::{Bson, Document, doc};
use prom_runtime::bus::mongo::mongodb::{ClientSession, Database};
use prom_runtime::pipeline::Component;
use prom_runtime::project::TxFuture;
use prom_runtime::{EventRecord, Pipeline, PublishOptions};
use serde_json::json;
use std::time::Duration;

const SPEC: &str = "
topics:
  account.credited:
    key: /account
    versions:
      1:
        schema:
          type: object
          required: [account, amount]
          properties: { account: { type: string }, amount: { type: integer } }
projectors:
  accounts:
    kind: changelog
    topic: account.credited
    collection: accounts
  balances:
    kind: transactional
    topic: account.credited
    handler: crate::balances
";

fn spec() -> prom_runtime::system::System {
    prom_runtime::system::lint_yaml("accounts.yaml", SPEC).expect("the spec lints clean")
}

fn balances<'a>(event: &'a EventRecord, db: &'a Database, session: &'a mut ClientSession) -> TxFuture<'a> {
    Box::pin(async move {
        let account = event.payload["account"].as_str().unwrap_or_default().to_owned();
        let amount = event.payload["amount"].as_i64().unwrap_or_default();
        db.collection::<Document>("balances")
            .update_one(doc! { "_id": account }, doc! { "$inc": { "total": amount } })
            .upsert(true)
            .session(&mut *session)
            .await?;
        Ok(())
    })
}

/// An integer field, whichever width the driver chose.
fn integer(document: Option<Document>, field: &str) -> Option<i64> {
    match document?.get(field)? {
        Bson::Int32(n) => Some(i64::from(*n)),
        Bson::Int64(n) => Some(*n),
        _ => None,
    }
}

async fn field(db: &Database, collection: &str, field: &str) -> Option<i64> {
    integer(db.collection::<Document>(collection).find_one(doc! { "_id": "a-1" }).await.ok().flatten(), field)
}

/// Waits (at most 30 s) until `collection`'s `a-1` has `field` = `value`.
async fn until(db: Database, collection: &'static str, name: &'static str, value: i64) {
    for _ in 0..600 {
        if field(&db, collection, name).await == Some(value) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn only_runs_the_named_projector_and_leaves_the_others_events_in_place() {
    let Some(target) = Target::from_env() else { return };
    let bus = target.open_async().await;
    let db = bus.database().clone();
    // No handler for `balances`: it is not selected, so it is not needed.
    let pipeline = Pipeline::new(bus, spec(), |r| r)
        .expect("pipeline")
        .only([Component::projector("accounts")])
        .expect("a declared projector");
    for amount in [5, 7] {
        let payload = json!({ "account": "a-1", "amount": amount });
        let receipt =
            pipeline.producer().publish("account.credited", payload, PublishOptions::default()).await;
        receipt.expect("publish");
    }
    pipeline.run(until(db.clone(), "accounts", "amount", 7)).await.expect("run");
    assert_eq!(field(&db, "accounts", "amount").await, Some(7), "the selected changelog projector ran");
    assert_eq!(field(&db, "balances", "total").await, None, "the unselected transactional one did not");

    // The balances service, later: its group still has both events.
    let pipeline = Pipeline::new(target.open_async().await, spec(), |r| r)
        .expect("pipeline")
        .handle_transactional("balances", balances)
        .expect("handler")
        .only(["balances"])
        .expect("a plain name");
    pipeline.run(until(db.clone(), "balances", "total", 12)).await.expect("run");
    assert_eq!(field(&db, "balances", "total").await, Some(12), "both events, once each");
    target.drop_database().await;
}
