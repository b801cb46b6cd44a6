//! Issue #12's consumption targets, each a ratio against a baseline measured in the same run:
//! 3. embedded consumption (`Subscription::poll` + ack + commit on a `SqliteBus`) against a raw
//!    SQLite scan that reads the same rows and parses the same JSON columns;
//! 4. consumption stays linear: events/s over a topic of 1 M stored events against a topic of
//!    10 k, on the in-memory bus and on the embedded store — measured as paired rounds (10 k
//!    events of the large topic, at its start, middle or end, against the whole small one, back
//!    to back in alternating order; the median of the rounds' ratios), each side starting with
//!    the CPU caches flushed (see [`Flush`]), and once over the whole 1 M topic;
//! 6. memory: resident memory while consuming the 1 M-event embedded topic, against the resident
//!    memory before (bounded by the in-flight window, not by the topic).

use prom_runtime::consumer::{Start, SubscribeOptions, Subscription};
use prom_runtime::{AnyBus, EventBus, MemoryBus, SqliteBus, TopicPosition};
use serde_json::Value;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const SMALL: usize = 10_000;
const LARGE: usize = 1_000_000;
/// Paired rounds of target 4, each with the caches flushed and left as they were (the 10 k
/// topic's rounds take milliseconds in memory, so many are needed for a steady median).
const LINEAR_ROUNDS: usize = 15;

/// Flushes the CPU caches by writing to a buffer larger than the last-level cache.
///
/// A 10 k-event topic fits in the caches and stays there from one round to the next, while a
/// window of a 1 M-event topic (hundreds of megabytes in memory) comes from RAM: comparing them as
/// they are measures the cache, not how consumption scales with the stored events. Flushed
/// before each side, both start from RAM, as a consumer working through a backlog does.
struct Flush {
    buffer: Vec<u8>,
}

impl Flush {
    /// Twice the 260 MB last-level cache of the machine the README's figures come from.
    const BYTES: usize = 512 << 20;

    fn new() -> Flush {
        Flush { buffer: vec![1; Flush::BYTES] }
    }

    /// Writes one byte of every cache line, evicting what the caches held before.
    fn run(&mut self) {
        for line in self.buffer.chunks_mut(64) {
            line[0] = line[0].wrapping_add(1);
        }
        black_box(&self.buffer);
    }
}

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
    consume_from(bus, group, Start::Earliest, n).await
}

/// Consumes `n` events with a new group starting at `start`: poll, ack every event, commit at
/// the end (durably, as the raw scan stores its cursor).
async fn consume_from(bus: &AnyBus, group: &str, start: Start, n: usize) -> Duration {
    let mut sub = Subscription::new(bus.clone(), "bench", group, SubscribeOptions { start, ..opts() })
        .expect("subscribe");
    let started = Instant::now();
    let mut seen = 0;
    while seen < n {
        let batch = sub.poll().await.expect("poll");
        for d in &batch {
            sub.ack(d);
        }
        seen += batch.len();
    }
    sub.commit().await.expect("commit");
    started.elapsed()
}

/// What a hand-written reader does: page through the topic's rows in offset order, 1,000 at a
/// time, turn every selected column into an owned value (the strings, ids and numbers an event
/// carries; headers and payload parsed into JSON values), and store how far it got durably at
/// the end (one cursor row, `synchronous=FULL`, as the consumer's last commit does).
fn raw_scan(db: &Path, n: usize) -> Duration {
    scan(db, n, Order::Commit)
}

/// The order a raw scan reads the rows in.
#[derive(Clone, Copy, PartialEq)]
enum Order {
    /// The whole topic in offset order (the target's baseline).
    Commit,
    /// A page of 1,000 of each of the 8 partitions in turn, as a consumer holding them all
    /// reads: for reference, since one partition's rows lie apart in the table.
    Partitions,
}

fn scan(db: &Path, n: usize, order: Order) -> Duration {
    let conn = rusqlite::Connection::open(db).expect("open raw");
    conn.pragma_update(None, "synchronous", "FULL").expect("full");
    let start = Instant::now();
    let columns = "id, topic, key, part, ts, headers, payload, caused_by, sid, off";
    let sql = match order {
        Order::Commit => {
            format!("SELECT {columns} FROM events WHERE topic = ?1 AND off > ?2 ORDER BY off LIMIT 1000")
        }
        Order::Partitions => format!(
            "SELECT {columns} FROM events WHERE topic = ?1 AND part = ?3 AND off > ?2 ORDER BY off LIMIT 1000"
        ),
    };
    let mut stmt = conn.prepare(&sql).expect("prepare");
    let (mut after, mut seen, mut last) = ([0_i64; 8], 0, 0);
    while seen < n {
        let partitions = if order == Order::Commit { 0..1 } else { 0..8 };
        for p in partitions {
            let mut rows = match order {
                Order::Commit => stmt.query(rusqlite::params!["bench", after[p]]),
                Order::Partitions => stmt.query(rusqlite::params!["bench", after[p], p as u32]),
            }
            .expect("query");
            while let Some(row) = rows.next().expect("row") {
                let id: Vec<u8> = row.get(0).expect("id");
                let topic: String = row.get(1).expect("topic");
                let key: Option<String> = row.get(2).expect("key");
                let part: u32 = row.get(3).expect("part");
                let ts: i64 = row.get(4).expect("ts");
                let headers: String = row.get(5).expect("headers");
                let payload: String = row.get(6).expect("payload");
                let caused_by: Option<Vec<u8>> = row.get(7).expect("caused_by");
                let sid: Option<String> = row.get(8).expect("sid");
                let headers: Value = serde_json::from_str(&headers).expect("headers json");
                let payload: Value = serde_json::from_str(&payload).expect("payload json");
                black_box((id, topic, key, part, ts, headers, payload, caused_by, sid));
                after[p] = row.get(9).expect("off");
                last = last.max(after[p]);
                seen += 1;
            }
        }
    }
    conn.execute(
        "INSERT INTO cursors (topic, grp, part, off) VALUES ('bench', 'raw', 0, ?1) \
         ON CONFLICT DO UPDATE SET off = excluded.off",
        [last],
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

/// Not timed: one raw scan and one consumption of the same 20 k stored events, for
/// `valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*scale::consume*'
/// --toggle-collect='*raw_scan*' --toggle-collect='*SqliteBus*read_with*'` to count the
/// instructions of each (section `consume-steps`). The last pattern matters: the consumer reads
/// on blocking threads, outside `consume`'s own stack.
pub async fn steps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let n = 20_000;
    let store: AnyBus = SqliteBus::open(dir.path()).expect("open").into();
    fill(&store, n).await;
    black_box(raw_scan(&dir.path().join("events.db"), n));
    black_box(consume(&store, "steps", n).await);
}

/// The median of `ratios` (0 for none).
fn median(mut ratios: Vec<f64>) -> f64 {
    ratios.sort_by(f64::total_cmp);
    ratios.get(ratios.len() / 2).copied().unwrap_or_default()
}

/// Ratios as printed: two decimals, comma-separated.
fn list(ratios: &[f64]) -> String {
    ratios.iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>().join(", ")
}

/// Where a window of the large topic starts: after the event at `offset` (or at the start).
async fn start_at(bus: &AnyBus, offset: i64) -> Start {
    if offset == 0 {
        return Start::Earliest;
    }
    let at = bus.read_topic("bench", &TopicPosition::after(offset - 1), 1).await.expect("read");
    Start::After(at.first().expect("an event at the window's start").id)
}

pub async fn run() {
    // Rounds of 100 k events (about 0.3 s a side) move by +-0.3 from one to the next: 15 make a
    // steadier median than 5.
    let rounds = 15;
    let dir = tempfile::tempdir().expect("tempdir");

    // Target 3: embedded consumption against a raw scan of the same rows. Each round times both
    // sides back to back (order swapped every round); its ratio compares two runs that saw the
    // same machine load.
    let mid = 100_000;
    let store: AnyBus = SqliteBus::open(dir.path().join("mid")).expect("open").into();
    fill(&store, mid).await;
    let db = dir.path().join("mid").join("events.db");
    let mut group = 0;
    let (mut raw, mut ours, mut ratios, mut by_partition) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    raw_scan(&db, mid);
    scan(&db, mid, Order::Partitions);
    consume(&store, "warm-up", mid).await;
    for r in 0..rounds {
        group += 1;
        let g = format!("scan{group}");
        let (b, m) = if r % 2 == 0 {
            let b = raw_scan(&db, mid);
            (b, consume(&store, &g, mid).await)
        } else {
            let m = consume(&store, &g, mid).await;
            (raw_scan(&db, mid), m)
        };
        ratios.push(b.as_secs_f64() / m.as_secs_f64());
        raw.push(b);
        ours.push(m);
        by_partition.push(scan(&db, mid, Order::Partitions));
    }
    let (raw, ours, by_partition) = (super::fastest(raw), super::fastest(ours), super::fastest(by_partition));
    println!("embedded consumption ({mid} stored events, 8 partitions, {rounds} alternating rounds)");
    println!(
        "  raw SQLite scan, every column owned, JSON parsed : {:>10.0} ev/s (baseline, fastest round)",
        super::rate(mid, raw)
    );
    println!(
        "  raw scan, 8 partitions' pages in turn           : {:>10.0} ev/s   {:.2}x the baseline's rate (reference)",
        super::rate(mid, by_partition),
        raw.as_secs_f64() / by_partition.as_secs_f64()
    );
    println!(
        "  Subscription::poll + ack + commit               : {:>10.0} ev/s   {:.2}x the baseline's rate \
         (fastest rounds); per round {} (median {:.2}x; target >= 0.8x)\n",
        super::rate(mid, ours),
        raw.as_secs_f64() / ours.as_secs_f64(),
        list(&ratios),
        median(ratios.clone())
    );
    drop(store);

    // Targets 4 and 6: 10 k against 1 M stored events, in memory and on the embedded store.
    // Linearity: each round consumes the whole 10 k topic and a window of 10 k events of the
    // 1 M topic (its start, middle and end in turn), back to back in alternating order; the
    // round's ratio compares what a stored event costs to consume in each. Every other round
    // flushes the caches before each side (the target's figure); the rounds between leave them
    // as they are (the 10 k topic then stays cached, for reference). Then the whole 1 M topic is
    // consumed twice, watching resident memory.
    println!("consumption at scale: a topic of {SMALL} against one of {LARGE} stored events");
    let mut caches = Flush::new();
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
        let windows = [0, (LARGE / 2) as i64, (LARGE - SMALL) as i64];
        let mut starts = Vec::new();
        for offset in windows {
            starts.push(start_at(&large, offset).await);
        }
        let (mut s, mut ratios, mut warm_ratios) = (Vec::new(), Vec::new(), Vec::new());
        consume(&small, "warm-up", SMALL).await;
        // Cold and warm rounds interleaved, so both kinds see the same machine load.
        for r in 0..LINEAR_ROUNDS * 2 {
            group += 1;
            let (cold, start) = (r % 2 == 0, starts[r % starts.len()]);
            let (a, b) = (format!("s{group}"), format!("w{group}"));
            let flush = |flush: &mut Flush| {
                if cold {
                    flush.run();
                }
            };
            let (small_time, window) = if (r / 2) % 2 == 0 {
                flush(&mut caches);
                let t = consume(&small, &a, SMALL).await;
                flush(&mut caches);
                (t, consume_from(&large, &b, start, SMALL).await)
            } else {
                flush(&mut caches);
                let w = consume_from(&large, &b, start, SMALL).await;
                flush(&mut caches);
                (consume(&small, &a, SMALL).await, w)
            };
            let ratio = small_time.as_secs_f64() / window.as_secs_f64();
            if cold {
                ratios.push(ratio);
            } else {
                warm_ratios.push(ratio);
                s.push(small_time);
            }
        }
        let (mut full, mut peak_delta) = (Vec::new(), 0);
        for r in 0..2 {
            group += 1;
            let before = rss();
            let watch = RssWatch::start();
            full.push(consume(&large, &format!("l{group}"), LARGE).await);
            let peak = watch.finish();
            if r > 0 {
                peak_delta = peak_delta.max(peak.saturating_sub(before));
            }
        }
        let (s, l) = (super::fastest(s), super::fastest(full));
        println!(
            "  {name}: 10 k-event windows of the 1 M topic vs the 10 k topic, caches flushed before each side, \
             per round {} (median {:.2}x; target >= 0.9x)",
            list(&ratios),
            median(ratios.clone())
        );
        println!(
            "  {name}: the same, the 10 k topic left in the caches by the round before, per round {} \
             (median {:.2}x; reference)",
            list(&warm_ratios),
            median(warm_ratios.clone())
        );
        println!(
            "  {name}: {:>10.0} ev/s at 10 k, {:>10.0} ev/s over the whole 1 M: {:.2}x (fastest rounds); \
             resident memory grew by at most {:.1} MiB while consuming 1 M (second round)",
            super::rate(SMALL, s),
            super::rate(LARGE, l),
            s.as_secs_f64() * (LARGE as f64 / SMALL as f64) / l.as_secs_f64(),
            mib(peak_delta)
        );
        black_box(large.heads("bench").await.expect("head").total());
    }
    println!();
}
