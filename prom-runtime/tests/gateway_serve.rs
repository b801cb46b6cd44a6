//! `prom serve` on the embedded store, end to end: the real binary, real HTTP requests.
#![cfg(unix)]

mod common;

use common::serve::Server;
use common::sse::JsonBody;
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

const TOKENS: &str = r#"{"tokens": [
    {"name": "ingest", "token": "ingest-0123456789", "actions": ["publish", "subscribe"], "topics": ["heartbeat.*"]}
]}"#;

/// Reads SSE frames until `count` events came; returns their ids.
async fn read_ids(stream: &mut common::sse::SseStream, count: usize) -> Vec<String> {
    let mut ids = Vec::new();
    while ids.len() < count {
        let event = stream.next(Duration::from_secs(10)).await.expect("an event");
        ids.push(event.id.expect("an id"));
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_resumes_with_last_event_id_across_a_restart_of_prom_serve() {
    let dir = tempfile::tempdir().expect("tempdir");
    let specs = dir.path().join("spec.yaml");
    std::fs::write(&specs, SPEC).expect("write spec");
    let store = dir.path().join("store");
    let client = http();
    let beat = |seq: i64| serde_json::json!({ "processId": "p1", "seq": seq });

    let mut server = Server::embedded(&store, &specs, &[]);
    let lines = server.lines_until("listening on ");
    assert!(lines.iter().any(|l| l.contains("serving without authentication on loopback")), "{lines:#?}");
    let address = lines.last().and_then(|l| l.strip_prefix("listening on ")).expect("address").to_string();
    let url = format!("http://{address}/topics/heartbeat.received/events");
    let mut stream = common::sse::SseStream::open(&client, &url, &[]).await;
    for seq in 1..=2 {
        let response = client.post(&url).json_body(&beat(seq)).send().await.expect("publish");
        assert_eq!(response.status(), 201);
    }
    let ids = read_ids(&mut stream, 2).await;
    assert_eq!(ids, ["1", "2"]);
    server.terminate().await;
    assert_eq!(stream.next(Duration::from_secs(10)).await, None, "the stream ends with the server");

    let mut server = Server::embedded(&store, &specs, &[]);
    let address = server.wait_for_line("listening on ");
    let url = format!("http://{address}/topics/heartbeat.received/events");
    for seq in 3..=4 {
        let response = client.post(&url).json_body(&beat(seq)).send().await.expect("publish");
        assert_eq!(response.status(), 201);
    }
    let mut resumed =
        common::sse::SseStream::open(&client, &url, &[("last-event-id", ids[1].as_str())]).await;
    assert_eq!(read_ids(&mut resumed, 2).await, ["3", "4"], "nothing lost, nothing repeated");
    server.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prom_serve_checks_tokens_and_body_limits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let specs = dir.path().join("spec.yaml");
    std::fs::write(&specs, SPEC).expect("write spec");
    let tokens = dir.path().join("tokens.json");
    std::fs::write(&tokens, TOKENS).expect("write tokens");
    let tokens = tokens.to_str().expect("UTF-8");
    let mut server =
        Server::embedded(&dir.path().join("store"), &specs, &["--tokens", tokens, "--max-body", "100"]);
    let address = server.wait_for_line("listening on ");
    let url = format!("http://{address}/topics/heartbeat.received/events");
    let client = http();
    let payload = serde_json::json!({ "processId": "p1", "seq": 1 });

    let response = client.post(&url).json_body(&payload).send().await.expect("send");
    assert_eq!(response.status(), 401);
    let response =
        client.post(&url).bearer_auth("ingest-0123456789").json_body(&payload).send().await.expect("send");
    assert_eq!(response.status(), 201);
    let response = client
        .get(format!("http://{address}/elsewhere"))
        .bearer_auth("ingest-0123456789")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 403);
    let large = serde_json::json!({ "processId": "p".repeat(200), "seq": 1 });
    let response =
        client.post(&url).bearer_auth("ingest-0123456789").json_body(&large).send().await.expect("send");
    assert_eq!(response.status(), 413);
    let response = client
        .post(&url)
        .bearer_auth("ingest-0123456789")
        .json_body(&serde_json::json!({ "seq": "x" }))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    server.terminate().await;
    let logged: Vec<String> = server.lines.try_iter().collect();
    assert!(logged.iter().all(|l| !l.contains("ingest-0123456789")), "tokens are never logged: {logged:#?}");
}

#[test]
fn a_reachable_address_without_tokens_is_refused_unless_insecure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let specs = dir.path().join("spec.yaml");
    std::fs::write(&specs, SPEC).expect("write spec");
    let (store, specs) = (dir.path().join("store"), specs.to_str().expect("UTF-8").to_string());
    let store = store.to_str().expect("UTF-8");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_prom"))
        .env_remove("PROM_MONGO_URL")
        .env_remove("PROM_API_TOKENS")
        .args(["--store", store, "serve", "--specs", &specs, "--listen", "0.0.0.0:0"])
        .output()
        .expect("run prom");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("reachable from other hosts") && err.contains("--insecure-no-auth"), "{err}");

    let server = Server::spawn(&[
        "--store",
        store,
        "serve",
        "--specs",
        &specs,
        "--listen",
        "0.0.0.0:0",
        "--insecure-no-auth",
    ]);
    let lines = server.lines_until("listening on ");
    assert!(
        lines.iter().any(|l| l.starts_with("WARNING: serving") && l.contains("without authentication")),
        "{lines:#?}"
    );
}
