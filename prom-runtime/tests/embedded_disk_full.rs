//! The embedded store on a full disk: a publish that meets it fails whole, naming the store and
//! what to do, every event acknowledged before stays readable, and once space is freed the
//! same store takes writes again: a new `prom` process, and the running store that met it,
//! with no restart. A consumer and the changelog and transactional projectors that cannot
//! store their cursors meanwhile wait that out like a MongoDB outage, then carry on.
//!
//! The disk is a small tmpfs (2 or 8 MiB) mounted in a user and mount namespace of the test's own
//! (`unshare -rm`, no root needed). Without user namespaces the tests are skipped, unless
//! `PROM_REQUIRE_TMPFS=1` (scripts/test.sh sets it) makes that a failure.

use prom_runtime::consumer::{SubscribeOptions, Subscription};
use prom_runtime::documents::Documents;
use prom_runtime::project::embedded::{EmbeddedProjector, EmbeddedSpec};
use prom_runtime::project::{DocTxFuture, EmbeddedTxProjector, TransactionalSpec};
use prom_runtime::record::SCHEMA_VERSION;
use prom_runtime::retry::RetryPolicy;
use prom_runtime::runner::{FailurePolicy, Handler, HandlerFuture, Runner};
use prom_runtime::system::System;
use prom_runtime::{EventBus, EventRecord, NewEvent, Producer, Registry, SqliteBus, TopicPosition};
use serde_json::json;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Events per publish: one `--ndjson` batch, stored atomically or not at all.
const BATCH: usize = 20;

const SPEC: &str = "
topics:
  big:
    key: /n
    partitions: 1
    versions:
      1:
        schema: { type: object, required: [n, pad], properties: { n: { type: integer }, pad: { type: string } } }
projectors:
  bigs:
    kind: changelog
    topic: big
    collection: bigs
  marks:
    kind: transactional
    topic: big
    handler: crate::mark
";

/// Fills the tmpfs with a filler file and publishes batches until one fails, reads the topic,
/// frees the filler, publishes once more and reads again; every step's output lands in `$OUT`.
const SCRIPT: &str = r#"
set -u
mount -t tmpfs -o size=2M tmpfs "$MNT" || exit 99
head -c 1200000 /dev/zero > "$MNT/filler"
n=0
while [ "$n" -lt 200 ]; do
  "$PROM" --store "$MNT/store" publish --specs "$OUT/spec.yaml" big --ndjson --file "$OUT/batch.ndjson" \
    > /dev/null 2> "$OUT/full.err" || break
  n=$((n + 1))
done
echo "$n" > "$OUT/batches"
"$PROM" --store "$MNT/store" tail --specs "$OUT/spec.yaml" big > "$OUT/while-full.jsonl" 2> "$OUT/tail.err"
echo $? > "$OUT/tail.rc"
rm "$MNT/filler"
"$PROM" --store "$MNT/store" publish --specs "$OUT/spec.yaml" big --ndjson --file "$OUT/batch.ndjson" \
  > /dev/null 2> "$OUT/after.err"
echo $? > "$OUT/after.rc"
"$PROM" --store "$MNT/store" tail --specs "$OUT/spec.yaml" big > "$OUT/after.jsonl" 2>> "$OUT/tail.err"
"#;

/// Runs `command` (an `unshare -rm` that mounts a tmpfs at `$MNT` or exits 99) with `mnt` as
/// `$MNT`; false (the test skips) when no namespace or tmpfs can be made here.
fn in_namespace(mut command: Command, mnt: &Path) -> bool {
    let run: std::io::Result<Output> = command.env("MNT", mnt).env_remove("PROM_MONGO_URL").output();
    if let Ok(o) = &run
        && o.status.code().is_some_and(|c| c != 99)
    {
        return true;
    }
    let required = std::env::var("PROM_REQUIRE_TMPFS").is_ok_and(|v| v == "1");
    assert!(!required, "PROM_REQUIRE_TMPFS=1, but no tmpfs could be mounted in a namespace: {run:?}");
    eprintln!("skipped: `unshare -rm` cannot mount a tmpfs here: {run:?}");
    false
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn a_full_disk_fails_a_publish_whole_and_the_store_writes_again_once_space_is_freed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path();
    std::fs::create_dir(out.join("mnt")).expect("mount point");
    std::fs::write(out.join("spec.yaml"), SPEC).expect("spec");
    let pad = "x".repeat(2000);
    let batch: String =
        (0..BATCH).map(|n| format!("{{\"n\": {n}, \"pad\": \"{pad}\"}}\n")).collect::<Vec<_>>().concat();
    std::fs::write(out.join("batch.ndjson"), batch).expect("batch");
    let mut command = Command::new("unshare");
    command.args(["-rm", "bash", "-c", SCRIPT]).env("PROM", env!("CARGO_BIN_EXE_prom")).env("OUT", out);
    if !in_namespace(command, &out.join("mnt")) {
        return;
    }
    let batches: usize = read(out, "batches").trim().parse().expect("a count");
    assert!((1..200).contains(&batches), "{batches} batches before the disk was full");

    let error = read(out, "full.err");
    assert!(
        error.contains("events.db")
            && error.contains("the disk holding the store is full")
            && error.contains("nothing of this write was stored")
            && error.contains("free space"),
        "{error}"
    );
    // Every acknowledged batch is there, whole, and reads work while the disk is full.
    assert_eq!(read(out, "tail.rc").trim(), "0", "{}", read(out, "tail.err"));
    assert_eq!(read(out, "while-full.jsonl").lines().count(), batches * BATCH);

    // Freed space: the same store takes the batch, after the ones before.
    assert_eq!(read(out, "after.rc").trim(), "0", "{}", read(out, "after.err"));
    let after = read(out, "after.jsonl");
    assert_eq!(after.lines().count(), (batches + 1) * BATCH, "{}", read(out, "tail.err"));
}

/// The running-store half: this test binary runs [`inside`] again in a namespace of its own.
#[test]
fn a_running_store_that_met_a_full_disk_writes_again_once_space_is_freed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mount point");
    let exe = std::env::current_exe().expect("the test binary");
    let mut command = Command::new("unshare");
    command.args([
        "-rm",
        "bash",
        "-c",
        r#"mount -t tmpfs -o size=8M tmpfs "$MNT" || exit 99; exec "$0" "$@""#,
    ]);
    command
        .arg(exe)
        .args(["--exact", "inside", "--ignored", "--nocapture"])
        .env("PROM_DISK_FULL_INSIDE", "1");
    command.env("VERDICT", dir.path().join("verdict"));
    if !in_namespace(command, &mnt) {
        return;
    }
    assert_eq!(read(dir.path(), "verdict"), "ok");
}

/// Run by the test above inside its namespace, on the tmpfs at `$MNT`: one `SqliteBus` fills it,
/// meets the full disk, and after the filler is deleted publishes again. Writes `ok` or what
/// went wrong to `$VERDICT`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run inside a namespace by a_running_store_that_met_a_full_disk_writes_again_once_space_is_freed"]
async fn inside() {
    if std::env::var("PROM_DISK_FULL_INSIDE").is_err() {
        return;
    }
    let (mnt, verdict) = (std::env::var("MNT").expect("MNT"), std::env::var("VERDICT").expect("VERDICT"));
    let outcome = tokio::time::timeout(Duration::from_secs(60), fill_and_free(Path::new(&mnt))).await;
    let text = match outcome {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(why)) => why,
        Err(_) => "the store hung on a full disk".to_owned(),
    };
    std::fs::write(verdict, text).expect("verdict");
}

async fn fill_and_free(mnt: &Path) -> Result<(), String> {
    let filler = mnt.join("filler");
    // Most of the disk: once it is freed, there is room for what the tasks below then write
    // (the projectors' rows and the WAL's copies of their pages).
    std::fs::write(&filler, vec![0_u8; 6_500_000]).map_err(|e| format!("filler: {e}"))?;
    let bus = SqliteBus::open(mnt.join("store")).map_err(|e| format!("open: {e}"))?;
    let batch = |from: usize| -> Vec<NewEvent> {
        let event = |n: usize| {
            NewEvent::new("big", json!({ "n": n, "pad": "x".repeat(2000) })).keyed(n.to_string(), 0)
        };
        (from..from + BATCH).map(|n| event(n).header(SCHEMA_VERSION, "1")).collect()
    };
    let mut stored = 0;
    let error = loop {
        match bus.publish(batch(stored)).await {
            Ok(receipts) => stored += receipts.len(),
            Err(e) => break e,
        }
        if stored > 200 * BATCH {
            return Err("the disk never filled".into());
        }
    };
    if !matches!(error, prom_runtime::Error::DiskFull { .. }) {
        return Err(format!("unexpected error: {error}"));
    }
    let count =
        || async { bus.read_topic("big", &TopicPosition::start(), usize::MAX).await.map(|r| r.len()) };
    match count().await {
        Ok(n) if n == stored => {}
        other => return Err(format!("{stored} acknowledged, read while full: {other:?}")),
    }
    // A consumer starting now cannot store its membership or its cursor: it waits that out
    // instead of stopping.
    let handled = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(tokio::sync::Notify::new());
    let opts = SubscribeOptions { poll_timeout: Duration::from_millis(50), ..SubscribeOptions::default() };
    let sub = Subscription::new(bus.clone(), "big", "g", opts).map_err(|e| format!("subscribe: {e}"))?;
    let (registry, system) = spec();
    let producer = Producer::new(bus.clone(), Arc::new(registry));
    let runner =
        Runner::new(sub, producer.clone(), FailurePolicy { retry: RetryPolicy::default(), dlq: false });
    let running = tokio::spawn({
        let (handler, stop) = (Counting(handled.clone()), stop.clone());
        async move { runner.run(handler, async move { stop.notified().await }).await }
    });
    // So does the changelog projector, whose batches cannot commit.
    let projector = EmbeddedSpec::from_system(&system.projectors[0], &system, producer.registry())
        .map_err(|e| format!("projector spec: {e}"))?;
    let projector = EmbeddedProjector::new(producer.clone(), projector, SubscribeOptions::default());
    let projected = projector.stats();
    let projecting = tokio::spawn({
        let stop = stop.clone();
        async move { projector.run(async move { stop.notified().await }).await }
    });
    // And the transactional one, whose transactions cannot commit.
    let marks = TransactionalSpec::from_system(&system.projectors[1], producer.registry())
        .map_err(|e| format!("transactional spec: {e}"))?;
    let policy = FailurePolicy { retry: RetryPolicy::default(), dlq: false };
    let marks = EmbeddedTxProjector::new(producer.clone(), marks, SubscribeOptions::default(), policy);
    let marked = marks.stats();
    let marking = tokio::spawn({
        let stop = stop.clone();
        async move { marks.run(mark, async move { stop.notified().await }).await }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    if running.is_finished() {
        return Err(format!("the consumer stopped on the full disk: {:?}", running.await));
    }
    if projecting.is_finished() {
        return Err(format!("the projector stopped on the full disk: {:?}", projecting.await));
    }
    if marking.is_finished() {
        return Err(format!("the transactional projector stopped on the full disk: {:?}", marking.await));
    }

    std::fs::remove_file(&filler).map_err(|e| format!("free: {e}"))?;
    bus.publish(batch(stored)).await.map_err(|e| format!("after freeing space: {e}"))?;
    match count().await {
        Ok(n) if n == stored + BATCH => {}
        other => return Err(format!("{} expected after freeing space, read {other:?}", stored + BATCH)),
    }
    // At least once: what it handled before it could store its cursor may come again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while handled.load(Ordering::SeqCst) < stored + BATCH {
        if tokio::time::Instant::now() > deadline {
            return Err(format!(
                "after freeing space the consumer handled {}",
                handled.load(Ordering::SeqCst)
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let events = || projected.events.load(Ordering::SeqCst);
    while events() < (stored + BATCH) as u64 {
        if tokio::time::Instant::now() > deadline {
            return Err(format!("after freeing space the projector committed {} events", events()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let handled_marks =
        || marked.applied.load(Ordering::SeqCst) + marked.already_applied.load(Ordering::SeqCst);
    while handled_marks() < (stored + BATCH) as u64 {
        if tokio::time::Instant::now() > deadline {
            return Err(format!(
                "after freeing space the transactional projector applied {}",
                handled_marks()
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.notify_waiters();
    match (running.await, projecting.await, marking.await) {
        (Ok(Ok(())), Ok(Ok(())), Ok(Ok(()))) => {}
        other => return Err(format!("the consumer and the projectors ended with {other:?}")),
    }
    // Its cursor was stored once there was room: a new member of the group finds nothing left.
    let opts = SubscribeOptions { poll_timeout: Duration::from_millis(200), ..SubscribeOptions::default() };
    let mut again =
        Subscription::new(bus.clone(), "big", "g", opts).map_err(|e| format!("subscribe: {e}"))?;
    match again.poll().await {
        Ok(batch) if batch.is_empty() => Ok(()),
        other => Err(format!("the group's cursor was not stored: {other:?}")),
    }
}

fn spec() -> (Registry, System) {
    let linted = prom_spec::lint_str("spec.yaml", SPEC);
    assert!(!linted.has_errors(), "{}", linted.render());
    (Registry::from_spec(&linted.spec).expect("registry"), System::from_spec(&linted.spec))
}

/// The transactional projector's handler: one document per event.
fn mark<'a>(event: &'a EventRecord, docs: &'a mut dyn Documents) -> DocTxFuture<'a> {
    Box::pin(async move {
        let n = event.payload["n"].as_i64().ok_or("the event has no `n`")?;
        docs.put("marks", &n.to_string(), json!({ "n": n })).await?;
        Ok(())
    })
}

/// Counts the events it is given, decoding nothing.
struct Counting(Arc<AtomicUsize>);

impl Handler for Counting {
    fn handle(&self, _: EventRecord) -> HandlerFuture {
        self.0.fetch_add(1, Ordering::SeqCst);
        Box::pin(std::future::ready(Ok(())))
    }

    fn attempt(&self, _: &Registry, _: &Arc<EventRecord>, _: u32) -> prom_runtime::Result<HandlerFuture> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(Box::pin(std::future::ready(Ok(()))))
    }
}
