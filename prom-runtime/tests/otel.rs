//! The `otel` feature against the real OpenTelemetry SDK: its in-memory span exporter behind a
//! `tracing-opentelemetry` layer sees `prom.handle`/`prom.dead_letter` spans that join the
//! event's stored trace, handlers publish with the exported span as parent, a publish inside a
//! user's exported span stores its context, and without a layer nothing changes.
//!
//! Each test installs its subscriber for its own thread (`set_default`) and runs on a
//! current-thread runtime, so the runner's tasks report to it and tests do not see each other.

use opentelemetry::trace::{TraceContextExt, TracerProvider};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use prom_runtime::consumer::{SubscribeOptions, Subscription};
use prom_runtime::retry::RetryPolicy;
use prom_runtime::runner::{FailurePolicy, Handler, Runner};
use prom_runtime::trace::{TRACEPARENT, TRACESTATE, TraceContext};
use prom_runtime::{AnyBus, Error, EventBus, EventRecord, MemoryBus, Producer, PublishOptions, Registry};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::Instrument;
use tracing::subscriber::DefaultGuard;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

mod common;

use common::orders::{BILLED, INCOMING, PLACED, SPEC};

/// The SDK exporting into memory, installed for this thread while the guard lives.
struct Exported {
    exporter: InMemorySpanExporter,
    provider: SdkTracerProvider,
    _guard: DefaultGuard,
}

impl Exported {
    fn install() -> Exported {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("prom-otel-test"));
        let guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
        Exported { exporter, provider, _guard: guard }
    }

    /// The finished spans called `name`.
    fn spans(&self, name: &str) -> Vec<SpanData> {
        self.provider.force_flush().expect("flush");
        let spans = self.exporter.get_finished_spans().expect("the exported spans");
        spans.into_iter().filter(|s| s.name == name).collect()
    }
}

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.as_str().into_owned())
}

fn producer() -> Producer<AnyBus> {
    let registry = Registry::from_yaml("orders.yaml", SPEC).expect("the spec lints clean");
    Producer::new(AnyBus::Memory(MemoryBus::new()), Arc::new(registry))
}

fn runner(producer: &Producer<AnyBus>, group: &str, max_attempts: u32) -> Runner<AnyBus> {
    let opts = SubscribeOptions {
        partitions: 2,
        poll_timeout: Duration::from_millis(20),
        ..SubscribeOptions::default()
    };
    let sub = Subscription::new(producer.bus().clone(), PLACED, group, opts).expect("subscribe");
    let backoff = Duration::from_millis(10);
    let retry = RetryPolicy { max_attempts, backoff, max_backoff: backoff * 4 };
    Runner::new(sub, producer.clone(), FailurePolicy { retry, dlq: true }).named(group)
}

/// Runs `runner` with `handler` until one event is handled or dead-lettered (at most 20 s),
/// then stops it.
async fn run_once(mut runner: Runner<AnyBus>, handler: impl Handler) {
    runner.start().await.expect("start");
    let stats = runner.stats();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let waiting = async move {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (handled, _, dead, _) = stats.snapshot();
            if handled + dead >= 1 {
                break;
            }
            assert!(Instant::now() < deadline, "timed out waiting for the event");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = stop.send(());
    };
    let stopping = async move {
        let _ = stopped.await;
    };
    let (result, ()) = tokio::join!(runner.run(handler, stopping), waiting);
    result.expect("the runner stops cleanly");
}

async fn stored(producer: &Producer<AnyBus>, topic: &str) -> Vec<EventRecord> {
    producer.bus().read_topic(topic, &prom_runtime::TopicPosition::start(), 100).await.expect("read")
}

fn incoming() -> TraceContext {
    TraceContext::parse(INCOMING).expect("valid").with_state(Some("congo=t61"), "test")
}

async fn publish_incoming(producer: &Producer<AnyBus>) {
    let opts = PublishOptions { trace: Some(incoming()), ..PublishOptions::default() };
    producer.publish(PLACED, json!({ "order": "o-1" }), opts).await.expect("publish");
}

/// A handler that publishes `orders.billed` and keeps the context it ran in.
fn billing(producer: &Producer<AnyBus>, seen: &Arc<Mutex<Option<TraceContext>>>) -> impl Handler {
    let producer = producer.clone();
    let seen = Arc::clone(seen);
    move |event: EventRecord| {
        let producer = producer.clone();
        let seen = Arc::clone(&seen);
        async move {
            *seen.lock().expect("lock") = TraceContext::current();
            let order = json!({ "order": event.payload["order"] });
            producer.publish(BILLED, order, PublishOptions::default()).await?;
            Ok::<(), Error>(())
        }
    }
}

/// The trace context the only `orders.billed` event stores.
async fn billed(producer: &Producer<AnyBus>) -> (TraceContext, EventRecord) {
    let mut events = stored(producer, BILLED).await;
    assert_eq!(events.len(), 1, "{events:#?}");
    let event = events.remove(0);
    (TraceContext::from_headers(&event.headers).expect("the billed event carries a trace"), event)
}

/// (1) and (2): the exported `prom.handle` span has the published trace id and parent span id,
/// and what the handler publishes has that exported span as parent.
#[tokio::test]
async fn the_exported_handle_span_joins_the_event_trace_and_parents_what_the_handler_publishes() {
    let exported = Exported::install();
    let producer = producer();
    publish_incoming(&producer).await;
    let seen = Arc::new(Mutex::new(None));
    run_once(runner(&producer, "billing", 1), billing(&producer, &seen)).await;

    let handles = exported.spans("prom.handle");
    assert_eq!(handles.len(), 1, "{handles:#?}");
    let handle = &handles[0];
    let incoming = incoming();
    assert_eq!(handle.span_context.trace_id().to_bytes(), incoming.trace_id(), "the published trace id");
    assert_eq!(handle.parent_span_id.to_bytes(), incoming.span_id(), "the stored parent span id");
    assert!(handle.parent_span_is_remote, "the parent came from another process");
    assert_eq!(handle.span_context.trace_state().header(), "congo=t61");
    let own = handle.span_context.span_id().to_bytes();
    assert_eq!(attribute(handle, "consumer").as_deref(), Some("billing"));
    assert_eq!(attribute(handle, "attempt").as_deref(), Some("1"));
    let own_hex = TraceContext::from_ids(incoming.trace_id(), own, 1).expect("valid ids").span_id_hex();
    assert_eq!(attribute(handle, "span_id"), Some(own_hex.clone()), "the field names the exported span");
    assert_eq!(attribute(handle, "parent_span_id"), Some(incoming.span_id_hex()));

    let (billed, _) = billed(&producer).await;
    assert_eq!(billed.trace_id(), incoming.trace_id());
    assert_eq!(billed.span_id(), own, "the next service's parent is the exported handle span");
    assert_eq!(billed.state(), Some("congo=t61"));
    let current = seen.lock().expect("lock").clone().expect("the handler ran in a trace context");
    assert_eq!(current.span_id_hex(), own_hex, "TraceContext::current() is the exported span");
}

/// (3): a span per attempt, and a `prom.dead_letter` span in the same trace whose id the dead
/// letter stores as parent.
#[tokio::test]
async fn retries_export_a_span_per_attempt_and_the_dead_letter_its_own() {
    let exported = Exported::install();
    let producer = producer();
    publish_incoming(&producer).await;
    let handler = |_: EventRecord| async { Err::<(), _>("the ledger is closed") };
    run_once(runner(&producer, "poisoned", 3), handler).await;

    let incoming = incoming();
    let mut handles = exported.spans("prom.handle");
    handles.sort_by_key(|span| attribute(span, "attempt"));
    let attempts: Vec<_> = handles.iter().filter_map(|span| attribute(span, "attempt")).collect();
    assert_eq!(attempts, ["1", "2", "3"], "one exported span per attempt");
    for handle in &handles {
        assert_eq!(handle.span_context.trace_id().to_bytes(), incoming.trace_id());
        assert_eq!(handle.parent_span_id.to_bytes(), incoming.span_id());
    }
    let ids: std::collections::BTreeSet<_> =
        handles.iter().map(|span| span.span_context.span_id().to_bytes()).collect();
    assert_eq!(ids.len(), 3, "each attempt is a span of its own");

    let letters = exported.spans("prom.dead_letter");
    assert_eq!(letters.len(), 1, "{letters:#?}");
    let letter = &letters[0];
    assert_eq!(letter.span_context.trace_id().to_bytes(), incoming.trace_id(), "the same trace");
    assert_eq!(letter.parent_span_id.to_bytes(), incoming.span_id());
    assert_eq!(attribute(letter, "attempts").as_deref(), Some("3"));
    let dead = stored(&producer, &format!("dlq.{PLACED}")).await.pop().expect("the dead letter");
    let traced = TraceContext::from_headers(&dead.headers).expect("the dead letter carries the trace");
    assert_eq!(traced.trace_id(), incoming.trace_id());
    assert_eq!(traced.span_id(), letter.span_context.span_id().to_bytes(), "its parent is the exported span");
}

/// (4): a publish inside a user's exported span (an HTTP handler's, say) stores that span's
/// context and `tracestate`; an explicit trace still wins.
#[tokio::test]
async fn a_publish_inside_a_users_exported_span_stores_its_context() {
    let exported = Exported::install();
    let producer = producer();
    let request = tracing::info_span!("http.request");
    // The user's span itself continues a caller's trace, with a vendor's tracestate.
    let caller =
        TraceContext::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").expect("valid");
    let remote = opentelemetry::trace::SpanContext::new(
        opentelemetry::trace::TraceId::from_bytes(caller.trace_id()),
        opentelemetry::trace::SpanId::from_bytes(caller.span_id()),
        opentelemetry::trace::TraceFlags::SAMPLED,
        true,
        "rojo=00f067aa0ba902b7".parse().expect("a valid tracestate"),
    );
    request
        .set_parent(opentelemetry::Context::new().with_remote_span_context(remote))
        .expect("the layer is installed");
    let (inside, explicit) = async {
        let inside = producer.publish(PLACED, json!({ "order": "o-2" }), PublishOptions::default()).await;
        let opts = PublishOptions { trace: Some(incoming()), ..PublishOptions::default() };
        let explicit = producer.publish(PLACED, json!({ "order": "o-3" }), opts).await;
        (inside.expect("publish"), explicit.expect("publish"))
    }
    .instrument(request)
    .await;

    let requests = exported.spans("http.request");
    assert_eq!(requests.len(), 1, "{requests:#?}");
    let user = &requests[0].span_context;
    let events = stored(&producer, PLACED).await;
    let headers = |id| &events.iter().find(|e| e.id == id).expect("stored").headers;
    let stored = TraceContext::from_headers(headers(inside.id)).expect("the event carries the user's trace");
    assert_eq!(stored.trace_id(), caller.trace_id());
    assert_eq!(stored.trace_id(), user.trace_id().to_bytes());
    assert_eq!(stored.span_id(), user.span_id().to_bytes(), "the user's span is the event's parent");
    assert_eq!(headers(inside.id).get(TRACESTATE).map(String::as_str), Some("rojo=00f067aa0ba902b7"));
    assert_eq!(headers(explicit.id).get(TRACEPARENT).map(String::as_str), Some(INCOMING), "explicit wins");
}

/// (5): with the feature but no OpenTelemetry layer, today's behaviour: the handle span's id is
/// a generated child of the stored one, and a publish in a plain `tracing` span stores nothing.
#[tokio::test]
async fn without_a_layer_nothing_changes() {
    let capture = tracing_subscriber::registry();
    let _guard = tracing::subscriber::set_default(capture);
    let producer = producer();
    publish_incoming(&producer).await;
    let seen = Arc::new(Mutex::new(None));
    run_once(runner(&producer, "billing", 1), billing(&producer, &seen)).await;

    let incoming = incoming();
    let current = seen.lock().expect("lock").clone().expect("the handler ran in a trace context");
    assert_eq!(current.trace_id(), incoming.trace_id());
    assert_ne!(current.span_id(), incoming.span_id(), "a generated child span id");
    assert_eq!(current.state(), Some("congo=t61"));
    let (billed, _) = billed(&producer).await;
    assert_eq!(billed, current, "the handler publishes with the generated child as parent");

    let receipt = producer
        .publish(PLACED, json!({ "order": "o-4" }), PublishOptions::default())
        .instrument(tracing::info_span!("http.request"))
        .await
        .expect("publish");
    let events = stored(&producer, PLACED).await;
    let event = events.iter().find(|e| e.id == receipt.id).expect("stored");
    assert_eq!(event.headers.get(TRACEPARENT), None, "no exported span, no new trace: no header");
}

/// The real `prom` binary exporting over OTLP to a collector this test runs.
#[cfg(all(feature = "cli", unix))]
mod cli {
    use super::{INCOMING, PLACED, SPEC, incoming};
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::process::{Command, Stdio};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    const PROM: &str = env!("CARGO_BIN_EXE_prom");

    /// One request the collector received: its request line, headers (lowercase names) and body.
    struct Received {
        line: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Received {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
        }
    }

    /// A minimal OTLP/HTTP collector: answers every request `200 OK` with an empty (valid)
    /// protobuf response and keeps what it received.
    fn collector() -> (String, Arc<Mutex<Vec<Received>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        let received = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&received);
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let kept = Arc::clone(&kept);
                std::thread::spawn(move || serve(stream, &kept));
            }
        });
        (format!("http://{address}"), received)
    }

    /// Serves the requests of one (keep-alive) connection until the client closes it.
    fn serve(stream: TcpStream, kept: &Mutex<Vec<Received>>) {
        let Ok(mut writer) = stream.try_clone() else { return };
        let mut reader = BufReader::new(stream);
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let mut headers = Vec::new();
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 {
                    return;
                }
                let header = header.trim_end();
                if header.is_empty() {
                    break;
                }
                if let Some((name, value)) = header.split_once(':') {
                    headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
                }
            }
            let length = headers
                .iter()
                .find(|(name, _)| name == "content-length")
                .and_then(|(_, value)| value.parse::<usize>().ok())
                .unwrap_or(0);
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            kept.lock().expect("lock").push(Received { line: line.trim_end().to_owned(), headers, body });
            let answer =
                "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
            if writer.write_all(answer.as_bytes()).is_err() {
                return;
            }
        }
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|window| window == needle)
    }

    /// `prom publish --traceparent`, then `prom run --stand-in` with
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` set: on SIGTERM it exports the `prom.handle` span to the
    /// collector, in the published trace with the published parent. The body is OTLP protobuf:
    /// ids are raw bytes and names plain strings in it, so they are looked for as such.
    #[test]
    fn prom_exports_its_spans_over_otlp_in_the_published_trace() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = dir.path().join("orders.yaml");
        std::fs::write(&spec, format!("{SPEC}consumers:\n  billing:\n    topic: {PLACED}\n")).expect("write");
        let spec = spec.to_str().expect("a UTF-8 path");
        let prom = || {
            let mut command = Command::new(PROM);
            command
                .current_dir(dir.path())
                .env_remove("PROM_MONGO_URL")
                .env_remove("TRACEPARENT")
                .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
                .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                .env_remove("OTEL_SDK_DISABLED")
                .env_remove("OTEL_SERVICE_NAME");
            command
        };
        let published = prom()
            .args(["publish", "--specs", spec, PLACED, r#"{"order":"o-1"}"#, "--traceparent", INCOMING])
            .output()
            .expect("run prom publish");
        assert!(published.status.success(), "{}", String::from_utf8_lossy(&published.stderr));

        let (endpoint, received) = collector();
        let mut run = prom()
            .args(["run", "--specs", spec, "--stand-in", "billing"])
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prom run");
        let stdout = run.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let printed = lines.next().and_then(Result::ok).unwrap_or_default();
        assert!(printed.contains("o-1"), "the stand-in prints the event: {printed:?}");
        let pid = run.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = run.try_wait().expect("wait") {
                break status;
            }
            assert!(Instant::now() < deadline, "prom run did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "{status}");

        let received = received.lock().expect("lock");
        let incoming = incoming();
        let traces = received
            .iter()
            .find(|r| contains(&r.body, b"prom.handle"))
            .unwrap_or_else(|| panic!("no exported prom.handle span among {} requests", received.len()));
        assert_eq!(traces.line, "POST /v1/traces HTTP/1.1");
        assert_eq!(traces.header("content-type"), Some("application/x-protobuf"));
        assert!(contains(&traces.body, &incoming.trace_id()), "the published trace id");
        assert!(contains(&traces.body, &incoming.span_id()), "the published parent span id");
        assert!(contains(&traces.body, b"service.name"), "the resource names the service");
        assert!(contains(&traces.body, b"\x0a\x04prom"), "as `prom` (a 4-byte protobuf string)");
    }
}

/// An event stored without a trace is handled in an exported `prom.handle` span that starts a
/// trace, and what its handler publishes continues that trace with the span as parent.
#[tokio::test]
async fn an_untraced_event_is_handled_in_a_new_exported_trace_its_publishes_continue() {
    let exported = Exported::install();
    let producer = producer();
    producer.publish(PLACED, json!({ "order": "o-5" }), PublishOptions::default()).await.expect("publish");
    assert_eq!(stored(&producer, PLACED).await[0].headers.get(TRACEPARENT), None, "no trace stored");
    let seen = Arc::new(Mutex::new(None));
    run_once(runner(&producer, "billing", 1), billing(&producer, &seen)).await;

    let handles = exported.spans("prom.handle");
    assert_eq!(handles.len(), 1, "{handles:#?}");
    let handle = &handles[0].span_context;
    assert_eq!(seen.lock().expect("lock").clone(), None, "no Prom context: the event carried none");
    let (billed, _) = billed(&producer).await;
    assert_eq!(billed.trace_id(), handle.trace_id().to_bytes());
    assert_eq!(billed.span_id(), handle.span_id().to_bytes(), "the exported handle span is the parent");
}
