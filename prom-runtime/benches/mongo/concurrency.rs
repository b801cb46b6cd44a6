//! The `concurrency` section: C tasks publishing single events to one topic through `MongoBus`
//! against the same tasks doing raw `insert_one` of the same documents, for C = 1, 4, 16, 64 in
//! one process and 64 split over two processes (this benchmark binary started twice as a child);
//! and C tasks publishing batches against raw `insert_many`.

use super::{Bench, event_doc, fastest, rate};
use prom_runtime::bus::mongo::MongoBus;
use prom_runtime::bus::mongo::mongodb::Database;
use prom_runtime::bus::mongo::mongodb::bson::Document;
use prom_runtime::{EventBus, NewEvent};
use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

/// Events per round and side (single-event publishes).
const EVENTS: usize = 2048;
/// Rounds per configuration (the fastest counts).
const ROUNDS: usize = 3;
/// Task counts in one process.
const TASKS: [usize; 4] = [1, 4, 16, 64];
/// Events per batch in the batched line.
const BATCH: usize = 100;
/// Tasks of the batched line.
const BATCH_TASKS: usize = 8;
/// Set on a child process: `bus|raw`, database, tasks, events.
pub const CHILD: &str = "PROM_BENCH_CONCURRENCY_CHILD";
const TOPIC: &str = "load";

fn event(task: usize, n: usize) -> NewEvent {
    let payload = json!({ "task": task, "n": n, "host": "host-1", "cpu_pct": 12.5, "region": "eu-west" });
    NewEvent::new(TOPIC, payload).keyed(format!("k{task}"), u32::try_from(task % 8).unwrap_or(0))
}

/// `tasks` tasks each publishing `events / tasks` single events through `bus`.
async fn bus_side(bus: &MongoBus, tasks: usize, events: usize, batch: usize) -> Duration {
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|task| {
            let bus = bus.clone();
            tokio::spawn(async move {
                let mine: Vec<NewEvent> = (0..events / tasks).map(|n| event(task, n)).collect();
                for chunk in mine.chunks(batch) {
                    let receipts = bus.publish(chunk.to_vec()).await.expect("MongoBus::publish");
                    assert_eq!(receipts.len(), chunk.len());
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.expect("publisher task");
    }
    start.elapsed()
}

/// The same tasks storing the same documents with raw `insert_one` (or `insert_many`).
async fn raw_side(db: &Database, tasks: usize, events: usize, batch: usize, base: i64) -> Duration {
    let coll = super::raw_events(db).await;
    let offsets = Arc::new(AtomicI64::new(base));
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|task| {
            let coll = coll.clone();
            let offsets = Arc::clone(&offsets);
            tokio::spawn(async move {
                let mine: Vec<NewEvent> = (0..events / tasks).map(|n| event(task, n)).collect();
                for chunk in mine.chunks(batch) {
                    let docs: Vec<Document> = chunk
                        .iter()
                        .map(|e| event_doc(e, offsets.fetch_add(1, Ordering::Relaxed) + 1))
                        .collect();
                    if batch == 1 {
                        coll.insert_one(&docs[0]).await.expect("insert_one");
                    } else {
                        coll.insert_many(docs).await.expect("insert_many");
                    }
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.expect("raw task");
    }
    start.elapsed()
}

/// Runs as a child process: opens its side, says `ready`, waits for `go`, runs, says `done`.
pub fn child(spec: &str, url: &str) {
    let parts: Vec<&str> = spec.split('|').collect();
    let [side, database, tasks, events, base] = parts[..] else { panic!("bad {CHILD}: {spec}") };
    let (tasks, events, base): (usize, usize, i64) =
        (tasks.parse().expect("tasks"), events.parse().expect("events"), base.parse().expect("base"));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    runtime.block_on(async {
        let bus = MongoBus::open_database(url, Some(database)).await.expect("open MongoBus");
        let mut line = String::new();
        println!("ready");
        std::io::stdout().flush().expect("stdout");
        std::io::stdin().read_line(&mut line).expect("stdin");
        let took = match side {
            "bus" => bus_side(&bus, tasks, events, 1).await,
            _ => raw_side(bus.database(), tasks, events, 1, base).await,
        };
        println!("done {}", took.as_secs_f64());
    });
}

/// Two child processes, `tasks / 2` tasks each, started together; the wall time of both.
fn two_processes(url: &str, side: &str, database: &str, tasks: usize, events: usize) -> Duration {
    let exe = std::env::current_exe().expect("bench binary");
    let mut children: Vec<_> = (0..2)
        .map(|i| {
            // Raw offsets must not collide between the children: each gets its own range.
            let base = i * events as i64;
            Command::new(&exe)
                .env(CHILD, format!("{side}|{database}|{}|{}|{base}", tasks / 2, events / 2))
                .env("PROM_MONGO_URL", url)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("start a child process")
        })
        .collect();
    let mut outputs: Vec<_> =
        children.iter_mut().map(|c| BufReader::new(c.stdout.take().expect("stdout"))).collect();
    for out in &mut outputs {
        let mut line = String::new();
        out.read_line(&mut line).expect("child output");
        assert_eq!(line.trim(), "ready", "child said {line:?}");
    }
    let start = Instant::now();
    for child in &mut children {
        child.stdin.as_mut().expect("stdin").write_all(b"go\n").expect("go");
    }
    for out in &mut outputs {
        let mut line = String::new();
        out.read_line(&mut line).expect("child output");
        assert!(line.starts_with("done"), "child said {line:?}");
    }
    let took = start.elapsed();
    for mut child in children {
        assert!(child.wait().expect("child").success());
    }
    took
}

impl Bench {
    /// A fresh database with the bus's layout (indexes), opened as a bus.
    async fn bus_database(&mut self) -> MongoBus {
        let name = self.fresh();
        MongoBus::open_database(&self.url, Some(&name)).await.expect("open MongoBus")
    }

    /// One configuration: the fastest of [`ROUNDS`] rounds of each side, alternating.
    async fn pair(&mut self, tasks: usize, batch: usize, processes: usize) -> (Duration, Duration) {
        let (mut ours, mut raw) = (Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            for side in 0..2 {
                let bus = self.bus_database().await;
                let bus_side_first = (side + round) % 2 == 0;
                let took = match (bus_side_first, processes) {
                    (true, 1) => bus_side(&bus, tasks, EVENTS, batch).await,
                    (false, 1) => raw_side(bus.database(), tasks, EVENTS, batch, 0).await,
                    (which, _) => {
                        let url = self.url.clone();
                        let name = bus.database().name().to_string();
                        let kind = if which { "bus" } else { "raw" };
                        tokio::task::spawn_blocking(move || two_processes(&url, kind, &name, tasks, EVENTS))
                            .await
                            .expect("two processes")
                    }
                };
                if bus_side_first {
                    ours.push(took)
                } else {
                    raw.push(took)
                }
                bus.database().drop().await.expect("drop");
            }
        }
        (fastest(&ours), fastest(&raw))
    }

    pub async fn concurrency(&mut self) {
        println!(
            "concurrency ({EVENTS} events per round to one topic, per-event documents with the indexes the bus gives `events`, \
             fastest of {ROUNDS} rounds; ratio = MongoBus / raw of the same tasks)"
        );
        println!("  {:<22} {:>16} {:>18} {:>7}", "tasks", "MongoBus::publish", "raw insert_one", "ratio");
        let mut at = Vec::new();
        for tasks in TASKS {
            let (ours, raw) = self.pair(tasks, 1, 1).await;
            at.push((tasks, rate(EVENTS, ours)));
            println!(
                "  {:<22} {:>11.0} ev/s {:>13.0} ev/s {:>7.2}",
                format!("{tasks} (1 process)"),
                rate(EVENTS, ours),
                rate(EVENTS, raw),
                raw.as_secs_f64() / ours.as_secs_f64()
            );
        }
        let (ours, raw) = self.pair(64, 1, 2).await;
        let two = rate(EVENTS, ours);
        println!(
            "  {:<22} {:>11.0} ev/s {:>13.0} ev/s {:>7.2}   (target >= 0.5)",
            "64 (2 processes x 32)",
            two,
            rate(EVENTS, raw),
            raw.as_secs_f64() / ours.as_secs_f64()
        );
        let four = at.iter().find(|(t, _)| *t == 4).map_or(0.0, |(_, r)| *r);
        println!("  64 tasks over 2 processes / 4 tasks: {:.2}x (target >= 1)", two / four);
        let (ours, raw) = self.pair(BATCH_TASKS, BATCH, 1).await;
        println!(
            "  {BATCH_TASKS} tasks, batches of {BATCH}: MongoBus::publish {:.0} ev/s, raw insert_many {:.0} ev/s, \
             {:.2}x (target >= 0.9)\n",
            rate(EVENTS, ours),
            rate(EVENTS, raw),
            raw.as_secs_f64() / ours.as_secs_f64()
        );
    }
}
