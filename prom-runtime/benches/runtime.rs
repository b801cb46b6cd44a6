//! Runtime benchmarks. Every figure is printed next to a baseline measured in the same run, as
//! a ratio, because absolute numbers depend on the machine.
//!
//! `cargo bench -p prom-runtime --bench runtime [-- SECTION...]`, sections: `hotpath`,
//! `throughput`, `validation`, `upcast`, `store`, `streams`, `scale` (default: all), and `steps`,
//! `consume-steps` and `stream-steps`, which are not timed: they run each step of the read path
//! (of a typed decode; of embedded consumption) in functions of their own, or one side of the
//! `streams` comparison, for `valgrind --tool=callgrind` to count.
//!
//! Method: the machine is shared, so a single long timing loop per side picks up whatever else
//! ran meanwhile. Each comparison instead runs its baseline and its measured path in alternating
//! rounds (the order swapped or rotated every round), after an untimed warm-up, and reports
//! each side's fastest round: interference from other processes (CPU time, disk flushes) only
//! ever adds time, so the fastest round is the least disturbed one. Both sides get the same
//! inputs, prepared outside the timed region.

use prom_runtime::consumer::{SubscribeOptions, Subscription};
use prom_runtime::record::SCHEMA_VERSION;
use prom_runtime::{
    AnyBus, EventBus, EventRecord, MemoryBus, NewEvent, Producer, PublishOptions, Registry, SqliteBus,
};
use serde::Deserialize;
use serde_json::{Value, json};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

const EVENTS: usize = 100_000;

fn main() {
    // `cargo bench` passes `--bench`; anything else not starting with `-` selects sections.
    let sections: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let run = |name: &str| sections.is_empty() || sections.iter().any(|s| s == name);
    if sections.iter().any(|s| s == "steps") {
        read_path_steps();
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    if sections.iter().any(|s| s == "consume-steps") {
        runtime.block_on(scale::steps());
        return;
    }
    if sections.iter().any(|s| s == "stream-steps") {
        // One side per process, for `valgrind --tool=callgrind` (instructions) or `strace -c`
        // (commits, writes) to count: `stream-steps publish-100|append-100|publish-1|append-1`.
        let registry = streams_registry();
        for (name, batch, append) in [
            ("publish-100", 100, false),
            ("append-100", 100, true),
            ("publish-1", 1, false),
            ("append-1", 1, true),
        ] {
            if sections.iter().any(|s| s == name) {
                let n = if batch == 1 { 200 } else { 2_000 };
                println!("{name}: {n} events in {:?}", stream_run(&runtime, &registry, n, batch, append));
            }
        }
        return;
    }
    println!("prom-runtime benchmarks ({EVENTS} events where not said otherwise)\n");
    if run("hotpath") {
        runtime.block_on(hotpath::run());
    }
    if run("throughput") {
        runtime.block_on(throughput());
    }
    if run("validation") {
        validation();
    }
    if run("upcast") {
        upcast();
    }
    if run("store") {
        runtime.block_on(embedded_vs_raw());
    }
    if run("streams") {
        streams(&runtime);
    }
    if run("scale") {
        runtime.block_on(scale::run());
    }
}

/// The stream tests' spec: `account` is tamper-evident over `money.deposited` (dual-written).
fn streams_registry() -> Arc<Registry> {
    let spec = include_str!("../tests/streams/streams.yaml");
    Arc::new(Registry::from_yaml("streams.yaml", spec).expect("the streams spec lints clean"))
}

fn deposit(stream: usize, n: usize) -> Value {
    json!({ "accountId": format!("s{stream}"), "cents": n + 1 })
}

/// The account streams the `streams` section's appends rotate over.
const STREAMS: usize = 20;

/// `n` events to a fresh embedded store in calls of `batch`: appends with an expected version
/// (rotating over `STREAMS` tamper-evident account streams) or plain `publish_all`s of the same
/// payloads. Returns the time the calls took (the store's opening excluded).
fn stream_run(
    runtime: &tokio::runtime::Runtime,
    registry: &Arc<Registry>,
    n: usize,
    batch: usize,
    append: bool,
) -> Duration {
    use prom_runtime::stream::{ExpectedVersion, StreamId};
    let dir = tempfile::tempdir().expect("tempdir");
    let producer = Producer::new(SqliteBus::open(dir.path()).expect("open"), registry.clone());
    runtime.block_on(async {
        let mut versions = [0u64; STREAMS];
        let start = Instant::now();
        for (b, first) in (0..n).step_by(batch).enumerate() {
            let stream = b % STREAMS;
            let payloads = (first..first + batch).map(|i| deposit(stream, i));
            if append {
                let events = payloads.map(|p| ("money.deposited".to_owned(), p)).collect();
                let expected = ExpectedVersion::Exact(versions[stream]);
                let id = StreamId::new("account", format!("s{stream}"));
                let appended = producer.append(id, expected, events).await.expect("append");
                versions[stream] = appended.last_version;
            } else {
                let items =
                    payloads.map(|p| ("money.deposited".to_owned(), p, PublishOptions::default())).collect();
                producer.publish_all(items).await.expect("publish");
            }
        }
        start.elapsed()
    })
}

/// Appends with an expected version (SHA-256 chain included) vs plain publishes of the same
/// payloads, on the embedded store: in batches, and one event per call (each its own commit).
fn streams(runtime: &tokio::runtime::Runtime) {
    let registry = streams_registry();
    let run = |n: usize, batch: usize, append: bool| stream_run(runtime, &registry, n, batch, append);
    let (n, batch, rounds) = (20_000, 100, 5);
    let (publish, append) = interleave(rounds, || run(n, batch, false), || run(n, batch, true));
    let (single_n, single_rounds) = (1_000, 3);
    let (publish1, append1) =
        interleave(single_rounds, || run(single_n, 1, false), || run(single_n, 1, true));
    println!(
        "stream appends on the embedded store (validated, dual-written, tamper-evident account streams, \
         {STREAMS} streams; fastest of {rounds} / {single_rounds} alternating rounds)"
    );
    println!("  publish_all, batches of {batch}       : {:>10.0} ev/s (baseline)", rate(n, publish));
    println!(
        "  append with expected version, {batch}  : {:>10.0} ev/s   {:.2}x the baseline's rate (target >= 0.8x)",
        rate(n, append),
        publish.as_secs_f64() / append.as_secs_f64()
    );
    println!("  publish, one event per call         : {:>10.0} ev/s (baseline)", rate(single_n, publish1));
    println!(
        "  append, one event per call          : {:>10.0} ev/s   {:.2}x the baseline's rate",
        rate(single_n, append1),
        publish1.as_secs_f64() / append1.as_secs_f64()
    );
}

fn rate(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

fn fastest(samples: Vec<Duration>) -> Duration {
    samples.into_iter().min().unwrap_or_default()
}

/// Runs two timed closures in alternating rounds (after one untimed round each) and returns
/// the fastest round of each. Each closure times its own work, so it can prepare its inputs
/// untimed.
fn interleave(
    rounds: usize,
    mut base: impl FnMut() -> Duration,
    mut measured: impl FnMut() -> Duration,
) -> (Duration, Duration) {
    base();
    measured();
    let (mut b, mut m) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    for round in 0..rounds {
        if round % 2 == 0 {
            b.push(base());
            m.push(measured());
        } else {
            m.push(measured());
            b.push(base());
        }
    }
    (fastest(b), fastest(m))
}

/// Times `per_round` calls of `f` (inputs `0..per_round`).
fn time<T>(per_round: usize, mut f: impl FnMut(usize) -> T) -> Duration {
    let start = Instant::now();
    for i in 0..per_round {
        black_box(f(i));
    }
    start.elapsed()
}

/// Times `f` consuming each of `inputs` (made before, untimed); outputs are dropped inside
/// the timing.
fn time_owned<I, T>(inputs: Vec<I>, mut f: impl FnMut(I) -> T) -> Duration {
    let start = Instant::now();
    for input in inputs {
        black_box(f(input));
    }
    start.elapsed()
}

fn payload(n: usize) -> Value {
    json!({ "pid": n % 5000 + 1, "name": "api", "host": "host-1", "cpu_pct": 12.5, "mem_mib": 256.0, "region": "eu-west" })
}

fn events(topic: &str, range: std::ops::Range<usize>) -> Vec<NewEvent> {
    range.map(|n| NewEvent::new(topic, payload(n)).keyed(format!("{}", n % 5000), (n % 8) as u32)).collect()
}

/// Publishes from 4 tasks in batches of 100, then consumes everything with one group member.
async fn publish_consume(bus: AnyBus) -> (Duration, Duration) {
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
    let published = start.elapsed();
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
    // Everything consumed is durably committed before the clock stops.
    sub.commit().await.expect("commit");
    (published, start.elapsed())
}

async fn throughput() {
    let rounds = 3;
    let (mut mem, mut disk) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        mem.push(publish_consume(MemoryBus::new().into()).await);
        let dir = tempfile::tempdir().expect("tempdir");
        disk.push(publish_consume(SqliteBus::open(dir.path()).expect("open").into()).await);
    }
    let pick = |v: &[(Duration, Duration)], f: fn(&(Duration, Duration)) -> Duration| {
        rate(EVENTS, fastest(v.iter().map(f).collect()))
    };
    let (mem_pub, mem_con) = (pick(&mem, |r| r.0), pick(&mem, |r| r.1));
    let (disk_pub, disk_con) = (pick(&disk, |r| r.0), pick(&disk, |r| r.1));
    println!(
        "publish + consume throughput (4 publishers x batches of 100; one consumer, 8 partitions; \
         fastest of {rounds})"
    );
    println!("  memory   : publish {mem_pub:>10.0} ev/s   consume {mem_con:>10.0} ev/s   (baseline)");
    println!(
        "  embedded : publish {disk_pub:>10.0} ev/s   consume {disk_con:>10.0} ev/s   ({:.2}x / {:.2}x of memory)\n",
        disk_pub / mem_pub,
        disk_con / mem_con
    );
}

fn heartbeat_registry() -> Registry {
    let specs = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../specs/heartbeat.yaml");
    let linted = prom_spec::lint_paths(&[specs]);
    assert!(!linted.has_errors(), "{}", linted.render());
    Registry::from_spec(&linted.spec).expect("registry")
}

fn validation() {
    let registry = heartbeat_registry();
    let topic = registry.topic("heartbeat.received").expect("topic");
    let schema = topic.schema(topic.latest()).expect("schema");
    let payloads: Vec<Value> = (0..1000).map(payload).collect();
    let (rounds, per_round) = (201, 5_000);
    let (serialize, validate) = interleave(
        rounds,
        || time(per_round, |i| serde_json::to_string(&payloads[i % 1000]).expect("serialize")),
        || {
            time(per_round, |i| {
                let p = &payloads[i % 1000];
                schema.check("heartbeat.received", 3, p).expect("valid");
                serde_json::to_string(p).expect("serialize")
            })
        },
    );
    println!("validation on publish ({per_round} heartbeats per round, fastest of {rounds} rounds)");
    println!("  serialize only      : {:>10.0} ev/s (baseline)", rate(per_round, serialize));
    println!(
        "  validate + serialize: {:>10.0} ev/s   {:.2}x the baseline's time (target <= 1.3x)\n",
        rate(per_round, validate),
        validate.as_secs_f64() / serialize.as_secs_f64()
    );
}

/// The read path's topic: four versions, three declarative hops (`support/four.yaml`).
const FOUR_VERSIONS: &str = include_str!("support/four.yaml");

/// `prom-codegen build --specs benches/support/four.yaml`, kept current by prom-codegen's
/// snapshot test: the typed structs and upcasters a user's crate would get.
#[allow(missing_docs, unreachable_pub)]
#[rustfmt::skip]
#[path = "support/four.rs"]
mod four;

use four::hb_four;

/// The issue #12 targets: publishing and handling against the work they must do.
#[path = "support/hotpath.rs"]
mod hotpath;

#[path = "support/scale.rs"]
mod scale;

fn four_registry() -> Registry {
    let linted = prom_spec::lint_str("four.yaml", FOUR_VERSIONS);
    assert!(!linted.has_errors(), "{}", linted.render());
    Registry::from_spec(&linted.spec).expect("registry")
}

/// A stored event of `hb.four` at `version`, as the store hands it out.
fn stored_four(version: u32, payload: Value) -> EventRecord {
    let mut headers = prom_runtime::Headers::new();
    headers.insert(SCHEMA_VERSION.into(), version.to_string());
    EventRecord {
        id: uuid::Uuid::now_v7(),
        topic: "hb.four".into(),
        key: Some("7".into()),
        partition: 0,
        ts: 0,
        headers,
        payload: payload.into(),
        caused_by: None,
        sid: None,
        offset: 1,
    }
}

fn upcast() {
    let registry = four_registry();
    let topic = registry.topic("hb.four").expect("topic");
    let (v1_schema, v4_schema) = (topic.schema(1).expect("v1"), topic.schema(4).expect("v4"));
    let v1_text: Vec<String> =
        (0..1000).map(|i| json!({ "pid": i, "host": "h", "mem_mb": 12.5 }).to_string()).collect();
    let v4_text: Vec<String> = (0..1000)
        .map(|i| json!({ "pid": i, "hostname": "h", "mem_mib": 12.5, "region": "eu" }).to_string())
        .collect();
    let parse = |texts: &[String]| -> Vec<Value> {
        texts.iter().map(|t| serde_json::from_str(t).expect("parse")).collect()
    };
    let (v1_values, v4_values) = (parse(&v1_text), parse(&v4_text));
    let id = uuid::Uuid::now_v7();
    let (rounds, per_round) = (101, 3_000);
    let owned = |values: &[Value]| (0..per_round).map(|i| values[i % 1000].clone()).collect::<Vec<_>>();
    let records = |version: u32, values: &[Value]| {
        (0..per_round).map(|i| stored_four(version, values[i % 1000].clone())).collect::<Vec<_>>()
    };
    let typed_v4 = || time_owned(owned(&v4_values), |v| hb_four::V4::deserialize(&v).expect("decode"));
    let ratio = |d: Duration, base: Duration| d.as_secs_f64() / base.as_secs_f64();

    // What typed handlers get: the store hands out parsed payloads (`EventRecord::payload`),
    // decoded in place; both sides consume values made outside the timing.
    let (base, steps) = interleave(rounds, typed_v4, || {
        time_owned(owned(&v1_values), |v| {
            v1_schema.check("hb.four", 1, &v).expect("valid v1");
            hb_four::AnyVersion::decode(1, &v).expect("decode v1").into_latest().expect("upcast")
        })
    });
    // Both sides read stored records (and drop them inside the timing).
    let plain_record =
        || time_owned(records(4, &v4_values), |r| (hb_four::V4::deserialize(&r.payload).expect("decode"), r));
    let (base2, typed) = interleave(rounds, plain_record, || {
        time_owned(records(1, &v1_values), |r| {
            registry.decode_typed::<hb_four::AnyVersion>(r).expect("decode_typed")
        })
    });
    let (base3, json_path) = interleave(rounds, typed_v4, || {
        time_owned(owned(&v1_values), |v| {
            let latest = registry.upcast(topic, 1, v, id).expect("upcast");
            v4_schema.check("hb.four", 4, &latest).expect("valid");
            latest
        })
    });
    println!("read path from a parsed, owned payload ({per_round} per round, fastest of {rounds} rounds)");
    println!(
        "  typed decode of a v4 payload (V4::deserialize)        : {:>10.0} ev/s (baseline)",
        rate(per_round, base)
    );
    println!(
        "  v1: validate + typed decode + 3 typed upcasts          : {:>10.0} ev/s   {:.2}x the baseline's time \
         (target <= 2x)",
        rate(per_round, steps),
        ratio(steps, base)
    );
    println!(
        "  stored v4 record: typed decode of its payload           : {:>10.0} ev/s (baseline)",
        rate(per_round, base2)
    );
    println!(
        "  stored v1 record: Registry::decode_typed (the above plus : {:>10.0} ev/s   {:.2}x the baseline's time \
         (target <= 2x)",
        rate(per_round, typed),
        ratio(typed, base2)
    );
    println!("    routing, version header, x-upcasted-from stamp)");
    println!(
        "  untyped path: 3-hop JSON upcast + validate (for reference): {:>8.0} ev/s   {:.2}x\n",
        rate(per_round, json_path),
        ratio(json_path, base3)
    );

    // From JSON text, for a store that handed out text: parsing into a `Value` alone costs more
    // than a typed decode, which is why the runtime validates and decodes the parsed payload.
    let typed_text =
        || time(per_round, |i| serde_json::from_str::<hb_four::V4>(&v4_text[i % 1000]).expect("decode"));
    let (tbase, value_only) = interleave(rounds, typed_text, || {
        time(per_round, |i| serde_json::from_str::<Value>(&v4_text[i % 1000]))
    });
    let (tbase2, from_text) = interleave(rounds, typed_text, || {
        time(per_round, |i| {
            let v: Value = serde_json::from_str(&v1_text[i % 1000]).expect("parse");
            v1_schema.check("hb.four", 1, &v).expect("valid v1");
            hb_four::AnyVersion::decode(1, &v).expect("decode v1").into_latest().expect("upcast")
        })
    });
    println!("read path from JSON text ({per_round} per round, fastest of {rounds} rounds)");
    println!(
        "  typed decode of v4 text                                 : {:>10.0} ev/s (baseline)",
        rate(per_round, tbase)
    );
    println!(
        "  parse v4 text into a serde_json::Value                  : {:>10.0} ev/s   {:.2}x",
        rate(per_round, value_only),
        ratio(value_only, tbase)
    );
    println!(
        "  parse v1 text + validate + typed decode + 3 typed upcasts: {:>10.0} ev/s   {:.2}x\n",
        rate(per_round, from_text),
        ratio(from_text, tbase2)
    );
}

/// Each step of reading a stored payload, `STEPS` times, in functions of their own so that
/// `valgrind --tool=callgrind` attributes instructions per step:
/// `valgrind --tool=callgrind --callgrind-out-file=cg.out target/release/deps/runtime-* steps`,
/// then `callgrind_annotate --inclusive=yes cg.out | grep step_`.
fn read_path_steps() {
    const STEPS: usize = 10_000;
    let registry = four_registry();
    let v1_schema = registry.topic("hb.four").expect("topic").schema(1).expect("v1");
    let v1 = json!({ "pid": 7, "host": "h", "mem_mb": 12.5 });
    let v4 = json!({ "pid": 7, "hostname": "h", "mem_mib": 12.5, "region": "eu" });
    #[inline(never)]
    fn step_typed_decode_v4(v: Value) -> hb_four::V4 {
        hb_four::V4::deserialize(&v).expect("decode")
    }
    #[inline(never)]
    fn step_validate_v1(schema: &prom_runtime::validate::CompiledSchema, v: &Value) {
        schema.check("hb.four", 1, v).expect("valid");
    }
    #[inline(never)]
    fn step_typed_decode_v1(v: Value) -> hb_four::AnyVersion {
        hb_four::AnyVersion::decode(1, &v).expect("decode")
    }
    #[inline(never)]
    fn step_typed_upcast_3_hops(v: hb_four::AnyVersion) -> hb_four::V4 {
        v.into_latest().expect("upcast")
    }
    #[inline(never)]
    fn step_decode_typed(registry: &Registry, record: EventRecord) -> (hb_four::V4, EventRecord) {
        registry.decode_typed::<hb_four::AnyVersion>(record).expect("decode_typed")
    }
    for _ in 0..STEPS {
        black_box(step_typed_decode_v4(black_box(v4.clone())));
        let v = black_box(v1.clone());
        step_validate_v1(v1_schema, &v);
        black_box(step_typed_upcast_3_hops(step_typed_decode_v1(v)));
        black_box(step_decode_typed(&registry, stored_four(1, black_box(v1.clone()))));
    }
}

const INSERT: &str = "INSERT INTO events (topic, off, id, key, part, ts, headers, payload, caused_by, sid, dedup) \
                      VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";

fn raw_conn(path: &std::path::Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).expect("open raw");
    conn.pragma_update(None, "journal_mode", "WAL").expect("wal");
    conn.pragma_update(None, "synchronous", "FULL").expect("full");
    conn.execute_batch(SqliteBus::layout()).expect("layout");
    conn
}

/// What a hand-written store does with the same events: serialize the JSON columns, insert each
/// row with a prepared statement, bump the topic head, one durable commit per batch.
fn raw_insert(conn: &rusqlite::Connection, batches: &[Vec<NewEvent>]) -> Duration {
    let start = Instant::now();
    let mut offset = 0_i64;
    for batch in batches {
        conn.execute_batch("BEGIN IMMEDIATE").expect("begin");
        {
            let mut stmt = conn.prepare_cached(INSERT).expect("prepare");
            for e in batch {
                offset += 1;
                let headers = serde_json::to_string(&e.headers).expect("headers");
                let payload = serde_json::to_string(&e.payload).expect("payload");
                insert_row(&mut stmt, e, offset, &headers, &payload);
            }
        }
        conn.execute("INSERT OR REPLACE INTO topics (name, head) VALUES ('bench', ?1)", [offset])
            .expect("head");
        conn.execute_batch("COMMIT").expect("commit");
    }
    start.elapsed()
}

/// Binds one event's columns exactly as the store does.
fn insert_row(
    stmt: &mut rusqlite::CachedStatement<'_>,
    e: &NewEvent,
    offset: i64,
    headers: &str,
    payload: &str,
) {
    stmt.execute(rusqlite::params![
        e.topic,
        offset,
        e.id.as_bytes().as_slice(),
        e.key,
        e.partition,
        e.ts,
        headers,
        payload,
        e.caused_by.map(|id| id.as_bytes().to_vec()),
        e.sid,
        e.dedup
    ])
    .expect("insert");
}

/// The same, from rows serialized beforehand (the JSON work left out of the baseline).
fn raw_insert_preserialized(
    conn: &rusqlite::Connection,
    rows: &[Vec<(&NewEvent, String, String)>],
) -> Duration {
    let start = Instant::now();
    let mut offset = 0_i64;
    for batch in rows {
        conn.execute_batch("BEGIN IMMEDIATE").expect("begin");
        {
            let mut stmt = conn.prepare_cached(INSERT).expect("prepare");
            for (e, headers, payload) in batch {
                offset += 1;
                insert_row(&mut stmt, e, offset, headers, payload);
            }
        }
        conn.execute("INSERT OR REPLACE INTO topics (name, head) VALUES ('bench', ?1)", [offset])
            .expect("head");
        conn.execute_batch("COMMIT").expect("commit");
    }
    start.elapsed()
}

fn store_batches(n: usize, batch: usize) -> Vec<Vec<NewEvent>> {
    (0..n)
        .step_by(batch)
        .map(|c| {
            let mut evs = events("bench", c..c + batch);
            for e in &mut evs {
                e.headers.insert("x-schema-version".into(), "3".into());
            }
            evs
        })
        .collect()
}

async fn embedded_vs_raw() {
    let (n, batch, rounds) = (30_000, 1000, 9);
    let mut round = 0;
    let mut fresh = || {
        round += 1;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(format!("r{round}"));
        (dir, path)
    };
    let (mut raw, mut pre, mut ours) = (Vec::new(), Vec::new(), Vec::new());
    // One untimed warm-up round of the bus, then the three sides in rotating order.
    {
        let (_dir, path) = fresh();
        let bus = SqliteBus::open(&path).expect("open");
        for b in store_batches(n / 5, batch) {
            bus.publish(b).await.expect("publish");
        }
    }
    for r in 0..rounds {
        for side in 0..3 {
            let (_dir, path) = fresh();
            let batches = store_batches(n, batch);
            match (side + r) % 3 {
                0 => {
                    std::fs::create_dir_all(&path).expect("dir");
                    raw.push(raw_insert(&raw_conn(&path.join("raw.db")), &batches));
                }
                1 => {
                    std::fs::create_dir_all(&path).expect("dir");
                    let rows: Vec<Vec<(&NewEvent, String, String)>> = batches
                        .iter()
                        .map(|b| {
                            b.iter()
                                .map(|e| {
                                    let h = serde_json::to_string(&e.headers).expect("headers");
                                    (e, h, serde_json::to_string(&e.payload).expect("payload"))
                                })
                                .collect()
                        })
                        .collect();
                    pre.push(raw_insert_preserialized(&raw_conn(&path.join("raw.db")), &rows));
                }
                _ => {
                    let bus = SqliteBus::open(&path).expect("open");
                    let start = Instant::now();
                    for b in batches {
                        bus.publish(b).await.expect("publish");
                    }
                    ours.push(start.elapsed());
                }
            }
        }
    }
    let (raw, pre, ours) = (fastest(raw), fastest(pre), fastest(ours));

    // Many small concurrent publishes: the committer groups them into shared transactions.
    // Baseline: the same events through `publish_all` in batches of 100 from one task.
    let small = 20_000;
    let dir_many = tempfile::tempdir().expect("tempdir");
    let (batched, grouped) = {
        let mut stores = 0;
        let mut fresh_producer = || {
            stores += 1;
            let bus = SqliteBus::open(dir_many.path().join(format!("p{stores}"))).expect("open");
            Producer::new(bus, Arc::new(heartbeat_registry()))
        };
        let (mut b, mut g) = (Vec::new(), Vec::new());
        for r in 0..4 {
            for side in [r % 2, 1 - r % 2] {
                let producer = fresh_producer();
                if side == 0 {
                    let batches: Vec<Vec<(String, Value, PublishOptions)>> = (0..small)
                        .step_by(100)
                        .map(|c| {
                            (c..c + 100)
                                .map(|i| {
                                    ("heartbeat.received".to_owned(), payload(i), PublishOptions::default())
                                })
                                .collect()
                        })
                        .collect();
                    let start = Instant::now();
                    for batch in batches {
                        producer.publish_all(batch).await.expect("publish");
                    }
                    b.push(start.elapsed());
                } else {
                    let start = Instant::now();
                    let mut tasks = Vec::new();
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
                    g.push(start.elapsed());
                }
            }
        }
        (fastest(b), fastest(g))
    };

    println!(
        "embedded store writes ({n} events per round, batches of {batch}, WAL + synchronous=FULL, \
         fastest of {rounds} rounds; the same prepared events on every side)"
    );
    println!(
        "  raw rusqlite batched insert (serializes the JSON columns): {:>10.0} ev/s (baseline)",
        rate(n, raw)
    );
    println!(
        "  raw rusqlite batched insert, JSON serialized beforehand  : {:>10.0} ev/s   (for reference)",
        rate(n, pre)
    );
    println!(
        "  SqliteBus::publish (serialization, offsets, dedup check) : {:>10.0} ev/s   {:.2}x the baseline's \
         rate (target >= 0.8x); {:.2}x the pre-serialized one",
        rate(n, ours),
        raw.as_secs_f64() / ours.as_secs_f64(),
        pre.as_secs_f64() / ours.as_secs_f64()
    );
    println!(
        "  Producer::publish_all, batches of 100 from one task (validated, dual-write): {:>10.0} ev/s ({small} events; baseline)",
        rate(small, batched)
    );
    println!(
        "  64 tasks x single-event Producer::publish (validated, dual-write, group commit): {:>8.0} ev/s   {:.2}x the batched rate (target >= 0.5x)",
        rate(small, grouped),
        batched.as_secs_f64() / grouped.as_secs_f64()
    );
}
