//! The spec-driven middleware: validation and stamping on publish, partitioning, dual-write,
//! and upcast-then-validate on read.

use prom_runtime::consumer::{SubscribeOptions, Subscription};
use prom_runtime::partition::partition_for;
use prom_runtime::record::{SCHEMA_VERSION, UPCASTED_FROM};
use prom_runtime::{Error, EventBus, MemoryBus, Producer, PublishOptions, Registry};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

const TOPIC: &str = "heartbeat.received";

fn example_registry() -> Registry {
    let specs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../specs/heartbeat.yaml");
    let linted = prom_spec::lint_paths(&[specs]);
    assert!(!linted.has_errors(), "{}", linted.render());
    Registry::from_spec(&linted.spec).expect("registry")
}

fn inline_registry(yaml: &str) -> Registry {
    let linted = prom_spec::lint_str("inline.yaml", yaml);
    assert!(!linted.has_errors(), "{}", linted.render());
    Registry::from_spec(&linted.spec).expect("registry")
}

fn v1(pid: i64) -> Value {
    json!({ "pid": pid, "name": "api", "host": "h1", "cpu_pct": 1.5, "mem_mb": 64 })
}

fn v2(pid: i64) -> Value {
    json!({ "pid": pid, "name": "api", "host": "h1", "cpu_pct": 1.5, "mem_mib": 64, "region": "eu" })
}

fn v3(pid: i64) -> Value {
    json!({ "pid": pid, "name": "api", "host": "h1", "cpu_pct": 1.5, "mem_mib": 64, "region": "eu", "tags": ["a"] })
}

fn at(version: u32) -> PublishOptions {
    PublishOptions { version: Some(version), ..PublishOptions::default() }
}

#[tokio::test]
async fn publish_validates_stamps_partitions_and_dual_writes_in_one_batch() {
    let bus = MemoryBus::new();
    let producer = Producer::new(bus.clone(), Arc::new(example_registry()));
    let receipt = producer.publish(TOPIC, v3(4242), PublishOptions::default()).await.expect("publish");
    assert_eq!(receipt.partition, partition_for(Some("4242"), 8), "partition = jump hash of the /pid key");
    let stored = bus.read_topic(TOPIC, &prom_runtime::TopicPosition::start(), 10).await.expect("read");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].headers[SCHEMA_VERSION], "3");
    assert_eq!(stored[0].key.as_deref(), Some("4242"));
    let copy = bus
        .read_topic("heartbeat.received.v3", &prom_runtime::TopicPosition::start(), 10)
        .await
        .expect("read");
    assert_eq!(copy.len(), 1, "dual-write copy");
    assert_eq!((copy[0].payload.value().clone(), copy[0].partition), (v3(4242), receipt.partition));
    // A v1 producer's event is upcast for the v3 copy.
    producer.publish(TOPIC, v1(7), at(1)).await.expect("publish v1");
    let copy = bus
        .read_topic("heartbeat.received.v3", &prom_runtime::TopicPosition::after(1), 10)
        .await
        .expect("read");
    assert_eq!(copy[0].payload["mem_mib"], 64);
    assert_eq!(copy[0].payload["region"], "unknown");
}

#[tokio::test]
async fn an_invalid_payload_is_rejected_with_its_location_and_nothing_is_stored() {
    let bus = MemoryBus::new();
    let producer = Producer::new(bus.clone(), Arc::new(example_registry()));
    let mut bad = v3(0);
    bad["cpu_pct"] = json!("high");
    let err = producer.publish(TOPIC, bad, PublishOptions::default()).await.expect_err("invalid");
    let Error::Invalid { version, errors, .. } = &err else { panic!("unexpected {err}") };
    assert_eq!(*version, 3);
    let text = errors.join("\n");
    assert!(text.contains("`/pid`") && text.contains("`/cpu_pct`"), "{text}");
    assert_eq!(bus.heads(TOPIC).await.expect("head").total(), 0);
    assert_eq!(
        bus.heads("heartbeat.received.v3").await.expect("head").total(),
        0,
        "not even the dual-write copy"
    );
}

#[tokio::test]
async fn readers_see_every_stored_version_upcast_to_the_latest() {
    let bus = MemoryBus::new();
    let registry = Arc::new(example_registry());
    let producer = Producer::new(bus.clone(), registry.clone());
    producer.publish(TOPIC, v1(1), at(1)).await.expect("v1");
    producer.publish(TOPIC, v2(1), at(2)).await.expect("v2");
    producer.publish(TOPIC, v3(1), at(3)).await.expect("v3");
    let opts =
        SubscribeOptions { partitions: 8, poll_timeout: Duration::from_millis(100), ..Default::default() };
    let mut sub = Subscription::new(bus, TOPIC, "readers", opts).expect("subscribe");
    let batch = sub.poll().await.expect("poll");
    assert_eq!(batch.len(), 1, "one pid: one at a time");
    let mut decoded = Vec::new();
    let mut pending = batch;
    while let Some(d) = pending.pop() {
        decoded.push(registry.decode(d.record.clone()).expect("decode"));
        sub.ack(&d);
        pending = sub.poll().await.expect("poll");
    }
    let from: Vec<Option<&str>> =
        decoded.iter().map(|e| e.headers.get(UPCASTED_FROM).map(String::as_str)).collect();
    assert_eq!(from, [Some("1"), Some("2"), None]);
    assert!(decoded.iter().all(|e| e.headers[SCHEMA_VERSION] == "3"));
    assert_eq!(
        decoded[0].payload,
        json!({ "pid": 1, "name": "api", "host": "h1", "cpu_pct": 1.5, "mem_mib": 64, "region": "unknown" })
    );
    assert_eq!(decoded[1].payload, v2(1));
    assert_eq!(decoded[2].payload, v3(1));
}

const WITH_SPEC: &str = "
topics:
  temp.read:
    key: /sensor
    headers: [x-source]
    versions:
      1:
        schema:
          type: object
          required: [sensor, fahrenheit]
          properties: { sensor: { type: string }, fahrenheit: { type: number } }
      2:
        schema:
          type: object
          required: [sensor, celsius]
          additionalProperties: false
          properties: { sensor: { type: string }, celsius: { type: number } }
        upcast:
          with: crate::upcast::to_celsius
";

fn to_celsius(mut v: Value) -> Result<Value, String> {
    let object = v.as_object_mut().ok_or("not an object")?;
    let f = object.remove("fahrenheit").and_then(|f| f.as_f64()).ok_or("no fahrenheit")?;
    object.insert("celsius".into(), json!((f - 32.0) * 5.0 / 9.0));
    Ok(v)
}

#[tokio::test]
async fn a_with_hop_needs_its_registered_function_and_never_skips() {
    let bus = MemoryBus::new();
    let unregistered = Arc::new(inline_registry(WITH_SPEC));
    let err = unregistered.check_upcasters().expect_err("missing function");
    let Error::MissingUpcasters { missing } = &err else { panic!("unexpected {err:?}") };
    let missing: Vec<_> =
        missing.iter().map(|m| (m.topic.as_str(), m.version, m.function.as_str())).collect();
    assert_eq!(missing, [("temp.read", 2, "crate::upcast::to_celsius")]);
    let producer = Producer::new(bus.clone(), unregistered.clone());
    producer
        .publish("temp.read", json!({ "sensor": "s1", "fahrenheit": 212 }), at(1))
        .await
        .expect("publish v1");
    let stored =
        bus.read_topic("temp.read", &prom_runtime::TopicPosition::start(), 1).await.expect("read").remove(0);
    let err = unregistered.decode(stored.clone()).expect_err("no function, no decode");
    assert!(err.to_string().contains("with_upcaster"), "{err}");

    let registry = inline_registry(WITH_SPEC).with_upcaster("crate::upcast::to_celsius", to_celsius);
    registry.check_upcasters().expect("all registered");
    let decoded = registry.decode(stored).expect("decode");
    assert_eq!(decoded.payload, json!({ "sensor": "s1", "celsius": 100.0 }));
    let broken =
        inline_registry(WITH_SPEC).with_upcaster("crate::upcast::to_celsius", |_| Ok::<_, String>(json!({})));
    let stored =
        bus.read_topic("temp.read", &prom_runtime::TopicPosition::start(), 1).await.expect("read").remove(0);
    assert!(
        matches!(broken.decode(stored), Err(Error::Invalid { version: 2, .. })),
        "upcast output is validated"
    );
}

#[tokio::test]
async fn headers_topics_and_versions_are_checked_with_helpful_errors() {
    let bus = MemoryBus::new();
    let producer = Producer::new(bus.clone(), Arc::new(inline_registry(WITH_SPEC)));
    let payload = json!({ "sensor": "s1", "celsius": 20 });
    let with_header = |name: &str| PublishOptions {
        headers: [(name.to_string(), "x".to_string())].into_iter().collect(),
        ..PublishOptions::default()
    };
    producer.publish("temp.read", payload.clone(), with_header("x-source")).await.expect("declared header");
    let err =
        producer.publish("temp.read", payload.clone(), with_header("x-other")).await.expect_err("undeclared");
    assert!(
        matches!(&err, Error::UndeclaredHeader { header, topic, .. } if header == "x-other" && topic == "temp.read"),
        "{err:?}"
    );
    assert!(err.to_string().contains("add it to the topic's `headers:`"), "{err}");
    let err = producer
        .publish("temp.read", payload.clone(), with_header(SCHEMA_VERSION))
        .await
        .expect_err("reserved");
    assert!(matches!(&err, Error::ReservedHeader { header } if header == SCHEMA_VERSION), "{err:?}");
    assert!(err.to_string().contains("set by the runtime"), "{err}");
    let err =
        producer.publish("temp.reed", payload.clone(), PublishOptions::default()).await.expect_err("typo");
    assert!(matches!(&err, Error::UnknownTopic { topic, .. } if topic == "temp.reed"), "{err:?}");
    assert!(err.to_string().contains("did you mean `temp.read`?"), "{err}");
    let err = producer.publish("temp.read", payload, at(7)).await.expect_err("no v7");
    assert!(err.to_string().contains("has no version 7; the spec declares v1 and v2"), "{err}");

    let mut future =
        bus.read_topic("temp.read", &prom_runtime::TopicPosition::start(), 1).await.expect("read").remove(0);
    future.headers.insert(SCHEMA_VERSION.into(), "9".into());
    let err = producer.registry().decode(future.clone()).expect_err("newer writer");
    assert!(err.to_string().contains("update the spec"), "{err}");
    future.headers.remove(SCHEMA_VERSION);
    let err = producer.registry().decode(future).expect_err("no header");
    assert!(err.to_string().contains("no `x-schema-version` header"), "{err}");
}

#[tokio::test]
async fn derived_topics_refuse_publishes_with_the_declared_topic_to_write() {
    let bus = MemoryBus::new();
    let producer = Producer::new(bus.clone(), Arc::new(example_registry()));
    let err = producer
        .publish("heartbeat.received.v3", v3(1), PublishOptions::default())
        .await
        .expect_err("a dual-write copy");
    assert!(
        matches!(&err, Error::NotPublishable { topic, declared, derived: prom_runtime::Derived::DualWrite, .. }
            if topic == "heartbeat.received.v3" && declared == TOPIC),
        "{err:?}"
    );
    assert!(err.to_string().contains(&format!("publish to `{TOPIC}` instead")), "{err}");
    let dlq = format!("dlq.{TOPIC}");
    let err = producer.publish(&dlq, v3(1), PublishOptions::default()).await.expect_err("dead letters");
    assert!(
        matches!(&err, Error::NotPublishable { derived: prom_runtime::Derived::DeadLetters, declared, .. }
            if declared == TOPIC),
        "{err:?}"
    );
    assert_eq!(bus.heads(TOPIC).await.expect("head").total(), 0, "nothing was stored");
}

#[test]
fn a_subscription_with_a_zero_batch_is_an_invalid_setting() {
    let opts = SubscribeOptions { batch_size: 0, ..SubscribeOptions::default() };
    let Err(err) = Subscription::new(MemoryBus::new(), TOPIC, "g", opts) else { panic!("accepted") };
    let Error::InvalidSetting { what, reason } = &err else { panic!("unexpected {err:?}") };
    assert_eq!(what, &format!("subscription to `{TOPIC}` (group `g`)"));
    assert!(reason.contains("must be at least 1"), "{reason}");
}
