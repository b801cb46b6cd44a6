//! The real `prom` binary, end to end, on a temporary store.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const PROM: &str = env!("CARGO_BIN_EXE_prom");

fn example_specs() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../specs")
}

fn prom(dir: &Path, args: &[&str]) -> Output {
    // These tests are about the embedded store, even when the test run exports a MongoDB URL.
    Command::new(PROM).current_dir(dir).env_remove("PROM_MONGO_URL").args(args).output().expect("run prom")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn lines(output: &Output) -> Vec<serde_json::Value> {
    text(&output.stdout).lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

const HEARTBEAT: &str =
    r#"{"pid": 7, "name": "api", "host": "h1", "cpu_pct": 0.5, "mem_mib": 12, "region": "eu"}"#;

#[test]
fn publish_prints_the_id_and_tail_prints_the_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let specs = example_specs();
    let specs = specs.to_str().expect("utf-8 path");
    let out = prom(dir.path(), &["publish", "--specs", specs, "heartbeat.received", HEARTBEAT]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_string();
    assert!(uuid::Uuid::parse_str(&id).is_ok_and(|u| u.get_version_num() == 7), "{id}");
    assert!(dir.path().join(".prom/events.db").exists(), "the store defaults to .prom/");

    let out = prom(dir.path(), &["tail", "--specs", specs, "heartbeat.received"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let events = lines(&out);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["id"], id.as_str());
    assert_eq!(events[0]["headers"]["x-schema-version"], "3");
    assert_eq!(events[0]["payload"]["pid"], 7);
    let out = prom(dir.path(), &["tail", "--specs", specs, "heartbeat.received.v3"]);
    assert_eq!(lines(&out).len(), 1, "dual-written");
}

#[test]
fn an_invalid_payload_exits_1_with_the_schema_error_and_stores_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let specs = example_specs();
    let specs = specs.to_str().expect("utf-8 path");
    let bad = r#"{"pid": 0, "name": "api", "host": "h1", "cpu_pct": 0.5, "mem_mib": 12, "region": "eu"}"#;
    let out = prom(dir.path(), &["publish", "--specs", specs, "heartbeat.received", bad]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("`/pid`") && stderr.contains("minimum of 1"), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(!dir.path().join(".prom").exists(), "nothing stored, not even an empty store");
    let out = prom(dir.path(), &["publish", "--specs", specs, "heartbeat.received", "{not json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("not valid JSON"));
}

#[test]
fn publish_version_stores_an_older_version_and_tail_reads_it_upcast() {
    let dir = tempfile::tempdir().expect("tempdir");
    let specs = example_specs();
    let specs = specs.to_str().expect("utf-8 path");
    // A v1 heartbeat: `mem_mb` (renamed to `mem_mib` in v2), no `region` (defaulted in v2).
    let v1 = r#"{"pid": 5, "name": "old", "host": "h1", "cpu_pct": 1.5, "mem_mb": 100}"#;
    let out = prom(dir.path(), &["publish", "--specs", specs, "heartbeat.received", "--version", "1", v1]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_string();

    let out = prom(dir.path(), &["tail", "--specs", specs, "heartbeat.received"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let events = lines(&out);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["id"], id.as_str());
    assert_eq!(events[0]["headers"]["x-upcasted-from"], "1", "stored at v1: {}", events[0]);
    let expected = serde_json::json!({
        "pid": 5, "name": "old", "host": "h1", "cpu_pct": 1.5, "mem_mib": 100, "region": "unknown"
    });
    assert_eq!(events[0]["payload"], expected, "the latest shape with the upcast's defaults");
    // The dual-written copy holds the latest version already.
    let out = prom(dir.path(), &["tail", "--specs", specs, "heartbeat.received.v3"]);
    assert_eq!(lines(&out).first().map(|e| e["payload"].clone()), Some(expected));

    // A v3 payload is not a valid v1 one: the schema error names the offending field.
    let out =
        prom(dir.path(), &["publish", "--specs", specs, "heartbeat.received", "--version", "1", HEARTBEAT]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("v1 is invalid") && stderr.contains("mem_mb"), "{stderr}");

    // A version the topic does not have: refused, listing the declared ones; nothing stored.
    for version in ["4", "0"] {
        let out =
            prom(dir.path(), &["publish", "--specs", specs, "heartbeat.received", "--version", version, v1]);
        assert_eq!(out.status.code(), Some(1));
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains(&format!("`heartbeat.received` has no version {version}"))
                && stderr.contains("the spec declares v1, v2 and v3"),
            "{stderr}"
        );
    }
    let out = prom(dir.path(), &["tail", "--specs", specs, "heartbeat.received"]);
    assert_eq!(lines(&out).len(), 1, "the refused publishes stored nothing");
}

#[test]
fn a_spec_with_errors_exits_2_with_rendered_diagnostics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = dir.path().join("bad.yaml");
    std::fs::write(
        &spec,
        "topics:\n  t.one:\n    partitions: 0\n    versions:\n      1:\n        schema: { type: object }\n",
    )
    .expect("write spec");
    let out = prom(dir.path(), &["publish", "--specs", "bad.yaml", "t.one", "{}"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("P401") && stderr.contains("bad.yaml:3:17"), "{stderr}");
    assert!(!dir.path().join(".prom").exists());
}

#[test]
fn tail_with_a_group_continues_where_it_stopped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let specs = example_specs();
    let specs = specs.to_str().expect("utf-8 path");
    for pid in 1..=3 {
        let payload = HEARTBEAT.replace("\"pid\": 7", &format!("\"pid\": {pid}"));
        let out = prom(dir.path(), &["publish", "--specs", specs, "heartbeat.received", &payload]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let store = dir.path().join("elsewhere");
    let store = store.to_str().expect("utf-8 path");
    let out = prom(dir.path(), &["--store", store, "tail", "--specs", specs, "heartbeat.received"]);
    assert!(lines(&out).is_empty(), "--store points at another (empty) store");

    let group = ["tail", "--specs", specs, "heartbeat.received", "--group", "ops"];
    let first = prom(dir.path(), &[&group[..], &["--limit", "2"]].concat());
    assert!(first.status.success(), "{}", text(&first.stderr));
    let second = prom(dir.path(), &group);
    let third = prom(dir.path(), &group);
    let pids =
        |o: &Output| lines(o).iter().map(|e| e["payload"]["pid"].as_i64().unwrap_or(0)).collect::<Vec<_>>();
    let mut all = [pids(&first), pids(&second)].concat();
    all.sort_unstable();
    assert_eq!((pids(&first).len(), all), (2, vec![1, 2, 3]));
    assert!(pids(&third).is_empty(), "the group has read everything");
    let latest = prom(dir.path(), &["tail", "--specs", specs, "heartbeat.received", "--from", "latest"]);
    assert!(lines(&latest).is_empty());
    let bad = prom(dir.path(), &["tail", "--specs", specs, "heartbeat.received", "--from", "yesterday"]);
    assert_eq!(bad.status.code(), Some(2), "a usage error");
    assert!(text(&bad.stderr).contains("RFC 3339"), "{}", text(&bad.stderr));
}

const ORDERS_V1: &str = "
topics:
  orders.placed:
    key: /order
    versions:
      1:
        schema: { type: object, required: [order], properties: { order: { type: string } } }
consumers:
  audit:
    topic: orders.placed
    retry: { max_attempts: 2, backoff: 10ms }
    dlq: true
";

const ORDERS_V2_EXTRA: &str = "
      2:
        schema:
          type: object
          required: [order, channel]
          properties: { order: { type: string }, channel: { type: string } }
        upcast:
          set_default: { channel: web }
";

/// Runs `prom run` (with `extra` arguments) until its stderr satisfies `done`, then stops it with
/// SIGINT.
fn run_until(dir: &Path, specs: &str, extra: &[&str], done: impl Fn(&str) -> bool) -> (String, String) {
    let mut child = Command::new(PROM)
        .current_dir(dir)
        .env_remove("PROM_MONGO_URL")
        .args(["run", "--specs", specs, "--progress", "0.05"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn prom run");
    let mut stderr = child.stderr.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0_u8; 4096];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut err = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done(&err) && Instant::now() < deadline {
        if let Ok(chunk) = rx.recv_timeout(Duration::from_millis(50)) {
            err.push_str(&text(&chunk));
        }
    }
    let pid = child.id().to_string();
    Command::new("kill").args(["-INT", &pid]).status().expect("kill -INT");
    let mut out = String::new();
    child.stdout.take().expect("piped").read_to_string(&mut out).expect("stdout");
    let status = child.wait().expect("wait");
    while let Ok(chunk) = rx.recv_timeout(Duration::from_millis(200)) {
        err.push_str(&text(&chunk));
    }
    assert!(status.success(), "prom run exited with {status}: {err}");
    (out, err)
}

#[test]
fn run_on_the_embedded_store_projects_feeds_and_says_what_it_skips() {
    let dir = tempfile::tempdir().expect("tempdir");
    let specs = example_specs();
    let specs = specs.to_str().expect("utf-8 path");
    let state = r#"{"processId": "h1:7", "host": "h1", "name": "api", "status": "running", "seq": 3}"#;
    let out = prom(dir.path(), &["publish", "--specs", specs, "process.state", state]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (_, err) = run_until(dir.path(), specs, &[], |err| err.contains("[processes] events=1 upserted=1"));
    assert!(
        err.lines().any(|l| l.starts_with("running projector `processes`")
            && l.contains("changefeed `processes-changed` → `processes.changed`")),
        "{err}"
    );
    let skips: Vec<&str> = err.lines().filter(|l| l.starts_with("skipping")).collect();
    assert_eq!(skips.len(), 1, "{err}");
    assert!(skips[0].contains("projector `process-stats`") && skips[0].contains("transactional"), "{err}");
    assert!(err.contains("fed=1") && err.contains("lag=0"), "{err}");
    let feed = prom(dir.path(), &["tail", "--specs", specs, "processes.changed"]);
    let events = lines(&feed);
    assert_eq!(events.len(), 1, "{}", text(&feed.stdout));
    assert_eq!(events[0]["payload"]["operation"], "insert");
    assert_eq!(events[0]["payload"]["document"]["seq"], 3);
}

#[test]
fn run_dead_letters_what_it_cannot_read_and_dlq_replay_brings_it_back_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("v1")).expect("mkdir");
    std::fs::create_dir_all(dir.path().join("v2")).expect("mkdir");
    std::fs::write(dir.path().join("v1/orders.yaml"), ORDERS_V1).expect("write");
    let v2 = ORDERS_V1.replace("\nconsumers:", &format!("{ORDERS_V2_EXTRA}consumers:"));
    std::fs::write(dir.path().join("v2/orders.yaml"), v2).expect("write");

    // A writer already on v2, a reader still on v1: the reader cannot know v2, so it
    // dead-letters that event and keeps going.
    let ok = prom(dir.path(), &["publish", "--specs", "v1", "orders.placed", r#"{"order": "o1"}"#]);
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    let ahead = prom(
        dir.path(),
        &["publish", "--specs", "v2", "orders.placed", r#"{"order": "o2", "channel": "app"}"#],
    );
    assert!(ahead.status.success(), "{}", text(&ahead.stderr));
    let (out, err) =
        run_until(dir.path(), "v1", &["--stand-in", "audit"], |err| err.contains("dead_lettered=1"));
    assert!(err.contains("[audit] handled=1 retried=0 dead_lettered=1") && err.contains("lag=0"), "{err}");
    let handled: Vec<serde_json::Value> =
        out.lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    assert_eq!(handled.len(), 1);
    assert_eq!(handled[0]["event"]["payload"]["order"], "o1");

    let list = prom(dir.path(), &["dlq", "list", "--specs", "v1", "orders.placed"]);
    let entries = lines(&list);
    assert_eq!(entries.len(), 1);
    assert!(entries[0]["error"].as_str().is_some_and(|e| e.contains("update the spec")), "{}", entries[0]);
    assert_eq!((entries[0]["attempts"].clone(), entries[0]["replayed"].clone()), (0.into(), false.into()));

    // The reader upgrades to v2 and replays: once, never twice.
    let replay = prom(dir.path(), &["dlq", "replay", "--specs", "v2", "orders.placed"]);
    assert!(replay.status.success(), "{}", text(&replay.stderr));
    assert_eq!(lines(&replay)[0]["replayed"].as_array().map(Vec::len), Some(1));
    let again = prom(dir.path(), &["dlq", "replay", "--specs", "v2", "orders.placed"]);
    assert_eq!(
        (lines(&again)[0]["replayed"].as_array().map(Vec::len), lines(&again)[0]["already_replayed"].clone()),
        (Some(0), 1.into())
    );
    let tail = prom(dir.path(), &["tail", "--specs", "v2", "orders.placed"]);
    let events = lines(&tail);
    assert_eq!(events.len(), 3);
    assert_eq!(events[0]["headers"]["x-upcasted-from"], "1", "o1 is read as v2");
    assert_eq!(events[0]["payload"]["channel"], "web");
    assert!(events[2]["headers"]["x-replay-of"].is_string());
    assert_eq!(events[2]["payload"]["channel"], "app");
    let listed = prom(dir.path(), &["dlq", "list", "--specs", "v2", "orders.placed"]);
    assert_eq!(lines(&listed)[0]["replayed"], true);
}

#[test]
fn run_never_takes_events_from_a_declared_consumer_group_unless_asked_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("orders.yaml"), ORDERS_V1).expect("write");
    for order in ["o1", "o2", "o3"] {
        let payload = format!(r#"{{"order": "{order}"}}"#);
        let out = prom(dir.path(), &["publish", "--specs", "orders.yaml", "orders.placed", &payload]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }

    // Nothing here needs no user code: `prom run` says why and touches no group.
    let out = prom(dir.path(), &["run", "--specs", "orders.yaml"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("not running consumer `audit` (group `audit` on `orders.placed`)"), "{err}");
    assert!(err.contains("--stand-in audit") && err.contains("nothing to run"), "{err}");
    let out = prom(dir.path(), &["run", "--specs", "orders.yaml", "--stand-in", "audti"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no consumer `audti` (declared: audit)"), "{}", text(&out.stderr));

    // The service's group still holds every event.
    let group = prom(dir.path(), &["tail", "--specs", "orders.yaml", "orders.placed", "--group", "audit"]);
    assert!(group.status.success(), "{}", text(&group.stderr));
    let orders: Vec<_> = lines(&group).iter().map(|e| e["payload"]["order"].clone()).collect();
    assert_eq!(orders, ["o1", "o2", "o3"]);

    // Asked by name, the stand-in consumes loudly.
    let out = prom(dir.path(), &["publish", "--specs", "orders.yaml", "orders.placed", r#"{"order": "o4"}"#]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (out, err) =
        run_until(dir.path(), "orders.yaml", &["--stand-in", "audit"], |err| err.contains("handled=1 "));
    assert!(out.contains(r#""order":"o4""#), "{out}");
    assert!(err.contains("WARNING: running a printing stand-in for consumer `audit`"), "{err}");
}

#[test]
fn spec_paths_come_positionally_after_the_commands_own_arguments_or_with_specs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let specs = example_specs();
    let specs = specs.to_str().expect("utf-8 path");
    let out = prom(dir.path(), &["publish", "heartbeat.received", HEARTBEAT, specs]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = prom(dir.path(), &["tail", "heartbeat.received", specs, "--limit", "5"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(lines(&out).len(), 1);
    let out = prom(dir.path(), &["dlq", "list", "heartbeat.received", "--specs", specs]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let out = prom(dir.path(), &["tail", "heartbeat.received", specs, "--specs", "elsewhere"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("with --specs `elsewhere`") && err.contains("help: name them one way"), "{err}");
}

/// This `prom` has MongoDB support only when the test run enables the feature; without it, the
/// MongoDB commands and `--mongo` say what is missing and how to get it (exit 2).
#[cfg(not(feature = "mongo"))]
#[test]
fn without_the_mongo_feature_mongodb_commands_say_how_to_get_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    for args in [
        &["--mongo", "mongodb://127.0.0.1:1/", "time-travel", "t", "k", "--at", "2026-01-01T00:00:00Z"][..],
        &["--mongo", "mongodb://127.0.0.1:1/", "tail", "heartbeat.received"],
    ] {
        let out = prom(dir.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = text(&out.stderr);
        assert!(err.contains("built without the `mongo` feature"), "{err}");
        assert!(err.contains("cargo install prom-runtime --features mongo"), "{err}");
        assert!(err.contains("cargo run -p prom-runtime --features mongo --bin prom --"), "{err}");
        assert!(!err.contains("unrecognized"), "{err}");
    }
}

/// The library describes a bad MongoDB URL; the CLI names the flag or variable that carried it.
#[cfg(feature = "mongo")]
#[test]
fn a_bad_mongo_url_is_reported_with_the_flag_that_gave_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let specs = example_specs();
    let specs = specs.to_str().expect("utf-8 path");
    let out = prom(dir.path(), &["--mongo", "postgres://nope", "tail", "heartbeat.received", specs]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("cannot open the MongoDB named by --mongo/PROM_MONGO_URL"), "{err}");
    assert!(err.contains("not a usable MongoDB URL") && err.contains("mongodb://127.0.0.1:27017"), "{err}");
    assert_eq!(err.matches("--mongo").count(), 1, "the library adds no flag of its own: {err}");
}

/// `scripts/mongo.sh` keeps its state outside the source tree: XDG_STATE_HOME, else
/// ~/.local/state, unless PROM_MONGO_STATE says otherwise (asked of `url`, which starts nothing).
#[test]
fn mongo_sh_keeps_its_state_outside_the_source_tree() {
    let home = tempfile::tempdir().expect("tempdir");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/mongo.sh");
    let state_of = |vars: &[(&str, PathBuf)]| {
        let mut command = Command::new("bash");
        command
            .arg(&script)
            .arg("url")
            .env("HOME", home.path())
            .env_remove("XDG_STATE_HOME")
            .env_remove("PROM_MONGO_STATE");
        for (name, value) in vars {
            command.env(name, value);
        }
        let out = command.output().expect("run mongo.sh");
        assert_eq!(out.status.code(), Some(1), "no server runs there");
        text(&out.stderr)
    };
    let home_dir = home.path().display().to_string();
    let err = state_of(&[]);
    assert!(err.contains(&format!("no mongod is running for {home_dir}/.local/state/prom/mongo;")), "{err}");
    let err = state_of(&[("XDG_STATE_HOME", home.path().join("xdg"))]);
    assert!(err.contains(&format!("for {home_dir}/xdg/prom/mongo;")), "{err}");
    let err = state_of(&[("PROM_MONGO_STATE", home.path().join("mine"))]);
    assert!(err.contains(&format!("for {home_dir}/mine;")), "{err}");
}
