//! `prom-codegen build` / `check` and the `build.rs` Builder, end to end.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("prom-build-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_prom-codegen")).args(args).current_dir(root()).output().expect("runs")
}

#[test]
fn build_writes_once_and_check_detects_staleness() {
    let out = temp_dir("cli").join("generated.rs");
    let out_arg = out.to_str().expect("utf-8 path");

    let first = run(&["build", "--specs", "specs", "--out", out_arg]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let written = std::fs::read_to_string(&out).expect("generated file");
    assert_eq!(
        written,
        std::fs::read_to_string(root().join("examples/monitor/src/prom.rs")).expect("snapshot")
    );
    let modified = std::fs::metadata(&out).and_then(|m| m.modified()).expect("mtime");

    let second = run(&["build", "--specs", "specs", "--out", out_arg]);
    assert!(String::from_utf8_lossy(&second.stderr).contains("is up to date"));
    assert_eq!(
        std::fs::metadata(&out).and_then(|m| m.modified()).expect("mtime"),
        modified,
        "rewrote an identical file"
    );

    assert_eq!(run(&["check", "--specs", "specs", "--out", out_arg]).status.code(), Some(0));
    std::fs::write(&out, written.replace("pub pid: i64", "pub pid: i32")).expect("edit");
    let stale = run(&["check", "--specs", "specs", "--out", out_arg]);
    assert_eq!(stale.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&stale.stderr).contains("is stale"),
        "{}",
        String::from_utf8_lossy(&stale.stderr)
    );
}

#[test]
fn build_refuses_specs_with_errors_and_writes_nothing() {
    let out = temp_dir("bad").join("generated.rs");
    let result = run(&[
        "build",
        "--specs",
        "tests/corpus/lint/P401-out-of-range.yaml",
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    assert_eq!(result.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&result.stderr).contains("error[P401]"));
    assert!(!out.exists());
}

#[test]
fn builder_generates_for_build_scripts_and_renders_lint_errors() {
    let out = temp_dir("builder").join("prom_generated.rs");
    let written =
        prom_codegen::Builder::new().with_specs("../specs").with_out_file(&out).generate().expect("builds");
    assert_eq!(written, out);
    let text = std::fs::read_to_string(&out).expect("generated");
    assert!(text.contains("pub mod heartbeat_received"));

    let error = prom_codegen::Builder::new()
        .with_specs("../tests/corpus/lint/multiple-errors.yaml")
        .with_out_file(temp_dir("builder-bad").join("x.rs"))
        .generate()
        .expect_err("lint errors fail the build");
    let message = error.to_string();
    assert!(message.contains("error[P101]") && message.contains("error[P301]"), "{message}");
}
