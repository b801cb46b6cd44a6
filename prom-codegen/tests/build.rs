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

/// Set in the child process that plays a build script calling `Builder::run`.
const BUILD_SCRIPT_CHILD: &str = "PROM_TEST_BUILD_SCRIPT_SPEC";

#[test]
fn builder_run_reports_spec_errors_like_lint_and_exits_1_without_a_panic() {
    if let Some(spec) = std::env::var_os(BUILD_SCRIPT_CHILD) {
        // The child: what a build.rs does (it exits the process).
        prom_codegen::Builder::new().with_specs(spec).run();
        return;
    }
    let out_dir = temp_dir("run-child");
    let child = |spec: &str, colour: Option<&str>| {
        let mut command = Command::new(std::env::current_exe().expect("test binary"));
        command
            .args(["--exact", "builder_run_reports_spec_errors_like_lint_and_exits_1_without_a_panic"])
            .args(["--nocapture", "--test-threads", "1"])
            .env(BUILD_SCRIPT_CHILD, spec)
            .env("OUT_DIR", &out_dir)
            .env_remove("NO_COLOR")
            .env_remove("CLICOLOR_FORCE")
            .env_remove("CARGO_TERM_COLOR");
        if let Some(colour) = colour {
            command.env("CARGO_TERM_COLOR", colour);
        }
        command.output().expect("the child runs")
    };

    let bad = child("../tests/corpus/lint/multiple-errors.yaml", None);
    assert_eq!(bad.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(!stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"), "{stderr}");
    let lint = run(&["lint", "tests/corpus/lint/multiple-errors.yaml"]);
    let lint = String::from_utf8_lossy(&lint.stderr);
    let first = lint.lines().next().expect("lint output");
    assert!(first.starts_with("error[P101]"), "{lint}");
    assert!(stderr.contains(first), "the same diagnostics as lint:\n{stderr}");
    assert!(stderr.contains("tests/corpus/lint/multiple-errors.yaml:"), "located:\n{stderr}");
    assert!(!stderr.contains('\x1b'), "plain unless asked:\n{stderr}");
    let stdout = String::from_utf8_lossy(&bad.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("cargo:rerun-if-changed=") && l.ends_with("multiple-errors.yaml")),
        "{stdout}"
    );

    let coloured = child("../tests/corpus/lint/multiple-errors.yaml", Some("always"));
    assert_eq!(coloured.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&coloured.stderr).contains("\x1b[1;31merror[P101]:\x1b[0m"));

    let good = child("../specs", None);
    assert!(good.status.success(), "{}", String::from_utf8_lossy(&good.stderr));
    let generated = std::fs::read_to_string(out_dir.join("prom_generated.rs")).expect("generated");
    assert!(generated.starts_with("// This file is @generated by prom_codegen::Builder in build.rs."));
    let stdout = String::from_utf8_lossy(&good.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("cargo:rerun-if-changed=") && l.ends_with("schemas/heartbeat.v2.json")),
        "{stdout}"
    );
}
