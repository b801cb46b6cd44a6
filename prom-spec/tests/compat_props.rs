//! Property tests: reflexivity, `full` = backward ∧ forward, soundness against an exact
//! validator, and panic-freedom on arbitrary input.

use std::collections::BTreeSet;

use prom_spec::compat::{PairMode, Report, check, subset};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn leaf_schema() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!(true)),
        Just(json!(false)),
        Just(json!({})),
        prop::sample::select(vec!["null", "boolean", "integer", "number", "string", "object", "array"])
            .prop_map(|t| json!({ "type": t })),
        prop::sample::subsequence(vec!["null", "integer", "string"], 1..3)
            .prop_map(|ts| json!({ "type": ts })),
        (prop::sample::select(vec!["integer", "number"]), -3i64..4, 0i64..6, any::<bool>()).prop_map(
            |(t, lo, span, excl)| {
                let mut m = json!({ "type": t, "minimum": lo, "maximum": lo + span });
                if excl {
                    m["exclusiveMinimum"] = json!(lo as f64 - 0.5);
                }
                m
            }
        ),
        (prop::sample::select(vec![1.0, 2.0, 0.5, 3.0]), any::<bool>()).prop_map(|(k, int)| {
            json!({ "type": if int { "integer" } else { "number" }, "multipleOf": k })
        }),
        (0u64..3, 0u64..4)
            .prop_map(|(lo, span)| json!({ "type": "string", "minLength": lo, "maxLength": lo + span })),
        prop::sample::select(vec!["^a", "b$", "^[a-z]*$", ".*"])
            .prop_map(|p| json!({ "type": "string", "pattern": p })),
        prop::sample::select(vec!["date", "email"]).prop_map(|f| json!({ "type": "string", "format": f })),
        prop::sample::subsequence(
            vec![json!(null), json!(0), json!(1), json!("a"), json!("b"), json!(true)],
            0..4
        )
        .prop_map(|vs| json!({ "enum": vs })),
        prop::sample::select(vec![json!(1), json!("a"), json!(null)]).prop_map(|v| json!({ "const": v })),
    ]
}

fn schema() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => nested_schema(),
        1 => nested_schema().prop_map(|v| json!({ "$defs": { "d": v }, "$ref": "#/$defs/d" })),
    ]
}

fn nested_schema() -> impl Strategy<Value = Value> {
    leaf_schema().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            (
                prop::collection::btree_map(prop::sample::select(vec!["a", "b", "c"]), inner.clone(), 0..3),
                prop::sample::subsequence(vec!["a", "b", "c"], 0..3),
                prop::option::of(prop_oneof![Just(json!(false)), Just(json!(true)), inner.clone()]),
                prop::option::of(0u64..3),
            )
                .prop_map(|(props, req, addl, maxp)| {
                    let mut m = Map::new();
                    m.insert("type".into(), json!("object"));
                    m.insert("properties".into(), json!(props));
                    m.insert("required".into(), json!(req));
                    if let Some(a) = addl {
                        m.insert("additionalProperties".into(), a);
                    }
                    if let Some(x) = maxp {
                        m.insert("maxProperties".into(), json!(x));
                    }
                    Value::Object(m)
                }),
            (inner.clone(), prop::option::of(0u64..3), prop::option::of(1u64..4), any::<bool>()).prop_map(
                |(items, min, max, unique)| {
                    let mut m = json!({ "type": "array", "items": items });
                    if let Some(x) = min {
                        m["minItems"] = json!(x);
                    }
                    if let Some(x) = max {
                        m["maxItems"] = json!(x);
                    }
                    if unique {
                        m["uniqueItems"] = json!(true);
                    }
                    m
                }
            ),
            (prop::collection::vec(inner.clone(), 1..3), prop::option::of(inner.clone())).prop_map(
                |(prefix, rest)| {
                    let mut m = json!({ "type": "array", "prefixItems": prefix });
                    if let Some(r) = rest {
                        m["items"] = r;
                    }
                    m
                }
            ),
            prop::collection::vec(inner.clone(), 1..3).prop_map(|v| json!({ "anyOf": v })),
            prop::collection::vec(inner.clone(), 1..3).prop_map(|v| json!({ "oneOf": v })),
            prop::collection::vec(inner.clone(), 1..3).prop_map(|v| json!({ "allOf": v })),
            inner.clone().prop_map(|v| json!({ "not": v })),
            inner
                .prop_map(|v| json!({ "type": "object", "properties": { "self": { "$ref": "#" }, "v": v } })),
        ]
    })
}

/// Small instances drawn from the same vocabulary the schemas use.
fn instance() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(json!(null)),
        any::<bool>().prop_map(Value::from),
        (-4i64..5).prop_map(Value::from),
        prop::sample::select(vec![0.5, 1.5, -2.5, 2.0]).prop_map(Value::from),
        prop::sample::select(vec!["", "a", "b", "ab", "abc", "ba", "0", "a@b.co", "2024-01-01"])
            .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(
                prop::sample::select(vec!["a", "b", "c", "d", "self", "v"]),
                inner,
                0..3
            )
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}

/// Applies one edit somewhere in `v`, steered by `ops`, to get a related schema.
fn mutate(v: &Value, ops: &[u8]) -> Value {
    let Some((&op, rest)) = ops.split_first() else {
        return v.clone();
    };
    match v {
        Value::Object(m) if !m.is_empty() => {
            let keys: Vec<&String> = m.keys().collect();
            let key = keys[usize::from(op) % keys.len()].clone();
            let mut out = m.clone();
            match op % 5 {
                0 => {
                    out.remove(&key);
                }
                1 => {
                    if let Some(n) = out.get(&key).and_then(Value::as_i64) {
                        out.insert(key, json!(n + if op % 2 == 0 { 1 } else { -1 }));
                    }
                }
                2 => {
                    if let Some(child) = out.get(&key).cloned() {
                        out.insert(key, mutate(&child, rest));
                    }
                }
                3 => {
                    out.insert("maxLength".into(), json!(op % 3));
                }
                _ => {
                    out.insert("required".into(), json!(["a"]));
                }
            }
            Value::Object(out)
        }
        Value::Array(a) if !a.is_empty() => {
            let mut out = a.clone();
            let i = usize::from(op) % a.len();
            out[i] = mutate(&a[i], rest);
            Value::Array(out)
        }
        Value::Bool(b) if op % 2 == 0 => Value::Bool(!b),
        _ => v.clone(),
    }
}

fn validator(schema: &Value) -> Option<jsonschema::Validator> {
    jsonschema::options().should_validate_formats(true).build(schema).ok()
}

fn findings(r: &Report) -> (BTreeSet<String>, BTreeSet<String>) {
    let key =
        |v: &prom_spec::compat::Violation| format!("{:?}|{}|{}|{}", v.direction, v.path, v.rule, v.message);
    (r.violations.iter().map(key).collect(), r.undecided.iter().map(key).collect())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn reflexive_under_full(s in schema()) {
        let report = check(&s, &s, PairMode::Full).expect("generated schemas are valid");
        prop_assert!(report.is_compatible(), "schema {s} not compatible with itself: {report:?}");
    }

    #[test]
    fn full_is_backward_and_forward(old in schema(), ops in prop::collection::vec(any::<u8>(), 1..4)) {
        let new = mutate(&old, &ops);
        let (Ok(full), Ok(b), Ok(f)) = (
            check(&old, &new, PairMode::Full),
            check(&old, &new, PairMode::Backward),
            check(&old, &new, PairMode::Forward),
        ) else {
            return Ok(());
        };
        let (fv, fu) = findings(&full);
        let (bv, bu) = findings(&b);
        let (wv, wu) = findings(&f);
        prop_assert_eq!(fv, bv.union(&wv).cloned().collect::<BTreeSet<_>>());
        prop_assert_eq!(fu, bu.union(&wu).cloned().collect::<BTreeSet<_>>());
        prop_assert_eq!(full.is_compatible(), b.is_compatible() && f.is_compatible());
    }

    #[test]
    fn backward_compatible_is_sound(
        old in schema(),
        ops in prop::collection::vec(any::<u8>(), 1..4),
        instances in prop::collection::vec(instance(), 1..24),
    ) {
        let new = mutate(&old, &ops);
        let Ok(report) = check(&old, &new, PairMode::Backward) else { return Ok(()); };
        if !report.is_compatible() {
            return Ok(());
        }
        let (Some(vo), Some(vn)) = (validator(&old), validator(&new)) else { return Ok(()); };
        for i in &instances {
            prop_assert!(
                !vo.is_valid(i) || vn.is_valid(i),
                "claimed backward compatible, but {i} is valid under old {old} and invalid under new {new}"
            );
        }
    }

    #[test]
    fn independent_pairs_are_sound(
        w in schema(),
        r in schema(),
        instances in prop::collection::vec(instance(), 1..24),
    ) {
        let Ok(report) = subset(&w, &r) else { return Ok(()); };
        if !report.is_compatible() {
            return Ok(());
        }
        let (Some(vw), Some(vr)) = (validator(&w), validator(&r)) else { return Ok(()); };
        for i in &instances {
            prop_assert!(!vw.is_valid(i) || vr.is_valid(i), "subset claimed, but {i} valid under {w} and not under {r}");
        }
    }

    #[test]
    fn violations_have_witness_free_consistency(old in schema(), ops in prop::collection::vec(any::<u8>(), 1..4)) {
        // A proven violation means the pair is not compatible; never both at once.
        let new = mutate(&old, &ops);
        if let Ok(r) = check(&old, &new, PairMode::Backward) {
            prop_assert_eq!(r.is_compatible(), r.violations.is_empty() && r.undecided.is_empty());
        }
    }

    #[test]
    fn arbitrary_json_never_panics(a in arbitrary_json(), b in arbitrary_json()) {
        let _ = check(&a, &b, PairMode::Full);
        let _ = subset(&a, &b);
    }

    #[test]
    fn keyword_shaped_garbage_never_panics(a in keyword_soup(), b in keyword_soup()) {
        let _ = check(&a, &b, PairMode::Full);
    }
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        ".{0,6}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(".{0,4}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Objects keyed by real keywords with values of arbitrary (often wrong) types.
fn keyword_soup() -> impl Strategy<Value = Value> {
    let keys = vec![
        "type",
        "enum",
        "const",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minLength",
        "maxLength",
        "pattern",
        "format",
        "items",
        "prefixItems",
        "additionalItems",
        "minItems",
        "maxItems",
        "uniqueItems",
        "contains",
        "properties",
        "patternProperties",
        "additionalProperties",
        "required",
        "minProperties",
        "maxProperties",
        "propertyNames",
        "dependentRequired",
        "allOf",
        "anyOf",
        "oneOf",
        "not",
        "$ref",
        "$defs",
        "definitions",
        "if",
        "then",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        Just(json!(true)),
        Just(json!(false)),
        (-3i64..4).prop_map(Value::from),
        Just(json!(0.5)),
        prop::sample::select(vec!["string", "integer", "#", "#/$defs/x", "#/properties", "^a", "x"])
            .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 40, 4, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
            prop::collection::btree_map(prop::sample::select(keys.clone()), inner.clone(), 0..4)
                .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
            prop::collection::btree_map(prop::sample::select(vec!["a", "b", "x"]), inner, 0..3)
                .prop_map(|m| json!({ "$defs": m.clone(), "properties": m })),
        ]
    })
}
