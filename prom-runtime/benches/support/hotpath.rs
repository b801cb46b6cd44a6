//! Issue #12's hot-path targets, each printed as a ratio of times against a baseline measured
//! in the same run (alternating rounds, median round of each side):
//! 1. `Producer::publish` into a `MemoryBus` (validated; single awaited events, and batches of
//!    100 through `publish_all`) against `validate + serialize` of the same payloads;
//! 2. a `Runner` with a no-op typed handler (`runner::typed`, what generated consumer methods
//!    run: typed decode, `Context`, ack) against a typed decode of the same stored events, and
//!    against a plain `Subscription::poll` + ack of them; an untyped closure that decodes the
//!    JSON itself, and a handler that decodes nothing (what the Runner costs around the
//!    decode), are shown for reference. The decode is timed twice: in commit order (the
//!    target's baseline) and partition by partition, the order a consumer must handle them in,
//!    which on a `MemoryBus` visits payloads far apart in memory. Both run on a `MemoryBus` and
//!    again on the embedded store, where a poll reads and parses what the decode then walks.
//!
//! `PROM_BENCH_METRICS=1` installs the Prometheus recorder first, so the same ratios include
//! recording every metric (compare a run with and without it for the cost of metrics).

use prom_runtime::consumer::{SubscribeOptions, Subscription};
use prom_runtime::retry::RetryPolicy;
use prom_runtime::runner::{self, FailurePolicy, Runner};
use prom_runtime::{
    Context, DecodeError, Event, EventBus, EventRecord, MemoryBus, Producer, PublishOptions, Registry,
    SqliteBus, Topic, UpcastError, Versioned,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const TOPIC: &str = "bench.hot";

/// The heartbeat's latest schema on a topic without dual-write, so one publish stores one event.
const SPEC: &str = "
topics:
  bench.hot:
    key: /pid
    partitions: 8
    versions:
      1:
        schema:
          type: object
          additionalProperties: false
          required: [pid, name, host, cpu_pct, mem_mib, region]
          properties:
            pid: { type: integer, minimum: 1 }
            name: { type: string }
            host: { type: string }
            cpu_pct: { type: number, minimum: 0 }
            mem_mib: { type: number, minimum: 0 }
            region: { type: string }
            tags: { type: array, items: { type: string } }
";

/// What a typed handler of the topic receives.
#[derive(Debug, Serialize, Deserialize)]
#[allow(dead_code)]
struct Heartbeat {
    pid: u64,
    name: String,
    host: String,
    cpu_pct: f64,
    mem_mib: f64,
    region: String,
    tags: Option<Vec<String>>,
}

impl Event for Heartbeat {
    const TOPIC: &'static str = TOPIC;
    const VERSION: u32 = 1;
    const SCHEMA: &'static str = "{}";
}

/// The topic's payload of any version, as `prom-codegen` emits it for a one-version topic.
struct AnyHeartbeat(Heartbeat);

impl Versioned for AnyHeartbeat {
    type Latest = Heartbeat;
    const TOPIC: &'static str = TOPIC;
    const LATEST_VERSION: u32 = 1;

    fn decode(version: u32, payload: &Value) -> Result<Self, DecodeError> {
        match version {
            1 => Heartbeat::deserialize(payload).map(AnyHeartbeat).map_err(|source| DecodeError::Payload {
                topic: TOPIC,
                version,
                source,
            }),
            other => Err(DecodeError::UnknownVersion { topic: TOPIC, version: other }),
        }
    }

    fn version(&self) -> u32 {
        1
    }

    fn into_latest(self) -> Result<Heartbeat, UpcastError> {
        Ok(self.0)
    }
}

const HEARTBEATS: Topic<AnyHeartbeat> = Topic::new();

fn registry() -> Arc<Registry> {
    Arc::new(Registry::from_yaml("bench.yaml", SPEC).expect("bench spec"))
}

fn payloads(n: usize) -> Vec<Value> {
    (0..n).map(super::payload).collect()
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

/// Runs `sides` in rotating order for `rounds` rounds after one untimed warm-up round; returns
/// each side's median round.
async fn rounds<F>(rounds: usize, sides: usize, mut side: F) -> Vec<Duration>
where
    F: AsyncFnMut(usize) -> Duration,
{
    for s in 0..sides {
        side(s).await;
    }
    let mut samples = vec![Vec::new(); sides];
    for r in 0..rounds {
        for i in 0..sides {
            let s = (i + r) % sides;
            samples[s].push(side(s).await);
        }
    }
    samples.into_iter().map(median).collect()
}

pub async fn run() {
    // With PROM_BENCH_METRICS=1 the metrics are recorded into the `prom` CLI's Prometheus
    // recorder (as under `prom run --metrics`); without, into the facade's no-op recorder.
    #[cfg(feature = "cli")]
    if std::env::var("PROM_BENCH_METRICS").as_deref() == Ok("1") {
        prom_runtime::metrics::prometheus::install().expect("the Prometheus recorder installs");
        println!("hot path: metrics recorded into the Prometheus recorder (PROM_BENCH_METRICS=1)");
    }
    publish().await;
    handle(MemoryBus::new(), "a MemoryBus").await;
    // The default install's store: reads parse each payload from its stored text, so a poll
    // costs far more here and the decode far less in proportion.
    let dir = tempfile::tempdir().expect("tempdir");
    handle(SqliteBus::open(dir.path()).expect("open"), "the embedded store").await;
}

async fn publish() {
    let registry = registry();
    let schema = registry.topic(TOPIC).expect("topic").schema(1).expect("schema");
    let n = 20_000;
    let r = 9;
    let times = rounds(r, 3, async |side| {
        let inputs = payloads(n);
        match side {
            0 => {
                let start = Instant::now();
                for p in inputs {
                    schema.check(TOPIC, 1, &p).expect("valid");
                    black_box(serde_json::to_string(&p).expect("serialize"));
                }
                start.elapsed()
            }
            1 => {
                let producer = Producer::new(MemoryBus::new(), registry.clone());
                let start = Instant::now();
                for p in inputs {
                    producer.publish(TOPIC, p, PublishOptions::default()).await.expect("publish");
                }
                start.elapsed()
            }
            _ => {
                let producer = Producer::new(MemoryBus::new(), registry.clone());
                let mut batches = Vec::new();
                let mut it = inputs.into_iter().peekable();
                while it.peek().is_some() {
                    let batch: Vec<(String, Value, PublishOptions)> = it
                        .by_ref()
                        .take(100)
                        .map(|p| (TOPIC.to_owned(), p, PublishOptions::default()))
                        .collect();
                    batches.push(batch);
                }
                let start = Instant::now();
                for batch in batches {
                    producer.publish_all(batch).await.expect("publish");
                }
                start.elapsed()
            }
        }
    })
    .await;
    let (base, single, batched) = (times[0], times[1], times[2]);
    let ratio = |d: Duration| d.as_secs_f64() / base.as_secs_f64();
    println!("hot path: publish into MemoryBus ({n} heartbeats per round, median of {r} rounds)");
    println!("  validate + serialize            : {:>10.0} ev/s (baseline)", super::rate(n, base));
    println!(
        "  Producer::publish, one awaited  : {:>10.0} ev/s   {:.2}x the baseline's time (target <= 2x)",
        super::rate(n, single),
        ratio(single)
    );
    println!(
        "  Producer::publish_all, 100/call : {:>10.0} ev/s   {:.2}x the baseline's time (target <= 1.5x)\n",
        super::rate(n, batched),
        ratio(batched)
    );
}

/// A handler that decodes nothing: the Runner's own cost per event (poll, attempt, span, ack).
struct NoDecode(Box<dyn Fn() + Send + Sync>);

impl runner::Handler for NoDecode {
    fn handle(&self, _event: EventRecord) -> runner::HandlerFuture {
        (self.0)();
        Box::pin(std::future::ready(Ok(())))
    }

    fn attempt(
        &self,
        _: &Registry,
        _: &Arc<EventRecord>,
        _: u32,
    ) -> prom_runtime::Result<runner::HandlerFuture> {
        (self.0)();
        Ok(Box::pin(std::future::ready(Ok(()))))
    }
}

async fn handle<B: EventBus + Clone>(bus: B, store: &str) {
    let registry = registry();
    let n = 20_000;
    let producer = Producer::new(bus.clone(), registry.clone());
    for chunk in payloads(n).chunks(1000) {
        let items = chunk.iter().map(|p| (TOPIC.to_owned(), p.clone(), PublishOptions::default())).collect();
        producer.publish_all(items).await.expect("publish");
    }
    let opts = || SubscribeOptions {
        partitions: 8,
        batch_size: 500,
        max_in_flight: 5000,
        poll_timeout: Duration::from_millis(20),
        ..SubscribeOptions::default()
    };
    let mut group = 0;
    let r = 7;
    let times = rounds(r, 6, async |side| {
        group += 1;
        let group = format!("g{group}");
        match side {
            0 | 4 => {
                let stored: Vec<EventRecord> = if side == 0 {
                    bus.read_topic(TOPIC, &prom_runtime::TopicPosition::start(), n).await.expect("read")
                } else {
                    let mut stored = Vec::with_capacity(n);
                    for partition in 0..8 {
                        stored.extend(bus.read(TOPIC, partition, 0, n).await.expect("read"));
                    }
                    stored
                };
                let start = Instant::now();
                for record in stored {
                    black_box(Heartbeat::deserialize(&record.payload).expect("decode"));
                }
                start.elapsed()
            }
            1 => {
                let mut sub = Subscription::new(bus.clone(), TOPIC, &group, opts()).expect("subscribe");
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
            _ => {
                let sub = Subscription::new(bus.clone(), TOPIC, &group, opts()).expect("subscribe");
                let policy = FailurePolicy { retry: RetryPolicy::default(), dlq: false };
                let runner = Runner::new(sub, producer.clone(), policy);
                let handled = Arc::new(AtomicUsize::new(0));
                let done = Arc::new(tokio::sync::Notify::new());
                let count = {
                    let (handled, done) = (handled.clone(), done.clone());
                    move || {
                        if handled.fetch_add(1, Ordering::Relaxed) + 1 == n {
                            done.notify_one();
                        }
                    }
                };
                let start = Instant::now();
                if side == 5 {
                    let handler = NoDecode(Box::new(count));
                    runner.run(handler, done.notified()).await.expect("run");
                } else if side == 2 {
                    let handler = move |heartbeat: Heartbeat, context: Context| {
                        black_box((heartbeat, context));
                        count();
                        std::future::ready(Ok::<(), String>(()))
                    };
                    runner.run(runner::typed(HEARTBEATS, handler), done.notified()).await.expect("run");
                } else {
                    let handler = move |event: EventRecord| {
                        let decoded =
                            Heartbeat::deserialize(&event.payload).map(drop).map_err(|e| e.to_string());
                        count();
                        std::future::ready(decoded)
                    };
                    runner.run(handler, done.notified()).await.expect("run");
                }
                start.elapsed()
            }
        }
    })
    .await;
    let (decode, poll, runner, untyped, by_partition, bare) =
        (times[0], times[1], times[2], times[3], times[4], times[5]);
    println!("hot path: handling {n} stored events on {store} (median of {r} rounds)");
    println!("  typed decode, commit order          : {:>10.0} ev/s (baseline)", super::rate(n, decode));
    println!(
        "  typed decode, partition by partition: {:>10.0} ev/s   {:.2}x the baseline's time (the order a consumer handles)",
        super::rate(n, by_partition),
        by_partition.as_secs_f64() / decode.as_secs_f64()
    );
    println!("  Subscription::poll + ack            : {:>10.0} ev/s", super::rate(n, poll));
    println!(
        "  Runner, no-op typed handler         : {:>10.0} ev/s   {:.2}x the decode's time (target <= 2x), \
         {:.2}x the partition-order decode's, {:.2}x the rate of poll + ack (target >= 0.8x)",
        super::rate(n, runner),
        runner.as_secs_f64() / decode.as_secs_f64(),
        runner.as_secs_f64() / by_partition.as_secs_f64(),
        poll.as_secs_f64() / runner.as_secs_f64()
    );
    println!(
        "  Runner, untyped closure (reference) : {:>10.0} ev/s   {:.2}x the decode's time, {:.2}x the rate of poll + ack",
        super::rate(n, untyped),
        untyped.as_secs_f64() / decode.as_secs_f64(),
        poll.as_secs_f64() / untyped.as_secs_f64()
    );
    println!(
        "  Runner, no decode (reference)       : {:>10.0} ev/s   {:.2}x the decode's time, {:.2}x the rate of poll + ack \
         (what the Runner costs around the decode)\n",
        super::rate(n, bare),
        bare.as_secs_f64() / decode.as_secs_f64(),
        poll.as_secs_f64() / bare.as_secs_f64()
    );
}
