//! The embedded changelog projector against a raw batched SQLite upsert of the same rows, as a
//! ratio measured in one run (absolute numbers depend on the machine).
//!
//! `cargo bench -p prom-runtime --bench projector [-- rebuild]` (`rebuild`: that section alone)
//!
//! Projector: a store holding the events (published untimed), then `EmbeddedProjector::run`
//! timed from its start until it has committed every event — reading them, decoding and
//! validating each, collapsing, upserting with the version guard and committing the cursor in
//! the same transaction. Raw: the stored payload texts parsed, each one's key and version read
//! and its document (`_id` first) encoded and upserted by key with the same version guard into a
//! table of the same shape in a fresh file with the store's settings (WAL, `synchronous=FULL`),
//! in transactions of the projector's batch size, with one prepared statement. Rounds alternate (after an untimed
//! warm-up) and each side's fastest round is reported: interference on a shared machine only
//! ever adds time.
//!
//! Rebuild (second section): one store holding the events; `project::rebuild` (from offset 0
//! into a shadow table, checkpointed, then swapped in) against plain consumption of the same
//! topic by a fresh consumer group (`Subscription::poll`, ack every event, commit per batch),
//! both reading pages of the rebuild's default size. The target is >= 0.7x.

use prom_runtime::consumer::{AckMode, SubscribeOptions, Subscription};
use prom_runtime::project::rebuild::{DEFAULT_BATCH, RebuildOptions};
use prom_runtime::project::{EmbeddedProjector, EmbeddedSpec};
use prom_runtime::system::System;
use prom_runtime::{Producer, PublishOptions, Registry, SqliteBus};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const KEYS: usize = 2_000;
const VERSIONS: usize = 10;
const EVENTS: usize = KEYS * VERSIONS;
const BATCH: usize = 100;
const ROUNDS: usize = 3;

const SPEC: &str = r#"
topics:
  process.state:
    key: /processId
    partitions: 4
    versions:
      1:
        schema:
          type: object
          required: [processId, seq]
          properties:
            processId: { type: string }
            seq: { type: integer }
            status: { type: string }
            host: { type: string }
            cpu_pct: { type: number }
projectors:
  processes:
    kind: changelog
    topic: process.state
    collection: processes
    version: /seq
"#;

fn payloads() -> Vec<Value> {
    (0..EVENTS)
        .map(|i| {
            let (key, seq) = (i % KEYS, i / KEYS + 1);
            json!({
                "processId": format!("host-{}:{key}", key % 16), "seq": seq,
                "status": if seq % 2 == 0 { "running" } else { "stopped" },
                "host": format!("host-{}", key % 16), "cpu_pct": (i % 100) as f64 / 4.0,
            })
        })
        .collect()
}

struct Setup {
    registry: Arc<Registry>,
    spec: EmbeddedSpec,
    system: System,
}

fn setup() -> Setup {
    let linted = prom_spec::lint_str("bench.yaml", SPEC);
    assert!(!linted.has_errors(), "{}", linted.render());
    let registry = Arc::new(Registry::from_spec(&linted.spec).expect("registry"));
    let system = System::from_spec(&linted.spec);
    let spec =
        EmbeddedSpec::from_system(system.projector("processes").expect("declared"), &system, &registry)
            .expect("spec");
    Setup { registry, spec, system }
}

/// Publishes the events into a fresh store (untimed), then times the projector until it has
/// committed all of them.
async fn projector_round(setup: &Setup, events: &[Value]) -> Duration {
    let dir = tempfile::tempdir().expect("tempdir");
    let bus = SqliteBus::open(dir.path()).expect("open");
    let producer = Producer::new(bus, setup.registry.clone());
    for chunk in events.chunks(1000) {
        let items = chunk
            .iter()
            .map(|p| ("process.state".to_string(), p.clone(), PublishOptions::default()))
            .collect();
        producer.publish_all(items).await.expect("publish");
    }
    let opts = SubscribeOptions {
        batch_size: BATCH,
        poll_timeout: Duration::from_millis(20),
        ..SubscribeOptions::default()
    };
    let projector = EmbeddedProjector::new(producer, setup.spec.clone(), opts);
    let stats = projector.stats();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let running = tokio::spawn(projector.run(async move {
        let _ = stopped.await;
    }));
    while stats.events.load(Ordering::Relaxed) < EVENTS as u64 {
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let elapsed = started.elapsed();
    let _ = stop.send(());
    running.await.expect("task").expect("projector");
    assert_eq!(stats.upserted.load(Ordering::Relaxed), EVENTS as u64, "every event was a newer version");
    elapsed
}

/// The projector's version-guarded upsert, spelled out: a stored version that is missing or
/// `null` is older than any number, a number is compared, anything else is kept.
const GUARDED_UPSERT: &str = "INSERT INTO \"proj_processes\" (key, doc) VALUES (?1, ?2) \
     ON CONFLICT (key) DO UPDATE SET doc = excluded.doc WHERE \
     (json_type(\"proj_processes\".doc, '$.\"seq\"') IS NULL \
     OR json_type(\"proj_processes\".doc, '$.\"seq\"') = 'null' \
     OR (json_type(\"proj_processes\".doc, '$.\"seq\"') IN ('integer', 'real') \
     AND json_extract(\"proj_processes\".doc, '$.\"seq\"') < ?3))";

/// Upserts the same rows by key into a fresh table of the same shape, `BATCH` rows per
/// transaction: each stored payload text is parsed, its key and version read, the document
/// (`_id` first) encoded and written with the same version guard.
fn raw_round(payloads: &[String]) -> Duration {
    let dir = tempfile::tempdir().expect("tempdir");
    let conn = rusqlite::Connection::open(dir.path().join("raw.db")).expect("open");
    conn.pragma_update(None, "journal_mode", "WAL").expect("wal");
    conn.pragma_update(None, "synchronous", "FULL").expect("sync");
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS \"proj_processes\" (key TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL)",
    )
    .expect("table");
    let started = Instant::now();
    for chunk in payloads.chunks(BATCH) {
        conn.execute_batch("BEGIN IMMEDIATE").expect("begin");
        {
            let mut upsert = conn.prepare_cached(GUARDED_UPSERT).expect("prepare");
            for text in chunk {
                let payload: Value = serde_json::from_str(text).expect("stored JSON");
                let Value::Object(fields) = payload else { panic!("not an object") };
                let key = fields["processId"].as_str().expect("key").to_string();
                let seq = fields["seq"].as_i64().expect("version");
                let mut doc = serde_json::Map::with_capacity(fields.len() + 1);
                doc.insert("_id".into(), Value::String(key.clone()));
                doc.extend(fields.into_iter().filter(|(k, _)| k != "_id"));
                let doc = serde_json::to_string(&doc).expect("encode");
                upsert.execute(rusqlite::params![key, doc, seq]).expect("upsert");
            }
        }
        conn.execute_batch("COMMIT").expect("commit");
    }
    started.elapsed()
}

/// Publishes the events into `dir` (untimed).
async fn publish_into(setup: &Setup, events: &[Value], bus: &SqliteBus) {
    let producer = Producer::new(bus.clone(), setup.registry.clone());
    for chunk in events.chunks(1000) {
        let items = chunk
            .iter()
            .map(|p| ("process.state".to_string(), p.clone(), PublishOptions::default()))
            .collect();
        producer.publish_all(items).await.expect("publish");
    }
}

/// Times a rebuild of `processes` from offset 0 (the previous round's rebuild swapped, so each
/// round starts over).
async fn rebuild_round(setup: &Setup, bus: &SqliteBus) -> Duration {
    let any = prom_runtime::bus::AnyBus::from(bus.clone());
    let started = Instant::now();
    let report = prom_runtime::project::rebuild(
        &any,
        &setup.system,
        setup.registry.clone(),
        "processes",
        &RebuildOptions::default(),
    )
    .await
    .expect("rebuild");
    let elapsed = started.elapsed();
    assert_eq!((report.events, report.rows), (EVENTS as u64, KEYS as u64), "{report:?}");
    elapsed
}

/// Times a fresh consumer group reading every event: poll, ack each, commit per batch.
async fn consume_round(bus: &SqliteBus, round: usize) -> Duration {
    let opts = SubscribeOptions {
        batch_size: DEFAULT_BATCH,
        partitions: 4,
        ack: AckMode::Manual,
        poll_timeout: Duration::from_millis(20),
        ..SubscribeOptions::default()
    };
    let started = Instant::now();
    let mut sub = Subscription::new(bus.clone(), "process.state", &format!("bench.plain.{round}"), opts)
        .expect("subscribe");
    let mut consumed = 0;
    while consumed < EVENTS {
        let batch = sub.poll().await.expect("poll");
        for delivery in &batch {
            sub.ack(delivery);
        }
        consumed += batch.len();
        sub.commit().await.expect("commit");
    }
    let elapsed = started.elapsed();
    sub.close().await.expect("close");
    elapsed
}

fn rebuild_section(runtime: &tokio::runtime::Runtime, setup: &Setup, events: &[Value]) {
    println!(
        "\nrebuild vs plain consumption of the same topic ({EVENTS} events, pages of {DEFAULT_BATCH})\n"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let bus = SqliteBus::open(dir.path()).expect("open");
    runtime.block_on(publish_into(setup, events, &bus));
    // Warm-up, untimed.
    runtime.block_on(rebuild_round(setup, &bus));
    runtime.block_on(consume_round(&bus, 0));
    let (mut rebuilt, mut consumed) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        if round % 2 == 0 {
            rebuilt.push(runtime.block_on(rebuild_round(setup, &bus)));
            consumed.push(runtime.block_on(consume_round(&bus, round + 1)));
        } else {
            consumed.push(runtime.block_on(consume_round(&bus, round + 1)));
            rebuilt.push(runtime.block_on(rebuild_round(setup, &bus)));
        }
    }
    let best = |d: &[Duration]| d.iter().min().copied().unwrap_or_default();
    let rate = |d: Duration| EVENTS as f64 / d.as_secs_f64();
    let (b, c) = (best(&rebuilt), best(&consumed));
    println!("  plain consumption       {:>10.0} events/s ({c:?})", rate(c));
    println!("  rebuild                 {:>10.0} events/s ({b:?})", rate(b));
    println!("  ratio rebuild / consume {:>10.2}x (target >= 0.7x)", rate(b) / rate(c));
}

fn main() {
    // Sections to run (`projector`, `rebuild`); none named runs both.
    let sections: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let run = |name: &str| sections.is_empty() || sections.iter().any(|s| s == name);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let setup = setup();
    let events = payloads();
    if run("projector") {
        projector_section(&runtime, &setup, &events);
    }
    if run("rebuild") {
        rebuild_section(&runtime, &setup, &events);
    }
}

fn projector_section(runtime: &tokio::runtime::Runtime, setup: &Setup, events: &[Value]) {
    // The payloads as the store holds them (JSON text), for the raw side to parse.
    let stored: Vec<String> = events.iter().map(Value::to_string).collect();
    println!(
        "embedded changelog projector vs raw batched SQLite upsert ({EVENTS} events, {KEYS} keys, batches of {BATCH})\n"
    );
    // Warm-up, untimed.
    runtime.block_on(projector_round(setup, events));
    raw_round(&stored);
    let (mut projected, mut raw) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        if round % 2 == 0 {
            projected.push(runtime.block_on(projector_round(setup, events)));
            raw.push(raw_round(&stored));
        } else {
            raw.push(raw_round(&stored));
            projected.push(runtime.block_on(projector_round(setup, events)));
        }
    }
    let best = |d: &[Duration]| d.iter().min().copied().unwrap_or_default();
    let rate = |d: Duration| EVENTS as f64 / d.as_secs_f64();
    let (p, r) = (best(&projected), best(&raw));
    println!("  raw batched upsert      {:>10.0} rows/s   ({r:?})", rate(r));
    println!("  embedded projector      {:>10.0} events/s ({p:?})", rate(p));
    println!("  ratio projector / raw   {:>10.2}x (target >= 0.7x)", rate(p) / rate(r));
}
