//! `prom-codegen breaking --against REF` in a temporary git repository with two commits: the
//! first declares the specs, the second (or the working tree) changes them.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BEFORE: &str = "topics:
  order.placed:
    key: /id
    partitions: 4
    compat: full
    dual_write: true
    versions:
      1:
        schema:
          type: object
          required: [id]
          properties: { id: { type: string } }
      2:
        schema:
          type: object
          required: [id]
          properties: { id: { type: string, description: The order. } }
  order.cancelled:
    versions:
      1:
        schema: { type: object }
consumers:
  billing:
    topic: order.placed
  audit:
    topic: order.cancelled
";

/// Every kind of break at once: v1 edited, v2 removed, compat loosened, partitions and key
/// changed, dual-write off, a topic and a consumer removed.
const AFTER: &str = "topics:
  order.placed:
    key: /order
    partitions: 8
    compat: backward
    dual_write: false
    versions:
      1:
        schema:
          type: object
          required: [id]
          properties: { id: { type: string }, order: { type: string } }
consumers:
  billing:
    topic: order.placed
";

fn repo(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("prom-breaking-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("specs")).expect("temp dir");
    git(&dir, &["init", "-q"]);
    dir
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(["-c", "user.name=prom", "-c", "user.email=prom@example.invalid", "-c", "commit.gpgsign=false"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn commit(dir: &Path, spec: &str, message: &str) {
    std::fs::write(dir.join("specs/orders.yaml"), spec).expect("write spec");
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", message]);
}

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_prom-codegen")).args(args).current_dir(dir).output().expect("runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn an_unchanged_spec_is_clean() {
    let dir = repo("clean");
    commit(&dir, BEFORE, "one");
    let out = run(&dir, &["breaking", "--against", "HEAD"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("0 breaking change(s) against HEAD ("), "{}", stderr(&out));
    // Adding a version and a topic breaks nothing.
    let grown = BEFORE.replace(
        "  order.cancelled:\n",
        "      3:\n        schema:\n          type: object\n          required: [id]\n          properties: { id: { type: string } }\n  order.shipped:\n    versions:\n      1:\n        schema: { type: object }\n  order.cancelled:\n",
    );
    std::fs::write(dir.join("specs/orders.yaml"), grown).expect("write");
    let out = run(&dir, &["breaking", "--against", "HEAD", "--specs", "specs"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn every_breaking_change_is_reported_where_it_is() {
    let dir = repo("all");
    commit(&dir, BEFORE, "one");
    commit(&dir, AFTER, "two");
    let out = run(&dir, &["breaking", "--against", "HEAD~1", "--format", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let items: Vec<Value> = serde_json::from_slice(&out.stdout).expect("JSON array");
    let found: Vec<(String, String, u64, u64)> = items
        .iter()
        .map(|d| {
            (
                d["code"].as_str().expect("code").to_owned(),
                d["file"].as_str().expect("file").to_owned(),
                d["line"].as_u64().expect("line"),
                d["column"].as_u64().expect("column"),
            )
        })
        .collect();
    let at =
        |code: &str, file: &str, line: u64, column: u64| (code.to_owned(), file.to_owned(), line, column);
    let expected = vec![
        // Gone from the working tree: located in the old file, named REF:path.
        at("P210", "HEAD~1:specs/orders.yaml", 18, 3),
        at("P703", "HEAD~1:specs/orders.yaml", 25, 3),
        at("P702", "specs/orders.yaml", 3, 10),
        at("P702", "specs/orders.yaml", 4, 17),
        at("P701", "specs/orders.yaml", 5, 13),
        at("P704", "specs/orders.yaml", 6, 17),
        at("P210", "specs/orders.yaml", 8, 7),
        at("P209", "specs/orders.yaml", 10, 11),
    ];
    let mut sorted = found.clone();
    sorted.sort();
    let mut expected_sorted = expected.clone();
    expected_sorted.sort();
    assert_eq!(sorted, expected_sorted, "{items:#?}");

    let human = run(&dir, &["breaking", "--against", "HEAD~1"]);
    assert_eq!(human.status.code(), Some(1));
    let text = stderr(&human);
    assert!(
        text.contains("error[P701]: the compatibility mode of topic `order.placed` was loosened from `full` to `backward` since HEAD~1"),
        "{text}"
    );
    assert!(text.contains(" --> HEAD~1:specs/orders.yaml:25:3\n"), "{text}");
    assert!(
        text.contains("   |   audit:\n") || text.contains("25 |   audit:\n"),
        "the old line is quoted: {text}"
    );
    assert!(text.contains("8 breaking change(s) against HEAD~1 ("), "{text}");
}

#[test]
fn the_working_tree_is_compared_uncommitted() {
    let dir = repo("worktree");
    commit(&dir, BEFORE, "one");
    std::fs::write(dir.join("specs/orders.yaml"), BEFORE.replace("partitions: 4", "partitions: 5"))
        .expect("write");
    let out = run(&dir, &["breaking", "--against", "HEAD"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("changed from 4 to 5 since HEAD"), "{}", stderr(&out));
    // Run from inside the spec directory: paths are relative to the working directory.
    let out = run(&dir.join("specs"), &["breaking", "--against", "HEAD", "."]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

#[test]
fn usage_errors_exit_2_and_new_specs_exit_0() {
    let dir = repo("usage");
    commit(&dir, BEFORE, "one");
    let out = run(&dir, &["breaking", "--against", "no-such-branch"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("`no-such-branch` is not a commit of this repository"), "{}", stderr(&out));
    let out = run(&dir, &["breaking"]);
    assert_eq!(out.status.code(), Some(2), "--against is required");

    let outside = std::env::temp_dir().join(format!("prom-breaking-test-{}-norepo", std::process::id()));
    let _ = std::fs::remove_dir_all(&outside);
    std::fs::create_dir_all(outside.join("specs")).expect("dir");
    std::fs::write(outside.join("specs/orders.yaml"), BEFORE).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_prom-codegen"))
        .args(["breaking", "--against", "HEAD"])
        .current_dir(&outside)
        .env("GIT_CEILING_DIRECTORIES", std::env::temp_dir())
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("not inside a git repository"), "{}", stderr(&out));

    // Specs added after the ref: nothing existed to break.
    std::fs::create_dir_all(dir.join("more")).expect("dir");
    std::fs::write(dir.join("more/new.yaml"), BEFORE).expect("write");
    let out = run(&dir, &["breaking", "--against", "HEAD", "more"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("no specs at `HEAD`"), "{}", stderr(&out));
}

#[test]
fn specs_with_lint_errors_are_not_compared() {
    let dir = repo("lint");
    commit(&dir, BEFORE, "one");
    std::fs::write(dir.join("specs/orders.yaml"), BEFORE.replace("partitions: 4", "partitions: 0"))
        .expect("write");
    let out = run(&dir, &["breaking", "--against", "HEAD"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("error[P401]"), "{}", stderr(&out));
    assert!(stderr(&out).contains("not comparing with `HEAD`"), "{}", stderr(&out));
}
