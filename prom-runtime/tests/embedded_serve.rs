//! `prom serve` on the embedded store (no `--mongo`): the real binary projects published events
//! into the store's tables and serves them over real HTTP — strong ETag and 304, HEAD, paged
//! lists filtered by declared fields only (through the field's index), `max_limit`,
//! `Cache-Control`, OpenAPI, problem documents — while the changefeed of the table fills, then
//! stops cleanly on SIGTERM.
#![cfg(all(feature = "mongo", unix))]

mod common;

use common::serve::Server;
use prom_runtime::{EventBus, Producer, PublishOptions, Registry, SqliteBus};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SPEC: &str = r#"
topics:
  process.state:
    key: /processId
    partitions: 2
    versions:
      1:
        schema:
          type: object
          required: [processId, seq]
          properties:
            processId: { type: string }
            seq: { type: integer }
            status: { type: string }
            host: { type: string }
  processes.changed:
    key: /key
    versions:
      1:
        schema:
          type: object
          required: [operation, key]
          properties:
            operation: { type: string }
            key: { type: string }
            document: { type: [object, "null"] }
projectors:
  processes:
    kind: changelog
    topic: process.state
    collection: processes
    version: /seq
    indexes: [{ keys: { status: 1 } }]
    snapshot_api: { path: /processes, filters: [status], max_age: 2s, max_limit: 2 }
changefeeds:
  processes-changed:
    collection: processes
    topic: processes.changed
"#;

async fn get_json(http: &reqwest::Client, url: &str) -> Value {
    let response = http.get(url).send().await.expect("request");
    serde_json::from_str(&response.text().await.expect("body")).expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prom_serve_without_mongo_projects_and_serves_the_embedded_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let specs = dir.path().join("spec.yaml");
    std::fs::write(&specs, SPEC).expect("write spec");
    let store = dir.path().join("store");
    let mut server = Server::spawn(&[
        "serve",
        "--specs",
        specs.to_str().expect("utf-8"),
        "--store",
        store.to_str().expect("utf-8"),
        "--listen",
        "127.0.0.1:0",
    ]);
    let started = server.lines_until("listening on ");
    assert!(
        started
            .iter()
            .any(|l| l.starts_with("running projector `processes`") && l.contains("processes-changed")),
        "{started:?}"
    );
    let address = started.last().and_then(|l| l.strip_prefix("listening on ")).expect("address").to_string();

    let linted = prom_spec::lint_str("inline.yaml", SPEC);
    let registry = Arc::new(Registry::from_spec(&linted.spec).expect("registry"));
    let bus = SqliteBus::open(&store).expect("open the served store");
    let producer = Producer::new(bus.clone(), registry);
    for (key, seq, status) in
        [("p1", 1, "up"), ("p1", 2, "down"), ("p2", 1, "up"), ("p3", 1, "up"), ("p4", 1, "down")]
    {
        let payload = json!({ "processId": key, "seq": seq, "status": status, "host": "h1" });
        producer.publish("process.state", payload, PublishOptions::default()).await.expect("publish");
    }

    let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(5)).build().expect("client");
    let base = format!("http://{address}/processes");
    let deadline = Instant::now() + Duration::from_secs(20);
    let (etag, body) = loop {
        let response = http.get(format!("{base}/snap/p4")).send().await.expect("request");
        let p1 = http.get(format!("{base}/snap/p1")).send().await.expect("request");
        if response.status() == 200 && p1.status() == 200 {
            let etag = p1.headers().get("etag").and_then(|v| v.to_str().ok()).map(str::to_owned);
            assert_eq!(p1.headers().get("cache-control").and_then(|v| v.to_str().ok()), Some("max-age=2"));
            let body: Value = serde_json::from_str(&p1.text().await.expect("body")).expect("JSON");
            if body["seq"] == 2 {
                break (etag.expect("an ETag"), body);
            }
        }
        assert!(Instant::now() < deadline, "the projection never reached the snapshot API");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(body, json!({ "_id": "p1", "processId": "p1", "seq": 2, "status": "down", "host": "h1" }));
    assert!(etag.starts_with('"') && etag.ends_with('"'), "a strong ETag: {etag}");

    // 304 for the same ETag; HEAD has the headers and no body.
    let cached =
        http.get(format!("{base}/snap/p1")).header("if-none-match", &etag).send().await.expect("request");
    assert_eq!(cached.status(), 304);
    let head = http.head(format!("{base}/snap/p1")).send().await.expect("request");
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers().get("etag").and_then(|v| v.to_str().ok()), Some(etag.as_str()));
    assert!(head.bytes().await.expect("body").is_empty());
    let missing = http.get(format!("{base}/snap/nope")).send().await.expect("request");
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.headers().get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );

    // Pages of at most `max_limit`, in key order, by cursor; filters only on declared fields.
    let page: Value = get_json(&http, &format!("{base}/list?limit=50")).await;
    let keys = |page: &Value| -> Vec<String> {
        page["items"].as_array().map_or_else(Vec::new, |items| {
            items.iter().map(|i| i["_id"].as_str().unwrap_or_default().to_string()).collect()
        })
    };
    assert_eq!(keys(&page), ["p1", "p2"], "max_limit caps the page");
    let cursor = page["next_cursor"].as_str().expect("a next page").to_string();
    let next: Value = get_json(&http, &format!("{base}/list?cursor={cursor}")).await;
    assert_eq!(
        (keys(&next), next["next_cursor"].clone()),
        (vec!["p3".to_string(), "p4".to_string()], Value::Null)
    );
    let up: Value = get_json(&http, &format!("{base}/list?status=up")).await;
    assert_eq!(keys(&up), ["p2", "p3"]);
    let refused = http.get(format!("{base}/list?host=h1")).send().await.expect("request");
    assert_eq!(refused.status(), 400);
    let problem: Value = serde_json::from_str(&refused.text().await.expect("body")).expect("JSON");
    assert_eq!(problem["allowed_filters"], json!(["status"]), "{problem}");

    let openapi: Value = get_json(&http, &format!("{base}/openapi.json")).await;
    assert_eq!(openapi["openapi"], "3.1.0");

    // The changefeed of the table, from the projector's transactions: 4 inserts, 1 update.
    let feed =
        bus.read_topic("processes.changed", &prom_runtime::TopicPosition::start(), 100).await.expect("feed");
    let mut ops: Vec<String> =
        feed.iter().map(|e| e.payload["operation"].as_str().unwrap_or("").to_string()).collect();
    ops.sort();
    assert_eq!(ops, ["insert", "insert", "insert", "insert", "update"]);
    server.terminate().await;
}
