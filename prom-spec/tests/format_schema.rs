//! `prom-codegen schema` describes exactly the format the parser accepts.

use prom_spec::spec::{FORMAT_SCHEMA, keys};
use prom_spec::yaml;
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;

fn schema() -> Value {
    serde_json::from_str(FORMAT_SCHEMA).expect("format schema is JSON")
}

fn property_names(v: &Value) -> Vec<String> {
    let mut names: Vec<String> = v["properties"].as_object().expect("properties").keys().cloned().collect();
    names.sort();
    names
}

fn sorted(keys: &[&str]) -> Vec<String> {
    let mut k: Vec<String> = keys.iter().map(|s| s.to_string()).collect();
    k.sort();
    k
}

#[test]
fn sections_match_the_parser() {
    let s = schema();
    let d = &s["$defs"];
    assert_eq!(property_names(&s), sorted(keys::SPEC));
    assert_eq!(property_names(&d["topic"]), sorted(keys::TOPIC));
    assert_eq!(property_names(&d["version"]), sorted(keys::VERSION));
    assert_eq!(property_names(&d["upcast"]), sorted(keys::UPCAST));
    assert_eq!(property_names(&d["consumer"]), sorted(keys::CONSUMER));
    assert_eq!(property_names(&d["consumer"]["properties"]["retry"]), sorted(keys::RETRY));
    assert_eq!(property_names(&d["projector"]), sorted(keys::PROJECTOR));
    assert_eq!(property_names(&d["projector"]["properties"]["indexes"]["items"]), sorted(keys::INDEX));
    assert_eq!(property_names(&d["projector"]["properties"]["snapshot_api"]), sorted(keys::SNAPSHOT_API));
    assert_eq!(property_names(&d["changefeed"]), sorted(keys::CHANGEFEED));
}

#[test]
fn example_specs_validate_against_the_format_schema() {
    let validator = jsonschema::validator_for(&schema()).expect("format schema compiles");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs");
    for entry in std::fs::read_dir(&dir).expect("specs dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read spec");
        let (node, diags) = yaml::load(&text, &Arc::from(path.as_path()));
        assert!(diags.is_empty(), "{diags:?}");
        let json = node.expect("document").to_json().expect("JSON");
        let errors: Vec<String> = validator.iter_errors(&json).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
    }
}
