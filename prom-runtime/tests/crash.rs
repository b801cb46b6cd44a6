//! Crash safety of the embedded store: a child process publishing and consuming is killed with
//! SIGKILL at random points, many times; afterwards no acknowledged publish is lost, offsets
//! have no holes, and every stored event was consumed (at least once, in per-key order).
//!
//! The child is this test binary re-executed with `PROM_CRASH_DIR` set.

use prom_runtime::consumer::{SubscribeOptions, Subscription};
use prom_runtime::{EventBus, GroupId, NewEvent, SqliteBus};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

const TOPIC: &str = "crash.test";
const KEYS: u64 = 4;

#[test]
fn crash_child() {
    let Ok(dir) = std::env::var("PROM_CRASH_DIR") else { return };
    let run: u64 = std::env::var("PROM_CRASH_RUN").ok().and_then(|r| r.parse().ok()).unwrap_or(0);
    let drain = std::env::var("PROM_CRASH_DRAIN").is_ok();
    // The test harness has printed `test crash_child ... ` without a newline; end that line so
    // the first event line stands alone.
    println!();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    runtime.block_on(child(dir, run, drain));
}

async fn child(dir: String, run: u64, drain: bool) {
    let bus = SqliteBus::open(&dir).expect("open");
    if !drain {
        // Two publishers, so their batches share group commits.
        for publisher in 0..2_u64 {
            let bus = bus.clone();
            tokio::spawn(async move {
                for i in 0.. {
                    let seq = i * 2 + publisher;
                    let events = (0..5)
                        .map(|j| {
                            let n = seq * 5 + j;
                            NewEvent::new(TOPIC, json!({ "run": run, "n": n }))
                                .keyed(format!("k{}", n % KEYS), 0)
                        })
                        .collect();
                    bus.publish(events).await.expect("publish");
                    for j in 0..5 {
                        println!("P {run} {}", seq * 5 + j);
                    }
                }
            });
        }
    }
    let opts = SubscribeOptions {
        member: Some("child".into()),
        poll_timeout: Duration::from_millis(50),
        batch_size: 7,
        ..SubscribeOptions::default()
    };
    let mut sub = Subscription::new(bus.clone(), TOPIC, "g", opts).expect("subscribe");
    let mut idle = 0;
    loop {
        let batch = sub.poll().await.expect("poll");
        if batch.is_empty() {
            idle += 1;
            if drain && idle >= 3 {
                sub.close().await.expect("close");
                return;
            }
        }
        for d in &batch {
            println!("C {} {}", d.record.offset, d.record.key.as_deref().unwrap_or(""));
            sub.ack(d);
        }
    }
}

/// A small deterministic generator (no extra dependency); the seed is printed on failure.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}

fn spawn_child(dir: &std::path::Path, run: u64, drain: bool) -> std::process::Child {
    let mut cmd = Command::new(std::env::current_exe().expect("test binary"));
    cmd.args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env("PROM_CRASH_DIR", dir)
        .env("PROM_CRASH_RUN", run.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if drain {
        cmd.env("PROM_CRASH_DRAIN", "1");
    }
    cmd.spawn().expect("spawn child")
}

fn read_all(child: &mut std::process::Child) -> std::thread::JoinHandle<String> {
    let mut stdout = child.stdout.take().expect("piped");
    std::thread::spawn(move || {
        let mut text = String::new();
        // A pipe cut mid-line by the kill leaves a partial last line; it is ignored below.
        let _ = stdout.read_to_string(&mut text);
        text
    })
}

#[test]
fn kill_9_loses_no_acknowledged_publish_and_skips_no_event() {
    if std::env::var("PROM_CRASH_DIR").is_ok() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let seed =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(7, |d| d.as_nanos() as u64);
    let mut rng = Lcg(seed);
    let mut acknowledged: BTreeSet<(u64, u64)> = BTreeSet::new();
    let mut consumed: HashSet<i64> = HashSet::new();
    let runs = 12;
    for run in 0..runs {
        let mut child = spawn_child(dir.path(), run, false);
        let reader = read_all(&mut child);
        std::thread::sleep(Duration::from_millis(40 + rng.next(260)));
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        let out = reader.join().expect("reader");
        check_run(&out, &mut acknowledged, &mut consumed, seed);
    }
    let mut child = spawn_child(dir.path(), runs, true);
    let reader = read_all(&mut child);
    let status = child.wait().expect("drain child");
    assert!(status.success(), "the drain run failed (seed {seed})");
    check_run(&reader.join().expect("reader"), &mut acknowledged, &mut consumed, seed);

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    runtime.block_on(async {
        let bus = SqliteBus::open(dir.path()).expect("reopen");
        let head = bus.heads(TOPIC).await.expect("head").total();
        let events =
            bus.read_topic(TOPIC, &prom_runtime::TopicPosition::start(), usize::MAX).await.expect("read");
        let offsets: Vec<i64> = events.iter().map(|e| e.offset).collect();
        assert_eq!(offsets, (1..=head).collect::<Vec<_>>(), "offsets have no holes (seed {seed})");
        let ids: HashSet<_> = events.iter().map(|e| e.id).collect();
        assert_eq!(ids.len(), events.len(), "ids are unique");
        let stored: BTreeSet<(u64, u64)> = events
            .iter()
            .map(|e| {
                (e.payload["run"].as_u64().unwrap_or(u64::MAX), e.payload["n"].as_u64().unwrap_or(u64::MAX))
            })
            .collect();
        let lost: Vec<_> = acknowledged.difference(&stored).collect();
        assert!(lost.is_empty(), "acknowledged publishes lost: {lost:?} (seed {seed})");
        let skipped: Vec<i64> = offsets.iter().copied().filter(|o| !consumed.contains(o)).collect();
        assert!(skipped.is_empty(), "events never consumed: {skipped:?} (seed {seed})");
        assert_eq!(bus.cursors(&GroupId::new(TOPIC, "g")).await.expect("cursors")[&0], head);
        assert!(acknowledged.len() > 100, "the children published too little to mean anything");
    });
}

/// Records one run's output and checks per-key order within the run.
fn check_run(out: &str, acknowledged: &mut BTreeSet<(u64, u64)>, consumed: &mut HashSet<i64>, seed: u64) {
    // The kill may cut the last line short; only newline-terminated lines are complete.
    let complete = &out[..out.rfind('\n').map_or(0, |i| i + 1)];
    let mut last_by_key: BTreeMap<String, i64> = BTreeMap::new();
    for line in complete.lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        match parts.as_slice() {
            ["P", run, n] => {
                if let (Ok(run), Ok(n)) = (run.parse(), n.parse()) {
                    acknowledged.insert((run, n));
                }
            }
            ["C", offset, key] if key.starts_with('k') => {
                let Ok(offset) = offset.parse::<i64>() else { continue };
                if let Some(prev) = last_by_key.insert(key.to_string(), offset) {
                    assert!(prev < offset, "key {key}: offset {offset} consumed after {prev} (seed {seed})");
                }
                consumed.insert(offset);
            }
            _ => {}
        }
    }
}
