//! `Pipeline::only` on the embedded store: a service runs its own consumer from a shared spec,
//! the other consumer's group keeps its events, and bad selections are refused clearly.

use prom_runtime::pipeline::Component;
use prom_runtime::{Context, Error, Pipeline, PublishOptions, SqliteBus};
use serde::Deserialize;
use serde_json::json;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

const SPEC: &str = "
topics:
  orders.placed:
    key: /order
    versions:
      1:
        schema:
          type: object
          required: [order]
          properties: { order: { type: string } }
consumers:
  billing: { topic: orders.placed, from: earliest }
  shipping: { topic: orders.placed, from: earliest }
";

#[derive(Debug, Deserialize)]
struct Order {
    order: String,
}

fn pipeline(store: &Path) -> Pipeline<SqliteBus> {
    Pipeline::from_yaml(SqliteBus::open(store).expect("open the store"), SPEC).expect("pipeline")
}

/// A pipeline that runs only `consumer`, recording the orders it handles.
fn only(store: &Path, consumer: &'static str, seen: &Arc<Mutex<Vec<String>>>) -> Pipeline<SqliteBus> {
    let seen = seen.clone();
    pipeline(store)
        .only([consumer])
        .expect("a declared consumer")
        .handle_typed(consumer, move |order: Order, _: Context| {
            let seen = seen.clone();
            async move {
                seen.lock().expect("lock").push(order.order);
                Ok::<(), String>(())
            }
        })
        .expect("handler")
}

/// Runs `pipeline` until `done` holds (polled; at most 10 s), then stops it and returns its
/// outcome.
async fn run_until(pipeline: Pipeline<SqliteBus>, done: impl Fn() -> bool) -> prom_runtime::Result<()> {
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(pipeline.run(async move {
        let _ = stopped.await;
    }));
    for _ in 0..1000 {
        if done() || task.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), task).await.expect("the pipeline stops").expect("task")
}

fn orders(seen: &Arc<Mutex<Vec<String>>>) -> Vec<String> {
    let mut orders = seen.lock().expect("lock").clone();
    orders.sort();
    orders
}

async fn publish(store: &Path, names: &[&str]) {
    let pipeline = pipeline(store);
    for name in names {
        let receipt = pipeline
            .producer()
            .publish("orders.placed", json!({ "order": name }), PublishOptions::default())
            .await;
        receipt.expect("publish");
    }
}

#[tokio::test]
async fn a_service_runs_only_its_consumer_and_the_other_group_keeps_its_events() {
    let store = tempfile::tempdir().expect("tempdir");
    publish(store.path(), &["a", "b", "c"]).await;

    // The billing service: `shipping` has no handler here and is neither required nor run.
    let billed = Arc::new(Mutex::new(Vec::new()));
    let outcome =
        run_until(only(store.path(), "billing", &billed), || billed.lock().is_ok_and(|b| b.len() == 3)).await;
    assert_eq!(outcome, Ok(()));
    assert_eq!(orders(&billed), ["a", "b", "c"]);

    // Later, the shipping service runs: its group gets every event, none was taken from it.
    let shipped = Arc::new(Mutex::new(Vec::new()));
    let outcome =
        run_until(only(store.path(), "shipping", &shipped), || shipped.lock().is_ok_and(|s| s.len() == 3))
            .await;
    assert_eq!(outcome, Ok(()));
    assert_eq!(orders(&shipped), ["a", "b", "c"]);

    // And billing, run again, resumes after what it acked: nothing is handled twice.
    publish(store.path(), &["d"]).await;
    let again = Arc::new(Mutex::new(Vec::new()));
    let outcome =
        run_until(only(store.path(), "billing", &again), || again.lock().is_ok_and(|b| !b.is_empty())).await;
    assert_eq!(outcome, Ok(()));
    assert_eq!(orders(&again), ["d"]);
}

#[tokio::test]
async fn a_name_the_spec_does_not_declare_is_refused_with_did_you_mean_and_the_declared_names() {
    let store = tempfile::tempdir().expect("tempdir");
    let refused = |result: prom_runtime::Result<Pipeline<SqliteBus>>| match result {
        Ok(_) => panic!("the selection was accepted"),
        Err(e) => e,
    };
    let message = |result| refused(result).to_string();
    let error = refused(pipeline(store.path()).only(["biling"]));
    assert!(
        matches!(&error, Error::UnknownComponent { kind, name, hint: Some(close), declared: Some(_) }
            if kind == "consumer, projector or changefeed" && name == "biling" && close == "billing"),
        "{error:?}"
    );
    let error = error.to_string();
    assert!(
        error.contains("no consumer, projector or changefeed `biling`; did you mean `billing`?"),
        "{error}"
    );
    assert!(
        error.contains("declared consumers: `billing`, `shipping`; projectors: none; changefeeds: none"),
        "{error}"
    );
    // A typed name looks only among its kind.
    let error = message(pipeline(store.path()).only([Component::projector("billing")]));
    assert!(error.contains("the spec declares no projector `billing`"), "{error}");
    let error = refused(pipeline(store.path()).only(Vec::<Component>::new()));
    assert_eq!(error, Error::EmptySelection);
    assert!(error.to_string().contains("`only` was given no names"), "{error}");
}

#[tokio::test]
async fn a_selected_consumer_without_a_handler_still_refuses_to_start() {
    let store = tempfile::tempdir().expect("tempdir");
    let selected = pipeline(store.path())
        .only([Component::consumer("billing"), Component::consumer("shipping")])
        .expect("both are declared")
        .handle_typed("billing", |_: Order, _: Context| async { Ok::<(), String>(()) })
        .expect("handler");
    let outcome = tokio::time::timeout(Duration::from_secs(10), selected.run(std::future::pending())).await;
    let error = outcome.expect("run fails at once").expect_err("a consumer lacks a handler");
    assert_eq!(error, Error::MissingHandler { consumers: vec!["shipping".to_owned()], selected: true });
    let error = error.to_string();
    assert!(
        error.contains("no handler for consumer(s) shipping: give every selected consumer a handler"),
        "{error}"
    );
}
