//! The snapshot HTTP API against a real MongoDB, over real HTTP on 127.0.0.1: ETags and 304,
//! HEAD, 404, paging in `_id` order, declared filters only (operators refused), the cache
//! header and the OpenAPI description.
#![cfg(feature = "mongo")]

mod common;

use common::mongo::Target;
use prom_runtime::bus::mongo::MongoBus;
use prom_runtime::project::plan::{self, Change};
use prom_runtime::project::{ChangelogProjector, ChangelogSpec};
use prom_runtime::snapshot::{self, SnapshotSpec};
use prom_runtime::{NewEvent, Producer, Registry};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

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
            host: { type: string }
            name: { type: string }
projectors:
  processes:
    kind: changelog
    topic: process.state
    collection: processes
    version: /seq
    snapshot_api: { path: /processes, filters: [status, host], max_age: 5s, max_limit: 3 }
"#;

struct Server {
    target: Target,
    projector: ChangelogProjector<MongoBus>,
    spec: ChangelogSpec,
    base: String,
    http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<prom_runtime::Result<()>>>,
}

async fn server() -> Option<Server> {
    let target = Target::from_env()?;
    let linted = prom_spec::lint_str("inline.yaml", SPEC);
    assert!(!linted.has_errors(), "{}", linted.render());
    let registry = Registry::from_spec(&linted.spec).expect("registry");
    let spec = ChangelogSpec::from_system(
        prom_runtime::system::System::from_spec(&linted.spec).projector("processes").expect("declared"),
        &registry,
    )
    .expect("spec");
    let apis =
        SnapshotSpec::all(&prom_runtime::system::System::from_spec(&linted.spec)).expect("snapshot specs");
    let bus = target.open_async().await;
    let db = bus.database().clone();
    let producer = Producer::new(bus, Arc::new(registry));
    let projector =
        ChangelogProjector::new(producer, db.clone(), spec.clone(), Default::default()).expect("projector");
    let router = snapshot::router(&db, &apis).expect("router");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(snapshot::serve(listener, router, async move {
        let _ = stopped.await;
    }));
    // No proxy: an HTTP_PROXY in the environment must not intercept 127.0.0.1.
    let http =
        reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build().expect("client");
    let base = format!("http://{addr}/processes");
    Some(Server { target, projector, spec, base, http, stop: Some(stop), task: Some(task) })
}

impl Server {
    /// Writes events through the projector's real bulk write.
    async fn project(&self, payloads: &[Value]) {
        let changes: Vec<Change> = payloads
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let record = NewEvent::new("process.state", p.clone()).into_record(i as i64 + 1);
                plan::change_of(&record, &self.spec.pointers).expect("change")
            })
            .collect();
        self.projector.apply(changes).await.expect("apply");
    }

    async fn get(&self, path: &str) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let response = self.http.get(format!("{}{path}", self.base)).send().await.expect("request");
        let (status, headers) = (response.status(), response.headers().clone());
        let text = response.text().await.expect("body");
        let body =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).expect("JSON body") };
        (status, headers, body)
    }

    async fn finish(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server");
        }
        self.target.drop_database().await;
    }
}

fn process(id: &str, seq: i64, status: &str, host: &str) -> Value {
    json!({ "processId": id, "seq": seq, "status": status, "host": host })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snap_serves_documents_with_strong_etags() {
    let Some(s) = server().await else { return };
    s.project(&[process("p1", 1, "up", "h1")]).await;

    let (status, headers, body) = s.get("/snap/p1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({ "processId": "p1", "seq": 1, "status": "up", "host": "h1", "_id": "p1" }));
    assert_eq!(headers["cache-control"], "max-age=5");
    assert_eq!(headers["content-type"], "application/json");
    let etag = headers["etag"].to_str().expect("etag").to_string();
    assert!(etag.starts_with('"') && !etag.starts_with("W/"), "strong: {etag}");

    let url = format!("{}/snap/p1", s.base);
    let cached = s.http.get(&url).header("If-None-Match", &etag).send().await.expect("request");
    assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(cached.headers()["etag"].to_str().expect("etag"), etag);
    assert!(cached.text().await.expect("body").is_empty());
    let other = s.http.get(&url).header("If-None-Match", "\"stale\"").send().await.expect("request");
    assert_eq!(other.status(), StatusCode::OK);

    let head = s.http.head(&url).send().await.expect("request");
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["etag"].to_str().expect("etag"), etag);
    assert_eq!(head.headers()["cache-control"], "max-age=5");
    assert!(head.text().await.expect("body").is_empty());

    // A newer version changes the ETag; a stale one is refused by the guard and keeps it.
    s.project(&[process("p1", 2, "down", "h1")]).await;
    let (_, headers, body) = s.get("/snap/p1").await;
    assert_eq!(body["status"], "down");
    let newer = headers["etag"].to_str().expect("etag").to_string();
    assert_ne!(newer, etag);
    let revalidated = s.http.get(&url).header("If-None-Match", &etag).send().await.expect("request");
    assert_eq!(revalidated.status(), StatusCode::OK);
    s.project(&[process("p1", 1, "up", "h1")]).await;
    assert_eq!(s.get("/snap/p1").await.1["etag"].to_str().expect("etag"), newer);

    let (status, _, body) = s.get("/snap/nobody").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["detail"].as_str().expect("detail").contains("nobody"), "{body}");
    let missing = s.http.head(format!("{}/snap/nobody", s.base)).send().await.expect("request");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    // Percent-encoded keys are decoded before the lookup.
    s.project(&[process("a b/c", 1, "up", "h2")]).await;
    assert_eq!(s.get("/snap/a%20b%2Fc").await.2["processId"], "a b/c");
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pages_in_id_order_and_filters_only_declared_fields() {
    let Some(s) = server().await else { return };
    let mut docs = Vec::new();
    for (i, id) in ["p5", "p1", "p4", "p2", "p3", "p7", "p6"].iter().enumerate() {
        let status = if i % 2 == 0 { "up" } else { "down" };
        docs.push(process(id, 1, status, if i < 4 { "h1" } else { "h2" }));
    }
    s.project(&docs).await;

    // Pages of max_limit (3) even when more is asked, in `_id` order, until next_cursor is null.
    let mut seen = Vec::new();
    let mut path = "/list?limit=50".to_string();
    loop {
        let (status, headers, body) = s.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(headers["cache-control"], "max-age=5");
        let items = body["items"].as_array().expect("items");
        assert!(items.len() <= 3);
        seen.extend(items.iter().map(|d| d["_id"].as_str().expect("id").to_string()));
        match body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/list?limit=50&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, ["p1", "p2", "p3", "p4", "p5", "p6", "p7"]);

    let ids = |body: &Value| -> Vec<String> {
        body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|d| d["_id"].as_str().expect("id").into())
            .collect()
    };
    let (_, _, body) = s.get("/list?status=up&limit=2").await;
    assert_eq!(ids(&body), ["p3", "p4"]);
    let cursor = body["next_cursor"].as_str().expect("more").to_string();
    let (_, _, body) = s.get(&format!("/list?status=up&limit=2&cursor={cursor}")).await;
    assert_eq!((ids(&body), body["next_cursor"].clone()), (vec!["p5".to_string(), "p6".into()], Value::Null));
    assert_eq!(ids(&s.get("/list?status=up&host=h2").await.2), ["p3", "p6"]);
    // A value that looks like an operator is compared literally.
    assert_eq!(ids(&s.get("/list?status=%24ne").await.2), Vec::<String>::new());

    for bad in [
        "/list?status[$ne]=x",
        "/list?status%5B%24ne%5D=x",
        "/list?$where=1",
        "/list?%24where=1",
        "/list?name=p1",
        "/list?host.x=1",
        "/list?_id=p1",
        "/list?status=up&status=down",
        "/list?limit=0",
        "/list?limit=lots",
        "/list?cursor=nothex",
    ] {
        let (status, headers, body) = s.get(bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(headers["content-type"], "application/problem+json", "{bad}");
        assert_eq!(body["allowed_filters"], json!(["status", "host"]), "{bad}: {body}");
        assert!(body["detail"].as_str().expect("detail").contains("status, host"), "{bad}: {body}");
    }
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_lists_exactly_the_declared_filters() {
    let Some(s) = server().await else { return };
    let (status, _, doc) = s.get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let list = &doc["paths"]["/processes/list"]["get"];
    let params: Vec<&str> = list["parameters"]
        .as_array()
        .expect("params")
        .iter()
        .map(|p| p["name"].as_str().expect("name"))
        .collect();
    assert_eq!(params, ["limit", "cursor", "status", "host"]);
    assert_eq!(list["parameters"][0]["schema"]["default"], 3);
    assert!(doc["paths"]["/processes/snap/{key}"]["get"]["responses"]["304"].is_object());
    assert!(doc["paths"]["/processes/snap/{key}"]["head"].is_object());
    s.finish().await;
}

#[test]
fn unusable_specs_are_refused_before_serving() {
    let bad_path = SPEC.replace("path: /processes", "path: \"/processes/{key}\"");
    let linted = prom_spec::lint_str("inline.yaml", &bad_path);
    assert!(!linted.has_errors(), "{}", linted.render());
    let error =
        SnapshotSpec::all(&prom_runtime::system::System::from_spec(&linted.spec)).expect_err("bad path");
    let prom_runtime::Error::InvalidSystem { component, reason } = &error else {
        panic!("unexpected {error:?}")
    };
    assert_eq!(component, "projector `processes`", "{error}");
    assert!(reason.contains("path"), "{error}");
}

#[test]
fn unusable_http_limits_are_invalid_settings() {
    let mut limits = snapshot::Limits::default();
    limits.max_connections = 0;
    let error = limits.check().expect_err("no connections");
    let prom_runtime::Error::InvalidSetting { what, reason } = &error else { panic!("unexpected {error:?}") };
    assert_eq!(what, "HTTP limits");
    assert!(reason.contains("give at least 1"), "{reason}");
}
