//! The dev harness as a system's own tests would use it: the example spec's pipeline wired with
//! a handler, the gateway on an ephemeral port; a heartbeat published over HTTP comes out as
//! process state on a subscribed SSE stream.
//!
//! Once the embedded store runs changelog projectors, the `processes` projection is also
//! visible at `GET /processes/snap/{key}` (that assertion belongs with that work).

mod common;

use common::sse::{JsonBody, SseStream};
use prom_runtime::gateway::GatewayOptions;
use prom_runtime::testing::Harness;
use prom_runtime::{AnyBus, EventRecord, MemoryBus, Pipeline, PublishOptions};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;

#[tokio::test]
async fn a_heartbeat_published_over_http_shows_up_as_process_state_on_an_sse_stream() {
    let specs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../specs");
    let bus: AnyBus = MemoryBus::new().into();
    let pipeline = Pipeline::from_paths(bus, &[specs]).expect("the example spec");
    let producer = pipeline.producer().clone();
    let pipeline = pipeline
        .handle("hb-analyzers", move |event: EventRecord| {
            let producer = producer.clone();
            async move {
                let beat = &event.payload;
                let state = json!({
                    "processId": format!("{}:{}", beat["host"].as_str().unwrap_or("?"), beat["pid"]),
                    "host": beat["host"], "name": beat["name"], "status": "running",
                    "cpu_pct": beat["cpu_pct"], "mem_mib": beat["mem_mib"], "seq": event.offset,
                });
                producer.publish("process.state", state, PublishOptions::default()).await.map(|_| ())
            }
        })
        .expect("handler");
    let harness = Harness::with_pipeline(pipeline, GatewayOptions::default()).await.expect("harness");
    let client =
        reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(20)).build().expect("client");

    let mut states = SseStream::open(&client, &harness.url("/topics/process.state/events"), &[]).await;
    let heartbeat = json!({
        "pid": 42, "name": "api", "host": "web-1", "cpu_pct": 3.5, "mem_mib": 120, "region": "eu"
    });
    let response = client
        .post(harness.url("/topics/heartbeat.received/events"))
        .json_body(&heartbeat)
        .send()
        .await
        .expect("publish");
    assert_eq!(response.status(), 201);

    let event = states.next(Duration::from_secs(20)).await.expect("a process state");
    let record: Value = serde_json::from_str(&event.data).expect("JSON");
    assert_eq!(record["topic"], "process.state");
    assert_eq!(record["payload"]["processId"], "web-1:42");
    assert_eq!(record["payload"]["status"], "running");
    assert_eq!(event.id.as_deref(), Some("1"));
    harness.stop().await.expect("a clean stop");
}
