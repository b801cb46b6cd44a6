//! `Pipeline::run` on MongoDB starts the declared projectors and changefeeds with the consumers;
//! transactional projectors need their handler. The example's `mongo_end_to_end` test runs the
//! whole generated pipeline; these pin the errors.
#![cfg(feature = "mongo")]

mod common;

use common::mongo::Target;
use prom_runtime::bus::mongo::mongodb::bson::{Bson, Document, doc};
use prom_runtime::bus::mongo::mongodb::{ClientSession, Database};
use prom_runtime::project::TxFuture;
use prom_runtime::{Error, EventRecord, MemoryBus, Pipeline, PublishOptions};
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
    prom_runtime::system::lint_yaml("accounts.yaml", SPEC).expect("lints clean")
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
fn integer(document: &Document, field: &str) -> Option<i64> {
    match document.get(field)? {
        Bson::Int32(n) => Some(i64::from(*n)),
        Bson::Int64(n) => Some(*n),
        _ => None,
    }
}

#[test]
fn transactional_handlers_must_name_a_declared_transactional_projector() {
    let pipeline = || Pipeline::new(MemoryBus::new(), spec(), |r| r).expect("pipeline");
    let err = pipeline().handle_transactional("balance", balances).err().expect("unknown");
    assert!(
        matches!(&err, Error::UnknownComponent { kind, name, hint: Some(close), .. }
            if kind == "projector" && name == "balance" && close == "balances"),
        "{err:?}"
    );
    assert!(err.to_string().contains("no projector `balance`; did you mean `balances`?"), "{err}");
    let err = pipeline().handle_transactional("accounts", balances).err().expect("changelog");
    assert!(
        matches!(&err, Error::WrongProjectorKind { projector, kind: "changelog", .. } if projector == "accounts"),
        "{err:?}"
    );
    assert!(err.to_string().contains("is a changelog projector: it needs no handler"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transactional_projector_without_a_handler_stops_the_start() {
    let Some(target) = Target::from_env() else { return };
    let pipeline = Pipeline::new(target.open_async().await, spec(), |r| r).expect("pipeline");
    let err = pipeline.run(async {}).await.expect_err("no handler");
    assert!(matches!(&err, Error::MissingTxHandler { projector } if projector == "balances"), "{err:?}");
    assert!(err.to_string().contains("no handler for transactional projector `balances`"), "{err}");
    target.drop_database().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn run_projects_into_both_collections() {
    let Some(target) = Target::from_env() else { return };
    let bus = target.open_async().await;
    let db = bus.database().clone();
    let pipeline = Pipeline::new(bus, spec(), |r| r)
        .expect("pipeline")
        .handle_transactional("balances", balances)
        .expect("handler");
    for amount in [5, 7] {
        let payload = json!({ "account": "a-1", "amount": amount });
        pipeline
            .producer()
            .publish("account.credited", payload, PublishOptions::default())
            .await
            .expect("publish");
    }
    let done = {
        let db = db.clone();
        async move {
            for _ in 0..600 {
                let balance = db.collection::<Document>("balances").find_one(doc! { "_id": "a-1" }).await;
                let mirrored = db.collection::<Document>("accounts").find_one(doc! { "_id": "a-1" }).await;
                let total = balance.ok().flatten().and_then(|d| d.get_i64("total").ok());
                let amount = mirrored.ok().flatten().and_then(|d| integer(&d, "amount"));
                if (total, amount) == (Some(12), Some(7)) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    pipeline.run(done).await.expect("run");
    let balance = db.collection::<Document>("balances").find_one(doc! { "_id": "a-1" }).await.expect("find");
    assert_eq!(balance.and_then(|d| d.get_i64("total").ok()), Some(12), "the transactional projector ran");
    let mirrored = db.collection::<Document>("accounts").find_one(doc! { "_id": "a-1" }).await.expect("find");
    assert_eq!(mirrored.and_then(|d| integer(&d, "amount")), Some(7), "the changelog projector ran");
    target.drop_database().await;
}
