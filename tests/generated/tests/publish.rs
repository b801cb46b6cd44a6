//! Generated version structs publish through `Producer::publish_event` at their own version:
//! a `V1` is stored as v1 and readers get it brought up to the latest (through the `with:`
//! function `wire()` registers).

use prom_generated_tests::constructs::{self, order_placed};
use prom_runtime::{EventBus, MemoryBus, Timestamp};
use serde_json::json;

#[tokio::test]
async fn a_generated_v1_is_stored_as_v1_and_read_as_the_latest() {
    let wiring = constructs::wire(MemoryBus::new()).expect("wire");
    let producer = wiring.producer().clone();
    let placed_at = "2026-11-24T10:00:00Z".parse::<Timestamp>().expect("an RFC 3339 time");
    let v1: order_placed::V1 = serde_json::from_value(json!({
        "order_id": "o-1",
        "customer": { "id": "c-9", "type": "self-employed" },
        "lines": [{ "sku": "A", "qty": 2 }],
        "total": 1250
    }))
    .expect("v1 fixture");
    let v1 = order_placed::V1 { placed_at: Some(placed_at), ..v1 };
    let receipt = producer.publish_event(&v1).await.expect("publish v1");

    let stored = producer
        .bus()
        .read_topic(order_placed::NAME, &prom_runtime::TopicPosition::start(), 10)
        .await
        .expect("read");
    assert_eq!(stored.len(), 1);
    assert_eq!((stored[0].id, stored[0].schema_version()), (receipt.id, Some(1)), "stored at v1");
    assert_eq!(stored[0].payload["placedAt"], "2026-11-24T10:00:00Z", "the timestamp as chrono wrote it");

    let (latest, record) =
        producer.registry().decode_typed::<order_placed::AnyVersion>(stored[0].clone()).expect("decode");
    assert_eq!(record.headers.get("x-upcasted-from").map(String::as_str), Some("1"));
    assert_eq!(
        serde_json::to_value(latest).expect("serialises"),
        json!({
            "order_id": "o-1",
            "customer_id": "c-9",
            "customer_kind": "self-employed",
            "lines": [{ "sku": "A", "qty": 2 }],
            "total_cents": 1250,
            "currency": "EUR"
        })
    );
}
