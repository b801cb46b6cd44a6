//! `prom-codegen asyncapi`: the document of the example specs and the codegen corpus passes the
//! official validator (`@asyncapi/cli`, installed by `scripts/asyncapi.sh`), is deterministic and
//! matches its snapshot (`PROM_BLESS=1` re-blesses it).

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("prom-asyncapi-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_prom-codegen")).args(args).current_dir(root()).output().expect("runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every spec the project ships: `specs/`, `examples/*/specs`, the codegen corpus.
fn shipped_specs() -> Vec<String> {
    let mut specs = vec!["specs".to_owned(), "tests/corpus/codegen/constructs.yaml".to_owned()];
    if let Ok(examples) = std::fs::read_dir(root().join("examples")) {
        let mut found: Vec<String> = examples
            .flatten()
            .filter(|e| e.path().join("specs").is_dir())
            .map(|e| format!("examples/{}/specs", e.file_name().to_string_lossy()))
            .collect();
        found.sort();
        specs.extend(found);
    }
    specs
}

fn generate(specs: &str, out: &Path) -> Value {
    let result = run(&["asyncapi", "--specs", specs, "--out", out.to_str().expect("utf-8 path")]);
    assert!(result.status.success(), "{specs}: {}", stderr(&result));
    serde_json::from_str(&std::fs::read_to_string(out).expect("document")).expect("JSON document")
}

/// The validator's binary, or `None` (with the reason printed) when it cannot be installed and
/// the run does not require it.
fn validator() -> Option<PathBuf> {
    let out = Command::new("bash")
        .arg(root().join("scripts/asyncapi.sh"))
        .arg("path")
        .output()
        .expect("bash runs scripts/asyncapi.sh");
    if out.status.success() {
        return Some(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    }
    let why = stderr(&out);
    if std::env::var_os("PROM_REQUIRE_ASYNCAPI").is_some_and(|v| v == "1") {
        panic!("PROM_REQUIRE_ASYNCAPI=1, but the AsyncAPI validator could not be installed:\n{why}");
    }
    eprintln!(
        "SKIPPED: the AsyncAPI validator (@asyncapi/cli) could not be installed by scripts/asyncapi.sh \
         (is npm reachable?); set PROM_REQUIRE_ASYNCAPI=1 to fail instead:\n{why}"
    );
    None
}

/// Runs `asyncapi validate` on `file` (warnings fail too), bounded by a generous timeout.
fn validate(validator: &Path, file: &Path) -> Output {
    let config = validator
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .map(|home| home.join("analytics.json"))
        .expect("the validator sits in <home>/node_modules/.bin");
    Command::new("timeout")
        .arg("300")
        .arg(validator)
        .args(["validate", "--fail-severity=warn"])
        .arg(file)
        .env("ASYNCAPI_METRICS_CONFIG_PATH", config)
        .output()
        .expect("the validator runs")
}

#[test]
fn every_shipped_spec_gives_a_document_the_official_validator_accepts() {
    let Some(validator) = validator() else { return };
    let dir = temp_dir("validate");
    for (i, specs) in shipped_specs().iter().enumerate() {
        let file = dir.join(format!("{i}.json"));
        generate(specs, &file);
        let out = validate(&validator, &file);
        let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
        assert_eq!(out.status.code(), Some(0), "{specs}: the validator rejected the document:\n{report}");
        assert!(report.contains("is valid"), "{specs}: {report}");
        assert!(report.contains("0 errors, 0 warnings"), "{specs}: {report}");
    }
    // The validator does reject a broken document: an operation naming a message its channel
    // does not carry, and a payload that is no schema.
    let file = dir.join("0.json");
    let mut broken: Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("doc")).expect("json");
    broken["operations"]["publish_process_state"]["messages"][0]["$ref"] =
        Value::from("#/channels/process_state/messages/v9");
    broken["components"]["schemas"]["process.state.v1"]["type"] = Value::from(5);
    std::fs::write(&file, serde_json::to_string_pretty(&broken).expect("json")).expect("write");
    let out = validate(&validator, &file);
    assert_ne!(
        out.status.code(),
        Some(0),
        "a broken document passed:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn the_example_document_is_deterministic_and_matches_its_snapshot() {
    let dir = temp_dir("snapshot");
    let first = generate("specs", &dir.join("a.json"));
    let text = std::fs::read_to_string(dir.join("a.json")).expect("doc");
    generate("specs", &dir.join("b.json"));
    assert_eq!(text, std::fs::read_to_string(dir.join("b.json")).expect("doc"), "two runs differ");

    let snapshot = root().join("tests/asyncapi/specs.json");
    if std::env::var_os("PROM_BLESS").is_some() {
        std::fs::create_dir_all(snapshot.parent().expect("dir")).expect("mkdir");
        std::fs::write(&snapshot, &text).expect("bless");
    }
    let expected =
        std::fs::read_to_string(&snapshot).expect("tests/asyncapi/specs.json (PROM_BLESS=1 writes it)");
    assert!(expected == text, "the document of specs/ changed; re-bless with PROM_BLESS=1 if intended");

    assert_eq!(first["asyncapi"], "3.0.0");
    let channels = first["channels"].as_object().expect("channels");
    for (id, address) in [
        ("heartbeat_received", "heartbeat.received"),
        ("heartbeat_received_v3", "heartbeat.received.v3"),
        ("dlq_heartbeat_received", "dlq.heartbeat.received"),
        ("processes_changed", "processes.changed"),
    ] {
        assert_eq!(channels[id]["address"], address, "{id}");
    }
    let topic = &channels["heartbeat_received"];
    assert_eq!(topic["x-prom-partitions"], 8);
    assert_eq!(topic["x-prom-key"], "/pid");
    assert_eq!(topic["x-prom-compat"], "backward");
    assert_eq!(topic["messages"].as_object().map(|m| m.len()), Some(3));
    let v2 = &first["components"]["messages"]["heartbeat.received.v2"];
    assert_eq!(v2["x-prom-upcast"]["rename"]["mem_mb"], "mem_mib");
    assert_eq!(v2["headers"]["properties"]["x-schema-version"]["const"], 2);
    let operations = &first["operations"];
    assert_eq!(operations["receive_hb-analyzers"]["action"], "receive");
    assert_eq!(operations["publish_heartbeat_received"]["action"], "send");
    assert_eq!(
        operations["publish_heartbeat_received"]["messages"],
        serde_json::json!([{ "$ref": "#/channels/heartbeat_received/messages/v3" }]),
        "producers write the latest version"
    );
    assert_eq!(operations["changefeed_processes-changed"]["action"], "send");
}

#[test]
fn local_refs_are_rebased_into_the_document() {
    let dir = temp_dir("refs");
    let doc = generate("tests/corpus/codegen/constructs.yaml", &dir.join("c.json"));
    let schema = &doc["components"]["schemas"]["order.placed.v1"];
    assert_eq!(
        schema["properties"]["customer"]["$ref"],
        "#/components/schemas/order.placed.v1/definitions/customer"
    );
    assert!(schema.get("$defs").is_none() && schema["definitions"]["customer"].is_object(), "{schema}");
}

#[test]
fn specs_with_errors_write_nothing_and_exit_1() {
    let dir = temp_dir("bad");
    let out_file = dir.join("doc.json");
    let out = run(&[
        "asyncapi",
        "tests/corpus/lint/P401-out-of-range.yaml",
        "--out",
        out_file.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("error[P401]"), "{}", stderr(&out));
    assert!(!out_file.exists());
}
