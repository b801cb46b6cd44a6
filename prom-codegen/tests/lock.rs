//! The schema lock end to end: `build` records it, `lint`/`check`/`Builder` enforce it, `lock
//! --rewrite` is the only way past an in-place edit. Each test works in a temp directory of its own.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const V1: &str = "topics:
  order.placed:
    key: /id
    versions:
      1:
        schema:
          type: object
          required: [id]
          properties: { id: { type: string } }
";

const V2: &str = "      2:
        schema:
          type: object
          required: [id]
          properties: { id: { type: string } }
";

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("prom-lock-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("specs")).expect("temp dir");
    dir
}

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_prom-codegen")).args(args).current_dir(dir).output().expect("runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn write_spec(dir: &Path, text: &str) {
    std::fs::write(dir.join("specs/orders.yaml"), text).expect("write spec");
}

fn lock_text(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("specs/prom.lock")).expect("prom.lock")
}

const BUILD: &[&str] = &["build", "--specs", "specs", "--out", "gen.rs"];
const CHECK: &[&str] = &["check", "--specs", "specs", "--out", "gen.rs"];

#[test]
fn build_records_new_versions_and_check_fails_until_it_did() {
    let dir = temp_dir("grow");
    write_spec(&dir, V1);
    let out = run(&dir, CHECK);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));

    let out = run(&dir, BUILD);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("wrote specs/prom.lock (1 version(s) locked, 1 new)"), "{}", stderr(&out));
    let first = lock_text(&dir);
    assert!(first.contains("\"order.placed\":\n    1:\n      schema: sha256:"), "{first}");
    assert_eq!(run(&dir, CHECK).status.code(), Some(0));

    // Reformatting the YAML is no change: the fingerprint is of the canonical JSON.
    write_spec(
        &dir,
        &V1.replace(
            "properties: { id: { type: string } }",
            "properties:\n            id:\n              type: string",
        ),
    );
    assert_eq!(run(&dir, &["lint", "specs"]).status.code(), Some(0));

    // A new version is no lint error; `build` locks it.
    write_spec(&dir, &format!("{V1}{V2}"));
    assert_eq!(run(&dir, &["lint", "specs"]).status.code(), Some(0));
    assert!(run(&dir, BUILD).status.success());
    let lock = lock_text(&dir);
    assert!(lock.starts_with(&first[..first.find("    1:").expect("v1")]), "{lock}");
    assert!(lock.contains("    2:\n      schema: sha256:"), "{lock}");
    assert_eq!(run(&dir, CHECK).status.code(), Some(0));

    // With the generated code current, `check` still fails on a lock that misses a version.
    let without_v2 = &lock[..lock.find("    2:").expect("v2")];
    std::fs::write(dir.join("specs/prom.lock"), without_v2).expect("write lock");
    let out = run(&dir, CHECK);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out)
            .contains("error: specs/prom.lock is stale: version 2 of topic `order.placed` not locked"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("run `prom-codegen build --specs specs`"), "{}", stderr(&out));
    std::fs::remove_file(dir.join("specs/prom.lock")).expect("remove lock");
    let out = run(&dir, CHECK);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("specs/prom.lock is missing"), "{}", stderr(&out));
}

#[test]
fn an_in_place_edit_fails_every_command_until_rewritten_deliberately() {
    let dir = temp_dir("edit");
    write_spec(&dir, &format!("{V1}{V2}"));
    assert!(run(&dir, BUILD).status.success());
    let locked = lock_text(&dir);

    write_spec(
        &dir,
        &format!("{V1}{V2}").replacen(
            "required: [id]",
            "required: [id]\n          additionalProperties: false",
            1,
        ),
    );
    for args in [&["lint", "specs"][..], BUILD, CHECK, &["lock", "specs"]] {
        let out = run(&dir, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        let text = stderr(&out);
        assert!(
            text.contains(
                "error[P209]: the schema of version 1 of topic `order.placed` was changed in place"
            ),
            "{text}"
        );
        assert!(text.contains("--> specs/orders.yaml:7:11"), "{text}");
        assert!(text.contains("add version 3 with an upcast"), "{text}");
        assert!(text.contains("prom-codegen lock --rewrite order.placed@1"), "{text}");
    }
    assert_eq!(lock_text(&dir), locked, "a failing command rewrote the lock");

    let json = run(&dir, &["lint", "--format", "json", "specs"]);
    let items: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(items[0]["code"], "P209");
    assert_eq!(items[0]["name"], "locked-version-edited");

    let out = run(&dir, &["lock", "--specs", "specs", "--rewrite", "order.placed@1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("1 rewritten"), "{}", stderr(&out));
    assert_ne!(lock_text(&dir), locked);
    assert_eq!(run(&dir, &["lint", "specs"]).status.code(), Some(0));
}

#[test]
fn removing_a_locked_version_or_topic_is_an_error_and_rewrite_drops_it() {
    let dir = temp_dir("remove");
    let other = "  order.cancelled:\n    versions:\n      1:\n        schema: { type: object }\n";
    write_spec(&dir, &format!("{V1}{V2}{other}"));
    assert!(run(&dir, BUILD).status.success());

    write_spec(&dir, V1);
    let out = run(&dir, &["lint", "specs"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(
        text.contains("error[P210]: topic `order.cancelled` is locked in prom.lock but no longer declared"),
        "{text}"
    );
    assert!(text.contains("--> specs/prom.lock:"), "{text}");
    assert!(
        text.contains("error[P210]: version 2 of topic `order.placed` is locked at prom.lock:"),
        "{text}"
    );

    let out = run(&dir, &["lock", "specs", "--rewrite", "order.cancelled"]);
    assert_eq!(out.status.code(), Some(1), "one removal is still not released: {}", stderr(&out));
    let out = run(&dir, &["lock", "specs", "--rewrite", "order.cancelled", "--rewrite", "order.placed@2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lock = lock_text(&dir);
    assert!(!lock.contains("order.cancelled") && !lock.contains("    2:"), "{lock}");
    assert_eq!(run(&dir, CHECK).status.code(), Some(1), "gen.rs is stale, the lock is not");
    assert!(run(&dir, BUILD).status.success());
    assert_eq!(run(&dir, CHECK).status.code(), Some(0));
}

#[test]
fn lock_usage_errors_exit_2() {
    let dir = temp_dir("usage");
    write_spec(&dir, V1);
    assert!(run(&dir, BUILD).status.success());
    let out = run(&dir, &["lock", "specs", "--rewrite", "order.placed@7"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("nothing to rewrite: `order.placed@7` is not locked in specs/prom.lock"));
    let out = run(&dir, &["lock", "specs", "--rewrite", "order.placed@x"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("is not a version number"), "{}", stderr(&out));
    let out = run(&dir, &["lock", "specs/orders.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("prom.lock lives in a spec directory"), "{}", stderr(&out));
}

#[test]
fn a_damaged_lock_is_located_and_never_overwritten() {
    let dir = temp_dir("damaged");
    write_spec(&dir, V1);
    let damaged = "format: 1\ntopics:\n  \"order.placed\":\n    1:\n      schema: sha256:123\n";
    std::fs::write(dir.join("specs/prom.lock"), damaged).expect("write lock");
    let out = run(&dir, BUILD);
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(text.contains("error[P006]: `schema` must be `sha256:` and 64 lowercase hex digits"), "{text}");
    assert!(text.contains("--> specs/prom.lock:5:15"), "{text}");
    assert!(text.contains("git checkout -- prom.lock"), "{text}");
    assert_eq!(lock_text(&dir), damaged);
}

#[test]
fn the_builder_fails_on_an_edited_locked_version() {
    let dir = temp_dir("builder");
    write_spec(&dir, V1);
    assert!(run(&dir, BUILD).status.success());
    write_spec(&dir, &V1.replace("{ type: string }", "{ type: integer }"));
    let result = prom_codegen::Builder::new()
        .with_specs(dir.join("specs"))
        .with_out_file(dir.join("builder.rs"))
        .generate();
    match result {
        Err(prom_codegen::BuildError::Lint(rendered)) => {
            assert!(rendered.contains("error[P209]"), "{rendered}");
            assert!(rendered.contains("orders.yaml:7:11"), "{rendered}");
        }
        other => panic!("expected a P209 lint error, got {other:?}"),
    }
    assert!(!dir.join("builder.rs").exists());
}

#[test]
fn a_lock_that_is_no_regular_file_is_refused_without_hanging() {
    let dir = temp_dir("fifo");
    write_spec(&dir, V1);
    let fifo = dir.join("specs/prom.lock");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo runs");
    assert!(made.success());
    for args in [&["lint", "specs"][..], BUILD] {
        let out = run(&dir, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        let text = stderr(&out);
        assert!(text.contains("error[P007]: cannot read the schema lock: it is a FIFO"), "{text}");
        assert!(text.contains("--> specs/prom.lock:1:1"), "{text}");
    }
}
