//! Hostile data: corrupt stored rows, numbers written several ways, repeated keys, large and
//! endless input, empty and read-only store files. The real `prom` binary and the library, on
//! real stores.

use prom_runtime::bus::sqlite::FILE_NAME;
use prom_runtime::consumer::{SubscribeOptions, lag};
use prom_runtime::dlq::DeadLetter;
use prom_runtime::runner::Runner;
use prom_runtime::{Error, EventBus, EventRecord, Producer, PublishOptions, Registry, SqliteBus};
use serde::Deserialize;
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PROM: &str = env!("CARGO_BIN_EXE_prom");

/// A topic keyed by an integer, and a consumer that does not declare a DLQ.
const SPEC: &str = "
topics:
  proc.seen:
    key: /pid
    partitions: 8
    versions:
      1:
        schema:
          type: object
          required: [pid]
          properties:
            pid: { type: integer }
            name: { type: string }
            blob: { type: string }
consumers:
  watcher:
    topic: proc.seen
    retry: { max_attempts: 1, backoff: 10ms }
";

const TOPIC: &str = "proc.seen";

/// A temporary directory holding the spec (`spec.yaml`) and the store (`store/`).
struct Workdir {
    dir: tempfile::TempDir,
}

impl Workdir {
    fn new() -> Workdir {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("spec.yaml"), SPEC).expect("write spec");
        Workdir { dir }
    }

    fn spec(&self) -> String {
        self.dir.path().join("spec.yaml").display().to_string()
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn db(&self) -> PathBuf {
        self.store().join(FILE_NAME)
    }

    /// `prom ARGS --specs spec.yaml --store store`, with `stdin` fed to it.
    fn prom(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut command = self.command(args);
        command.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        run(command, stdin)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(PROM);
        command
            .env_remove("PROM_MONGO_URL")
            .args(args)
            .args(["--specs", &self.spec(), "--store", &self.store().display().to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    fn producer(&self) -> Producer<SqliteBus> {
        Producer::new(SqliteBus::open(self.store()).expect("open store"), registry())
    }

    /// The stored payload text of each event of the topic, in offset order.
    fn stored_payloads(&self) -> Vec<String> {
        let conn = rusqlite::Connection::open(self.db()).expect("open db");
        let mut stmt =
            conn.prepare("SELECT payload FROM events WHERE topic = ?1 ORDER BY off").expect("prepare");
        stmt.query_map([TOPIC], |r| r.get(0)).expect("query").collect::<rusqlite::Result<_>>().expect("rows")
    }

    /// Overwrites the stored payload of event `offset` behind the store's back.
    fn corrupt(&self, offset: i64, text: &str) {
        let conn = rusqlite::Connection::open(self.db()).expect("open db");
        let changed = conn
            .execute(
                "UPDATE events SET payload = ?1 WHERE topic = ?2 AND off = ?3",
                rusqlite::params![text, TOPIC, offset],
            )
            .expect("update");
        assert_eq!(changed, 1);
    }
}

/// Runs `command` with a 60 s guard against hangs, feeding `stdin` from another thread.
fn run(mut command: Command, stdin: Option<&[u8]>) -> Output {
    let mut child = command.spawn().expect("spawn prom");
    let feeder = stdin.map(|bytes| {
        let mut pipe = child.stdin.take().expect("stdin piped");
        let bytes = bytes.to_vec();
        // prom may stop reading early (input over the limit): a broken pipe is expected then.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        })
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("prom did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if let Some(feeder) = feeder {
        feeder.join().expect("stdin feeder");
    }
    child.wait_with_output().expect("output")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn registry() -> Arc<Registry> {
    let linted = prom_spec::lint_str("spec.yaml", SPEC);
    assert!(!linted.has_errors(), "{}", linted.render());
    Arc::new(Registry::from_spec(&linted.spec).expect("registry"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

/// Publishes pids 1, 2, 3 and returns their records.
async fn three_events(work: &Workdir) -> Vec<EventRecord> {
    let producer = work.producer();
    for pid in 1..=3 {
        producer.publish(TOPIC, json!({ "pid": pid }), PublishOptions::default()).await.expect("publish");
    }
    producer.bus().read_topic(TOPIC, &prom_runtime::TopicPosition::start(), 10).await.expect("read")
}

#[test]
fn tail_reports_a_corrupt_row_by_offset_and_id_and_prints_the_rest() {
    let work = Workdir::new();
    let events = runtime().block_on(three_events(&work));
    work.corrupt(2, "{not json");
    let out = work.prom(&["tail", TOPIC], None);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "corrupt events make tail fail at the end: {stderr}");
    let printed: Vec<Value> =
        text(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    assert_eq!(printed.iter().map(|e| e["offset"].as_i64()).collect::<Vec<_>>(), [Some(1), Some(3)]);
    let id = events[1].id.to_string();
    assert!(stderr.contains("CORRUPT EVENT SKIPPED"), "{stderr}");
    assert!(
        stderr.contains(&id) && stderr.contains("offset 2") && stderr.contains("`proc.seen`"),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("partition {}", events[1].partition)), "{stderr}");
    assert!(stderr.contains("payload is not JSON") && stderr.contains("{not json"), "{stderr}");
}

#[test]
fn a_runner_dead_letters_a_corrupt_row_with_its_raw_text_and_goes_on() {
    let work = Workdir::new();
    runtime().block_on(async {
        let events = three_events(&work).await;
        work.corrupt(2, "{\"pid\": 2, trailing garbage");
        let producer = work.producer();
        let linted = prom_spec::lint_str("spec.yaml", SPEC);
        let system = prom_runtime::system::System::from_spec(&linted.spec);
        let consumer = system.consumer("watcher").expect("declared");
        let opts =
            SubscribeOptions { poll_timeout: Duration::from_millis(20), ..SubscribeOptions::default() };
        let runner = Runner::for_consumer(producer.clone(), consumer, opts).expect("runner");
        let group = runner.group().clone();
        let stats = runner.stats();
        let handled = Arc::new(Mutex::new(Vec::new()));
        let log = handled.clone();
        let handler = move |e: EventRecord| {
            let log = log.clone();
            async move {
                log.lock().expect("log").push(e.offset);
                Ok::<(), String>(())
            }
        };
        let watch = stats.clone();
        let shutdown = async move {
            for _ in 0..1000 {
                let (handled, _, dead, _) = watch.snapshot();
                if handled == 2 && dead == 1 {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        runner.run(handler, shutdown).await.expect("run");
        let mut offsets = handled.lock().expect("log").clone();
        offsets.sort_unstable();
        assert_eq!(offsets, [1, 3], "the events around the corrupt one were handled");
        // The spec declares no DLQ: a corrupt row goes there anyway, since no retry can fix it.
        let letters = producer
            .bus()
            .read_topic("dlq.proc.seen", &prom_runtime::TopicPosition::start(), 10)
            .await
            .expect("read dlq");
        assert_eq!(letters.len(), 1);
        let letter: DeadLetter = DeadLetter::deserialize(&letters[0].payload).expect("envelope");
        assert_eq!(letter.original.id, events[1].id);
        assert_eq!(letter.original.offset, 2);
        assert_eq!(letter.original.payload, json!("{\"pid\": 2, trailing garbage"), "raw text kept");
        assert_eq!(letter.attempts, 0);
        assert!(
            letter.error.contains("offset 2") && letter.error.contains("payload is not JSON"),
            "{}",
            letter.error
        );
        // Everything was handled or dead-lettered, so the cursor moved past all of it.
        assert_eq!(lag(producer.bus(), &group, 8).await.expect("lag"), 0);
    });
}

#[test]
fn a_group_tail_does_not_move_its_cursor_past_a_corrupt_row() {
    let work = Workdir::new();
    let events = runtime().block_on(three_events(&work));
    work.corrupt(2, "");
    let out = work.prom(&["tail", TOPIC, "--group", "eyes"], None);
    assert_eq!(out.status.code(), Some(1));
    // The next reader of the group is told again: the corrupt event was not acked.
    let out = work.prom(&["tail", TOPIC, "--group", "eyes"], None);
    let stderr = text(&out.stderr);
    assert!(stderr.contains(&events[1].id.to_string()), "reported again: {stderr}");
}

#[test]
fn one_number_has_one_key_partition_and_stored_text() {
    let work = Workdir::new();
    runtime().block_on(async {
        let producer = work.producer();
        let mut receipts = Vec::new();
        for text in [r#"{"pid":1}"#, r#"{"pid":1.0}"#, r#"{"pid":1e0}"#, r#"{"pid":-0}"#] {
            let payload = prom_runtime::payload::parse(text).expect("json");
            receipts
                .push(producer.publish(TOPIC, payload, PublishOptions::default()).await.expect("publish"));
        }
        let records =
            producer.bus().read_topic(TOPIC, &prom_runtime::TopicPosition::start(), 10).await.expect("read");
        let keys: Vec<_> = records.iter().map(|r| r.key.clone().unwrap_or_default()).collect();
        assert_eq!(keys, ["1", "1", "1", "0"]);
        assert!(receipts[..3].iter().all(|r| r.partition == receipts[0].partition), "{receipts:?}");
        assert_eq!(work.stored_payloads(), [r#"{"pid":1}"#, r#"{"pid":1}"#, r#"{"pid":1}"#, r#"{"pid":0}"#]);

        let too_big = prom_runtime::payload::parse(r#"{"pid":18446744073709551616}"#).expect("json");
        let e = producer.publish(TOPIC, too_big, PublishOptions::default()).await.expect_err("out of range");
        assert!(matches!(e, Error::Invalid { .. }), "{e}");
        let message = e.to_string();
        assert!(message.contains("`/pid`") && message.contains("9223372036854775807"), "{message}");
        let e = producer.publish(TOPIC, json!({ "pid": u64::MAX }), PublishOptions::default()).await;
        assert!(e.expect_err("beyond i64").to_string().contains(&u64::MAX.to_string()));
        assert_eq!(
            producer.bus().heads(TOPIC).await.expect("head").total(),
            4,
            "nothing out of range was stored"
        );
    });
}

#[test]
fn the_cli_rejects_repeated_keys_and_integers_out_of_range() {
    let work = Workdir::new();
    let out = work.prom(&["publish", TOPIC, r#"{"pid":1,"name":"str","name":2}"#], None);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("repeats the key `name` at `/name`"), "{stderr}");
    let out = work.prom(&["publish", TOPIC, r#"{"pid":18446744073709551616}"#], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("`/pid`"), "{}", text(&out.stderr));
    assert!(!work.db().exists(), "nothing was stored, not even an empty store");
}

fn big_payload() -> String {
    json!({ "pid": 5, "blob": "x".repeat(1 << 20) }).to_string()
}

#[test]
fn a_one_mib_payload_comes_through_stdin_and_a_file() {
    let work = Workdir::new();
    let payload = big_payload();
    let out = work.prom(&["publish", TOPIC, "-"], Some(payload.as_bytes()));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let file = work.dir.path().join("big.json");
    std::fs::write(&file, &payload).expect("write");
    let out = work.prom(&["publish", TOPIC, "--file", &file.display().to_string()], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stored = work.stored_payloads();
    assert_eq!(stored.len(), 2);
    assert!(stored.iter().all(|p| p.len() > 1 << 20));
    let out = work.prom(&["publish", TOPIC, "-", "--max-bytes", "65536"], Some(payload.as_bytes()));
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("larger than the limit of 65536 bytes") && stderr.contains("--max-bytes"),
        "{stderr}"
    );
}

#[test]
fn an_ndjson_batch_is_published_whole_or_not_at_all() {
    let work = Workdir::new();
    let file = work.dir.path().join("batch.ndjson");
    std::fs::write(&file, "{\"pid\":1}\n\n{\"pid\":2}\n{\"pid\":3}\n").expect("write");
    let out = work.prom(&["publish", TOPIC, "--ndjson", "--file", &file.display().to_string()], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().count(), 3, "one id per event");
    assert_eq!(work.stored_payloads().len(), 3);

    let bad = "{\"pid\":4}\n{\"pid\":\"five\"}\n{\"pid\":6,\"pid\":7}\n{\"pid\":8}\n";
    let out = work.prom(&["publish", TOPIC, "--ndjson", "-"], Some(bad.as_bytes()));
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("2 of 4 line(s) of stdin failed, so nothing was stored"), "{stderr}");
    assert!(
        stderr.contains("line 2:") && stderr.contains("line 3:") && !stderr.contains("line 4:"),
        "{stderr}"
    );
    assert_eq!(work.stored_payloads().len(), 3, "the failed batch stored nothing");
}

#[test]
fn an_endless_file_is_read_only_up_to_the_limit() {
    let work = Workdir::new();
    let out = work.prom(&["publish", TOPIC, "--file", "/dev/zero"], None);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("`/dev/zero` is larger than the limit of 16777216 bytes (16 MiB)"), "{stderr}");
}

#[test]
fn an_empty_store_file_is_refused_not_replaced() {
    let work = Workdir::new();
    std::fs::create_dir_all(work.store()).expect("mkdir");
    std::fs::write(work.db(), b"").expect("empty file");
    for args in [&["publish", TOPIC, r#"{"pid":1}"#][..], &["tail", TOPIC][..]] {
        let out = work.prom(args, None);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains("is empty (0 bytes)") && stderr.contains("delete the file"), "{stderr}");
        assert!(stderr.contains(&work.db().display().to_string()), "{stderr}");
    }
    assert_eq!(std::fs::metadata(work.db()).expect("still there").len(), 0, "left as it was");
    let e = SqliteBus::open(work.store()).expect_err("refused");
    assert!(e.to_string().contains("0 bytes"), "{e}");
}

#[test]
fn a_read_only_store_can_be_read_but_not_written() {
    let work = Workdir::new();
    let events = runtime().block_on(three_events(&work));
    runtime().block_on(async {
        let bus = SqliteBus::open_read_only(work.store()).expect("open read-only");
        let read = bus.read_topic(TOPIC, &prom_runtime::TopicPosition::start(), 10).await.expect("read");
        assert_eq!(
            read.iter().map(|e| e.id).collect::<Vec<_>>(),
            events.iter().map(|e| e.id).collect::<Vec<_>>()
        );
        let e = bus.publish(vec![prom_runtime::NewEvent::new(TOPIC, json!({ "pid": 9 }))]).await;
        assert!(e.expect_err("read-only").to_string().contains("read-only"));
    });
    let e = SqliteBus::open_read_only(work.dir.path().join("nowhere")).expect_err("no store");
    assert!(e.to_string().contains("no store"), "{e}");
}

/// Runs `prom` as an unprivileged user when the test runs as root, so permission bits bind.
#[cfg(unix)]
fn as_unprivileged(mut command: Command) -> Command {
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::process::CommandExt;
    if std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0) {
        command.uid(65_534).gid(65_534);
    }
    command
}

#[cfg(unix)]
fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[cfg(unix)]
#[test]
fn tail_reads_a_store_in_a_read_only_directory_and_publish_names_the_os_error() {
    let work = Workdir::new();
    let events = runtime().block_on(three_events(&work));
    // The store's writer has closed, so SQLite removed its -wal and -shm files; with the
    // directory read-only they cannot be created again.
    chmod(work.dir.path(), 0o755);
    chmod(&work.dir.path().join("spec.yaml"), 0o644);
    chmod(work.db().as_path(), 0o444);
    chmod(&work.store(), 0o555);
    let tail = as_unprivileged(work.command(&["tail", TOPIC]));
    let out = run(tail, None);
    chmod(&work.store(), 0o755);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().count(), events.len());

    chmod(&work.store(), 0o555);
    let publish = as_unprivileged(work.command(&["publish", TOPIC, r#"{"pid":1}"#]));
    let out = run(publish, None);
    chmod(&work.store(), 0o755);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains(&work.db().display().to_string()), "{stderr}");
    assert!(stderr.to_lowercase().contains("permission denied") || stderr.contains("read-only"), "{stderr}");
}

#[test]
fn prom_run_dead_letters_a_corrupt_row_and_keeps_consuming() {
    use std::io::Read;
    let work = Workdir::new();
    let events = runtime().block_on(three_events(&work));
    work.corrupt(2, "{not json");
    let mut child = work
        .command(&["run", "--progress", "0.05", "--stand-in", "watcher"])
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
    let deadline = Instant::now() + Duration::from_secs(30);
    while !err.contains("handled=2 retried=0 dead_lettered=1") && Instant::now() < deadline {
        if let Ok(chunk) = rx.recv_timeout(Duration::from_millis(50)) {
            err.push_str(&text(&chunk));
        }
    }
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill -INT");
    let mut out = String::new();
    child.stdout.take().expect("piped").read_to_string(&mut out).expect("stdout");
    let status = child.wait().expect("wait");
    assert!(status.success(), "prom run kept running and stopped cleanly: {status}: {err}");
    assert!(err.contains("dead_lettered=1"), "{err}");
    assert_eq!(out.lines().count(), 2, "the two sound events were handled: {out}");
    let out = work.prom(&["dlq", "list", TOPIC], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let entry: Value = serde_json::from_str(text(&out.stdout).trim()).expect("one dead letter");
    assert_eq!(entry["original"]["id"], events[1].id.to_string());
    assert_eq!(entry["original"]["payload"], "{not json");
    assert!(entry["error"].as_str().is_some_and(|e| e.contains("offset 2")), "{entry}");
}
