//! `Producer::publish_event`: any `Event` type is published at its own topic and version,
//! readers get it upcast, and each way it can fail is a typed error callers can match.

use prom_runtime::{Error, Event, EventBus, MemoryBus, Producer, PublishOptions, Registry, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

const SPEC: &str = "
topics:
  orders.placed:
    key: /order
    dual_write: true
    versions:
      1:
        schema:
          type: object
          additionalProperties: false
          required: [order]
          properties:
            order: { type: string, minLength: 1 }
            at: { type: string, format: date-time }
      2:
        schema:
          type: object
          additionalProperties: false
          required: [order, currency]
          properties:
            order: { type: string, minLength: 1 }
            at: { type: string, format: date-time }
            currency: { type: string }
        upcast:
          set_default: { currency: EUR }
";

/// What a service not yet migrated to v2 publishes.
#[derive(Debug, Serialize, Deserialize)]
struct OrderV1 {
    order: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    at: Option<Timestamp>,
}

impl Event for OrderV1 {
    const TOPIC: &'static str = "orders.placed";
    const VERSION: u32 = 1;
    const SCHEMA: &'static str = "";
}

#[derive(Debug, Serialize, Deserialize)]
struct OrderV2 {
    order: String,
    currency: String,
}

impl Event for OrderV2 {
    const TOPIC: &'static str = "orders.placed";
    const VERSION: u32 = 2;
    const SCHEMA: &'static str = "";
}

/// A version from a newer spec than the registry's.
#[derive(Debug, Serialize, Deserialize)]
struct OrderV3 {
    order: String,
}

impl Event for OrderV3 {
    const TOPIC: &'static str = "orders.placed";
    const VERSION: u32 = 3;
    const SCHEMA: &'static str = "";
}

/// A payload serde cannot write as JSON: map keys that are not strings.
#[derive(Debug, Serialize, Deserialize)]
struct Unwritable {
    order: String,
    by_pair: BTreeMap<(i32, i32), i32>,
}

impl Event for Unwritable {
    const TOPIC: &'static str = "orders.placed";
    const VERSION: u32 = 1;
    const SCHEMA: &'static str = "";
}

fn producer() -> Producer<MemoryBus> {
    let linted = prom_spec::lint_str("orders.yaml", SPEC);
    assert!(!linted.has_errors(), "{}", linted.render());
    let registry = Registry::from_spec(&linted.spec).expect("registry");
    Producer::new(MemoryBus::new(), Arc::new(registry))
}

#[tokio::test]
async fn an_older_version_is_stored_as_such_and_read_upcast() {
    let producer = producer();
    let at = Timestamp::from_unix_millis(1_795_525_200_250);
    let receipt = producer.publish_event(&OrderV1 { order: "o-1".into(), at }).await.expect("publish v1");
    producer
        .publish_event(&OrderV2 { order: "o-2".into(), currency: "USD".into() })
        .await
        .expect("publish v2");

    let stored = producer
        .bus()
        .read_topic("orders.placed", &prom_runtime::TopicPosition::start(), 10)
        .await
        .expect("read");
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].id, receipt.id);
    assert_eq!(stored[0].schema_version(), Some(1), "stored at the type's version");
    assert_eq!(stored[0].payload, serde_json::json!({ "order": "o-1", "at": "2026-11-24T13:00:00.250Z" }));
    assert_eq!(stored[1].schema_version(), Some(2));

    let read = producer.registry().decode(stored[0].clone()).expect("decode");
    assert_eq!(read.headers.get("x-upcasted-from").map(String::as_str), Some("1"));
    assert_eq!(
        read.payload,
        serde_json::json!({ "order": "o-1", "at": "2026-11-24T13:00:00.250Z", "currency": "EUR" })
    );
    // The dual-write copy holds the latest shape.
    let copies = producer
        .bus()
        .read_topic("orders.placed.v2", &prom_runtime::TopicPosition::start(), 10)
        .await
        .expect("read copies");
    assert_eq!(copies.first().map(|c| c.payload["currency"].clone()), Some("EUR".into()));
}

#[tokio::test]
async fn a_version_the_spec_lacks_is_a_typed_error_listing_the_declared_ones() {
    let error = producer().publish_event(&OrderV3 { order: "o".into() }).await.expect_err("no v3");
    assert!(
        matches!(&error, Error::UnknownVersion { topic, version: 3, latest: 2 } if topic == "orders.placed"),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("`orders.placed` has no version 3; the spec declares v1 and v2"), "{message}");
}

#[tokio::test]
async fn a_payload_breaking_its_versions_schema_names_the_json_pointer() {
    let producer = producer();
    let error =
        producer.publish_event(&OrderV1 { order: String::new(), at: None }).await.expect_err("invalid");
    let Error::Invalid { version, errors, .. } = &error else { panic!("unexpected {error:?}") };
    assert_eq!(*version, 1, "checked against the type's version, not the latest");
    assert!(errors.iter().any(|e| e.contains("at `/order`")), "{errors:?}");
    assert!(
        producer
            .bus()
            .read_topic("orders.placed", &prom_runtime::TopicPosition::start(), 10)
            .await
            .expect("read")
            .is_empty()
    );
}

#[tokio::test]
async fn a_payload_serde_cannot_write_is_a_serialize_error_keeping_its_cause() {
    let value = Unwritable { order: "o".into(), by_pair: [((1, 2), 3)].into() };
    let error = producer().publish_event(&value).await.expect_err("unwritable");
    let Error::Serialize { what, source } = &error else { panic!("unexpected {error:?}") };
    assert_eq!(what, "a `orders.placed` v1 payload");
    assert!(source.inner().to_string().contains("key must be a string"), "{source}");
    assert!(std::error::Error::source(&error).is_some(), "the cause is kept");
}

#[tokio::test]
async fn options_cannot_contradict_the_types_version() {
    let options = PublishOptions { version: Some(2), ..PublishOptions::default() };
    let error = producer()
        .publish_event_with(&OrderV1 { order: "o".into(), at: None }, options)
        .await
        .expect_err("mismatch");
    assert!(
        matches!(&error, Error::VersionMismatch { topic, version: 1, asked: 2 } if topic == "orders.placed"),
        "{error:?}"
    );
    assert!(error.to_string().contains("a `orders.placed` v1 payload cannot be published as v2"), "{error}");
}
