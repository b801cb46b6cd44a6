//! Runtime benchmarks. Every figure is printed next to a baseline measured in the same run, as
//! a ratio, because absolute numbers depend on the machine.
//!
//! `cargo bench -p prom-runtime --bench runtime`

use prom_runtime::consumer::{SubscribeOptions, Subscription};
use prom_runtime::record::now_ms;
use prom_runtime::{AnyBus, EventBus, MemoryBus, NewEvent, Producer, PublishOptions, Registry, SqliteBus};
use serde::Deserialize;
use serde_json::{Value, json};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

const EVENTS: usize = 100_000;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    println!("prom-runtime benchmarks ({EVENTS} events where not said otherwise)\n");
    runtime.block_on(throughput());
    validation();
    upcast();
    runtime.block_on(embedded_vs_raw());
}

fn rate(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

fn payload(n: usize) -> Value {
    json!({ "pid": n % 5000 + 1, "name": "api", "host": "host-1", "cpu_pct": 12.5, "mem_mib": 256.0, "region": "eu-west" })
}

fn events(topic: &str, range: std::ops::Range<usize>) -> Vec<NewEvent> {
    range.map(|n| NewEvent::new(topic, payload(n)).keyed(format!("{}", n % 5000), (n % 8) as u32)).collect()
}

/// Publishes from 4 tasks in batches of 100, then consumes everything with one group member.
async fn publish_consume(bus: AnyBus) -> (f64, f64) {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..4 {
        let bus = bus.clone();
        tasks.push(tokio::spawn(async move {
            for chunk in (t * EVENTS / 4..(t + 1) * EVENTS / 4).step_by(100) {
                bus.publish(events("bench", chunk..chunk + 100)).await.expect("publish");
            }
        }));
    }
    for task in tasks {
        task.await.expect("publisher");
    }
    let published = rate(EVENTS, start.elapsed());
    let opts = SubscribeOptions {
        partitions: 8,
        batch_size: 1000,
        max_in_flight: 5000,
        ..SubscribeOptions::default()
    };
    let mut sub = Subscription::new(bus, "bench", "g", opts).expect("subscribe");
    let start = Instant::now();
    let mut seen = 0;
    while seen < EVENTS {
        let batch = sub.poll().await.expect("poll");
        for d in &batch {
            sub.ack(d);
        }
        seen += batch.len();
    }
    sub.commit().await.expect("commit");
    (published, rate(EVENTS, start.elapsed()))
}

async fn throughput() {
    let (mem_pub, mem_con) = publish_consume(MemoryBus::new().into()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (disk_pub, disk_con) = publish_consume(SqliteBus::open(dir.path()).expect("open").into()).await;
    println!("publish + consume throughput (4 publishers x batches of 100; one consumer, 8 partitions)");
    println!("  memory   : publish {mem_pub:>10.0} ev/s   consume {mem_con:>10.0} ev/s   (baseline)");
    println!(
        "  embedded : publish {disk_pub:>10.0} ev/s   consume {disk_con:>10.0} ev/s   ({:.2}x / {:.2}x of memory)\n",
        disk_pub / mem_pub,
        disk_con / mem_con
    );
}

fn heartbeat_registry() -> Registry {
    let specs = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../specs/heartbeat.yaml");
    let linted = prom_codegen::lint_paths(&[specs]);
    assert!(!linted.has_errors(), "{}", linted.render());
    Registry::from_spec(&linted.spec).expect("registry")
}

fn time<T>(n: usize, mut f: impl FnMut(usize) -> T) -> Duration {
    for i in 0..n / 10 {
        black_box(f(i));
    }
    let start = Instant::now();
    for i in 0..n {
        black_box(f(i));
    }
    start.elapsed()
}

fn validation() {
    let registry = heartbeat_registry();
    let topic = registry.topic("heartbeat.received").expect("topic");
    let schema = topic.schema(topic.latest()).expect("schema");
    let payloads: Vec<Value> = (0..1000).map(payload).collect();
    let n = 500_000;
    let serialize = time(n, |i| serde_json::to_string(&payloads[i % 1000]).expect("serialize"));
    let validate = time(n, |i| {
        let p = &payloads[i % 1000];
        schema.check("heartbeat.received", 3, p).expect("valid");
        serde_json::to_string(p).expect("serialize")
    });
    println!("validation on publish ({n} heartbeats)");
    println!("  serialize only      : {:>10.0} ev/s (baseline)", rate(n, serialize));
    println!(
        "  validate + serialize: {:>10.0} ev/s   {:.2}x the baseline's time (target <= 1.3x)\n",
        rate(n, validate),
        validate.as_secs_f64() / serialize.as_secs_f64()
    );
}

const FOUR_VERSIONS: &str = "
topics:
  hb.four:
    key: /pid
    versions:
      1:
        schema:
          type: object
          required: [pid, host, mem_mb]
          properties: { pid: { type: integer }, host: { type: string }, mem_mb: { type: number } }
      2:
        schema:
          type: object
          required: [pid, host, mem_mib]
          properties: { pid: { type: integer }, host: { type: string }, mem_mib: { type: number } }
        upcast: { rename: { mem_mb: mem_mib } }
      3:
        schema:
          type: object
          required: [pid, host, mem_mib, region]
          properties: { pid: { type: integer }, host: { type: string }, mem_mib: { type: number }, region: { type: string } }
        upcast: { set_default: { region: unknown } }
      4:
        schema:
          type: object
          required: [pid, hostname, mem_mib, region]
          properties: { pid: { type: integer }, hostname: { type: string }, mem_mib: { type: number }, region: { type: string } }
        upcast: { rename: { host: hostname } }
";

#[derive(Deserialize)]
#[allow(dead_code)]
struct HeartbeatV4 {
    pid: i64,
    hostname: String,
    mem_mib: f64,
    region: String,
}

fn upcast() {
    let linted = prom_codegen::lint_str("four.yaml", FOUR_VERSIONS);
    assert!(!linted.has_errors(), "{}", linted.render());
    let registry = Registry::from_spec(&linted.spec).expect("registry");
    let topic = registry.topic("hb.four").expect("topic");
    let v1_text: Vec<String> =
        (0..1000).map(|i| json!({ "pid": i, "host": "h", "mem_mb": 12.5 }).to_string()).collect();
    let v4_text: Vec<String> = (0..1000)
        .map(|i| json!({ "pid": i, "hostname": "h", "mem_mib": 12.5, "region": "eu" }).to_string())
        .collect();
    let id = uuid::Uuid::now_v7();
    let n = 300_000;
    let typed = time(n, |i| serde_json::from_str::<HeartbeatV4>(&v4_text[i % 1000]).expect("decode"));
    let value_only = time(n, |i| serde_json::from_str::<Value>(&v4_text[i % 1000]).expect("parse"));
    let upcast = time(n, |i| {
        let v: Value = serde_json::from_str(&v1_text[i % 1000]).expect("parse");
        let latest = registry.upcast(topic, 1, v, id).expect("upcast");
        topic.schema(4).expect("schema").check("hb.four", 4, &latest).expect("valid");
        latest
    });
    // The store hands out payloads already parsed (`EventRecord::payload`), so compare there too.
    let v1_values: Vec<Value> = v1_text.iter().map(|t| serde_json::from_str(t).expect("parse")).collect();
    let v4_values: Vec<Value> = v4_text.iter().map(|t| serde_json::from_str(t).expect("parse")).collect();
    let typed_value = time(n, |i| HeartbeatV4::deserialize(&v4_values[i % 1000]).expect("decode"));
    let upcast_value = time(n, |i| {
        let latest = registry.upcast(topic, 1, v1_values[i % 1000].clone(), id).expect("upcast");
        topic.schema(4).expect("schema").check("hb.four", 4, &latest).expect("valid");
        latest
    });
    let base = typed.as_secs_f64();
    println!("read path ({n} stored payloads, from JSON text)");
    println!("  typed decode of a v4 payload            : {:>10.0} ev/s (baseline)", rate(n, typed));
    println!(
        "  parse to serde_json::Value (v4)          : {:>10.0} ev/s   {:.2}x",
        rate(n, value_only),
        value_only.as_secs_f64() / base
    );
    println!(
        "  v1 parse + 3-hop upcast + validate (v4)  : {:>10.0} ev/s   {:.2}x the baseline's time (target <= 2x)\n",
        rate(n, upcast),
        upcast.as_secs_f64() / base
    );
    println!("read path from an already parsed payload (what the store hands out)");
    println!("  typed decode of a v4 Value                : {:>10.0} ev/s (baseline)", rate(n, typed_value));
    println!(
        "  clone + 3-hop upcast + validate (v1 -> v4): {:>10.0} ev/s   {:.2}x the baseline's time (target <= 2x)\n",
        rate(n, upcast_value),
        upcast_value.as_secs_f64() / typed_value.as_secs_f64()
    );
}

fn raw_insert(dir: &std::path::Path, rows: &[(String, String, Vec<u8>, String)], batch: usize) -> Duration {
    let conn = rusqlite::Connection::open(dir.join("raw.db")).expect("open raw");
    conn.pragma_update(None, "journal_mode", "WAL").expect("wal");
    conn.pragma_update(None, "synchronous", "FULL").expect("full");
    conn.execute_batch(SqliteBus::layout()).expect("layout");
    let start = Instant::now();
    let mut offset = 0_i64;
    for chunk in rows.chunks(batch) {
        conn.execute_batch("BEGIN IMMEDIATE").expect("begin");
        {
            let mut stmt = conn
                .prepare_cached(
                    "INSERT INTO events (topic, off, id, key, part, ts, headers, payload, caused_by, sid, dedup) \
                     VALUES ('bench', ?1, ?2, ?3, 0, ?4, ?5, ?6, NULL, NULL, NULL)",
                )
                .expect("prepare");
            for (key, headers, id, payload) in chunk {
                offset += 1;
                stmt.execute(rusqlite::params![offset, id, key, now_ms(), headers, payload]).expect("insert");
            }
        }
        conn.execute("INSERT OR REPLACE INTO topics (name, head) VALUES ('bench', ?1)", [offset])
            .expect("head");
        conn.execute_batch("COMMIT").expect("commit");
    }
    start.elapsed()
}

async fn embedded_vs_raw() {
    let n = EVENTS;
    let batch = 1000;
    let dir = tempfile::tempdir().expect("tempdir");
    let rows: Vec<(String, String, Vec<u8>, String)> = (0..n)
        .map(|i| {
            let headers = json!({ "x-schema-version": "3" }).to_string();
            (
                format!("{}", i % 5000),
                headers,
                uuid::Uuid::now_v7().as_bytes().to_vec(),
                payload(i).to_string(),
            )
        })
        .collect();
    let raw = raw_insert(dir.path(), &rows, batch);

    let bus = SqliteBus::open(dir.path().join("prom")).expect("open");
    let start = Instant::now();
    for chunk in (0..n).step_by(batch) {
        let mut evs = events("bench", chunk..chunk + batch);
        for e in &mut evs {
            e.headers.insert("x-schema-version".into(), "3".into());
        }
        bus.publish(evs).await.expect("publish");
    }
    let ours = start.elapsed();

    // Many small concurrent publishes: the committer groups them into shared transactions.
    let bus2 = SqliteBus::open(dir.path().join("prom2")).expect("open");
    let producer = Producer::new(bus2, Arc::new(heartbeat_registry()));
    let start = Instant::now();
    let mut tasks = Vec::new();
    let small = 20_000;
    for t in 0..64 {
        let producer = producer.clone();
        tasks.push(tokio::spawn(async move {
            for i in (t..small).step_by(64) {
                producer
                    .publish("heartbeat.received", payload(i), PublishOptions::default())
                    .await
                    .expect("publish");
            }
        }));
    }
    for task in tasks {
        task.await.expect("publisher");
    }
    let grouped = start.elapsed();

    println!("embedded store writes ({n} events, batches of {batch}, WAL + synchronous=FULL)");
    println!("  raw rusqlite batched insert (pre-serialized rows): {:>10.0} ev/s (baseline)", rate(n, raw));
    println!(
        "  SqliteBus::publish (ids, serialization, offsets)  : {:>10.0} ev/s   {:.2}x the baseline's rate (target >= 0.8x)",
        rate(n, ours),
        raw.as_secs_f64() / ours.as_secs_f64()
    );
    println!(
        "  64 tasks x single-event Producer::publish (validated, dual-write, group commit): {:>8.0} ev/s ({small} events)",
        rate(small, grouped)
    );
}
