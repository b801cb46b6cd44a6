//! The `prom-codegen` binary, run as a user would: exit codes and output formats.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_prom-codegen"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("prom-codegen runs")
}

fn write_temp(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("prom-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write temp file");
    path
}

#[test]
fn lint_defaults_to_specs_and_passes_on_the_examples() {
    let out = run(&["lint"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("0 error(s)"), "{stderr}");
}

#[test]
fn lint_renders_snippets_and_exits_1() {
    let out = run(&["lint", "tests/corpus/lint/P401-out-of-range.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("error[P401]: `partitions` is 0, but must be at least 1"), "{stderr}");
    assert!(stderr.contains("--> tests/corpus/lint/P401-out-of-range.yaml:4:17"), "{stderr}");
    assert!(stderr.contains("4 |     partitions: 0\n  |                 ^ must be at least 1"), "{stderr}");
}

#[test]
fn lint_json_has_the_documented_fields() {
    let out = run(&["lint", "--format", "json", "tests/corpus/lint/multiple-errors.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    let items: Vec<Value> = serde_json::from_slice(&out.stdout).expect("JSON array");
    assert_eq!(items.len(), 6);
    for item in &items {
        for key in ["code", "severity", "message", "file", "line", "column", "help"] {
            assert!(item.get(key).is_some(), "missing {key} in {item}");
        }
    }
    assert_eq!(items[0]["code"], "P101");
    assert_eq!(items[0]["line"], 9);
    assert_eq!(items[0]["column"], 3);
    assert_eq!(items[0]["severity"], "error");
}

#[test]
fn lint_missing_path_is_an_error_not_a_panic() {
    let out = run(&["lint", "does/not/exist.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("error[P007]"));
}

#[test]
fn compat_exit_codes() {
    let old = write_temp("old.json", r#"{"type":"object","properties":{"a":{"type":"integer"}}}"#);
    let wider = write_temp("wider.json", r#"{"type":"object","properties":{"a":{"type":"number"}}}"#);
    let bad = write_temp("bad.json", r#"{"type":"object","properties":{"a":{"type":"integr"}}"#);
    let (o, w) = (old.to_str().expect("utf-8"), wider.to_str().expect("utf-8"));

    let ok = run(&["compat", o, w, "--mode", "backward"]);
    assert_eq!(ok.status.code(), Some(0), "{}", String::from_utf8_lossy(&ok.stdout));

    let broken = run(&["compat", o, w, "--mode", "forward", "--format", "json"]);
    assert_eq!(broken.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&broken.stdout).expect("JSON report");
    assert_eq!(report["compatible"], false);
    let violation = &report["violations"][0];
    assert_eq!(violation["path"], "/properties/a/type");
    assert!(violation["rule"].is_string() && violation["message"].is_string());

    assert_eq!(run(&["compat", o, bad.to_str().expect("utf-8"), "--mode", "full"]).status.code(), Some(2));
    assert_eq!(run(&["compat", o, w, "--mode", "sideways"]).status.code(), Some(2));
    assert_eq!(run(&["compat", o, "/nonexistent.json"]).status.code(), Some(2));
}

#[test]
fn schema_command_prints_the_spec_format() {
    let out = run(&["schema"]);
    assert!(out.status.success());
    let schema: Value = serde_json::from_slice(&out.stdout).expect("JSON Schema");
    assert_eq!(schema["title"], "Prom spec");
}

#[test]
fn every_spec_command_takes_positional_paths_and_specs_flags_alike() {
    let out_file = write_temp("same-naming.rs", "");
    let out_file = out_file.to_str().expect("utf-8 path");
    for form in [&["specs"][..], &["--specs", "specs"], &["specs", "--specs", "specs"]] {
        for command in ["lint", "build", "check"] {
            let mut args = vec![command];
            if command != "lint" {
                args.extend(["--out", out_file]);
            }
            args.extend(form);
            let out = run(&args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{args:?}: {stderr}");
        }
    }
}

#[test]
fn spec_paths_given_both_ways_and_differing_exit_2_saying_how_to_fix() {
    for command in ["lint", "build", "check"] {
        let out = run(&[command, "specs", "--specs", "elsewhere"]);
        assert_eq!(out.status.code(), Some(2), "{command}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("as arguments `specs` and with --specs `elsewhere`"), "{stderr}");
        assert!(stderr.contains("help: name them one way"), "{stderr}");
    }
}
