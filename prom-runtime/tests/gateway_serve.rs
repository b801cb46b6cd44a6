//! `prom serve` on the embedded store, end to end: the real binary, real HTTP requests.
#![cfg(unix)]

mod common;

use common::serve::Server;
use serde_json::Value;
use std::time::Duration;

const SPEC: &str = r#"
topics:
  heartbeat.received:
    key: /processId
    versions:
      1:
        schema:
          type: object
          required: [processId, seq]
          additionalProperties: false
          properties:
            processId: { type: string }
            seq: { type: integer, minimum: 0 }
"#;

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build().expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prom_serve_starts_without_mongodb_and_answers_with_problem_documents() {
    let dir = tempfile::tempdir().expect("tempdir");
    let specs = dir.path().join("spec.yaml");
    std::fs::write(&specs, SPEC).expect("write spec");
    let mut server = Server::embedded(&dir.path().join("store"), &specs, &[]);
    let address = server.wait_for_line("listening on ");

    let response = http().get(format!("http://{address}/nowhere")).send().await.expect("request");
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let body: Value = serde_json::from_str(&response.text().await.expect("body")).expect("JSON");
    assert_eq!(body["status"], 404);
    assert!(body["detail"].as_str().is_some_and(|d| d.contains("`/nowhere`")), "{body}");

    server.terminate().await;
}
