//! 8 processes × 200 appends to one stream, each with the expected version and a retry on
//! conflict: exactly 1,600 events, versions 1..=1,600, no gap, no duplicate, and the hash chain
//! holds — on the embedded store and on MongoDB (`PROM_MONGO_URL`).
//!
//! The writers are this test binary run again (`child_writer`), so they are real processes
//! with their own connections, as separate services would be.

mod common;

use prom_runtime::stream::{ExpectedVersion, StreamId};
use prom_runtime::{AnyBus, Error, EventBus, Producer, Registry};
use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const WRITERS: u64 = 8;
const EACH: u64 = 200;
/// Generous: a hang fails the test instead of blocking the suite.
const DEADLINE: Duration = Duration::from_secs(600);
const SPEC: &str = include_str!("streams/streams.yaml");

fn stream() -> StreamId {
    StreamId::new("account", "hot")
}

/// Where the children write: `sqlite:<dir>` or `mongo:<database>@<url>`.
const TARGET: &str = "PROM_STREAM_TEST_TARGET";
const WRITER: &str = "PROM_STREAM_TEST_WRITER";

async fn open(target: &str) -> AnyBus {
    if let Some(dir) = target.strip_prefix("sqlite:") {
        return prom_runtime::SqliteBus::open(dir).expect("open the store").into();
    }
    #[cfg(feature = "mongo")]
    if let Some(rest) = target.strip_prefix("mongo:") {
        let (database, url) = rest.split_once('@').expect("mongo:<database>@<url>");
        let bus = prom_runtime::bus::MongoBus::open_database(url, Some(database)).await;
        return bus.expect("open MongoDB").into();
    }
    panic!("unknown target {target}")
}

#[test]
#[ignore = "a writer process of the multi-process tests, started by them"]
fn child_writer() {
    let (Ok(target), Ok(writer)) = (std::env::var(TARGET), std::env::var(WRITER)) else { return };
    let writer: u64 = writer.parse().expect("writer number");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
    runtime.expect("runtime").block_on(async {
        let registry = Registry::from_yaml("streams.yaml", SPEC).expect("spec");
        let producer = Producer::new(open(&target).await, Arc::new(registry));
        let mut conflicts = 0u64;
        for seq in 0..EACH {
            let cents = writer * 1_000 + seq + 1;
            let event =
                ("money.deposited".to_owned(), serde_json::json!({ "accountId": "hot", "cents": cents }));
            loop {
                let version = producer.bus().stream_version(&stream()).await.expect("version");
                let expected = version.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
                match producer.append(stream(), expected, vec![event.clone()]).await {
                    Ok(_) => break,
                    Err(Error::StreamConflict { actual, .. }) => {
                        assert_ne!(actual, version, "a conflict reports the version that beat us");
                        conflicts += 1;
                    }
                    Err(e) => panic!("writer {writer}: append failed: {e}"),
                }
            }
        }
        println!("conflicts={conflicts}");
    });
}

fn spawn(target: &str, writer: u64) -> Child {
    Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "child_writer", "--ignored", "--nocapture", "--test-threads=1"])
        .env(TARGET, target)
        .env(WRITER, writer.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn a writer")
}

/// Runs the writers to completion (killing them all past the deadline); returns the conflicts.
fn run_writers(target: &str) -> u64 {
    let mut children: Vec<Child> = (0..WRITERS).map(|w| spawn(target, w)).collect();
    let start = Instant::now();
    let mut conflicts = 0;
    for child in &mut children {
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                let out = child.wait_with_output_ref();
                assert!(status.success(), "a writer failed:\n{out}");
                conflicts += out
                    .lines()
                    .find_map(|l| l.strip_prefix("conflicts="))
                    .and_then(|n| n.trim().parse::<u64>().ok())
                    .unwrap_or(0);
                break;
            }
            if start.elapsed() > DEADLINE {
                for c in &mut children {
                    let _ = c.kill();
                }
                panic!("the writers did not finish within {DEADLINE:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    conflicts
}

trait Drain {
    fn wait_with_output_ref(&mut self) -> String;
}

impl Drain for Child {
    /// Everything the finished child printed.
    fn wait_with_output_ref(&mut self) -> String {
        use std::io::Read;
        let mut out = String::new();
        if let Some(mut s) = self.stdout.take() {
            let _ = s.read_to_string(&mut out);
        }
        if let Some(mut s) = self.stderr.take() {
            let _ = s.read_to_string(&mut out);
        }
        out
    }
}

async fn check(bus: &AnyBus) {
    let read = bus.read_stream(&stream(), 0, 10_000).await.expect("read");
    let versions: Vec<u64> = read.iter().map(|r| r.version).collect();
    assert_eq!(versions, (1..=WRITERS * EACH).collect::<Vec<_>>(), "versions 1..=1600, no gap");
    let cents: BTreeSet<u64> = read.iter().filter_map(|r| r.record.payload["cents"].as_u64()).collect();
    let expected: BTreeSet<u64> =
        (0..WRITERS).flat_map(|w| (0..EACH).map(move |s| w * 1_000 + s + 1)).collect();
    assert_eq!(cents, expected, "every append stored exactly once");
    assert_eq!(bus.heads("money.deposited").await.expect("head").total(), (WRITERS * EACH) as i64);
    let report = prom_runtime::stream::verify(bus, "account", Some("hot")).await.expect("verify");
    assert!(report.ok(), "{:?}", report.broken);
    assert_eq!(report.linked, WRITERS * EACH, "the chain covers every event");
}

#[test]
fn eight_processes_append_to_one_embedded_stream_without_losing_an_update() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = format!("sqlite:{}", dir.path().display());
    // Create the store once, so the writers do not race to create it.
    drop(prom_runtime::SqliteBus::open(dir.path()).expect("create the store"));
    let conflicts = run_writers(&target);
    eprintln!("embedded store: {conflicts} conflicts retried");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
    runtime.expect("runtime").block_on(async { check(&open(&target).await).await });
}

#[cfg(feature = "mongo")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_processes_append_to_one_mongo_stream_without_losing_an_update() {
    let Some(target) = common::mongo::Target::from_env() else { return };
    let spec = format!("mongo:{}@{}", target.database, target.url);
    drop(open(&spec).await);
    let conflicts = tokio::task::spawn_blocking({
        let spec = spec.clone();
        move || run_writers(&spec)
    })
    .await
    .expect("writers");
    eprintln!("MongoDB: {conflicts} conflicts retried");
    check(&open(&spec).await).await;
    target.drop_database().await;
}
