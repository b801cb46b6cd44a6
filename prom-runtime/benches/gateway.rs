//! The HTTP gateway against the library calls it wraps, on the embedded store, ratios in one run.
//!
//! `cargo bench -p prom-runtime --bench gateway`; `PROM_GATEWAY_EVENTS` (default 4,000) sets the
//! events per round.
//!
//! - publish: 16 keep-alive HTTP clients each POST their share of the events to a real server
//!   (`testing::Harness`, loopback) vs 16 tasks calling `Producer::publish` with the same
//!   payloads; events per second and the ratio (target ≥ 0.5×).
//! - subscribe: one SSE client reads the whole topic (`from=earliest`) vs a `Subscription`
//!   polling the same topic in a fresh group (auto-ack); events per second and the ratio
//!   (target ≥ 0.5×).
//!
//! Method as in `benches/runtime.rs`: alternating rounds after a warm-up, fastest round of each
//! side, since interference on a shared machine only adds time. Each publish round writes to a
//! fresh store so both sides see the same store size.

use prom_runtime::consumer::{AckMode, SubscribeOptions, Subscription};
use prom_runtime::testing::Harness;
use prom_runtime::{AnyBus, EventBus, PublishOptions};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SPEC: &str = r#"
topics:
  heartbeat.received:
    key: /processId
    partitions: 4
    versions:
      1:
        schema:
          type: object
          required: [processId, seq]
          additionalProperties: false
          properties:
            processId: { type: string }
            seq: { type: integer, minimum: 0 }
            host: { type: string }
"#;
const TOPIC: &str = "heartbeat.received";
const CLIENTS: usize = 16;
const ROUNDS: usize = 3;

fn main() {
    let events: usize =
        std::env::var("PROM_GATEWAY_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(4_000);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    println!("prom-runtime gateway benchmarks ({events} events per round, embedded store, loopback)\n");
    runtime.block_on(publish(events));
    runtime.block_on(subscribe(events));
}

fn payloads(events: usize) -> Vec<Value> {
    (0..events).map(|i| json!({ "processId": format!("p{}", i % 64), "seq": i, "host": "web-1" })).collect()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().pool_max_idle_per_host(CLIENTS).build().expect("client")
}

/// A fresh harness over a fresh embedded store in `dir`.
async fn harness(dir: &std::path::Path) -> Harness {
    Harness::embedded(dir, SPEC).await.expect("harness")
}

async fn publish(events: usize) {
    let payloads = Arc::new(payloads(events));
    let mut best_http = Duration::MAX;
    let mut best_direct = Duration::MAX;
    // Round 0 is the warm-up.
    for round in 0..=ROUNDS {
        for http_first in [round % 2 == 0, round % 2 != 0] {
            let dir = tempfile::tempdir().expect("tempdir");
            let harness = harness(dir.path()).await;
            let elapsed = if http_first {
                let url = harness.url(&format!("/topics/{TOPIC}/events"));
                let client = client();
                let started = Instant::now();
                let mut tasks = Vec::new();
                for c in 0..CLIENTS {
                    let (client, url, payloads) = (client.clone(), url.clone(), Arc::clone(&payloads));
                    tasks.push(tokio::spawn(async move {
                        for payload in payloads.iter().skip(c).step_by(CLIENTS) {
                            let response = client
                                .post(&url)
                                .header("content-type", "application/json")
                                .body(payload.to_string())
                                .send()
                                .await
                                .expect("publish");
                            assert_eq!(response.status(), 201);
                        }
                    }));
                }
                for task in tasks {
                    task.await.expect("client");
                }
                started.elapsed()
            } else {
                let producer = harness.producer().clone();
                let started = Instant::now();
                let mut tasks = Vec::new();
                for c in 0..CLIENTS {
                    let (producer, payloads) = (producer.clone(), Arc::clone(&payloads));
                    tasks.push(tokio::spawn(async move {
                        for payload in payloads.iter().skip(c).step_by(CLIENTS) {
                            producer
                                .publish(TOPIC, payload.clone(), PublishOptions::default())
                                .await
                                .expect("publish");
                        }
                    }));
                }
                for task in tasks {
                    task.await.expect("task");
                }
                started.elapsed()
            };
            let head = harness.producer().bus().heads(TOPIC).await.expect("head").total();
            assert_eq!(usize::try_from(head).ok(), Some(events));
            harness.stop().await.expect("stop");
            if round > 0 {
                if http_first {
                    best_http = best_http.min(elapsed);
                } else {
                    best_direct = best_direct.min(elapsed);
                }
            }
        }
    }
    report(
        "publish, 16 keep-alive HTTP clients vs 16 tasks calling Producer::publish",
        events,
        best_http,
        best_direct,
    );
}

async fn subscribe(events: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let harness = harness(dir.path()).await;
    let items: Vec<(String, Value, PublishOptions)> =
        payloads(events).into_iter().map(|p| (TOPIC.to_string(), p, PublishOptions::default())).collect();
    for chunk in items.chunks(500) {
        harness.producer().publish_all(chunk.to_vec()).await.expect("preload");
    }
    let url = harness.url(&format!("/topics/{TOPIC}/events?from=earliest"));
    let client = client();
    let bus: AnyBus = harness.producer().bus().clone();
    let mut best_sse = Duration::MAX;
    let mut best_poll = Duration::MAX;
    for round in 0..=ROUNDS {
        for sse_first in [round % 2 == 0, round % 2 != 0] {
            let elapsed = if sse_first {
                sse_read_all(&client, &url, events).await
            } else {
                poll_all(&bus, &format!("bench-{round}"), events).await
            };
            if round > 0 {
                if sse_first {
                    best_sse = best_sse.min(elapsed);
                } else {
                    best_poll = best_poll.min(elapsed);
                }
            }
        }
    }
    harness.stop().await.expect("stop");
    report("subscribe, one SSE client vs Subscription::poll", events, best_sse, best_poll);
}

/// Reads `events` SSE events from `url`; the time from the request to the last event.
async fn sse_read_all(client: &reqwest::Client, url: &str, events: usize) -> Duration {
    let started = Instant::now();
    let mut response = client.get(url).send().await.expect("subscribe");
    let mut seen = 0;
    let mut tail = String::new();
    while seen < events {
        let chunk = response.chunk().await.expect("chunk").expect("the stream ended early");
        tail.push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
        // Whole frames are counted (keep-alive comments carry no id); the unfinished one stays.
        let complete = tail.rfind("\n\n").map_or(0, |end| end + 2);
        seen += tail[..complete].split("\n\n").filter(|frame| frame.starts_with("id:")).count();
        tail.drain(..complete);
    }
    let elapsed = started.elapsed();
    drop(response);
    elapsed
}

/// Polls `events` events of the topic in a fresh group; the time from joining to the last.
async fn poll_all(bus: &AnyBus, group: &str, events: usize) -> Duration {
    let options = SubscribeOptions { ack: AckMode::Auto, partitions: 4, ..SubscribeOptions::default() };
    let started = Instant::now();
    let mut subscription = Subscription::new(bus.clone(), TOPIC, group, options).expect("subscription");
    let mut seen = 0;
    while seen < events {
        seen += subscription.poll().await.expect("poll").len();
    }
    let elapsed = started.elapsed();
    subscription.close().await.expect("close");
    elapsed
}

fn report(what: &str, events: usize, measured: Duration, baseline: Duration) {
    let rate = |d: Duration| events as f64 / d.as_secs_f64();
    println!("{what}");
    println!("  gateway : {:>10.0} events/s ({:.1} ms)", rate(measured), measured.as_secs_f64() * 1e3);
    println!("  library : {:>10.0} events/s ({:.1} ms)", rate(baseline), baseline.as_secs_f64() * 1e3);
    println!("  ratio   : {:.2}× (target ≥ 0.5×)\n", baseline.as_secs_f64() / measured.as_secs_f64());
}
