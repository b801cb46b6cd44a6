//! Consumer handlers on a real pipeline (MemoryBus): permanent vs retryable errors, the attempt
//! number and event context typed handlers receive, panics, and the `tracing` events the runner
//! emits (captured by a test subscriber).

use prom_runtime::{Context, EventBus, EventRecord, HandlerError, MemoryBus, Pipeline, PublishOptions};
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Layer, SubscriberExt};

const SPEC: &str = "
topics:
  orders.placed:
    key: /order
    headers: [x-source]
    versions:
      1:
        schema:
          type: object
          required: [order, amount]
          properties: { order: { type: string }, amount: { type: integer } }
consumers:
  billing:
    topic: orders.placed
    retry: { max_attempts: 3, backoff: 5ms, max_backoff: 20ms }
    dlq: true
";

const TOPIC: &str = "orders.placed";
const DLQ: &str = "dlq.orders.placed";

#[derive(Debug, Clone, Deserialize)]
struct Order {
    order: String,
}

fn pipeline(bus: &MemoryBus) -> Pipeline<MemoryBus> {
    let linted = prom_spec::lint_str("orders.yaml", SPEC);
    assert!(!linted.has_errors(), "{}", linted.render());
    Pipeline::new(bus.clone(), prom_runtime::system::System::from_spec(&linted.spec), |r| r)
        .expect("pipeline")
}

async fn publish(pipeline: &Pipeline<MemoryBus>, order: &str) -> prom_runtime::Receipt {
    let opts = PublishOptions {
        headers: [("x-source".to_string(), "till-7".to_string())].into(),
        ..PublishOptions::default()
    };
    pipeline.producer().publish(TOPIC, json!({ "order": order, "amount": 1 }), opts).await.expect("publish")
}

/// Waits (polling, at most 10 s) until `done` holds.
async fn until<F: Future<Output = bool>>(what: &str, done: impl Fn() -> F) {
    for _ in 0..1000 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting until {what}");
}

/// Runs the pipeline in a task; the returned sender stops it.
fn start(
    pipeline: Pipeline<MemoryBus>,
) -> (oneshot::Sender<()>, tokio::task::JoinHandle<prom_runtime::Result<()>>) {
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(pipeline.run(async move {
        let _ = stopped.await;
    }));
    (stop, task)
}

async fn stop(stop: oneshot::Sender<()>, task: tokio::task::JoinHandle<prom_runtime::Result<()>>) {
    let _ = stop.send(());
    let outcome = tokio::time::timeout(Duration::from_secs(10), task).await.expect("the pipeline stops");
    outcome.expect("pipeline task").expect("pipeline run");
}

async fn dead_letters(bus: &MemoryBus) -> Vec<EventRecord> {
    bus.read_topic(DLQ, &prom_runtime::TopicPosition::start(), 100).await.expect("read dlq")
}

/// One captured `tracing` event.
#[derive(Debug, Clone)]
struct Captured {
    level: tracing::Level,
    message: String,
    fields: BTreeMap<String, String>,
}

impl Captured {
    fn field(&self, name: &str) -> &str {
        self.fields.get(name).map_or_else(|| panic!("no field `{name}` in {self:?}"), String::as_str)
    }
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Captured>>>);

impl Capture {
    fn events(&self, message: &str) -> Vec<Captured> {
        self.0.lock().expect("lock").iter().filter(|e| e.message == message).cloned().collect()
    }
}

#[derive(Default)]
struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S: tracing::Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let message = fields.0.remove("message").unwrap_or_default();
        let level = *event.metadata().level();
        self.0.lock().expect("lock").push(Captured { level, message, fields: fields.0 });
    }
}

/// Captures this thread's events (the tests run on a current-thread runtime, so the runner's
/// tasks log on this thread too).
fn capture() -> (Capture, tracing::subscriber::DefaultGuard) {
    let capture = Capture::default();
    let guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(capture.clone()));
    (capture, guard)
}

#[tokio::test]
async fn a_permanent_error_is_dead_lettered_after_exactly_one_attempt() {
    let (logs, _guard) = capture();
    let bus = MemoryBus::new();
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let seen = attempts.clone();
    let pipeline = pipeline(&bus)
        .handle_typed("billing", move |order: Order, ctx: Context| {
            let seen = seen.clone();
            async move {
                seen.lock().expect("lock").push((order.order, ctx.attempt()));
                Err::<(), _>(HandlerError::permanent("no such account"))
            }
        })
        .expect("handler");
    let receipt = publish(&pipeline, "o-1").await;
    let (stopper, task) = start(pipeline);
    until("the event is dead-lettered", || async { !dead_letters(&bus).await.is_empty() }).await;
    stop(stopper, task).await;

    assert_eq!(*attempts.lock().expect("lock"), [("o-1".to_string(), 1)]);
    let letters = dead_letters(&bus).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].payload["attempts"], json!(1));
    assert_eq!(letters[0].payload["error"], json!("no such account"));
    assert!(logs.events("handler failed; retrying").is_empty(), "a permanent error is not retried");
    let dead = logs.events("event dead-lettered");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].field("permanent"), "true");
    assert_eq!(dead[0].field("id"), receipt.id.to_string());
}

#[tokio::test]
async fn a_retryable_error_is_dead_lettered_after_max_attempts_seeing_attempts_1_2_3() {
    let (logs, _guard) = capture();
    let bus = MemoryBus::new();
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let seen = attempts.clone();
    let pipeline = pipeline(&bus)
        .handle_typed("billing", move |_: Order, ctx: Context| {
            let seen = seen.clone();
            async move {
                seen.lock().expect("lock").push(ctx.attempt());
                // Any `Display` error is retryable, as plain `String` handlers always were.
                Err::<(), _>(format!("payment service busy (attempt {})", ctx.attempt()))
            }
        })
        .expect("handler");
    let receipt = publish(&pipeline, "o-2").await;
    let (stopper, task) = start(pipeline);
    until("the event is dead-lettered", || async { !dead_letters(&bus).await.is_empty() }).await;
    stop(stopper, task).await;

    assert_eq!(*attempts.lock().expect("lock"), [1, 2, 3]);
    let letters = dead_letters(&bus).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].payload["attempts"], json!(3));
    assert_eq!(letters[0].payload["error"], json!("payment service busy (attempt 3)"));

    // One warning per retry, with the documented fields.
    let retries = logs.events("handler failed; retrying");
    assert_eq!(retries.len(), 2, "{retries:?}");
    for (retry, (attempt, delay)) in retries.iter().zip([("1", "5"), ("2", "10")]) {
        assert_eq!(retry.level, tracing::Level::WARN);
        assert_eq!(retry.field("consumer"), "billing");
        assert_eq!(retry.field("topic"), TOPIC);
        assert_eq!(retry.field("partition"), receipt.partition.to_string());
        assert_eq!(retry.field("offset"), receipt.offset.to_string());
        assert_eq!(retry.field("id"), receipt.id.to_string());
        assert_eq!(retry.field("attempt"), attempt);
        assert_eq!(retry.field("max_attempts"), "3");
        assert_eq!(retry.field("error"), format!("payment service busy (attempt {attempt})"));
        assert_eq!(retry.field("next_delay_ms"), delay);
    }
    // One error per dead letter: the same fields plus the DLQ topic.
    let dead = logs.events("event dead-lettered");
    assert_eq!(dead.len(), 1, "{dead:?}");
    let dead = &dead[0];
    assert_eq!(dead.level, tracing::Level::ERROR);
    assert_eq!(dead.field("consumer"), "billing");
    assert_eq!(dead.field("offset"), receipt.offset.to_string());
    assert_eq!(dead.field("id"), receipt.id.to_string());
    assert_eq!(dead.field("attempt"), "3");
    assert_eq!(dead.field("max_attempts"), "3");
    assert_eq!(dead.field("permanent"), "false");
    assert_eq!(dead.field("error"), "payment service busy (attempt 3)");
    assert_eq!(dead.field("dlq_topic"), DLQ);
    // Start and stop of the consumer.
    for message in ["consumer `billing` started", "consumer `billing` stopped"] {
        let events = logs.events(message);
        assert_eq!(events.len(), 1, "{message}");
        assert_eq!(events[0].level, tracing::Level::INFO);
        assert_eq!(events[0].field("topic"), TOPIC);
    }
}

#[tokio::test]
async fn a_panicking_handler_is_retried_and_dead_lettered_and_the_consumer_keeps_going() {
    let (logs, _guard) = capture();
    let bus = MemoryBus::new();
    let handled = Arc::new(Mutex::new(Vec::new()));
    let log = handled.clone();
    let pipeline = pipeline(&bus)
        .handle("billing", move |event: EventRecord| {
            let log = log.clone();
            async move {
                let order = event.payload["order"].as_str().unwrap_or_default().to_owned();
                assert_ne!(order, "boom", "the handler trips over order boom");
                log.lock().expect("lock").push(order);
                Ok::<_, String>(())
            }
        })
        .expect("handler");
    let producer = pipeline.producer().clone();
    let boom = publish(&pipeline, "boom").await;
    let (stopper, task) = start(pipeline);
    until("the panicking event is dead-lettered", || async { !dead_letters(&bus).await.is_empty() }).await;
    // The consumer still takes new events after the panics.
    producer
        .publish(TOPIC, json!({ "order": "ok", "amount": 2 }), PublishOptions::default())
        .await
        .expect("publish");
    until("the next event is handled", || async {
        handled.lock().expect("lock").contains(&"ok".to_string())
    })
    .await;
    stop(stopper, task).await;

    let letters = dead_letters(&bus).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].payload["attempts"], json!(3));
    assert_eq!(letters[0].payload["original"]["id"], json!(boom.id.to_string()));
    let error = letters[0].payload["error"].as_str().unwrap_or_default();
    assert!(error.starts_with("the handler panicked: "), "{error}");
    assert!(error.contains("the handler trips over order boom"), "{error}");
    let panics = logs.events("handler panicked; counted as a failed attempt");
    assert_eq!(panics.len(), 3, "{panics:?}");
    assert_eq!(panics[0].level, tracing::Level::ERROR);
    assert_eq!(panics[0].field("id"), boom.id.to_string());
    assert!(panics[0].field("panic").contains("trips over order boom"), "{panics:?}");
}

#[tokio::test]
async fn a_typed_handler_gets_the_events_context() {
    let bus = MemoryBus::new();
    let contexts = Arc::new(Mutex::new(Vec::new()));
    let seen = contexts.clone();
    let pipeline = pipeline(&bus)
        .handle_typed("billing", move |order: Order, ctx: Context| {
            let seen = seen.clone();
            async move {
                seen.lock().expect("lock").push((order.order, ctx));
                Ok::<_, HandlerError>(())
            }
        })
        .expect("handler");
    let first = publish(&pipeline, "o-3").await;
    let second = publish(&pipeline, "o-4").await;
    let (stopper, task) = start(pipeline);
    until("both events are handled", || async { contexts.lock().expect("lock").len() == 2 }).await;
    stop(stopper, task).await;

    let mut contexts = contexts.lock().expect("lock").clone();
    contexts.sort_by_key(|(_, ctx)| ctx.offset());
    for ((order, ctx), receipt, key) in [(&contexts[0], first, "o-3"), (&contexts[1], second, "o-4")] {
        assert_eq!(order, key);
        assert_eq!(ctx.id(), receipt.id);
        assert_eq!(ctx.offset(), receipt.offset);
        assert_eq!(ctx.partition(), receipt.partition);
        assert_eq!(ctx.topic(), TOPIC);
        assert_eq!(ctx.key(), Some(key));
        assert_eq!(ctx.header("x-source"), Some("till-7"));
        assert_eq!(ctx.schema_version(), Some(1));
        assert_eq!(ctx.upcast_from(), None);
        assert_eq!(ctx.attempt(), 1);
        assert!(ctx.ts() > 0);
    }
}

#[tokio::test]
async fn without_a_dlq_a_permanent_error_is_redelivered_not_dropped() {
    let (logs, _guard) = capture();
    let bus = MemoryBus::new();
    let linted = prom_spec::lint_str("orders.yaml", &SPEC.replace("dlq: true", "dlq: false"));
    assert!(!linted.has_errors(), "{}", linted.render());
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let seen = attempts.clone();
    let pipeline = Pipeline::new(bus.clone(), prom_runtime::system::System::from_spec(&linted.spec), |r| r)
        .expect("pipeline")
        .handle_typed("billing", move |_: Order, ctx: Context| {
            let seen = seen.clone();
            async move {
                let mut seen = seen.lock().expect("lock");
                seen.push(ctx.attempt());
                // Fails permanently on its first two deliveries, then the account exists.
                if seen.len() < 3 { Err(HandlerError::permanent("no such account yet")) } else { Ok(()) }
            }
        })
        .expect("handler");
    publish(&pipeline, "o-5").await;
    let (stopper, task) = start(pipeline);
    until("the event finally passes", || async { attempts.lock().expect("lock").len() == 3 }).await;
    stop(stopper, task).await;

    // Each delivery makes one attempt (no retries for a permanent error), and starts at 1.
    assert_eq!(*attempts.lock().expect("lock"), [1, 1, 1]);
    assert!(dead_letters(&bus).await.is_empty());
    let redelivered = logs.events("event failed and the consumer has no DLQ: redelivering it later");
    assert_eq!(redelivered.len(), 2, "{redelivered:?}");
    assert_eq!(redelivered[0].field("redeliver_in_ms"), "20");
    assert_eq!(redelivered[0].field("permanent"), "true");
}
