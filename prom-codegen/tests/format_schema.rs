//! The spec format's JSON Schema is generated from the spec model's types (`prom_spec::spec::format`,
//! `schemars`): the checked-in `prom-spec/src/spec/format.schema.json` that editors use must be
//! exactly that output (`PROM_BLESS=1` rewrites it), and it must accept every good spec and
//! reject the bad-spec corpus files whose mistakes are about shape, names and values.

use prom_spec::spec::{FORMAT_SCHEMA, OPERATIONS, format, keys};
use prom_spec::yaml;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn checked_in() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../prom-spec/src/spec/format.schema.json")
}

fn generated() -> Value {
    serde_json::from_str(&format::schema_text()).expect("the generated schema is JSON")
}

/// The spec files under `dir` as JSON (as the loader reads them).
fn spec_json(path: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(path).expect("read spec");
    let (node, diagnostics) = yaml::load(&text, &Arc::from(path));
    if !diagnostics.is_empty() {
        return None;
    }
    node?.to_json().ok()
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut entries: Vec<PathBuf> =
        std::fs::read_dir(dir).expect("dir").map(|e| e.expect("entry").path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files.extend(yaml_files(&path));
        } else if path.extension().is_some_and(|e| e == "yaml") {
            files.push(path);
        }
    }
    files
}

#[test]
fn the_checked_in_schema_is_the_generated_one() {
    let text = format::schema_text();
    if std::env::var_os("PROM_BLESS").is_some() {
        // `FORMAT_SCHEMA` (compiled in) catches up on the next build.
        std::fs::write(checked_in(), &text).expect("write format.schema.json");
        return;
    }
    let on_disk = std::fs::read_to_string(checked_in()).expect("format.schema.json is readable");
    assert!(
        on_disk == text && FORMAT_SCHEMA == text,
        "prom-spec/src/spec/format.schema.json is stale: run `PROM_BLESS=1 cargo test -p prom-codegen \
         --test format_schema` and commit the result"
    );
}

#[test]
fn every_section_lists_the_keys_the_parser_accepts_and_closes_the_rest() {
    let schema = generated();
    let defs = &schema["$defs"];
    let sections = [
        (&schema, keys::SPEC),
        (&defs["topic"], keys::TOPIC),
        (&defs["version"], keys::VERSION),
        (&defs["upcast"], keys::UPCAST),
        (&defs["consumer"], keys::CONSUMER),
        (&defs["consumer"]["properties"]["retry"], keys::RETRY),
        (&defs["projector"], keys::PROJECTOR),
        (&defs["projector"]["properties"]["indexes"]["items"], keys::INDEX),
        (&defs["projector"]["properties"]["snapshot_api"], keys::SNAPSHOT_API),
        (&defs["changefeed"], keys::CHANGEFEED),
        (&defs["aggregate"], keys::AGGREGATE),
        (&defs["aggregate"]["properties"]["snapshot"], keys::SNAPSHOT),
    ];
    for (section, keys) in sections {
        let mut declared: Vec<&str> =
            section["properties"].as_object().expect("properties").keys().map(String::as_str).collect();
        let mut accepted = keys.to_vec();
        declared.sort_unstable();
        accepted.sort_unstable();
        assert_eq!(declared, accepted);
        assert_eq!(section["additionalProperties"], Value::Bool(false), "{section}");
    }
    for (def, required) in [
        ("topic", &["versions"][..]),
        ("version", &["schema"]),
        ("consumer", &["topic"]),
        ("projector", &["kind", "topic"]),
        ("changefeed", &["collection", "topic"]),
        ("aggregate", &["id", "events"]),
    ] {
        let mut listed: Vec<&str> =
            defs[def]["required"].as_array().expect("required").iter().filter_map(Value::as_str).collect();
        listed.sort_unstable();
        let mut expected = required.to_vec();
        expected.sort_unstable();
        assert_eq!(listed, expected, "{def}");
    }
    assert!(schema["description"].as_str().is_some_and(|d| d.contains("event-driven system")));
    assert_eq!(
        defs["consumer"]["properties"]["member_ttl"]["description"],
        "How long a member that stops heartbeating keeps its partitions (1s ..= 1h)."
    );
}

#[test]
fn enums_and_names_match_the_parser() {
    let schema = generated();
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    let with = |section: &str, body: Value| serde_json::json!({ section: body });
    let topic =
        |name: &str| with("topics", serde_json::json!({ name: { "versions": { "1": { "schema": true } } } }));
    for (name, valid) in
        [("orders", true), ("orders.v2", true), ("a1.b2", true), ("Orders", false), ("a..b", false)]
    {
        assert_eq!(validator.is_valid(&topic(name)), valid, "topic {name}");
    }
    let consumer = |from: &str| with("consumers", serde_json::json!({ "c": { "topic": "t", "from": from } }));
    assert!(validator.is_valid(&consumer("latest")) && !validator.is_valid(&consumer("newest")));
    // Every change stream operation the parser knows, and no other.
    let feed = |op: &str| {
        with(
            "changefeeds",
            serde_json::json!({ "f": { "collection": "c", "topic": "t", "operations": [op] } }),
        )
    };
    for op in OPERATIONS {
        assert!(validator.is_valid(&feed(op)), "{op}");
    }
    assert!(!validator.is_valid(&feed("upsert")));
    // Written keys need a value: `description:` with nothing after it is refused.
    let described = |d: Value| {
        with(
            "topics",
            serde_json::json!({ "t": { "description": d, "versions": { "1": { "schema": true } } } }),
        )
    };
    assert!(!validator.is_valid(&described(Value::Null)));
    assert!(validator.is_valid(&described(Value::from("d"))));
    // An empty section is fine.
    assert!(validator.is_valid(&serde_json::json!({ "topics": null })));
}

#[test]
fn good_specs_validate_and_deserialize_into_the_format_types() {
    let validator = jsonschema::validator_for(&generated()).expect("the schema compiles");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut checked = 0;
    for dir in ["specs", "examples"] {
        if !root.join(dir).is_dir() {
            continue;
        }
        for path in yaml_files(&root.join(dir)) {
            let Some(json) = spec_json(&path) else { continue };
            // Payload schemas in their own files are not spec documents.
            if !json.as_object().is_some_and(|o| keys::SPEC.iter().any(|k| o.contains_key(*k))) {
                continue;
            }
            let errors: Vec<String> = validator.iter_errors(&json).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{}: {errors:?}", path.display());
            serde_json::from_value::<format::SpecFile>(json)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            checked += 1;
        }
    }
    assert!(checked >= 2, "found only {checked} spec files");
}

/// Corpus files whose mistake is one the format schema can see (a wrong key, type, value or
/// name); the rest need lint (references between sections, version numbering, compatibility).
const SCHEMA_LEVEL: [&str; 12] = [
    "P003-unknown-key",
    "P003-unknown-top-level",
    "P004-wrong-type",
    "P005-missing-consumer-topic",
    "P005-missing-key",
    "P006-invalid-compat",
    "P006-invalid-from",
    "P006-invalid-kind",
    "P008-invalid-duration",
    "P101-topic-name",
    "P102-header-name",
    "P601-aggregate-name",
];

#[test]
fn bad_specs_with_shape_mistakes_are_refused() {
    let validator = jsonschema::validator_for(&generated()).expect("the schema compiles");
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus/lint");
    for name in SCHEMA_LEVEL {
        let path = corpus.join(format!("{name}.yaml"));
        let json = spec_json(&path).unwrap_or_else(|| panic!("{name} loads as YAML"));
        assert!(!validator.is_valid(&json), "{name} is accepted by the format schema");
    }
}
