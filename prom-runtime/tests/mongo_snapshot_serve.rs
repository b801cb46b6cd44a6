//! `prom serve` end to end: the real binary projects published events and serves them over HTTP,
//! then stops cleanly on SIGTERM.
#![cfg(all(feature = "mongo", unix))]

mod common;

use common::mongo::Target;
use common::serve::Server;
use prom_runtime::{Producer, PublishOptions, Registry};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SPEC: &str = r#"
topics:
  process.state:
    key: /processId
    versions:
      1:
        schema:
          type: object
          required: [processId, seq]
          properties:
            processId: { type: string }
            seq: { type: integer }
            status: { type: string }
projectors:
  processes:
    kind: changelog
    topic: process.state
    collection: processes
    version: /seq
    snapshot_api: { path: /processes, filters: [status], max_age: 2s }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prom_serve_projects_and_serves_until_sigterm() {
    let Some(target) = Target::from_env() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let specs = dir.path().join("spec.yaml");
    std::fs::write(&specs, SPEC).expect("write spec");
    let mut server = Server::start(&specs, &target);
    let address = server.wait_for_line("listening on ");

    let linted = prom_spec::lint_str("inline.yaml", SPEC);
    let registry = Arc::new(Registry::from_spec(&linted.spec).expect("registry"));
    let producer = Producer::new(target.open_async().await, registry);
    for (seq, status) in [(1, "up"), (2, "down")] {
        let payload = json!({ "processId": "p1", "seq": seq, "status": status });
        producer.publish("process.state", payload, PublishOptions::default()).await.expect("publish");
    }

    let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(5)).build().expect("client");
    let url = format!("http://{address}/processes/snap/p1");
    let deadline = Instant::now() + Duration::from_secs(20);
    let body = loop {
        let response = http.get(&url).send().await.expect("request");
        if response.status() == reqwest::StatusCode::OK {
            let body: Value = serde_json::from_str(&response.text().await.expect("body")).expect("JSON");
            if body["seq"] == 2 {
                break body;
            }
        }
        assert!(Instant::now() < deadline, "the projector did not project p1 in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(body["status"], "down");
    let list = http.get(format!("http://{address}/processes/list?status=down")).send().await.expect("list");
    assert_eq!(list.headers()["cache-control"], "max-age=2");
    let list: Value = serde_json::from_str(&list.text().await.expect("body")).expect("JSON");
    assert_eq!(list["items"][0]["_id"], "p1");

    server.terminate().await;
    target.drop_database().await;
}
