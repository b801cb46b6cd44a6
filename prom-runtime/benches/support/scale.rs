//! Issue #12's consumption targets, each a ratio against a baseline measured in the same run:
//! 3. embedded consumption (`Subscription::poll` + ack + commit on a `SqliteBus`) against a raw
//!    SQLite scan that reads the same rows and parses the same JSON columns;
//! 4. consumption stays linear: events/s over a topic of 1 M stored events against a topic of
//!    10 k, on the in-memory bus and on the embedded store;
//! 6. memory: resident memory while consuming the 1 M-event embedded topic, against the resident
//!    memory before (bounded by the in-flight window, not by the topic).

use prom_runtime::consumer::{SubscribeOptions, Subscription};
use prom_runtime::{AnyBus, EventBus, MemoryBus, SqliteBus};
use serde_json::Value;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const SMALL: usize = 10_000;
const LARGE: usize = 1_000_000;

fn opts() -> SubscribeOptions {
    SubscribeOptions {
        partitions: 8,
        batch_size: 1000,
        max_in_flight: 5000,
        poll_timeout: Duration::from_millis(20),
        ..SubscribeOptions::default()
    }
}

/// Stores `n` events on topic `bench` in batches of 1,000.
async fn fill(bus: &AnyBus, n: usize) {
    for chunk in (0..n).step_by(1000) {
        bus.publish(super::events("bench", chunk..(chunk + 1000).min(n))).await.expect("publish");
    }
}

/// Consumes the whole topic with a new group: poll, ack every event, commit at the end.
async fn consume(bus: &AnyBus, group: &str, n: usize) -> Duration {
    let mut sub = Subscription::new(bus.clone(), "bench", group, opts()).expect("subscribe");
    let start = Instant::now();
    let mut seen = 0;
    while seen < n {
        let batch = sub.poll().await.expect("poll");
        for d in &batch {
            sub.ack(d);
        }
        seen += batch.len();
    }
    sub.commit().await.expect("commit");
    start.elapsed()
}

/// What a hand-written reader does: page through the topic's rows in offset order, 1,000 at a
/// time, parse the headers and payload of each, and store how far it got durably at the end
/// (one cursor row, `synchronous=FULL`, as the consumer's last commit does).
fn raw_scan(db: &Path, n: usize) -> Duration {
    let conn = rusqlite::Connection::open(db).expect("open raw");
    conn.pragma_update(None, "synchronous", "FULL").expect("full");
    let start = Instant::now();
    let (mut after, mut seen) = (0_i64, 0);
    let mut stmt = conn
        .prepare(
            "SELECT id, topic, key, part, ts, headers, payload, caused_by, sid, off FROM events \
                  WHERE topic = ?1 AND off > ?2 ORDER BY off LIMIT 1000",
        )
        .expect("prepare");
    while seen < n {
        let mut rows = stmt.query(rusqlite::params!["bench", after]).expect("query");
        while let Some(row) = rows.next().expect("row") {
            let id: Vec<u8> = row.get(0).expect("id");
            let headers: String = row.get(5).expect("headers");
            let payload: String = row.get(6).expect("payload");
            let headers: Value = serde_json::from_str(&headers).expect("headers json");
            let payload: Value = serde_json::from_str(&payload).expect("payload json");
            black_box((id, headers, payload));
            after = row.get(9).expect("off");
            seen += 1;
        }
    }
    conn.execute(
        "INSERT INTO cursors (topic, grp, part, off) VALUES ('bench', 'raw', 0, ?1) \
         ON CONFLICT DO UPDATE SET off = excluded.off",
        [after],
    )
    .expect("cursor");
    start.elapsed()
}

/// The process's resident set size in bytes (Linux), or 0 where /proc is not available.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Samples the resident set size every 5 ms until dropped; `peak` keeps the largest sample.
struct RssWatch {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssWatch {
    fn start() -> RssWatch {
        let (stop, peak) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(rss())));
        let thread = {
            let (stop, peak) = (stop.clone(), peak.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    peak.fetch_max(rss(), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        RssWatch { stop, peak, thread: Some(thread) }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("rss thread");
        }
        self.peak.load(Ordering::Relaxed)
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Not timed: one raw scan and one consumption of the same 100 k stored events, for
/// `valgrind --tool=callgrind --toggle-collect='*scale::consume*' --toggle-collect='*raw_scan*'`
/// to count the instructions of each (section `consume-steps`).
pub async fn steps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let n = 100_000;
    let store: AnyBus = SqliteBus::open(dir.path()).expect("open").into();
    fill(&store, n).await;
    black_box(raw_scan(&dir.path().join("events.db"), n));
    black_box(consume(&store, "steps", n).await);
}

pub async fn run() {
    let rounds = 3;
    let dir = tempfile::tempdir().expect("tempdir");

    // Target 3: embedded consumption against a raw scan of the same rows (10 k and 100 k).
    let mid = 100_000;
    let store: AnyBus = SqliteBus::open(dir.path().join("mid")).expect("open").into();
    fill(&store, mid).await;
    let db = dir.path().join("mid").join("events.db");
    let mut group = 0;
    let (mut raw, mut ours) = (Vec::new(), Vec::new());
    raw_scan(&db, mid);
    for r in 0..rounds {
        group += 1;
        let g = format!("scan{group}");
        if r % 2 == 0 {
            raw.push(raw_scan(&db, mid));
            ours.push(consume(&store, &g, mid).await);
        } else {
            ours.push(consume(&store, &g, mid).await);
            raw.push(raw_scan(&db, mid));
        }
    }
    let (raw, ours) = (super::fastest(raw), super::fastest(ours));
    println!(
        "embedded consumption ({mid} stored events, 8 partitions, fastest of {rounds} alternating rounds)"
    );
    println!("  raw SQLite scan parsing headers + payload : {:>10.0} ev/s (baseline)", super::rate(mid, raw));
    println!(
        "  Subscription::poll + ack + commit         : {:>10.0} ev/s   {:.2}x the baseline's rate (target >= 0.8x)\n",
        super::rate(mid, ours),
        raw.as_secs_f64() / ours.as_secs_f64()
    );
    drop(store);

    // Targets 4 and 6: 10 k against 1 M stored events, in memory and on the embedded store.
    println!(
        "consumption at scale: a topic of {SMALL} against {LARGE} stored events (fastest of {rounds} rounds)"
    );
    for (name, small, large) in [
        ("memory  ", AnyBus::from(MemoryBus::new()), AnyBus::from(MemoryBus::new())),
        (
            "embedded",
            SqliteBus::open(dir.path().join("small")).expect("open").into(),
            SqliteBus::open(dir.path().join("large")).expect("open").into(),
        ),
    ] {
        fill(&small, SMALL).await;
        fill(&large, LARGE).await;
        let (mut s, mut l) = (Vec::new(), Vec::new());
        let mut peak_delta = 0;
        for r in 0..rounds {
            group += 1;
            s.push(consume(&small, &format!("s{group}"), SMALL).await);
            let before = rss();
            let watch = RssWatch::start();
            l.push(consume(&large, &format!("l{group}"), LARGE).await);
            let peak = watch.finish();
            if r > 0 {
                peak_delta = peak_delta.max(peak.saturating_sub(before));
            }
        }
        let (s, l) = (super::fastest(s), super::fastest(l));
        println!(
            "  {name}: {:>10.0} ev/s at 10 k, {:>10.0} ev/s at 1 M: {:.2}x (target >= 0.9x); \
             resident memory grew by at most {:.1} MiB while consuming 1 M (after the first round)",
            super::rate(SMALL, s),
            super::rate(LARGE, l),
            s.as_secs_f64() * (LARGE as f64 / SMALL as f64) / l.as_secs_f64(),
            mib(peak_delta)
        );
        black_box(large.heads("bench").await.expect("head").total());
    }
    println!();
}
