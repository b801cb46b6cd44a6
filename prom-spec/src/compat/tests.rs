//! Unit tests of the public surface and of termination on hostile input.

use serde_json::{Value, json};

use super::*;

fn rules(r: &Report) -> Vec<&'static str> {
    r.violations.iter().chain(&r.undecided).map(|v| v.rule.as_str()).collect()
}

#[test]
fn rule_ids_are_unique_kebab_case_and_round_trip() {
    let mut seen = std::collections::HashSet::new();
    for r in Rule::ALL {
        let id = r.as_str();
        assert!(seen.insert(id), "duplicate id {id}");
        assert!(id.chars().all(|c| c.is_ascii_lowercase() || c == '-'), "{id}");
        assert_eq!(Rule::from_id(id), Some(*r));
        assert_eq!(r.to_string(), id);
        assert_eq!(serde_json::to_value(r).ok(), Some(Value::String(id.into())));
    }
}

#[test]
fn pair_mode_and_direction_serialise_snake_case() {
    assert_eq!(serde_json::to_value(PairMode::Full).ok(), Some(json!("full")));
    let m: Option<PairMode> = serde_json::from_value(json!("backward")).ok();
    assert_eq!(m, Some(PairMode::Backward));
    assert_eq!(serde_json::to_value(Direction::Forward).ok(), Some(json!("forward")));
}

#[test]
fn messages_read_naturally_per_direction() {
    let old = json!({"type": "object", "properties": {"x": {"type": "string"}}});
    let new = json!({"type": "object", "properties": {"x": {"type": "string"}}, "required": ["x"]});
    let back = check(&old, &new, PairMode::Backward).expect("valid");
    assert_eq!(back.violations.len(), 1);
    let v = &back.violations[0];
    assert_eq!(
        (v.rule, v.direction, v.path.as_str()),
        (Rule::RequiredAdded, Direction::Backward, "/required")
    );
    assert!(v.message.starts_with("required property `x` added: old data may lack it"), "{}", v.message);

    let fwd = check(&new, &old, PairMode::Forward).expect("valid");
    let v = &fwd.violations[0];
    assert_eq!((v.rule, v.direction), (Rule::RequiredRemoved, Direction::Forward));
    assert!(v.message.starts_with("required property `x` removed"), "{}", v.message);
}

#[test]
fn max_length_message_names_both_values() {
    let old = json!({"type": "string", "maxLength": 10});
    let new = json!({"type": "string", "maxLength": 5});
    let r = check(&old, &new, PairMode::Backward).expect("valid");
    assert_eq!(
        r.violations[0].message,
        "maxLength lowered from 10 to 5: old data up to 10 characters is rejected by the new schema"
    );
    assert_eq!(r.violations[0].path, "/maxLength");
}

#[test]
fn subset_uses_writer_reader_wording() {
    let r = subset(&json!({"type": "integer"}), &json!({"type": "string"})).expect("valid");
    assert_eq!(rules(&r), ["type-changed"]);
    assert!(r.violations[0].message.contains("writer data"), "{}", r.violations[0].message);
    assert!(subset(&json!({"type": "integer"}), &json!({"type": "number"})).expect("valid").is_compatible());
}

#[test]
fn forward_paths_point_into_the_new_schema() {
    let old = json!({"type": "object", "properties": {"a": {"type": "integer", "maximum": 5}}});
    let new = json!({"type": "object", "properties": {"a": {"type": "integer", "maximum": 9}}});
    let r = check(&old, &new, PairMode::Forward).expect("valid");
    assert_eq!(r.violations[0].path, "/properties/a/maximum");
    assert_eq!(r.violations[0].rule, Rule::MaximumRaised);
}

#[test]
fn schema_errors_name_the_location() {
    let e =
        check(&json!({"type": "string"}), &json!({"properties": {"a": {"type": "integr"}}}), PairMode::Full)
            .expect_err("bad type name");
    assert_eq!(e.path, "/properties/a/type");
    assert!(e.to_string().contains("integr"), "{e}");
    let e = check(&json!(3), &json!({}), PairMode::Backward).expect_err("not a schema");
    assert_eq!(e.path, "");
    let e = check(&json!({"$ref": "#/nope"}), &json!({}), PairMode::Backward).expect_err("dangling");
    assert_eq!(e.path, "/$ref");
    let e = check(&json!({"multipleOf": 0}), &json!({}), PairMode::Backward).expect_err("zero");
    assert_eq!(e.path, "/multipleOf");
}

#[test]
fn excessive_nesting_is_an_error_not_a_stack_overflow() {
    let mut s = json!({"type": "string"});
    for _ in 0..400 {
        s = json!({"type": "array", "items": s});
    }
    assert!(check(&s, &s, PairMode::Full).is_err());
}

#[test]
fn cyclic_refs_terminate() {
    let cyc = json!({"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"});
    let _ = check(&cyc, &json!({"type": "string"}), PairMode::Full).expect("parses");
    let _ = check(&cyc, &cyc, PairMode::Full).expect("parses");
    let own = json!({"$ref": "#"});
    let _ = check(&own, &json!({"type": "string"}), PairMode::Full).expect("parses");
    let any = json!({"anyOf": [{"$ref": "#"}, {"type": "string"}]});
    let _ = check(&any, &json!({"type": "integer"}), PairMode::Full).expect("parses");
}

#[test]
fn exponential_ref_dag_stays_within_budget() {
    let mut defs = serde_json::Map::new();
    for i in 0..40 {
        let next = format!("#/$defs/d{}", i + 1);
        defs.insert(
            format!("d{i}"),
            json!({"type": "object", "properties": {"l": {"$ref": next}, "r": {"$ref": next}}}),
        );
    }
    defs.insert("d40".into(), json!({"type": "string"}));
    let old = json!({"$defs": defs, "$ref": "#/$defs/d0"});
    let mut new = old.clone();
    new["$defs"]["d40"] = json!({"type": "string", "maxLength": 1});
    let start = std::time::Instant::now();
    let r = check(&old, &new, PairMode::Full).expect("valid");
    assert!(!r.is_compatible());
    assert!(start.elapsed().as_secs() < 20);
}

#[test]
fn unknown_reader_keyword_is_undecided_not_ignored() {
    let r = check(&json!({"type": "string"}), &json!({"type": "string", "x-max": 3}), PairMode::Backward)
        .expect("valid");
    assert!(r.violations.is_empty());
    assert_eq!(rules(&r), ["unknown-keyword"]);
    assert!(!r.is_compatible());
}

#[test]
fn report_serialises_with_rule_ids() {
    let r = check(&json!({"enum": [1, 2]}), &json!({"enum": [1]}), PairMode::Backward).expect("valid");
    let v = serde_json::to_value(&r).expect("serialises");
    assert_eq!(v["violations"][0]["rule"], json!("enum-narrowed"));
    assert_eq!(v["violations"][0]["direction"], json!("backward"));
    assert_eq!(v["undecided"], json!([]));
}

#[test]
fn deep_but_allowed_nesting_is_compared_to_the_leaf() {
    let nest = |leaf: Value| {
        let mut s = leaf;
        for _ in 0..120 {
            s = json!({"type": "array", "items": s});
        }
        s
    };
    let old = nest(json!({"type": "string"}));
    let new = nest(json!({"type": "integer"}));
    let r = check(&old, &new, PairMode::Full).expect("valid");
    assert_eq!(rules(&r), ["type-changed", "type-changed"]);
    assert_eq!(r.violations[0].path, format!("{}/type", "/items".repeat(120)));
}
