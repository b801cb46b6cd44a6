//! Retry, dead letters and replay, on every backend.

mod common;

use common::Store;
use prom_runtime::consumer::{SubscribeOptions, Subscription};
use prom_runtime::dlq::{self, ReplayOptions};
use prom_runtime::retry::RetryPolicy;
use prom_runtime::runner::{FailurePolicy, Runner};
use prom_runtime::{
    AnyBus, Derived, Error, EventBus, EventRecord, GroupId, NewEvent, Producer, PublishOptions, Registry,
};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

backend_suite!(
    a_poison_event_is_dead_lettered_while_other_keys_flow,
    without_a_dlq_a_failing_event_is_retried_and_never_dropped,
    undecodable_events_go_straight_to_the_dlq,
    replay_is_bounded_transformed_ordered_and_never_repeated,
    replay_errors_are_matchable,
);

const SPEC: &str = "
topics:
  orders.placed:
    key: /order
    partitions: 2
    versions:
      1:
        schema:
          type: object
          required: [order, amount]
          properties: { order: { type: string }, amount: { type: integer } }
      2:
        schema:
          type: object
          required: [order, amount, currency]
          properties: { order: { type: string }, amount: { type: integer }, currency: { type: string } }
        upcast:
          set_default: { currency: EUR }
";

const TOPIC: &str = "orders.placed";

fn producer(bus: AnyBus) -> Producer<AnyBus> {
    let linted = prom_spec::lint_str("orders.yaml", SPEC);
    assert!(!linted.has_errors(), "{}", linted.render());
    Producer::new(bus, Arc::new(Registry::from_spec(&linted.spec).expect("registry")))
}

fn order(id: &str, amount: i64) -> Value {
    json!({ "order": id, "amount": amount, "currency": "EUR" })
}

fn runner(producer: &Producer<AnyBus>, policy: FailurePolicy) -> Runner<AnyBus> {
    let opts = SubscribeOptions {
        partitions: 2,
        poll_timeout: Duration::from_millis(20),
        ..SubscribeOptions::default()
    };
    let sub = Subscription::new(producer.bus().clone(), TOPIC, "billing", opts).expect("subscribe");
    Runner::new(sub, producer.clone(), policy)
}

fn policy(max_attempts: u32, backoff_ms: u64, dlq: bool) -> FailurePolicy {
    let backoff = Duration::from_millis(backoff_ms);
    FailurePolicy { retry: RetryPolicy { max_attempts, backoff, max_backoff: backoff * 4 }, dlq }
}

/// Runs `runner` until `done` says so (or 10 s pass), recording handled payloads.
async fn run_until(
    runner: Runner<AnyBus>,
    fail: impl Fn(&EventRecord) -> bool + Send + Sync + 'static,
    done: impl Fn(&[String]) -> bool + Send + 'static,
) -> Vec<String> {
    let handled = Arc::new(Mutex::new(Vec::new()));
    let log = handled.clone();
    let fail = Arc::new(fail);
    let handler = move |e: EventRecord| {
        let log = log.clone();
        let fail = fail.clone();
        async move {
            if fail(&e) {
                return Err(format!("cannot bill {}", e.payload["order"]));
            }
            log.lock().expect("log").push(e.payload["order"].as_str().unwrap_or("?").to_string());
            Ok(())
        }
    };
    let watch = handled.clone();
    let shutdown = async move {
        for _ in 0..1000 {
            if done(&watch.lock().expect("log")) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    runner.run(handler, shutdown).await.expect("run");
    handled.lock().expect("log").clone()
}

async fn a_poison_event_is_dead_lettered_while_other_keys_flow(store: &Store) {
    let producer = producer(store.handle());
    producer.publish(TOPIC, order("bad", 1), PublishOptions::default()).await.expect("publish");
    for i in 0..20 {
        producer
            .publish(TOPIC, order(&format!("o{i}"), i), PublishOptions::default())
            .await
            .expect("publish");
    }
    // The poison event is first and retries for 100 + 200 ms; the others must not wait for it.
    let runner = runner(&producer, policy(3, 100, true));
    let stats = runner.stats();
    let watch = stats.clone();
    let flowed = Arc::new(Mutex::new(None));
    let seen = flowed.clone();
    let handled = run_until(
        runner,
        |e| e.payload["order"] == "bad",
        move |h| {
            let dead = watch.snapshot().2;
            let mut seen = seen.lock().expect("flag");
            if h.len() >= 20 && seen.is_none() {
                *seen = Some(dead == 0);
            }
            h.len() >= 20 && dead == 1
        },
    )
    .await;
    assert_eq!(handled.len(), 20, "{handled:?}");
    assert_eq!(
        *flowed.lock().expect("flag"),
        Some(true),
        "all good events were handled before the poison one gave up"
    );
    let entries = dlq::list(&producer, TOPIC, 10).await.expect("list");
    assert_eq!(entries.len(), 1);
    let letter = &entries[0].letter;
    assert_eq!((letter.attempts, letter.original.payload["order"].clone()), (3, json!("bad")));
    assert!(letter.error.contains("cannot bill"), "{}", letter.error);
    assert_eq!(letter.group, "billing");
    assert!(!entries[0].replayed);
    let (ok, retried, dead, _) = stats.snapshot();
    assert_eq!((ok, retried), (20, 2));
    assert!(dead <= 1);
}

async fn without_a_dlq_a_failing_event_is_retried_and_never_dropped(store: &Store) {
    let producer = producer(store.handle());
    producer.publish(TOPIC, order("bad", 1), PublishOptions::default()).await.expect("publish");
    producer.publish(TOPIC, order("good", 2), PublishOptions::default()).await.expect("publish");
    let runner = runner(&producer, policy(2, 10, false));
    let stats = runner.stats();
    let stats_done = stats.clone();
    let handled = run_until(
        runner,
        |e| e.payload["order"] == "bad",
        move |h| !h.is_empty() && stats_done.snapshot().3 >= 2,
    )
    .await;
    assert_eq!(handled, ["good"]);
    assert!(stats.snapshot().3 >= 2, "exhausted, redelivered, exhausted again");
    assert_eq!(producer.bus().heads("dlq.orders.placed").await.expect("head").total(), 0);
    let cursors = producer.bus().cursors(&GroupId::new(TOPIC, "billing")).await.expect("cursors");
    let bad_partition = prom_runtime::partition::partition_for(Some("bad"), 2);
    assert_eq!(
        cursors.get(&bad_partition).copied().unwrap_or(0),
        0,
        "the cursor waits before the failing event"
    );
}

async fn undecodable_events_go_straight_to_the_dlq(store: &Store) {
    let producer = producer(store.handle());
    // Written around the middleware: no version header.
    producer
        .bus()
        .publish(vec![NewEvent::new(TOPIC, json!({ "order": "raw" })).keyed("raw", 0)])
        .await
        .expect("raw");
    producer.publish(TOPIC, order("fine", 1), PublishOptions::default()).await.expect("publish");
    let runner = runner(&producer, policy(5, 10, true));
    let stats = runner.stats();
    let done = stats.clone();
    let handled = run_until(runner, |_| false, move |h| !h.is_empty() && done.snapshot().2 == 1).await;
    assert_eq!(handled, ["fine"]);
    let entries = dlq::list(&producer, TOPIC, 10).await.expect("list");
    assert_eq!(entries[0].letter.attempts, 0, "never handed to the handler");
    assert!(entries[0].letter.error.contains("x-schema-version"), "{}", entries[0].letter.error);
}

/// The events of the topic not in `seen` (which they join), in offset order. Not "after the
/// head": on MongoDB partitions are numbered on their own, so new events of one partition may
/// have lower offsets than the topic's head.
async fn unseen(producer: &Producer<AnyBus>, seen: &mut Vec<uuid::Uuid>) -> Vec<prom_runtime::EventRecord> {
    let all = producer
        .bus()
        .read_topic(TOPIC, &prom_runtime::TopicPosition::start(), usize::MAX)
        .await
        .expect("read");
    let new: Vec<_> = all.into_iter().filter(|e| !seen.contains(&e.id)).collect();
    seen.extend(new.iter().map(|e| e.id));
    new
}

async fn replay_is_bounded_transformed_ordered_and_never_repeated(store: &Store) {
    let producer = producer(store.handle());
    // Dead letters as a consumer writes them: two for key `a` (v1 and v2), one each for b, c.
    let v1 = PublishOptions { version: Some(1), ..PublishOptions::default() };
    producer.publish(TOPIC, json!({ "order": "a", "amount": 1 }), v1).await.expect("publish");
    for (id, amount) in [("a", 2), ("b", 3), ("c", 4)] {
        producer.publish(TOPIC, order(id, amount), PublishOptions::default()).await.expect("publish");
    }
    let originals =
        producer.bus().read_topic(TOPIC, &prom_runtime::TopicPosition::start(), 10).await.expect("read");
    let letters = originals.iter().map(|o| dlq::dead_letter(o, "billing", "boom", 3)).collect();
    producer.bus().publish(letters).await.expect("dead letters");
    let mut seen: Vec<uuid::Uuid> = originals.iter().map(|o| o.id).collect();

    // Bounded: only two.
    let first = dlq::replay(&producer, TOPIC, &ReplayOptions { limit: 2, ..ReplayOptions::default() })
        .await
        .expect("replay");
    assert_eq!(first.replayed.len(), 2);
    let replayed = unseen(&producer, &mut seen).await;
    let amounts: Vec<(Value, Value)> =
        replayed.iter().map(|e| (e.payload["order"].clone(), e.payload["amount"].clone())).collect();
    // The first two in the dead-letter topic's order: publish order where the topic has one
    // sequence; on MongoDB (offsets per partition) partition by partition, so `b` may come
    // before `a`'s second letter. Key `a` stays in its original order.
    assert_eq!(amounts.len(), 2);
    assert!(!amounts.contains(&(json!("c"), json!(4))), "{amounts:?}");
    assert_eq!(
        amounts.iter().find(|(k, _)| k == "a"),
        Some(&(json!("a"), json!(1))),
        "key a in its original order"
    );
    let a1 = replayed.iter().find(|e| e.payload["order"] == "a").expect("a's first dead letter");
    assert_eq!(a1.payload["currency"], "EUR", "the v1 dead letter was upcast");
    assert_eq!(a1.headers["x-schema-version"], "2");
    let original = originals.iter().find(|o| o.payload["order"] == "a" && o.payload["amount"] == 1);
    assert_eq!(a1.caused_by, original.map(|o| o.id));
    // What the second replay finds left besides `c`, doubled by its transform.
    let left = [(json!("a"), json!(2)), (json!("b"), json!(3))]
        .into_iter()
        .find(|l| !amounts.contains(l))
        .map(|(k, v)| (k, json!(v.as_i64().unwrap_or(0) * 2)))
        .expect("one of a2, b is left");

    // The rest, with a transform; it breaks `c`, whose output then fails re-validation.
    let double: dlq::Transform = Arc::new(|mut v: Value| {
        v["amount"] =
            if v["order"] == "c" { json!("lots") } else { json!(v["amount"].as_i64().unwrap_or(0) * 2) };
        Ok(v)
    });
    let opts = ReplayOptions { limit: 10, transform: Some(double), ..ReplayOptions::default() };
    let second = dlq::replay(&producer, TOPIC, &opts).await.expect("replay");
    assert_eq!((second.replayed.len(), second.already_replayed, second.failed.len()), (1, 2, 1));
    let Error::Invalid { errors, .. } = &second.failed[0].1 else { panic!("{:?}", second.failed) };
    assert!(errors.join("\n").contains("integer"), "{errors:?}");
    let rest = unseen(&producer, &mut seen).await;
    let rest: Vec<(Value, Value)> =
        rest.iter().map(|e| (e.payload["order"].clone(), e.payload["amount"].clone())).collect();
    assert_eq!(rest, [left]);

    // Nothing is replayed twice, even with a bigger limit.
    let third = dlq::replay(&producer, TOPIC, &opts).await.expect("replay");
    assert_eq!((third.replayed.len(), third.already_replayed), (0, 3));
    let listed = dlq::list(&producer, TOPIC, 10).await.expect("list");
    assert_eq!(listed.iter().filter(|e| e.replayed).count(), 3);
    // A time range in the future selects nothing.
    let later = ReplayOptions { limit: 10, since: Some(prom_runtime::record::now_ms() + 60_000), ..opts };
    assert_eq!(dlq::replay(&producer, TOPIC, &later).await.expect("replay"), dlq::ReplayReport::default());
}

async fn replay_errors_are_matchable(store: &Store) {
    let producer = producer(store.handle());
    producer.publish(TOPIC, order("a", 1), PublishOptions::default()).await.expect("publish");
    let originals =
        producer.bus().read_topic(TOPIC, &prom_runtime::TopicPosition::start(), 10).await.expect("read");
    let letters = originals.iter().map(|o| dlq::dead_letter(o, "billing", "boom", 3)).collect();
    producer.bus().publish(letters).await.expect("dead letters");

    // A transform that refuses: the dead letter stays, with the transform's reason.
    let refuse: dlq::Transform = Arc::new(|_| Err("no currency table".to_owned()));
    let opts = ReplayOptions { limit: 10, transform: Some(refuse), ..ReplayOptions::default() };
    let report = dlq::replay(&producer, TOPIC, &opts).await.expect("replay");
    let [(_, error)] = report.failed.as_slice() else { panic!("{report:?}") };
    assert_eq!(error, &Error::ReplayTransform { id: originals[0].id, reason: "no currency table".into() });

    // The DLQ itself cannot be replayed into.
    let dlq_topic = format!("dlq.{TOPIC}");
    let err = dlq::replay(&producer, &dlq_topic, &ReplayOptions::default()).await.expect_err("derived");
    assert!(
        matches!(&err, Error::NotPublishable { derived: Derived::DeadLetters, declared, .. } if declared == TOPIC),
        "{err:?}"
    );

    // A row on the DLQ that is no dead-letter envelope (written around Prom) is named by id.
    let stray = NewEvent::new(&dlq_topic, json!({ "not": "a dead letter" }));
    let stray_id = stray.id;
    producer.bus().publish(vec![stray]).await.expect("stray");
    let err = dlq::list(&producer, TOPIC, 10).await.expect_err("not an envelope");
    let Error::NotDeadLetter { id, topic, .. } = &err else { panic!("unexpected {err:?}") };
    assert_eq!((*id, topic.as_str()), (stray_id, dlq_topic.as_str()));
    assert!(std::error::Error::source(&err).is_some(), "serde's error is kept");
}
