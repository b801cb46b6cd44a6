//! Property: values of generated payload types serialise to JSON their version's schema accepts
//! (names, renames, skipped `None`s, nested and recursive types, enums, maps, timestamps).
//!
//! Generated types carry the schema's structure, not its value constraints (`minimum`, ...):
//! the strategies stay inside those, and non-finite floats (serialised as `null`) are left out;
//! `non_finite_floats_do_not_validate` pins that limit.

use prom_generated_tests::constructs::{order_placed, tree_node};
use prom_runtime::{Event, Timestamp};
use proptest::prelude::*;
use serde_json::Value;
use std::collections::BTreeMap;

/// Validation errors of `value` under `E`'s schema, with format assertions on.
fn violations<E: Event>(value: &Value) -> Vec<String> {
    let schema: Value = serde_json::from_str(E::SCHEMA).expect("the generated schema is JSON");
    let validator =
        jsonschema::options().should_validate_formats(true).build(&schema).expect("the schema compiles");
    validator.iter_errors(value).map(|e| format!("{}: {e}", e.instance_path())).collect()
}

fn text() -> impl Strategy<Value = String> {
    "[a-z0-9 é-]{0,8}"
}

fn timestamp() -> impl Strategy<Value = Timestamp> {
    // Years 1970..=2200, whole milliseconds.
    (0i64..7_258_118_400_000).prop_filter_map("in range", Timestamp::from_unix_millis)
}

fn customer() -> impl Strategy<Value = order_placed::Customer> {
    let kind = prop_oneof![
        Just(order_placed::CustomerType::Person),
        Just(order_placed::CustomerType::Company),
        Just(order_placed::CustomerType::SelfEmployed),
    ];
    (text(), proptest::option::of(kind)).prop_map(|(id, r#type)| order_placed::Customer { id, r#type })
}

fn lines() -> impl Strategy<Value = Vec<order_placed::LinesItem>> {
    // `qty` has `minimum: 1`.
    proptest::collection::vec((text(), 1i64..), 0..4)
        .prop_map(|l| l.into_iter().map(|(sku, qty)| order_placed::LinesItem { sku, qty }).collect())
}

fn currency() -> impl Strategy<Value = order_placed::Currency> {
    prop_oneof![Just(order_placed::Currency::Eur), Just(order_placed::Currency::Usd)]
}

fn v2() -> impl Strategy<Value = order_placed::V2> {
    (
        (text(), customer(), lines(), any::<i64>(), currency(), any::<i64>(), any::<bool>()),
        (
            proptest::num::f64::NORMAL | proptest::num::f64::ZERO | proptest::num::f64::SUBNORMAL,
            proptest::collection::vec(text(), 0..3),
            proptest::option::of(text()),
            proptest::option::of(timestamp()),
            proptest::option::of(proptest::collection::btree_map(text(), text(), 0..3)),
        ),
    )
        .prop_map(
            |(
                (order_id, customer, lines, total_cents, currency, priority, express),
                (weight, notes, coupon, placed_at, attributes),
            )| order_placed::V2 {
                order_id,
                customer,
                lines,
                total_cents,
                currency,
                priority,
                express,
                weight,
                notes,
                coupon,
                placed_at,
                attributes: attributes.map(|a: BTreeMap<String, String>| a),
            },
        )
}

fn v3() -> impl Strategy<Value = order_placed::V3> {
    (
        text(),
        text(),
        proptest::option::of(customer().prop_map(|c| c.r#type)),
        lines(),
        any::<i64>(),
        currency(),
    )
        .prop_map(|(order_id, customer_id, kind, lines, total_cents, currency)| order_placed::V3 {
            order_id,
            customer_id,
            customer_kind: kind.flatten(),
            lines,
            total_cents,
            currency,
        })
}

fn node() -> impl Strategy<Value = tree_node::Node> {
    let leaf = text().prop_map(|label| tree_node::Node { label, children: None, parent: None });
    leaf.prop_recursive(3, 12, 3, |inner| {
        (
            text(),
            proptest::option::of(proptest::collection::vec(inner.clone().prop_map(Box::new), 0..3)),
            proptest::option::of(inner.prop_map(Box::new)),
        )
            .prop_map(|(label, children, parent)| tree_node::Node { label, children, parent })
    })
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
            proptest::collection::btree_map(text(), inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn tree_v1() -> impl Strategy<Value = tree_node::V1> {
    (
        node(),
        proptest::option::of(text()),
        proptest::option::of(any::<i64>()),
        proptest::option::of(any::<bool>()),
        proptest::option::of(any_json()),
        proptest::option::of(proptest::num::f64::NORMAL | proptest::num::f64::ZERO),
    )
        .prop_map(|(root, r#match, self_, _2fa, anything, scores)| tree_node::V1 {
            root,
            r#match,
            self_,
            _2fa,
            anything,
            scores,
        })
}

proptest! {
    #[test]
    fn order_placed_v2_serialises_valid(value in v2()) {
        let json = serde_json::to_value(&value).expect("serialises");
        let errors = violations::<order_placed::V2>(&json);
        prop_assert!(errors.is_empty(), "{json}: {errors:?}");
    }

    #[test]
    fn order_placed_v3_serialises_valid(value in v3()) {
        let json = serde_json::to_value(&value).expect("serialises");
        let errors = violations::<order_placed::V3>(&json);
        prop_assert!(errors.is_empty(), "{json}: {errors:?}");
    }

    #[test]
    fn tree_node_v1_serialises_valid(value in tree_v1()) {
        let json = serde_json::to_value(&value).expect("serialises");
        let errors = violations::<tree_node::V1>(&json);
        prop_assert!(errors.is_empty(), "{json}: {errors:?}");
    }
}

/// The limit the strategies avoid: a non-finite `f64` serialises as `null`, which
/// `type: number` rejects (publishing validates the payload, so it is refused, not stored).
#[test]
fn non_finite_floats_do_not_validate() {
    let value = tree_node::V1 {
        root: tree_node::Node { label: "r".into(), children: None, parent: None },
        r#match: None,
        self_: None,
        _2fa: None,
        anything: None,
        scores: Some(f64::NAN),
    };
    let json = serde_json::to_value(&value).expect("serialises");
    assert_eq!(json["scores"], Value::Null);
    assert!(!violations::<tree_node::V1>(&json).is_empty());
}
