//! The typed read path: stored payloads decoded straight into the latest payload type through
//! typed upcasters, validated at their stored version, and validated again after upcasting
//! only where lint cannot prove the hop. The payload types here are written by hand the way
//! `prom-codegen` writes them, so each rule can be broken on purpose.

use prom_runtime::record::{SCHEMA_VERSION, UPCASTED_FROM};
use prom_runtime::{
    Context, DecodeError, Error, Event, EventBus, EventRecord, MemoryBus, NewEvent, Pipeline, Registry,
    Topic, UpcastError, Versioned,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const SPEC: &str = "
topics:
  reading.taken:
    key: /id
    compat: none
    versions:
      1:
        schema:
          type: object
          required: [id, value]
          properties: { id: { type: string }, value: { type: integer } }
      2:
        schema:
          type: object
          required: [id, reading]
          properties: { id: { type: string }, reading: { type: integer, minimum: 0 } }
        upcast: { with: readings::v1_to_v2 }
  reading.renamed:
    key: /id
    versions:
      1:
        schema:
          type: object
          required: [id, value]
          properties: { id: { type: string }, value: { type: integer } }
      2:
        schema:
          type: object
          required: [id, reading]
          properties: { id: { type: string }, reading: { type: integer } }
        upcast: { rename: { value: reading } }
consumers:
  readers:
    topic: reading.taken
    from: earliest
    retry: { max_attempts: 3, backoff: 10ms }
    dlq: true
";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct V1 {
    id: String,
    value: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct V2 {
    id: String,
    reading: i64,
}

impl Event for V2 {
    const TOPIC: &'static str = "reading.taken";
    const VERSION: u32 = 2;
    const SCHEMA: &'static str = "";
}

/// `reading.taken` at any version; its user upcaster copies the value as it is, so a negative
/// v1 value becomes a v2 reading the schema forbids.
enum Taken {
    V1(V1),
    V2(V2),
}

impl Versioned for Taken {
    type Latest = V2;
    const TOPIC: &'static str = "reading.taken";
    const LATEST_VERSION: u32 = 2;

    fn decode(version: u32, payload: &Value) -> Result<Self, DecodeError> {
        let payload_error = |source| DecodeError::Payload { topic: Self::TOPIC, version, source };
        match version {
            1 => V1::deserialize(payload).map(Taken::V1).map_err(payload_error),
            2 => V2::deserialize(payload).map(Taken::V2).map_err(payload_error),
            _ => Err(DecodeError::UnknownVersion { topic: Self::TOPIC, version }),
        }
    }

    fn version(&self) -> u32 {
        match self {
            Taken::V1(_) => 1,
            Taken::V2(_) => 2,
        }
    }

    fn into_latest(self) -> Result<V2, UpcastError> {
        match self {
            Taken::V1(v) if v.id.is_empty() => Err(UpcastError::new("a reading needs an id")),
            Taken::V1(v) => Ok(V2 { id: v.id, reading: v.value }),
            Taken::V2(v) => Ok(v),
        }
    }
}

/// `reading.renamed` at any version, with a deliberately wrong upcaster: lint proves the
/// declared rename, so its output is trusted and not validated again.
enum Renamed {
    V1(V1),
    V2(V2),
}

impl Versioned for Renamed {
    type Latest = V2;
    const TOPIC: &'static str = "reading.renamed";
    const LATEST_VERSION: u32 = 2;

    fn decode(version: u32, payload: &Value) -> Result<Self, DecodeError> {
        Taken::decode(version, payload).map(|any| match any {
            Taken::V1(v) => Renamed::V1(v),
            Taken::V2(v) => Renamed::V2(v),
        })
    }

    fn version(&self) -> u32 {
        match self {
            Renamed::V1(_) => 1,
            Renamed::V2(_) => 2,
        }
    }

    fn into_latest(self) -> Result<V2, UpcastError> {
        match self {
            Renamed::V1(v) => Ok(V2 { id: v.id, reading: v.value }),
            Renamed::V2(v) => Ok(v),
        }
    }
}

fn registry() -> Registry {
    let linted = prom_spec::lint_str("readings.yaml", SPEC);
    assert!(!linted.has_errors(), "{}", linted.render());
    Registry::from_spec(&linted.spec).expect("registry")
}

/// The JSON twin of `Taken`'s upcaster, which the untyped read path needs.
fn json_upcaster(registry: Registry) -> Registry {
    registry.with_upcaster("readings::v1_to_v2", |v: Value| {
        Ok::<_, String>(json!({ "id": v["id"], "reading": v["value"] }))
    })
}

fn stored(topic: &str, version: u32, payload: Value) -> EventRecord {
    EventRecord {
        id: uuid::Uuid::now_v7(),
        topic: topic.into(),
        key: None,
        partition: 0,
        ts: 0,
        headers: [(SCHEMA_VERSION.to_string(), version.to_string())].into_iter().collect(),
        payload: payload.into(),
        caused_by: None,
        sid: None,
        offset: 1,
    }
}

#[test]
fn lint_proves_declarative_hops_and_never_user_functions() {
    let registry = registry();
    assert!(registry.topic("reading.renamed").expect("topic").upcast_proven_from(1));
    assert!(!registry.topic("reading.taken").expect("topic").upcast_proven_from(1));
    assert!(registry.topic("reading.taken").expect("topic").upcast_proven_from(2), "nothing to prove");
}

#[test]
fn a_stored_v1_payload_decodes_into_the_latest_type_and_is_stamped() {
    let registry = registry();
    let record = stored("reading.taken", 1, json!({ "id": "r1", "value": 7 }));
    let (latest, record) = registry.decode_typed::<Taken>(record).expect("decodes");
    assert_eq!(latest, V2 { id: "r1".into(), reading: 7 });
    assert_eq!(record.headers[UPCASTED_FROM], "1");
    assert_eq!(record.headers[SCHEMA_VERSION], "2");
    assert_eq!(record.payload, json!({ "id": "r1", "value": 7 }), "the record keeps the stored payload");
    // The JSON read path agrees.
    let registry = json_upcaster(registry);
    let record = stored("reading.taken", 1, json!({ "id": "r1", "value": 7 }));
    let decoded = registry.decode(record).expect("decodes");
    assert_eq!(V2::deserialize(&decoded.payload).expect("v2"), latest);
}

#[test]
fn a_latest_payload_is_decoded_without_upcasting() {
    let (latest, record) = registry()
        .decode_typed::<Taken>(stored("reading.taken", 2, json!({ "id": "r2", "reading": 1 })))
        .expect("decodes");
    assert_eq!(latest, V2 { id: "r2".into(), reading: 1 });
    assert!(!record.headers.contains_key(UPCASTED_FROM));
}

#[test]
fn the_output_of_an_unproven_hop_is_validated_against_the_latest_schema() {
    let record = stored("reading.taken", 1, json!({ "id": "r3", "value": -5 }));
    let err = registry().decode_typed::<Taken>(record).expect_err("v2 needs reading >= 0");
    let Error::Invalid { version, errors, .. } = &err else { panic!("unexpected {err}") };
    assert_eq!(*version, 2);
    assert!(errors.join("\n").contains("`/reading`"), "{errors:?}");
}

#[test]
fn a_proven_hop_is_trusted() {
    // The rename is proven, so a negative value (valid in both versions) passes as it is.
    let record = stored("reading.renamed", 1, json!({ "id": "r4", "value": -5 }));
    let (latest, _) = registry().decode_typed::<Renamed>(record).expect("decodes");
    assert_eq!(latest.reading, -5);
}

#[test]
fn bad_stored_payloads_fail_at_their_own_version_with_a_clear_error() {
    let registry = registry();
    let record = stored("reading.taken", 1, json!({ "id": "r5", "value": "seven" }));
    let err = registry.decode_typed::<Taken>(record).expect_err("v1 needs an integer");
    let Error::Invalid { version, errors, .. } = &err else { panic!("unexpected {err}") };
    assert_eq!((*version, errors.join("\n").contains("`/value`")), (1, true), "{errors:?}");

    let err = registry.decode_typed::<Taken>(stored("reading.taken", 3, json!({}))).expect_err("no v3");
    assert!(matches!(err, Error::Version { .. }), "{err}");

    let err = registry
        .decode_typed::<Taken>(stored("reading.taken", 1, json!({ "id": "", "value": 1 })))
        .expect_err("the upcaster refuses");
    let Error::Upcast { from, to, reason, .. } = &err else { panic!("unexpected {err}") };
    assert_eq!((*from, *to, reason.as_str()), (1, 2, "a reading needs an id"));
    let cause = std::iter::successors(std::error::Error::source(&err), |c| c.source())
        .find_map(|c| c.downcast_ref::<prom_runtime::UpcastError>());
    assert_eq!(
        cause.map(|e| e.message()),
        Some("a reading needs an id"),
        "the upcaster's own error is the cause"
    );

    let err = registry
        .decode_typed::<Renamed>(stored("reading.taken", 2, json!({ "id": "x", "reading": 1 })))
        .expect_err("another topic's type");
    let Error::TopicMismatch { reads, wants, help } = &err else { panic!("unexpected {err:?}") };
    assert_eq!((reads.as_str(), wants.as_str()), ("reading.taken", Renamed::TOPIC));
    assert!(help.contains("hand this consumer the `reading.taken` types"), "{help}");
}

#[tokio::test]
async fn a_typed_handler_gets_upcast_payloads_and_undecodable_events_go_straight_to_the_dlq() {
    let linted = prom_spec::lint_str("readings.yaml", SPEC);
    assert!(!linted.has_errors(), "{}", linted.render());
    let bus = MemoryBus::new();
    let stamp = |payload: Value| {
        let mut event = NewEvent::new("reading.taken", payload);
        event.headers.insert(SCHEMA_VERSION.into(), "1".into());
        event
    };
    // Written by a v1 producer: one good, one the upcaster's output fails v2 with, one invalid v1.
    let events = [json!({ "id": "a", "value": 3 }), json!({ "id": "b", "value": -1 }), json!({ "id": "c" })];
    bus.publish(events.into_iter().map(stamp).collect()).await.expect("publish");

    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let calls = Arc::new(AtomicU32::new(0));
    let (seen2, calls2) = (seen.clone(), calls.clone());
    let pipeline =
        Pipeline::new(bus.clone(), prom_runtime::system::System::from_spec(&linted.spec), json_upcaster)
            .expect("pipeline")
            .handle_latest("readers", Topic::<Taken>::new(), move |payload: V2, ctx: Context| {
                let (seen, calls) = (seen2.clone(), calls2.clone());
                async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    seen.lock().expect("lock").push((payload, ctx.headers()[UPCASTED_FROM].clone()));
                    Ok::<_, String>(())
                }
            })
            .expect("handler");
    let dlq = async {
        while bus.heads("dlq.reading.taken").await.expect("head").total() < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let run = pipeline.run(async { tokio::time::sleep(Duration::from_secs(30)).await });
    tokio::select! {
        () = dlq => {}
        result = run => panic!("the pipeline stopped first: {result:?}"),
    }
    // Give the good event a moment in case it is still in flight.
    for _ in 0..100 {
        if calls.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(*seen.lock().expect("lock"), vec![(V2 { id: "a".into(), reading: 3 }, "1".to_string())]);
    assert_eq!(calls.load(Ordering::SeqCst), 1, "undecodable events are never handed to the handler");
    let letters =
        bus.read_topic("dlq.reading.taken", &prom_runtime::TopicPosition::start(), 10).await.expect("read");
    let attempts: Vec<&Value> = letters.iter().map(|l| &l.payload["attempts"]).collect();
    assert_eq!(attempts, [&json!(0), &json!(0)], "dead-lettered at once, not retried: {letters:?}");
}

#[test]
fn a_typed_handler_must_read_its_consumers_topic() {
    let linted = prom_spec::lint_str("readings.yaml", SPEC);
    let pipeline =
        Pipeline::new(MemoryBus::new(), prom_runtime::system::System::from_spec(&linted.spec), json_upcaster)
            .expect("pipeline");
    let err = pipeline
        .handle_latest("readers", Topic::<Renamed>::new(), |_: V2, _: Context| async { Ok::<_, String>(()) })
        .err()
        .expect("wrong topic");
    assert!(
        matches!(&err, Error::TopicMismatch { reads, wants, .. } if reads == "reading.taken" && wants == "reading.renamed"),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("reads `reading.taken`, but its handler takes `reading.renamed`"),
        "{err}"
    );
}

#[tokio::test]
async fn a_typed_subscription_yields_latest_payloads_and_reports_the_rest() {
    let bus = MemoryBus::new();
    let producer = prom_runtime::Producer::new(bus.clone(), Arc::new(json_upcaster(registry())));
    let stamp = |version: u32, payload: Value| {
        let mut event = NewEvent::new("reading.taken", payload);
        event.headers.insert(SCHEMA_VERSION.into(), version.to_string());
        event
    };
    let events = vec![
        stamp(1, json!({ "id": "a", "value": 3 })),
        stamp(2, json!({ "id": "b", "reading": 4 })),
        stamp(1, json!({ "id": "c", "value": -1 })),
    ];
    bus.publish(events).await.expect("publish");
    let options = || prom_runtime::consumer::SubscribeOptions {
        start: prom_runtime::consumer::Start::Earliest,
        poll_timeout: Duration::from_millis(50),
        ..Default::default()
    };
    let mut sub = Topic::<Taken>::new().subscribe(&producer, "typed", options()).await.expect("subscribe");
    // One key's events are handed out one at a time, each after the previous one is acked.
    let mut batch = Vec::new();
    for _ in 0..100 {
        for event in sub.poll().await.expect("poll") {
            sub.ack(&event);
            batch.push(event);
        }
        if batch.len() == 3 {
            break;
        }
    }
    let payloads: Vec<Option<V2>> = batch.iter().map(|d| d.payload.as_ref().ok().cloned()).collect();
    assert_eq!(
        payloads,
        [Some(V2 { id: "a".into(), reading: 3 }), Some(V2 { id: "b".into(), reading: 4 }), None],
        "the third one's upcast output breaks v2"
    );
    assert!(matches!(batch[2].payload, Err(Error::Invalid { version: 2, .. })));
    assert_eq!(batch[2].delivery.record.payload["value"], -1, "the stored record stays with the delivery");
    sub.close().await.expect("close");
    let mut again = Topic::<Taken>::new().subscribe(&producer, "typed", options()).await.expect("subscribe");
    assert!(again.poll().await.expect("poll").is_empty(), "the group resumes after what was acked");
}

/// `runner::typed` on a plain `Runner`: every attempt decodes the stored event afresh (the
/// payload is moved into the handler, not kept), its `Context` carries the attempt number and
/// the stored record's stamped headers, and a handler that finishes at once, one that is still
/// pending on its first poll and one that fails first are all handled and acked.
#[tokio::test]
async fn a_typed_runner_handler_decodes_each_attempt_and_acks_fast_and_slow_events() {
    use prom_runtime::consumer::{SubscribeOptions, Subscription};
    use prom_runtime::runner::{self, FailurePolicy, Runner};
    let bus = MemoryBus::new();
    let stamp = |payload: Value| {
        let mut event = NewEvent::new("reading.taken", payload);
        event.headers.insert(SCHEMA_VERSION.into(), "1".into());
        event
    };
    let events = [
        json!({ "id": "now", "value": 1 }),
        json!({ "id": "later", "value": 2 }),
        json!({ "id": "retry", "value": 3 }),
    ];
    bus.publish(events.into_iter().map(stamp).collect()).await.expect("publish");
    let producer = prom_runtime::Producer::new(bus.clone(), Arc::new(json_upcaster(registry())));
    let sub =
        Subscription::new(bus.clone(), "reading.taken", "typed", SubscribeOptions::default()).expect("sub");
    let retry = prom_runtime::retry::RetryPolicy {
        max_attempts: 3,
        backoff: Duration::from_millis(5),
        ..prom_runtime::retry::RetryPolicy::default()
    };
    let runner = Runner::new(sub, producer, FailurePolicy { retry, dlq: false });
    let stats = runner.stats();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let handler = move |payload: V2, ctx: Context| {
        let seen = seen2.clone();
        async move {
            let upcast = ctx.upcast_from();
            seen.lock().expect("lock").push((payload.id.clone(), payload.reading, ctx.attempt(), upcast));
            match (payload.id.as_str(), ctx.attempt()) {
                ("later", _) => tokio::time::sleep(Duration::from_millis(20)).await,
                ("retry", 1) => return Err("not yet".to_string()),
                _ => {}
            }
            Ok(())
        }
    };
    let done = async {
        while stats.snapshot().0 < 3 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    runner.run(runner::typed(Topic::<Taken>::new(), handler), done).await.expect("run");
    assert_eq!(stats.snapshot(), (3, 1, 0, 0), "three handled, one retry");
    let mut seen = seen.lock().expect("lock").clone();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("later".to_string(), 2, 1, Some(1)),
            ("now".to_string(), 1, 1, Some(1)),
            ("retry".to_string(), 3, 1, Some(1)),
            ("retry".to_string(), 3, 2, Some(1)),
        ]
    );
    let cursors = bus.cursors(&prom_runtime::GroupId::new("reading.taken", "typed")).await.expect("cursors");
    assert_eq!(cursors.get(&0), Some(&3), "all three acked and committed on close");
}
