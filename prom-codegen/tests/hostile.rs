//! Hostile input, run against the real `prom-codegen` binary as a CI job would: every case is
//! generated in a temporary directory at test time, runs under a memory limit (`ulimit -v`) and
//! a hard time limit (the child is killed and the test fails), and must end in the documented
//! diagnostics, without panics, raw terminal escapes or echoed secrets.

use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A case that takes longer than this hangs. The slowest, 200k enum values, needs a few seconds
/// (it took over 2 minutes when enum values were compared by scanning); the margin is for a
/// debug build on a machine busy with other builds, where 20 s proved too tight.
const TIME_LIMIT: Duration = Duration::from_secs(60);
/// Virtual memory per run, in KiB (`ulimit -v`).
const MEMORY_LIMIT_KIB: u64 = 2_000_000;

struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    /// Both streams as raw bytes, to look for escape bytes.
    raw: Vec<u8>,
}

impl Run {
    fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// `lint --format json` output.
    fn diagnostics(&self) -> Vec<Value> {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not a JSON array ({e}):\n{}\n{}", self.stdout, self.stderr))
    }
}

/// A fresh directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("prom-hostile-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

fn write(path: &Path, text: impl AsRef<[u8]>) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("create dir");
    }
    std::fs::write(path, text).expect("write file");
}

/// Runs `prom-codegen ARGS` in `dir` under the memory and time limits.
fn run_in(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Run {
    let script = format!("ulimit -v {MEMORY_LIMIT_KIB}; exec \"$0\" \"$@\"");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_prom-codegen"))
        .args(args)
        .current_dir(dir)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn prom-codegen");
    let drain = |mut stream: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = stream.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("stdout piped")));
    let stderr = drain(Box::new(child.stderr.take().expect("stderr piped")));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for prom-codegen") {
            break status;
        }
        if started.elapsed() > TIME_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("prom-codegen {args:?} ran longer than {TIME_LIMIT:?}: killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = stdout.join().expect("stdout reader");
    let stderr = stderr.join().expect("stderr reader");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let run = Run { status, stdout: text(&stdout), stderr: text(&stderr), raw: [stdout, stderr].concat() };
    assert!(!run.stderr.contains("panicked"), "prom-codegen panicked:\n{}", run.stderr);
    assert!(
        !run.stderr.contains("memory allocation") && run.status.code().is_some(),
        "prom-codegen died ({:?}):\n{}",
        run.status,
        run.stderr
    );
    run
}

fn lint_json(dir: &Path, target: &str) -> Run {
    run_in(dir, &["lint", "--format", "json", target], &[])
}

/// `(code, file, line, column)` of every diagnostic.
fn located(run: &Run) -> Vec<(String, String, u64, u64)> {
    run.diagnostics()
        .iter()
        .map(|d| {
            (
                d["code"].as_str().unwrap_or_default().to_owned(),
                d["file"].as_str().unwrap_or_default().to_owned(),
                d["line"].as_u64().unwrap_or_default(),
                d["column"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

const TOPIC: &str = "topics:\n  a.b:\n    versions:\n      1: { schema: { type: object } }\n";

#[cfg(unix)]
#[test]
fn symlinks_to_a_parent_are_read_once_and_reported_as_loops() {
    let dir = scratch("loop");
    write(&dir.join("d/a.yaml"), TOPIC);
    std::fs::create_dir_all(dir.join("d/sub")).expect("sub");
    for link in ["up", "up2"] {
        std::os::unix::fs::symlink("..", dir.join("d/sub").join(link)).expect("symlink");
    }
    // A second path to a directory that is no ancestor is no loop: read once, with a warning.
    std::os::unix::fs::symlink("sub", dir.join("d/twin")).expect("symlink");
    let run = lint_json(&dir, "d");
    assert_eq!(run.code(), Some(1), "{}", run.stderr);
    assert_eq!(
        located(&run),
        vec![
            ("P011".to_owned(), "d/sub/up".to_owned(), 1, 1),
            ("P011".to_owned(), "d/sub/up2".to_owned(), 1, 1),
            ("P011".to_owned(), "d/twin".to_owned(), 1, 1),
        ],
        "each link is one P011, and no file is read twice (no P009)"
    );
    let severities: Vec<String> =
        run.diagnostics().iter().map(|d| d["severity"].as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(severities, ["error", "error", "warning"]);
    let human = run_in(&dir, &["lint", "d"], &[]);
    assert!(human.stderr.contains("`d/sub/up` leads back to `d`"), "{}", human.stderr);
    // `build` walks the same way: it refuses, quickly.
    let build = run_in(&dir, &["build", "--specs", "d", "--out", "gen.rs"], &[]);
    assert_eq!(build.code(), Some(1), "{}", build.stderr);
    assert!(build.stderr.contains("error[P011]"), "{}", build.stderr);
}

#[test]
fn counts_and_durations_have_upper_bounds() {
    let dir = scratch("bounds");
    let spec = "topics:\n  a.b:\n    partitions: 99999999999999\n    versions:\n      1: { schema: { type: object } }\n\
                consumers:\n  c:\n    topic: a.b\n    retry: { max_attempts: 1000000, backoff: 30d }\n\
                projectors:\n  p:\n    kind: changelog\n    topic: a.b\n    collection: p\n    key: /id\n\
                \x20   snapshot_api: { path: /p, max_limit: 99999999, max_age: 3650d }\n";
    write(&dir.join("s.yaml"), spec);
    let run = lint_json(&dir, "s.yaml");
    assert_eq!(run.code(), Some(1));
    let p401: Vec<(u64, u64)> =
        located(&run).into_iter().filter(|d| d.0 == "P401").map(|d| (d.2, d.3)).collect();
    assert_eq!(p401, vec![(3, 17), (9, 28), (9, 46), (16, 42), (16, 61)], "{}", run.stdout);
    let human = run_in(&dir, &["lint", "s.yaml"], &[]);
    assert!(
        human.stderr.contains("`partitions` is 99999999999999, but must be at most 4096"),
        "{}",
        human.stderr
    );
    assert!(human.stderr.contains("use at most 4096"), "{}", human.stderr);
    assert!(human.stderr.contains("`backoff: 30d` is longer than 1h"), "{}", human.stderr);
}

#[cfg(unix)]
#[test]
fn devices_fifos_and_directories_are_refused_not_read() {
    let dir = scratch("fifo");
    write(&dir.join("x.json"), r#"{"type": "object"}"#);
    let fifo = dir.join("pipe");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo runs");
    assert!(made.success());

    let zero = run_in(&dir, &["compat", "/dev/zero", "x.json"], &[]);
    assert_eq!(zero.code(), Some(2), "{}", zero.stderr);
    assert!(
        zero.stderr.contains("cannot read `/dev/zero`: it is a device, not a regular file"),
        "{}",
        zero.stderr
    );

    let pipe = run_in(&dir, &["compat", "x.json", "pipe"], &[]);
    assert_eq!(pipe.code(), Some(2), "{}", pipe.stderr);
    assert!(pipe.stderr.contains("it is a FIFO, not a regular file"), "{}", pipe.stderr);

    let spec = run_in(&dir, &["lint", "--format", "json", "pipe"], &[]);
    assert_eq!(located(&spec), vec![("P007".to_owned(), "pipe".to_owned(), 1, 1)]);

    write(&dir.join("s.yaml"), TOPIC);
    let check = run_in(&dir, &["check", "--specs", "s.yaml", "--out", "pipe"], &[]);
    assert_eq!(check.code(), Some(2), "{}", check.stderr);
    assert!(check.stderr.contains("it is a FIFO"), "{}", check.stderr);
    let build = run_in(&dir, &["build", "--specs", "s.yaml", "--out", "pipe"], &[]);
    assert_eq!(build.code(), Some(2), "{}", build.stderr);

    // A `$ref` to the FIFO is refused the same way (a link to /dev/zero would leave the
    // spec directory: P012, see below).
    write(&dir.join("t.yaml"), "topics:\n  a.b:\n    versions:\n      1: { schema: { $ref: pipe } }\n");
    let fifo_ref = lint_json(&dir, "t.yaml");
    assert_eq!(located(&fifo_ref), vec![("P007".to_owned(), "t.yaml".to_owned(), 4, 28)]);
}

#[test]
fn many_versions_report_each_change_once() {
    // 200 versions under full_transitive, each adding a property to the open model: before,
    // every change was reported for every version pair spanning it (1.3 M errors, 12 GB).
    let dir = scratch("versions");
    let mut spec = String::from("topics:\n  a.b:\n    compat: full_transitive\n    versions:\n");
    for v in 1..=200 {
        spec.push_str(&format!(
            "      {v}:\n        schema:\n          type: object\n          properties:\n"
        ));
        for p in 1..=v {
            spec.push_str(&format!("            p{p}: {{ type: string }}\n"));
        }
    }
    write(&dir.join("s.yaml"), &spec);
    let run = lint_json(&dir, "s.yaml");
    assert_eq!(run.code(), Some(1));
    let diagnostics = run.diagnostics();
    assert_eq!(diagnostics.len(), 199, "one P202 per version that adds a property");
    assert!(diagnostics.iter().all(|d| d["code"] == "P202"));
    // v2 adds p2 (line 15): the error points at the added property's key.
    assert_eq!((diagnostics[0]["line"].as_u64(), diagnostics[0]["column"].as_u64()), (Some(15), Some(13)));
    assert!(
        diagnostics[0]["message"].as_str().is_some_and(|m| m.contains("v2 is not fully compatible with v1"))
    );
}

#[test]
fn transitive_spans_over_undecided_changes_are_bounded() {
    // Every hop is undecided (a keyword the checker does not analyse changes), so no span can
    // be skipped by transitivity: 60 versions are 1 770 spans, of which 1 000 are compared.
    let dir = scratch("spans");
    let mut spec = String::from("topics:\n  a.b:\n    compat: backward_transitive\n    versions:\n");
    for v in 1..=60 {
        spec.push_str(&format!(
            "      {v}:\n        schema:\n          type: object\n          properties:\n            a: {{ type: string, x-rev: {v} }}\n"
        ));
    }
    write(&dir.join("s.yaml"), &spec);
    let run = lint_json(&dir, "s.yaml");
    assert_eq!(run.code(), Some(0), "undecided is a warning");
    let diagnostics = run.diagnostics();
    assert_eq!(
        located(&run),
        vec![("P203".into(), "s.yaml".into(), 5, 7), ("P203".into(), "s.yaml".into(), 14, 39)]
    );
    let message = |i: usize| diagnostics[i]["message"].as_str().unwrap_or_default().to_owned();
    assert!(
        message(0).contains("711 version pair(s) spanning undecided changes were not compared"),
        "{}",
        message(0)
    );
    assert!(message(1).contains("the same finding for 1058 more version pair(s): v2→v3"), "{}", message(1));
}

#[test]
fn catastrophic_regexes_are_undecided_within_a_budget() {
    // `^(a|a)*\1b` backtracks exponentially on strings of `a`s; 20 such properties cost 33 s.
    let dir = scratch("regex");
    let mut spec = String::from("topics:\n  a.b:\n    versions:\n");
    for (v, pattern) in [(1, "^a+$"), (2, "^(a|a)*\\\\1b")] {
        spec.push_str(&format!(
            "      {v}:\n        schema:\n          type: object\n          properties:\n"
        ));
        for p in 0..20 {
            spec.push_str(&format!(
                "            p{p}: {{ type: string, minLength: 24, pattern: \"{pattern}\" }}\n"
            ));
        }
    }
    write(&dir.join("s.yaml"), &spec);
    let run = lint_json(&dir, "s.yaml");
    let diagnostics = run.diagnostics();
    assert!(!diagnostics.is_empty());
    assert!(
        diagnostics.iter().all(|d| d["code"] == "P203" && d["severity"] == "warning"),
        "undecided, never guessed: {}",
        run.stdout
    );
    assert_eq!(run.code(), Some(0), "undecided is a warning");
    assert!(run.stdout.contains("ran out of its budget"), "the budget is shared by all 20 properties");
}

fn enum_spec(values: usize, dropped: usize) -> String {
    let list = |skip: Option<usize>| {
        (0..values).filter(|i| Some(*i) != skip).map(|i| format!("v{i}")).collect::<Vec<_>>().join(", ")
    };
    format!(
        "topics:\n  a.b:\n    versions:\n      1:\n        schema:\n          type: object\n          properties:\n            s: {{ type: string, enum: [{}] }}\n      2:\n        schema:\n          type: object\n          properties:\n            s: {{ type: string, enum: [{}] }}\n",
        list(None),
        list(Some(dropped))
    )
}

#[test]
fn removing_one_value_from_a_huge_enum_is_one_linear_finding() {
    // Compared value by value by scanning, 40k values took 19 s and 200k over 2 minutes.
    let dir = scratch("enum");
    write(&dir.join("s.yaml"), enum_spec(40_000, 1234));
    let run = lint_json(&dir, "s.yaml");
    assert_eq!(run.code(), Some(1));
    let diagnostics = run.diagnostics();
    assert_eq!(diagnostics.len(), 1, "{}", run.stdout);
    assert_eq!(diagnostics[0]["code"], "P202");
    assert_eq!((diagnostics[0]["line"].as_u64(), diagnostics[0]["column"].as_u64()), (Some(13), Some(13)));
    assert!(diagnostics[0]["message"].as_str().is_some_and(|m| m.contains("enum value \"v1234\" removed")));

    // 200k values through `compat` (the same comparison without the 3 MB of YAML to parse).
    let values =
        |skip: usize| (0..200_000).filter(|i| *i != skip).map(|i| format!("v{i}")).collect::<Vec<_>>();
    let schema = |values: Vec<String>| serde_json::json!({ "type": "string", "enum": values }).to_string();
    write(&dir.join("old.json"), schema(values(usize::MAX)));
    write(&dir.join("new.json"), schema(values(1234)));
    let run = run_in(&dir, &["compat", "--format", "json", "old.json", "new.json"], &[]);
    assert_eq!(run.code(), Some(1), "{}", run.stderr);
    let report: Value = serde_json::from_str(&run.stdout).expect("JSON report");
    assert_eq!(report["violations"].as_array().map(Vec::len), Some(1), "{}", run.stdout);
    assert_eq!(report["violations"][0]["rule"], "enum-narrowed");
    assert_eq!(report["violations"][0]["path"], "", "the schema root holds the enum");
}

#[test]
fn diagnostics_are_capped_with_a_count_of_the_rest() {
    let dir = scratch("cap");
    let mut spec = String::from("topics:\n");
    for i in 0..1500 {
        spec.push_str(&format!("  Bad{i}:\n    versions:\n      1: {{ schema: {{ type: object }} }}\n"));
    }
    write(&dir.join("s.yaml"), &spec);
    let run = lint_json(&dir, "s.yaml");
    assert_eq!(run.code(), Some(1));
    assert_eq!(run.diagnostics().len(), 1000);
    assert!(run.stderr.contains("... and 500 more diagnostic(s) not shown"), "{}", run.stderr);
    let human = run_in(&dir, &["lint", "s.yaml"], &[]);
    assert_eq!(human.stderr.matches("error[P101]").count(), 1000);
    assert!(human.stderr.contains("... and 500 more diagnostic(s) not shown (500 error(s), 0 warning(s))"));
    assert!(
        human.stderr.ends_with("1500 error(s), 0 warning(s)\n"),
        "{}",
        &human.stderr[human.stderr.len() - 300..]
    );
}

#[test]
fn refs_stay_inside_the_spec_directory_and_secrets_are_not_echoed() {
    let dir = scratch("refs");
    let secret = "prom-hostile-secret-7f3a";
    let spec = "topics:\n  a.b:\n    versions:\n      1: { schema: { $ref: /proc/self/environ } }\n      2: { schema: { $ref: ../../../../../../../../etc/passwd } }\n";
    write(&dir.join("d/s.yaml"), spec);
    let run = run_in(&dir, &["lint", "--format", "json", "d"], &[("PROM_HOSTILE_SECRET", secret)]);
    assert_eq!(
        located(&run),
        vec![
            ("P012".to_owned(), "d/s.yaml".to_owned(), 4, 28),
            ("P012".to_owned(), "d/s.yaml".to_owned(), 5, 28),
        ]
    );
    let human = run_in(&dir, &["lint", "d"], &[("PROM_HOSTILE_SECRET", secret)]);
    for out in [&run, &human] {
        let text = format!("{}{}", out.stdout, out.stderr);
        assert!(!text.contains(secret) && !text.contains("root:"), "leaked:\n{text}");
    }

    // A symlink inside the directory that leads out of it is refused too.
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink("/etc/passwd", dir.join("d/leak.json")).expect("symlink");
        write(
            &dir.join("d/s.yaml"),
            "topics:\n  a.b:\n    versions:\n      1: { schema: { $ref: leak.json } }\n",
        );
        let run = lint_json(&dir, "d");
        assert_eq!(located(&run), vec![("P012".to_owned(), "d/s.yaml".to_owned(), 4, 28)]);
        assert!(run.stdout.contains("symlink"), "{}", run.stdout);
        assert!(!run.stdout.contains("root:"), "{}", run.stdout);
    }

    // A file inside that is no spec is quoted around the error only, at most 200 characters.
    write(
        &dir.join("d/s.yaml"),
        "topics:\n  a.b:\n    versions:\n      1: { schema: { $ref: notes.json } }\n",
    );
    let line = format!("{{\"a\": [1, 2 {} END-OF-SECRET-LINE", "x".repeat(5000));
    write(&dir.join("d/notes.json"), line);
    let human = run_in(&dir, &["lint", "d"], &[]);
    assert!(human.stderr.contains("error[P001]"), "{}", human.stderr);
    assert!(!human.stderr.contains("END-OF-SECRET-LINE"), "{}", human.stderr);
    assert!(human.stderr.lines().all(|l| l.chars().count() < 260), "{}", human.stderr);
}

#[test]
fn terminal_escapes_are_rendered_escaped() {
    let dir = scratch("escapes");
    let key = "\u{1b}]0;pwned\u{7}\u{1b}[2J";
    write(
        &dir.join("s.yaml"),
        format!("topics:\n  \"a{key}\":\n    versions:\n      1: {{ schema: {{ type: object }} }}\n"),
    );
    for args in [&["lint", "s.yaml"][..], &["lint", "--format", "json", "s.yaml"][..]] {
        let run = run_in(&dir, args, &[]);
        assert_eq!(run.code(), Some(1));
        assert!(
            !run.raw.iter().any(|b| *b == 0x1b || *b == 0x07),
            "raw escape bytes in {args:?}: {:?}",
            run.stderr
        );
    }
    let human = run_in(&dir, &["lint", "s.yaml"], &[]);
    assert!(human.stderr.contains("error[P101]"), "{}", human.stderr);
    assert!(human.stderr.contains("\\u{1b}]0;pwned\\u{7}\\u{1b}[2J"), "{}", human.stderr);

    // `compat` quotes JSON pointers built from property names: escaped too.
    let schema = |extra: bool| {
        let mut properties = serde_json::Map::new();
        properties.insert("id".into(), serde_json::json!({ "type": "string" }));
        if extra {
            properties.insert(format!("x{key}"), serde_json::json!({ "type": "string" }));
        }
        serde_json::json!({ "type": "object", "properties": properties, "additionalProperties": false })
            .to_string()
    };
    write(&dir.join("old.json"), schema(true));
    write(&dir.join("new.json"), schema(false));
    let run = run_in(&dir, &["compat", "old.json", "new.json"], &[]);
    assert_eq!(run.code(), Some(1), "{}{}", run.stdout, run.stderr);
    assert!(!run.raw.iter().any(|b| *b == 0x1b || *b == 0x07), "raw escape bytes: {:?}", run.stdout);
    assert!(run.stdout.contains("\\u{1b}]0;pwned"), "{}", run.stdout);
}

#[test]
fn invalid_utf8_is_located_at_the_byte() {
    let dir = scratch("utf8");
    write(
        &dir.join("s.yaml"),
        b"topics:\n  a.b:\n    description: caf\xff!\n    versions:\n      1: { schema: { type: object } }\n",
    );
    let run = lint_json(&dir, "s.yaml");
    assert_eq!(located(&run), vec![("P001".to_owned(), "s.yaml".to_owned(), 3, 21)]);
    let human = run_in(&dir, &["lint", "s.yaml"], &[]);
    assert!(human.stderr.contains("is not valid UTF-8: byte 0xFF"), "{}", human.stderr);
    assert!(!human.stderr.contains("$ref"), "no unrelated hint: {}", human.stderr);
}

#[test]
fn compat_exits_2_on_an_invalid_regex() {
    let dir = scratch("compat-regex");
    write(&dir.join("old.json"), r#"{"type": "string"}"#);
    write(&dir.join("new.json"), "{\"type\": \"string\",\n \"pattern\": \"((\"}");
    let run = run_in(&dir, &["compat", "old.json", "new.json"], &[]);
    assert_eq!(run.code(), Some(2), "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("new.json:2:13: invalid regex at `/pattern`"), "{}", run.stderr);
}

#[test]
fn a_closed_stdout_is_no_panic() {
    let dir = scratch("pipe");
    write(&dir.join("s.yaml"), "topics:\n  A:\n    versions:\n      1: { schema: { type: object } }\n");
    write(&dir.join("x.json"), r#"{"type": "object"}"#);
    for args in [
        &["schema"][..],
        &["lint", "--format", "json", "s.yaml"][..],
        &["compat", "--format", "json", "x.json", "x.json"][..],
    ] {
        // The read end is closed before the child starts: every write fails with EPIPE.
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let out = Command::new(env!("CARGO_BIN_EXE_prom-codegen"))
            .args(args)
            .current_dir(&dir)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .expect("prom-codegen runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(out.status.code().is_some_and(|c| c <= 2), "{args:?}: {:?}", out.status);
    }
    // A full disk is not a closed pipe: the output is lost, so it is an error (exit 2).
    #[cfg(target_os = "linux")]
    {
        let full = std::fs::OpenOptions::new().write(true).open("/dev/full").expect("/dev/full");
        let out = Command::new(env!("CARGO_BIN_EXE_prom-codegen"))
            .arg("schema")
            .stdout(full)
            .stderr(Stdio::piped())
            .output()
            .expect("prom-codegen runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.starts_with("error: cannot write to stdout: No space left on device"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
