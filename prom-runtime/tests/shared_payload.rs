//! Payloads are shared, not copied: every read of a stored in-memory event hands out the same
//! value, and a payload skips validation on read only when the reader's schema is the one it
//! was validated against at publish.

use prom_runtime::record::Payload;
use prom_runtime::{EventBus, MemoryBus, Producer, PublishOptions, Registry};
use serde_json::json;
use std::sync::Arc;

const SPEC: &str = "
topics:
  reading.taken:
    key: /id
    dual_write: true
    versions:
      1:
        schema:
          type: object
          required: [id, value]
          properties:
            id: { type: string }
            value: { type: integer }
";

fn registry(spec: &str) -> Arc<Registry> {
    Arc::new(Registry::from_yaml("shared.yaml", spec).expect("the spec lints clean"))
}

#[tokio::test]
async fn reads_and_the_dual_write_copy_share_one_stored_value() {
    let bus = MemoryBus::new();
    let producer = Producer::new(bus.clone(), registry(SPEC));
    producer
        .publish("reading.taken", json!({ "id": "r1", "value": 7 }), PublishOptions::default())
        .await
        .expect("publish");
    let first =
        bus.read_topic("reading.taken", &prom_runtime::TopicPosition::start(), 10).await.expect("read");
    let second =
        bus.read_topic("reading.taken", &prom_runtime::TopicPosition::start(), 10).await.expect("read");
    let copy = bus
        .read_topic("reading.taken.v1", &prom_runtime::TopicPosition::start(), 10)
        .await
        .expect("read the copy");
    assert!(Payload::ptr_eq(&first[0].payload, &second[0].payload), "two reads, one value");
    assert!(Payload::ptr_eq(&first[0].payload, &copy[0].payload), "the dual-write copy shares it too");
    assert_eq!(first[0].payload["value"], 7);
    assert_eq!(first[0].payload, json!({ "id": "r1", "value": 7 }));
    // The wire form of a record is unchanged: the payload is the bare JSON value.
    let wire = serde_json::to_value(&first[0]).expect("serializes");
    assert_eq!(wire["payload"], json!({ "id": "r1", "value": 7 }));
}

#[tokio::test]
async fn a_reader_with_another_schema_validates_what_the_writer_validated() {
    let bus = MemoryBus::new();
    let writer = Producer::new(bus.clone(), registry(SPEC));
    writer
        .publish("reading.taken", json!({ "id": "r1", "value": 7 }), PublishOptions::default())
        .await
        .expect("publish");
    let stored = bus
        .read_topic("reading.taken", &prom_runtime::TopicPosition::start(), 10)
        .await
        .expect("read")
        .remove(0);
    // The same spec in another registry: same schema, the event is accepted.
    registry(SPEC).decode(stored.clone()).expect("same schema");
    // A reader whose v1 caps `value` at 5: the event is checked against its schema and refused.
    let stricter = SPEC.replace("value: { type: integer }", "value: { type: integer, maximum: 5 }");
    let error = registry(&stricter).decode(stored.clone()).expect_err("the reader's schema differs");
    assert!(error.to_string().contains("/value"), "{error}");
    // A payload changed after publish counts as unvalidated.
    let mut changed = stored;
    changed.payload.make_mut()["value"] = json!("seven");
    let error = registry(SPEC).decode(changed).expect_err("changed payloads are validated again");
    assert!(error.to_string().contains("/value"), "{error}");
}
