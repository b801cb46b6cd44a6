//! Stored payloads of every version decode through the generated upcast chain into the
//! expected latest value.

use prom_generated_tests::constructs::{order_placed, tree_node};
use prom_runtime::{Event, Versioned};
use serde_json::{Value, json};

fn latest_json(version: u32, payload: Value) -> Value {
    let (latest, _) = order_placed::TOPIC.decode_latest(version, &payload).expect("decodes and upcasts");
    serde_json::to_value(latest).expect("serialises")
}

#[test]
fn v1_becomes_v3_through_declarative_steps_and_a_user_function() {
    let v1 = json!({
        "order_id": "o-1",
        "customer": { "id": "c-9", "type": "self-employed" },
        "lines": [{ "sku": "A", "qty": 2 }],
        "total": 1250,
        "legacy_flag": true,
        "placedAt": "2026-11-24T10:00:00Z"
    });
    let expected = json!({
        "order_id": "o-1",
        "customer_id": "c-9",
        "customer_kind": "self-employed",
        "lines": [{ "sku": "A", "qty": 2 }],
        "total_cents": 1250,
        "currency": "EUR"
    });
    assert_eq!(latest_json(1, v1), expected);
}

#[test]
fn v1_to_v2_applies_every_step() {
    let v1: order_placed::V1 = serde_json::from_value(json!({
        "order_id": "o-2",
        "customer": { "id": "c-1" },
        "lines": [],
        "total": 99,
        "legacy_flag": false
    }))
    .expect("v1 fixture");
    let v2 = order_placed::upcast::v1_to_v2(v1).expect("upcasts");
    assert_eq!(
        serde_json::to_value(v2).expect("serialises"),
        json!({
            "order_id": "o-2",
            "customer": { "id": "c-1" },
            "lines": [],
            "total_cents": 99,
            "currency": "EUR",
            "priority": 3,
            "express": false,
            "weight": 0.5,
            "notes": []
        })
    );
}

#[test]
fn latest_payloads_are_not_upcast_and_stamped_versions_are_reported() {
    let v3 = json!({ "order_id": "o", "customer_id": "c", "lines": [], "total_cents": 1, "currency": "USD" });
    let (_, from) = order_placed::TOPIC.decode_latest(3, &v3).expect("decodes");
    assert_eq!(from, None);
    let v2 = json!({
        "order_id": "o", "customer": { "id": "c" }, "lines": [], "total_cents": 1, "currency": "USD",
        "priority": 1, "express": true, "weight": 1.0, "notes": ["n"]
    });
    let (_, from) = order_placed::TOPIC.decode_latest(2, &v2).expect("decodes");
    assert_eq!(from, Some(2));
}

#[test]
fn bad_payloads_and_unknown_versions_are_errors() {
    let error = order_placed::AnyVersion::decode(9, &json!({})).expect_err("unknown version");
    assert!(error.to_string().contains("has no version 9"), "{error}");
    let error = order_placed::AnyVersion::decode(1, &json!({ "order_id": 5 })).expect_err("bad payload");
    assert!(error.to_string().contains("v1 payload does not decode"), "{error}");
    // v2 is closed (additionalProperties: false): unknown fields are rejected.
    let v2 = json!({
        "order_id": "o", "customer": { "id": "c" }, "lines": [], "total_cents": 1, "currency": "USD",
        "priority": 1, "express": true, "weight": 1.0, "notes": [], "surprise": 1
    });
    assert!(order_placed::AnyVersion::decode(2, &v2).is_err());
}

#[test]
fn constants_and_event_impls_match_the_spec() {
    assert_eq!(order_placed::NAME, "order.placed");
    assert_eq!(order_placed::LATEST_VERSION, 3);
    assert_eq!(order_placed::PARTITIONS, 3);
    assert_eq!(order_placed::KEY, Some("/order_id"));
    assert_eq!(order_placed::headers::X_TENANT, "x-tenant");
    assert_eq!(<order_placed::V2 as Event>::VERSION, 2);
    assert_eq!(<order_placed::AnyVersion as Versioned>::LATEST_VERSION, 3);
    let schema: Value = serde_json::from_str(<order_placed::V1 as Event>::SCHEMA).expect("schema is JSON");
    assert_eq!(schema["properties"]["total"]["description"], "Total in cents.");
}

#[test]
fn recursive_and_keyword_fields_round_trip() {
    let payload = json!({
        "root": { "label": "a", "children": [{ "label": "b" }], "parent": { "label": "p" } },
        "match": "m", "self": 1, "2fa": true, "anything": [1, "x"], "scores": 1.5
    });
    let node: tree_node::V1 = serde_json::from_value(payload.clone()).expect("decodes");
    assert_eq!(node.r#match.as_deref(), Some("m"));
    assert_eq!(node.self_, Some(1));
    assert_eq!(node._2fa, Some(true));
    assert_eq!(node.root.parent.as_ref().map(|p| p.label.as_str()), Some("p"));
    assert_eq!(serde_json::to_value(node).expect("serialises"), payload);
}
