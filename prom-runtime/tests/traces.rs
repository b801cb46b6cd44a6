//! Trace context through events, across real processes and real stores: a `traceparent` given
//! to the `prom` binary (flag, environment, the gateway's request header) is stored with the
//! event and reappears in the `prom.handle` span of a `Runner` in this process; what the handler
//! publishes continues the trace; retries and dead letters get spans of their own; malformed
//! input is ignored, and the trace headers cannot be declared or forged.
#![cfg(all(feature = "cli", unix))]

mod common;

use common::Store;
use common::serve::Server;
use prom_runtime::consumer::{SubscribeOptions, Subscription};
use prom_runtime::dlq::{self, ReplayOptions};
use prom_runtime::retry::RetryPolicy;
use prom_runtime::runner::{FailurePolicy, Runner};
use prom_runtime::trace::{TRACEPARENT, TRACESTATE, TraceContext};
use prom_runtime::{AnyBus, Error, EventBus, EventRecord, Producer, PublishOptions, Registry};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

const PROM: &str = env!("CARGO_BIN_EXE_prom");

use common::orders::{BILLED, INCOMING, PLACED, SPEC};

mod sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_trace_from_prom_publish_reaches_the_handler_span_and_continues() {
        super::a_trace_from_prom_publish_reaches_the_handler_span_and_continues(&super::Store::sqlite())
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn retries_and_dead_letters_get_spans_and_replay_keeps_the_trace() {
        super::retries_and_dead_letters_get_spans_and_replay_keeps_the_trace(&super::Store::sqlite()).await;
    }
}

#[cfg(feature = "mongo")]
mod mongo {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_trace_from_prom_publish_reaches_the_handler_span_and_continues() {
        let Some(store) = super::Store::mongo() else { return };
        super::a_trace_from_prom_publish_reaches_the_handler_span_and_continues(&store).await;
        store.cleanup().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn retries_and_dead_letters_get_spans_and_replay_keeps_the_trace() {
        let Some(store) = super::Store::mongo() else { return };
        super::retries_and_dead_letters_get_spans_and_replay_keeps_the_trace(&store).await;
        store.cleanup().await;
    }
}

/// A span or event the capture layer saw: its name (events: `event`), its fields, and for
/// events the fields of the innermost enclosing span.
#[derive(Debug, Clone, Default)]
struct Seen {
    name: String,
    fields: BTreeMap<String, String>,
    span: BTreeMap<String, String>,
}

impl Seen {
    fn get(&self, field: &str) -> &str {
        self.fields.get(field).map_or("", String::as_str)
    }
}

/// Every closed span and every event, process-wide (tests filter by their own consumer name).
fn seen() -> &'static Mutex<Vec<Seen>> {
    static SEEN: OnceLock<Mutex<Vec<Seen>>> = OnceLock::new();
    SEEN.get_or_init(|| {
        let subscriber = tracing_subscriber::registry().with(Capture);
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber of this test binary");
        Mutex::new(Vec::new())
    })
}

struct Capture;

struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields(BTreeMap::new());
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<Fields>()
        {
            values.record(fields);
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields(BTreeMap::new());
        event.record(&mut fields);
        let span = ctx
            .event_span(event)
            .and_then(|s| s.extensions().get::<Fields>().map(|f| f.0.clone()))
            .unwrap_or_default();
        if let Ok(mut seen) = seen().lock() {
            seen.push(Seen { name: "event".into(), fields: fields.0, span });
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let fields = span.extensions().get::<Fields>().map(|f| f.0.clone()).unwrap_or_default();
        if let Ok(mut seen) = seen().lock() {
            seen.push(Seen { name: span.name().to_owned(), fields, span: BTreeMap::new() });
        }
    }
}

/// The closed spans called `name` of `consumer`.
fn spans(name: &str, consumer: &str) -> Vec<Seen> {
    let seen = seen().lock().expect("capture lock");
    seen.iter().filter(|s| s.name == name && s.get("consumer") == consumer).cloned().collect()
}

fn producer(bus: AnyBus) -> Producer<AnyBus> {
    Producer::new(bus, Arc::new(Registry::from_yaml("orders.yaml", SPEC).expect("the spec lints clean")))
}

fn runner(producer: &Producer<AnyBus>, group: &str, policy: FailurePolicy) -> Runner<AnyBus> {
    let opts = SubscribeOptions {
        partitions: 2,
        poll_timeout: Duration::from_millis(20),
        ..SubscribeOptions::default()
    };
    let sub = Subscription::new(producer.bus().clone(), PLACED, group, opts).expect("subscribe");
    Runner::new(sub, producer.clone(), policy).named(group)
}

fn policy(max_attempts: u32, dlq: bool) -> FailurePolicy {
    let backoff = Duration::from_millis(10);
    FailurePolicy { retry: RetryPolicy { max_attempts, backoff, max_backoff: backoff * 4 }, dlq }
}

fn prom(dir: &Path, store: &Store, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(PROM);
    command
        .current_dir(dir)
        .env_remove("PROM_MONGO_URL")
        .env_remove("TRACEPARENT")
        .env_remove("TRACESTATE")
        .env_remove("PROM_NEW_TRACES")
        .envs(env.iter().copied())
        .args(store.cli_args())
        .args(args);
    command.output().expect("run prom")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn spec_file(dir: &Path) -> String {
    let path = dir.join("orders.yaml");
    std::fs::write(&path, SPEC).expect("write the spec");
    path.display().to_string()
}

/// Polls (at most 20 s) until `done` holds.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn stored(bus: &AnyBus, topic: &str) -> Vec<EventRecord> {
    bus.read_topic(topic, &prom_runtime::TopicPosition::start(), 100).await.expect("read")
}

/// `prom publish --traceparent` in one process; a `Runner` in this one handles the event in a
/// `prom.handle` span carrying that trace, logs inside it, and publishes an event that
/// continues the trace with the handle span as parent.
async fn a_trace_from_prom_publish_reaches_the_handler_span_and_continues(store: &Store) {
    seen();
    let dir = tempfile::tempdir().expect("tempdir");
    let specs = spec_file(dir.path());
    let incoming = TraceContext::parse(INCOMING).expect("valid");
    let out = prom(
        dir.path(),
        store,
        &[
            "publish",
            "--specs",
            &specs,
            PLACED,
            r#"{"order":"o-1"}"#,
            "--traceparent",
            INCOMING,
            "--tracestate",
            "congo=t61",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_owned();

    let producer = producer(store.handle());
    let event = stored(producer.bus(), PLACED).await.pop().expect("the published event");
    assert_eq!(event.id.to_string(), id);
    assert_eq!(event.headers.get(TRACEPARENT).map(String::as_str), Some(INCOMING), "{:?}", event.headers);
    assert_eq!(event.headers.get(TRACESTATE).map(String::as_str), Some("congo=t61"));

    let consumer = format!("billing-{}", store.name());
    let mut runner = runner(&producer, &consumer, policy(1, false));
    runner.start().await.ok();
    let stats = runner.stats();
    let inner = producer.clone();
    let handler = move |event: EventRecord| {
        let inner = inner.clone();
        async move {
            tracing::info!(order = %event.payload["order"], "billing the order");
            inner
                .publish(BILLED, json!({ "order": event.payload["order"] }), PublishOptions::default())
                .await?;
            Ok::<(), Error>(())
        }
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(runner.run(handler, async move {
        let _ = stopped.await;
    }));
    until("the event to be handled", || stats.snapshot().0 == 1).await;
    let _ = stop.send(());
    running.await.expect("join").expect("the runner stops cleanly");

    let handles = spans("prom.handle", &consumer);
    assert_eq!(handles.len(), 1, "{handles:#?}");
    let handle = &handles[0];
    assert_eq!(handle.get("trace_id"), incoming.trace_id_hex());
    assert_eq!(handle.get("parent_span_id"), incoming.span_id_hex());
    assert_eq!(handle.get("event_id"), id);
    assert_eq!(handle.get("topic"), PLACED);
    assert_eq!(handle.get("attempt"), "1");
    assert_eq!(handle.get("offset"), event.offset.to_string());
    assert_eq!(handle.get("partition"), event.partition.to_string());
    let span_id = handle.get("span_id");
    assert_eq!(span_id.len(), 16, "{handle:?}");
    assert_ne!(span_id, incoming.span_id_hex(), "the handle span is a new span");

    let logged = seen()
        .lock()
        .expect("capture lock")
        .iter()
        .find(|s| {
            s.name == "event"
                && s.get("message") == "billing the order"
                && s.span.get("consumer") == Some(&consumer)
        })
        .cloned()
        .expect("the handler's log line was captured");
    assert_eq!(
        logged.span.get("trace_id"),
        Some(&incoming.trace_id_hex()),
        "the handler's log carries the trace id"
    );

    let billed = stored(producer.bus(), BILLED).await.pop().expect("the handler's event");
    let continued = TraceContext::from_headers(&billed.headers).expect("the handler's event carries a trace");
    assert_eq!(continued.trace_id(), incoming.trace_id(), "same trace");
    assert_eq!(continued.span_id_hex(), span_id, "its parent is the handle span");
    assert_eq!(continued.state(), Some("congo=t61"), "the tracestate travels along");
}

/// A handler that always fails: one `prom.handle` span per attempt, all in the event's trace,
/// then one `prom.dead_letter` span; the dead letter continues the trace from that span, and
/// its replay carries the original's trace again.
async fn retries_and_dead_letters_get_spans_and_replay_keeps_the_trace(store: &Store) {
    seen();
    let producer = producer(store.handle());
    let incoming = TraceContext::parse(INCOMING).expect("valid");
    let consumer = format!("poisoned-{}", store.name());
    let mut runner = runner(&producer, &consumer, policy(3, true));
    runner.start().await.expect("start");
    let opts = PublishOptions { trace: Some(incoming.clone()), ..PublishOptions::default() };
    let receipt = producer.publish(PLACED, json!({ "order": "o-poison" }), opts).await.expect("publish");
    let stats = runner.stats();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handler = |_: EventRecord| async { Err::<(), _>("the ledger is closed") };
    let running = tokio::spawn(runner.run(handler, async move {
        let _ = stopped.await;
    }));
    until("the event to be dead-lettered", || stats.snapshot().2 == 1).await;
    until("the dead-letter span to close", || !spans("prom.dead_letter", &consumer).is_empty()).await;
    let _ = stop.send(());
    running.await.expect("join").expect("the runner stops cleanly");

    let mut handles = spans("prom.handle", &consumer);
    handles.sort_by(|a, b| a.get("attempt").cmp(b.get("attempt")));
    let attempts: Vec<&str> = handles.iter().map(|h| h.get("attempt")).collect();
    assert_eq!(attempts, ["1", "2", "3"], "one span per attempt");
    for handle in &handles {
        assert_eq!(handle.get("trace_id"), incoming.trace_id_hex());
        assert_eq!(handle.get("parent_span_id"), incoming.span_id_hex());
        assert_eq!(handle.get("event_id"), receipt.id.to_string());
    }
    let retry_logs = seen()
        .lock()
        .expect("capture lock")
        .iter()
        .filter(|s| s.get("message") == "handler failed; retrying" && s.get("consumer") == consumer)
        .map(|s| s.span.get("trace_id").cloned())
        .collect::<Vec<_>>();
    assert_eq!(retry_logs, vec![Some(incoming.trace_id_hex()); 2], "each retry is logged inside its span");
    let letters = spans("prom.dead_letter", &consumer);
    assert_eq!(letters.len(), 1, "{letters:#?}");
    let letter_span = &letters[0];
    assert_eq!(letter_span.get("trace_id"), incoming.trace_id_hex());
    assert_eq!(letter_span.get("attempts"), "3");

    let dead = stored(producer.bus(), &format!("dlq.{PLACED}")).await.pop().expect("the dead letter");
    let traced = TraceContext::from_headers(&dead.headers).expect("the dead letter carries the trace");
    assert_eq!(traced.trace_id(), incoming.trace_id());
    assert_eq!(traced.span_id_hex(), letter_span.get("span_id"), "its parent is the dead-letter span");

    let report = dlq::replay(&producer, PLACED, &ReplayOptions { limit: 10, ..ReplayOptions::default() })
        .await
        .expect("replay");
    assert_eq!(report.replayed.len(), 1);
    let replayed = stored(producer.bus(), PLACED).await.pop().expect("the replayed event");
    assert_eq!(replayed.id, report.replayed[0].1);
    assert_eq!(
        replayed.headers.get(TRACEPARENT).map(String::as_str),
        Some(INCOMING),
        "a replay carries the original's trace"
    );
}

/// `TRACEPARENT` is read like `--traceparent`; a malformed one is ignored with a warning and
/// the event is still stored; without any trace nothing is added unless `PROM_NEW_TRACES=1`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prom_publish_reads_the_environment_and_ignores_malformed_traceparents() {
    let store = Store::sqlite();
    let dir = tempfile::tempdir().expect("tempdir");
    let specs = spec_file(dir.path());
    let publish = |order: &str, flags: &[&str], env: &[(&str, &str)]| {
        let payload = format!(r#"{{"order":"{order}"}}"#);
        let mut args = vec!["publish", "--specs", &specs, PLACED, &payload];
        args.extend_from_slice(flags);
        let out = prom(dir.path(), &store, &args, env);
        assert!(out.status.success(), "{order}: {}", text(&out.stderr));
        (text(&out.stdout).trim().to_owned(), text(&out.stderr))
    };
    let (from_env, _) = publish("env", &[], &[("TRACEPARENT", INCOMING)]);
    let malformed = INCOMING.to_uppercase();
    let (bad_flag, warning) = publish("bad", &["--traceparent", &malformed], &[]);
    assert!(warning.contains("ignoring a malformed traceparent"), "{warning}");
    assert!(warning.contains("lowercase hex"), "the warning says why: {warning}");
    let zero = "00-00000000000000000000000000000000-00f067aa0ba902b7-01";
    let (zero_env, warning) = publish("zero", &[], &[("TRACEPARENT", zero)]);
    assert!(warning.contains("all zeros"), "{warning}");
    let (plain, _) = publish("plain", &[], &[]);
    let (rooted, _) = publish("rooted", &[], &[("PROM_NEW_TRACES", "1")]);

    let events: BTreeMap<String, EventRecord> =
        stored(&store.handle(), PLACED).await.into_iter().map(|e| (e.id.to_string(), e)).collect();
    let trace = |id: &str| events.get(id).and_then(|e| e.headers.get(TRACEPARENT).cloned());
    assert_eq!(trace(&from_env).as_deref(), Some(INCOMING));
    assert_eq!(trace(&bad_flag), None, "a malformed traceparent is dropped, the event kept");
    assert_eq!(trace(&zero_env), None);
    assert_eq!(trace(&plain), None, "an untraced publish adds no bytes");
    let root = trace(&rooted).expect("PROM_NEW_TRACES=1 starts a trace");
    assert!(TraceContext::parse(&root).is_ok_and(|t| t.sampled()), "{root}");
}

/// The gateway takes the caller's `traceparent`/`tracestate` request headers; a malformed one
/// is no reason to refuse the event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_stores_the_request_traceparent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let specs = dir.path().join("orders.yaml");
    std::fs::write(&specs, SPEC).expect("write spec");
    let store = dir.path().join("store");
    let mut server = Server::embedded(&store, &specs, &[]);
    let address = server.wait_for_line("listening on ");
    let client =
        reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build().expect("client");
    let post = |order: &str, traceparent: &str| {
        client
            .post(format!("http://{address}/topics/{PLACED}/events"))
            .header("content-type", "application/json")
            .header("traceparent", traceparent)
            .header("tracestate", "rojo=00f067aa0ba902b7")
            .body(format!(r#"{{"order":"{order}"}}"#))
            .send()
    };
    let traced = post("o-1", INCOMING).await.expect("request");
    assert_eq!(traced.status(), 201);
    let traced: serde_json::Value =
        serde_json::from_str(&traced.text().await.expect("body")).expect("receipt");
    let bad = post("o-2", "00-xyz").await.expect("request");
    assert_eq!(bad.status(), 201, "a malformed traceparent does not fail the publish");
    let bad: serde_json::Value = serde_json::from_str(&bad.text().await.expect("body")).expect("receipt");
    server.terminate().await;

    let bus = prom_runtime::SqliteBus::open(&store).expect("open");
    let events = bus.read_topic(PLACED, &prom_runtime::TopicPosition::start(), 10).await.expect("read");
    let by_id = |id: &serde_json::Value| {
        events.iter().find(|e| Some(e.id.to_string().as_str()) == id.as_str()).expect("stored").clone()
    };
    let first = by_id(&traced["id"]);
    assert_eq!(first.headers.get(TRACEPARENT).map(String::as_str), Some(INCOMING));
    assert_eq!(first.headers.get(TRACESTATE).map(String::as_str), Some("rojo=00f067aa0ba902b7"));
    let second = by_id(&bad["id"]);
    assert_eq!(second.headers.get(TRACEPARENT), None);
    assert_eq!(second.headers.get(TRACESTATE), None, "a tracestate without a valid traceparent is dropped");
}

/// Users cannot declare the trace headers (lint P102) nor set them through a publish's headers.
#[tokio::test]
async fn trace_headers_cannot_be_declared_or_forged() {
    let declared = SPEC.replacen("    key: /order\n", "    key: /order\n    headers: [traceparent]\n", 1);
    let linted = prom_spec::lint_str("orders.yaml", &declared);
    let rendered = linted.render();
    assert!(linted.has_errors(), "{rendered}");
    assert!(rendered.contains("P102") && rendered.contains("header `traceparent` is reserved"), "{rendered}");

    let producer = producer(prom_runtime::MemoryBus::new().into());
    for header in [TRACEPARENT, TRACESTATE] {
        let opts = PublishOptions {
            headers: [(header.to_owned(), INCOMING.to_owned())].into(),
            ..PublishOptions::default()
        };
        let err = producer.publish(PLACED, json!({ "order": "o-1" }), opts).await.expect_err("forged");
        assert!(matches!(&err, Error::ReservedHeader { header: h } if h == header), "{err}");
    }
}
