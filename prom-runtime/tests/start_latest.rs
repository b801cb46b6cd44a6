//! `from: latest` starts when subscribing returns (issue #12): a new group that subscribes, then
//! sees 10 events published, gets all 10 — through a `Subscription`, a `Runner` and a
//! `Pipeline`, on every backend. Events published before subscribing are not delivered, and a
//! group restarted before it ever polled keeps its original start.

mod common;

use common::Store;
use prom_runtime::consumer::{Start, SubscribeOptions, Subscription};
use prom_runtime::runner::Runner;
use prom_runtime::{AnyBus, EventBus, EventRecord, NewEvent, Pipeline, PublishOptions};
use serde_json::json;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

backend_suite!(
    subscription_from_latest_gets_what_is_published_after_subscribe,
    a_group_restarted_before_its_first_poll_keeps_its_start,
    runner_from_latest_gets_what_is_published_after_start,
    pipeline_from_latest_gets_what_is_published_after_start,
);

const TOPIC: &str = "orders.placed";

/// Four partitions, so the start is fixed on partitions the first poll has not claimed yet.
const SPEC: &str = "
topics:
  orders.placed:
    key: /order
    partitions: 4
    versions:
      1:
        schema:
          type: object
          required: [order, n]
          properties: { order: { type: string }, n: { type: integer } }
consumers:
  billing:
    topic: orders.placed
    from: latest
";

fn latest() -> SubscribeOptions {
    SubscribeOptions {
        start: Start::Latest,
        partitions: 4,
        poll_timeout: Duration::from_millis(100),
        ..SubscribeOptions::default()
    }
}

fn events(range: std::ops::Range<i64>) -> Vec<NewEvent> {
    range
        .map(|n| {
            NewEvent::new(TOPIC, json!({ "order": format!("o{n}"), "n": n }))
                .keyed(format!("o{n}"), n as u32 % 4)
        })
        .collect()
}

fn number(record: &EventRecord) -> i64 {
    record.payload["n"].as_i64().unwrap_or(-1)
}

/// Polls (acking) until `want` events arrived or 10 s passed; returns their numbers, sorted.
async fn drain(sub: &mut Subscription<AnyBus>, want: usize) -> Vec<i64> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while got.len() < want && tokio::time::Instant::now() < deadline {
        for delivery in sub.poll().await.expect("poll") {
            sub.ack(&delivery);
            got.push(number(&delivery.record));
        }
    }
    got.sort_unstable();
    got
}

/// Waits (at most 10 s) until `done` holds.
async fn until<F: Future<Output = bool>>(what: &str, done: impl Fn() -> F) {
    for _ in 0..1000 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting until {what}");
}

fn pipeline(bus: AnyBus) -> Pipeline<AnyBus> {
    let linted = prom_spec::lint_str("orders.yaml", SPEC);
    assert!(!linted.has_errors(), "{}", linted.render());
    Pipeline::new(bus, prom_runtime::system::System::from_spec(&linted.spec), |r| r).expect("pipeline")
}

async fn subscription_from_latest_gets_what_is_published_after_subscribe(store: &Store) {
    let bus = store.handle();
    bus.publish(events(100..103)).await.expect("publish before subscribing");
    let mut sub = Subscription::subscribe(bus.clone(), TOPIC, "g", latest()).await.expect("subscribe");
    bus.publish(events(0..10)).await.expect("publish");
    assert_eq!(drain(&mut sub, 10).await, (0..10).collect::<Vec<_>>(), "all 10, none from before");
    assert!(sub.poll().await.expect("poll").is_empty(), "nothing more");
    sub.close().await.expect("close");
}

async fn a_group_restarted_before_its_first_poll_keeps_its_start(store: &Store) {
    let bus = store.handle();
    bus.publish(events(100..103)).await.expect("publish before subscribing");
    let first = Subscription::subscribe(bus.clone(), TOPIC, "g", latest()).await.expect("subscribe");
    drop(first);
    bus.publish(events(0..5)).await.expect("publish while the group is down");
    let mut again = Subscription::subscribe(store.handle(), TOPIC, "g", latest()).await.expect("subscribe");
    bus.publish(events(5..10)).await.expect("publish");
    assert_eq!(drain(&mut again, 10).await, (0..10).collect::<Vec<_>>(), "the original start holds");
}

async fn runner_from_latest_gets_what_is_published_after_start(store: &Store) {
    let pipeline = pipeline(store.handle());
    let producer = pipeline.producer().clone();
    producer
        .publish(TOPIC, json!({ "order": "before", "n": 100 }), PublishOptions::default())
        .await
        .expect("publish");
    let consumer = pipeline.system().consumer("billing").expect("declared");
    let mut runner = Runner::for_consumer(producer.clone(), consumer, latest()).expect("runner");
    runner.start().await.expect("start");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let handler = {
        let seen = seen.clone();
        move |event: EventRecord| {
            let seen = seen.clone();
            async move {
                seen.lock().expect("lock").push(number(&event));
                Ok::<_, String>(())
            }
        }
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(runner.run(handler, async move {
        let _ = stopped.await;
    }));
    for n in 0..10 {
        let payload = json!({ "order": format!("o{n}"), "n": n });
        producer.publish(TOPIC, payload, PublishOptions::default()).await.expect("publish");
    }
    until("10 events are handled", || async { seen.lock().expect("lock").len() >= 10 }).await;
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), task).await.expect("stops").expect("task").expect("run");
    let mut got = seen.lock().expect("lock").clone();
    got.sort_unstable();
    assert_eq!(got, (0..10).collect::<Vec<_>>());
}

async fn pipeline_from_latest_gets_what_is_published_after_start(store: &Store) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let handler = {
        let seen = seen.clone();
        move |event: EventRecord| {
            let seen = seen.clone();
            async move {
                seen.lock().expect("lock").push(number(&event));
                Ok::<_, String>(())
            }
        }
    };
    let pipeline = pipeline(store.handle()).handle("billing", handler).expect("handler");
    let producer = pipeline.producer().clone();
    producer
        .publish(TOPIC, json!({ "order": "before", "n": 100 }), PublishOptions::default())
        .await
        .expect("publish");
    let running = pipeline.start().await.expect("start");
    for n in 0..10 {
        let payload = json!({ "order": format!("o{n}"), "n": n });
        producer.publish(TOPIC, payload, PublishOptions::default()).await.expect("publish");
    }
    until("10 events are handled", || async { seen.lock().expect("lock").len() >= 10 }).await;
    tokio::time::timeout(Duration::from_secs(10), running.stop()).await.expect("stops").expect("stop");
    let mut got = seen.lock().expect("lock").clone();
    got.sort_unstable();
    assert_eq!(got, (0..10).collect::<Vec<_>>());
}
