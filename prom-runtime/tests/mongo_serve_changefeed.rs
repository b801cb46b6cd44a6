//! `prom serve` runs the declared changefeeds: the real binary republishes a change of the
//! watched collection to its topic, then stops cleanly on SIGTERM.
#![cfg(all(feature = "mongo", unix))]

mod common;

use common::mongo::Target;
use common::serve::Server;
use prom_runtime::EventBus;
use prom_runtime::bus::mongo::mongodb::bson::{Document, doc};
use prom_runtime::changefeed::resume::STATES;
use prom_runtime::changefeed::{CHANGE_OPERATION, CLUSTER_TIME};
use std::time::{Duration, Instant};

const SPEC: &str = r#"
topics:
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
changefeeds:
  processes-changed:
    collection: processes
    topic: processes.changed
    full_document: updateLookup
    on_lost_resume: fail
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prom_serve_republishes_changes_until_sigterm() {
    let Some(target) = Target::from_env() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let specs = dir.path().join("spec.yaml");
    std::fs::write(&specs, SPEC).expect("write spec");
    let mut server = Server::start(&specs, &target);
    let announced = server.wait_for_line("running changefeed `processes-changed`");
    assert!(announced.contains("`processes` → `processes.changed`"), "{announced}");
    server.wait_for_line("listening on ");

    // The feed watches from the cluster time it stores at start; a change after that is seen.
    let bus = target.open_async().await;
    let db = bus.database().clone();
    let deadline = Instant::now() + Duration::from_secs(20);
    while db
        .collection::<Document>(STATES)
        .find_one(doc! { "_id": "processes-changed" })
        .await
        .expect("read the changefeed state")
        .is_none()
    {
        assert!(Instant::now() < deadline, "the changefeed did not start in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    db.collection::<Document>("processes")
        .insert_one(doc! { "_id": "p1", "status": "up" })
        .await
        .expect("insert into the watched collection");

    let deadline = Instant::now() + Duration::from_secs(20);
    let event = loop {
        let events = bus
            .read_topic("processes.changed", &prom_runtime::TopicPosition::start(), 10)
            .await
            .expect("read the topic");
        if let Some(event) = events.into_iter().next() {
            break event;
        }
        assert!(Instant::now() < deadline, "prom serve did not republish the change in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(event.key.as_deref(), Some("p1"));
    assert_eq!(event.payload["operation"], "insert");
    assert_eq!(event.payload["key"], "p1");
    assert_eq!(event.payload["document"]["status"], "up");
    assert_eq!(event.headers.get(CHANGE_OPERATION).map(String::as_str), Some("insert"));
    assert!(event.headers.contains_key(CLUSTER_TIME), "{:?}", event.headers);

    server.terminate().await;
    server.wait_for_line("stopped");
    // Exactly one event: the change was published once, and the stored token is past it.
    let events = bus
        .read_topic("processes.changed", &prom_runtime::TopicPosition::start(), 10)
        .await
        .expect("read the topic");
    assert_eq!(events.len(), 1, "{events:?}");
    let state = db
        .collection::<Document>(STATES)
        .find_one(doc! { "_id": "processes-changed" })
        .await
        .expect("read the changefeed state")
        .expect("the changefeed state");
    assert!(state.get_document("token").is_ok(), "no resume token stored: {state}");
    target.drop_database().await;
}
