//! Time travel over HTTP, on the embedded store and on MongoDB (when `PROM_MONGO_URL` names
//! one): `GET {path}/snap/{key}?at=T` answers the document as it was at T with an ETag, 404 when
//! the key had none then, and a 400 problem document naming `at` and its format for a bad time.

mod common;

use common::Store;
use prom_runtime::record::{SCHEMA_VERSION, format_ts};
use prom_runtime::snapshot::{self, ApiOptions, SnapshotSpec};
use prom_runtime::system::System;
use prom_runtime::{AnyBus, EventBus, NewEvent, Registry};
use serde_json::{Value, json};
use std::sync::Arc;

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
            _deleted: { type: boolean }
projectors:
  processes:
    kind: changelog
    topic: process.state
    collection: processes
    version: /seq
    snapshot_api: { path: /processes }
"#;

const T0: i64 = 1_800_000_000_000;

async fn json(response: reqwest::Response) -> Value {
    serde_json::from_str(&response.text().await.expect("body")).expect("a JSON body")
}

fn stores() -> Vec<Store> {
    #[allow(unused_mut)]
    let mut stores = vec![Store::sqlite()];
    #[cfg(feature = "mongo")]
    stores.extend(Store::mongo());
    stores
}

/// The snapshot API of `bus` on an ephemeral port, with time travel; returns its base URL.
async fn serve(
    bus: &AnyBus,
    system: &System,
    registry: &Arc<Registry>,
) -> (String, tokio::sync::oneshot::Sender<()>) {
    let apis = SnapshotSpec::all(system).expect("apis");
    let travel = snapshot::time_travel(bus, system, registry, &apis).await.expect("time travel");
    let options = ApiOptions::default().with_time_travel(travel);
    let router = match bus {
        AnyBus::Sqlite(sqlite) => {
            let read = Arc::new(snapshot::read::SqliteRead::new(sqlite.clone()));
            snapshot::router_on(read, &apis, &options).expect("router")
        }
        #[cfg(feature = "mongo")]
        AnyBus::Mongo(mongo) => snapshot::router_with(mongo.database(), &apis, &options).expect("router"),
        other => panic!("no snapshot API on {other:?}"),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(snapshot::serve(listener, router, async move {
        let _ = stopped.await;
    }));
    (format!("http://{address}"), stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snap_at_a_time_answers_the_state_then() {
    let linted = prom_spec::lint_str("inline.yaml", SPEC);
    assert!(!linted.has_errors(), "{}", linted.render());
    let registry = Arc::new(Registry::from_spec(&linted.spec).expect("registry"));
    let system = System::from_spec(&linted.spec);
    let client = reqwest::Client::builder().no_proxy().build().expect("client");
    for store in stores() {
        let name = store.name();
        let bus = store.handle();
        for (at, payload) in [
            (1000, json!({ "processId": "p1", "seq": 1, "status": "up" })),
            (2000, json!({ "processId": "p1", "seq": 2, "status": "down" })),
            (3000, json!({ "processId": "p1", "seq": 3, "_deleted": true })),
        ] {
            let mut event =
                NewEvent::new("process.state", payload).keyed("p1", 0).header(SCHEMA_VERSION, "1");
            event.ts = T0 + at;
            bus.publish(vec![event]).await.expect("publish");
        }
        let (base, stop) = serve(&bus, &system, &registry).await;
        let get = |query: String| client.get(format!("{base}/processes/snap/p1?{query}")).send();

        let response = get(format!("at={}", format_ts(T0 + 1500))).await.expect("get");
        assert_eq!(response.status(), 200, "{name}");
        let etag = response.headers()["etag"].to_str().expect("etag").to_owned();
        let body: Value = json(response).await;
        assert_eq!(body, json!({ "processId": "p1", "seq": 1, "status": "up", "_id": "p1" }), "{name}");
        // The same state answers 304 to its ETag.
        let cached = client
            .get(format!("{base}/processes/snap/p1?at={}", T0 + 1999))
            .header("if-none-match", &etag)
            .send()
            .await
            .expect("get");
        assert_eq!(cached.status(), 304, "{name}");
        let later: Value = json(get(format!("at={}", T0 + 2500)).await.expect("get")).await;
        assert_eq!(later["status"], "down", "{name}");

        for at in [T0 + 500, T0 + 3500] {
            let response = get(format!("at={at}")).await.expect("get");
            assert_eq!(response.status(), 404, "{name}: at {at}");
            let problem: Value = json(response).await;
            assert!(problem["detail"].as_str().unwrap_or_default().contains("at 2027"), "{problem}");
        }
        for query in ["at=yesterday", "at=1&at=2", "when=1"] {
            let response = get(query.to_owned()).await.expect("get");
            assert_eq!(response.status(), 400, "{name}: {query}");
            assert_eq!(response.headers()["content-type"], "application/problem+json");
            let problem: Value = json(response).await;
            assert_eq!(problem["parameter"], "at", "{problem}");
            assert!(problem["expected"].as_str().unwrap_or_default().contains("RFC 3339"), "{problem}");
        }
        // Without `at`: the projection as it is now (no projector ran here, so none).
        assert_eq!(client.get(format!("{base}/processes/snap/p1")).send().await.expect("get").status(), 404);
        let openapi =
            json(client.get(format!("{base}/processes/openapi.json")).send().await.expect("get")).await;
        let params = &openapi["paths"]["/processes/snap/{key}"]["get"]["parameters"];
        assert!(params.as_array().is_some_and(|p| p.iter().any(|p| p["name"] == "at")), "{params}");
        let _ = stop.send(());
        store.cleanup().await;
    }
}
