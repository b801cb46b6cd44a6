//! Metrics and `prom status` on real processes: `prom run --metrics` is scraped over HTTP while a
//! stand-in dead-letters a poison event and another consumer's group lags, `prom serve`'s
//! `/metrics` answers behind its tokens, and `prom status` reads the same store (read-only) as
//! JSON and as tables.
#![cfg(all(feature = "cli", unix))]

mod common;

use common::serve::Server;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const PROM: &str = env!("CARGO_BIN_EXE_prom");

/// `audit` is run as a stand-in (and has a DLQ); nobody runs `billing`, which starts from the
/// earliest event, so its lag is every event.
const ORDERS_V1: &str = "
topics:
  orders.placed:
    key: /order
    partitions: 2
    versions:
      1:
        schema: { type: object, required: [order], properties: { order: { type: string } } }
consumers:
  audit:
    topic: orders.placed
    retry: { max_attempts: 2, backoff: 10ms }
    dlq: true
  billing:
    topic: orders.placed
    from: earliest
";

/// v2 adds a version the v1 reader cannot know: its event is a poison event for `audit`.
const V2_EXTRA: &str = "
      2:
        schema:
          type: object
          required: [order, channel]
          properties: { order: { type: string }, channel: { type: string } }
        upcast:
          set_default: { channel: web }
";

fn prom(dir: &Path, args: &[&str]) -> Output {
    Command::new(PROM).current_dir(dir).env_remove("PROM_MONGO_URL").args(args).output().expect("run prom")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn publish(dir: &Path, specs: &str, payload: &str) {
    let out = prom(dir, &["publish", "--specs", specs, "orders.placed", payload]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

fn write_specs(dir: &Path) {
    std::fs::create_dir_all(dir.join("v1")).expect("mkdir");
    std::fs::create_dir_all(dir.join("v2")).expect("mkdir");
    std::fs::write(dir.join("v1/orders.yaml"), ORDERS_V1).expect("write");
    let v2 = ORDERS_V1.replace("\nconsumers:", &format!("{V2_EXTRA}consumers:"));
    std::fs::write(dir.join("v2/orders.yaml"), v2).expect("write");
}

/// The samples of a Prometheus text exposition: `name{labels}` → value.
fn samples(exposition: &str) -> BTreeMap<String, f64> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// The sum of every sample of `name` whose labels contain each of `labels` (`k="v"`).
fn total(samples: &BTreeMap<String, f64>, name: &str, labels: &[&str]) -> Option<f64> {
    let matching: Vec<f64> = samples
        .iter()
        .filter(|(series, _)| {
            series.split('{').next() == Some(name) && labels.iter().all(|l| series.contains(l))
        })
        .map(|(_, v)| *v)
        .collect();
    (!matching.is_empty()).then(|| matching.iter().sum())
}

/// Scrapes `url` until `done` holds on its samples (at most 30 s); returns the last scrape.
async fn scrape_until(
    client: &reqwest::Client,
    url: &str,
    done: impl Fn(&BTreeMap<String, f64>) -> bool,
) -> BTreeMap<String, f64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = client.get(url).send().await.expect("scrape");
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"].to_str().expect("ascii").to_owned();
        assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
        let body = response.text().await.expect("body");
        let parsed = samples(&body);
        if done(&parsed) {
            return parsed;
        }
        assert!(Instant::now() < deadline, "the metrics never got there; last scrape:\n{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn prom_run_metrics_count_dead_letters_and_follow_a_lagging_group_and_status_reads_the_same() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_specs(dir.path());
    publish(dir.path(), "v1", r#"{"order": "o1"}"#);
    publish(dir.path(), "v2", r#"{"order": "o2", "channel": "app"}"#);

    let store = dir.path().join(".prom");
    let specs = dir.path().join("v1");
    let (store_arg, specs_arg) = (store.to_str().expect("utf-8"), specs.to_str().expect("utf-8"));
    let mut run = Server::spawn(&[
        "--store",
        store_arg,
        "run",
        "--specs",
        specs_arg,
        "--stand-in",
        "audit",
        "--metrics",
        "127.0.0.1:0",
        "--metrics-interval",
        "100ms",
    ]);
    let url = run.wait_for_line("metrics at ");
    let client = reqwest::Client::new();
    let audit = ["consumer=\"audit\""];
    let billing_lag =
        |s: &BTreeMap<String, f64>| total(s, "prom_consumer_lag_events", &["consumer=\"billing\""]);
    let scraped = scrape_until(&client, &url, |s| {
        total(s, "prom_events_handled_total", &[audit[0], "outcome=\"dead_lettered\""]) == Some(1.0)
            && total(s, "prom_events_handled_total", &[audit[0], "outcome=\"ok\""]) == Some(1.0)
            && total(s, "prom_dlq_depth_events", &["topic=\"orders.placed\""]) == Some(1.0)
            && billing_lag(s) == Some(2.0)
            && total(s, "prom_consumer_lag_events", &audit) == Some(0.0)
    })
    .await;
    // Every outcome is registered up front, so a rate over it never starts from a missing series.
    assert_eq!(total(&scraped, "prom_events_handled_total", &[audit[0], "outcome=\"retried\""]), Some(0.0));
    assert_eq!(total(&scraped, "prom_events_handled_total", &[audit[0], "outcome=\"failed\""]), Some(0.0));
    // One series per declared partition, labelled by the spec's names only.
    assert!(
        scraped.contains_key(
            r#"prom_consumer_lag_events{consumer="billing",topic="orders.placed",partition="0"}"#
        )
    );
    assert!(
        scraped.contains_key(
            r#"prom_consumer_lag_events{consumer="billing",topic="orders.placed",partition="1"}"#
        )
    );
    assert!(total(&scraped, "prom_handler_duration_seconds_count", &audit).is_some_and(|n| n >= 1.0));
    assert!(
        total(&scraped, "prom_dlq_oldest_age_seconds", &["topic=\"orders.placed\""])
            .is_some_and(|a| a >= 0.0)
    );

    // Another process publishes: the lagging group's gauge follows, the stand-in handles it.
    publish(dir.path(), "v1", r#"{"order": "o3"}"#);
    scrape_until(&client, &url, |s| {
        billing_lag(s) == Some(3.0)
            && total(s, "prom_events_handled_total", &[audit[0], "outcome=\"ok\""]) == Some(2.0)
            && total(s, "prom_consumer_lag_events", &audit) == Some(0.0)
    })
    .await;
    let missing = client.get(url.replace("/metrics", "/nothing")).send().await.expect("get");
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.headers()["content-type"], "application/problem+json");

    // `prom status` reads the store while `prom run` holds it, and takes nothing.
    let out = prom(dir.path(), &["status", "--specs", "v1", "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let status: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(status["store"], "embedded");
    let topic = &status["topics"][0];
    assert_eq!(
        (topic["name"].as_str(), topic["head"].as_i64(), topic["partitions"].as_u64()),
        (Some("orders.placed"), Some(3), Some(2))
    );
    assert_eq!(topic["versions"], serde_json::json!([1]));
    // What is stored, not what is declared: the v1 spec does not know v2, yet an event is at v2.
    assert_eq!(
        topic["stored_versions"],
        serde_json::json!([{ "version": 1, "events": 2 }, { "version": 2, "events": 1 }]),
        "{topic}"
    );
    assert!(topic["stored_versions_newest_only"].is_null(), "counted from the index: {topic}");
    let heads: i64 = topic["partition_heads"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(Value::as_i64)
        .max()
        .unwrap_or(0);
    assert_eq!(heads, 3, "{topic}");
    let consumer = |name: &str| {
        status["consumers"]
            .as_array()
            .expect("array")
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .expect("consumer")
    };
    let (audit_status, billing) = (consumer("audit"), consumer("billing"));
    assert_eq!(billing["lag"], 3);
    assert_eq!(billing["members"], serde_json::json!([]));
    assert!(
        billing["partitions"].as_array().expect("array").iter().all(|p| p["cursor"].is_null()),
        "{billing}"
    );
    assert_eq!(audit_status["lag"], 0);
    let members = audit_status["members"].as_array().expect("array");
    assert_eq!(members.len(), 1, "the running stand-in is the group's live member: {audit_status}");
    assert_eq!(members[0]["partitions"], serde_json::json!([0, 1]));
    let dlq = &status["dlqs"][0];
    assert_eq!(
        (dlq["dlq_topic"].as_str(), dlq["depth"].as_u64(), dlq["replayed"].as_u64()),
        (Some("dlq.orders.placed"), Some(1), Some(0))
    );
    assert_eq!(dlq["most_common_error"]["count"], 1);
    assert!(dlq["most_common_error"]["error"].as_str().is_some_and(|e| e.contains("cannot decode")), "{dlq}");
    assert!(status["oplog_window_seconds"].is_null());
    let table = prom(dir.path(), &["status", "--specs", "v1"]);
    assert!(table.status.success(), "{}", text(&table.stderr));
    let table = text(&table.stdout);
    for heading in
        ["TOPICS", "CONSUMER GROUPS", "CONSUMER PARTITIONS", "DEAD LETTERS", "PROJECTORS", "CHANGEFEEDS"]
    {
        assert!(table.contains(heading), "{table}");
    }
    assert!(table.contains("dlq.orders.placed  1"), "{table}");
    assert!(table.contains("v1 ×2, v2 ×1"), "{table}");

    run.terminate().await;
    // `status` took nothing from `billing`: its events are all still there for its service.
    let group = prom(dir.path(), &["tail", "--specs", "v2", "orders.placed", "--group", "billing"]);
    assert!(group.status.success(), "{}", text(&group.stderr));
    assert_eq!(text(&group.stdout).lines().count(), 3, "{}", text(&group.stdout));
}

#[test]
fn prom_status_needs_an_existing_store_and_never_creates_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_specs(dir.path());
    let out = prom(dir.path(), &["status", "--specs", "v1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no embedded store at `.prom`"), "{}", text(&out.stderr));
    assert!(!dir.path().join(".prom").exists());
}

#[tokio::test]
async fn prom_serve_serves_metrics_on_its_port_behind_its_tokens() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_specs(dir.path());
    let tokens = r#"{ "tokens": [
        { "name": "ingest", "token": "ingest-token-0123456789", "actions": ["publish"], "topics": ["*"] },
        { "name": "scraper", "token": "scraper-token-0123456789", "actions": ["read"], "topics": [] }
    ] }"#;
    std::fs::write(dir.path().join("tokens.json"), tokens).expect("write");
    let store = dir.path().join(".prom");
    let tokens_path = dir.path().join("tokens.json");
    let mut server = Server::embedded(
        &store,
        &dir.path().join("v1"),
        &["--tokens", tokens_path.to_str().expect("utf-8"), "--metrics-interval", "100ms"],
    );
    let address = server.wait_for_line("listening on ");
    let client = reqwest::Client::new();
    let published = client
        .post(format!("http://{address}/topics/orders.placed/events"))
        .bearer_auth("ingest-token-0123456789")
        .header("content-type", "application/json")
        .body(r#"{"order": "o1"}"#)
        .send()
        .await
        .expect("publish");
    assert_eq!(published.status(), 201);
    let url = format!("http://{address}/metrics");
    let anonymous = client.get(&url).send().await.expect("get");
    assert_eq!(anonymous.status(), 401);
    let publisher = client.get(&url).bearer_auth("ingest-token-0123456789").send().await.expect("get");
    assert_eq!(publisher.status(), 403, "a token without `read` cannot scrape");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body = client.get(&url).bearer_auth("scraper-token-0123456789").send().await.expect("get");
        assert_eq!(body.status(), 200);
        let parsed = samples(&body.text().await.expect("body"));
        if total(&parsed, "prom_events_published_total", &["topic=\"orders.placed\""]) == Some(1.0)
            && total(&parsed, "prom_consumer_lag_events", &["consumer=\"billing\""]) == Some(1.0)
        {
            break;
        }
        assert!(Instant::now() < deadline, "no metrics: {parsed:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.terminate().await;
}

/// On a real mongod: `prom run --mongo --metrics` exports the oplog window and the changefeed's
/// resume token age next to the projector's gauges, and `prom status --mongo --format json`
/// reports the same store (skipped without PROM_MONGO_URL unless PROM_REQUIRE_MONGO=1).
#[cfg(feature = "mongo")]
#[tokio::test(flavor = "multi_thread")]
async fn prom_status_and_metrics_on_mongodb_report_the_projector_the_changefeed_and_the_oplog() {
    let Some(target) = common::mongo::Target::from_env() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let specs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs");
    let specs = specs.to_str().expect("utf-8");
    let url = target.url_with_database();
    let mut run = Server::spawn(&[
        "--mongo",
        &url,
        "run",
        "--specs",
        specs,
        "--metrics",
        "127.0.0.1:0",
        "--metrics-interval",
        "100ms",
    ]);
    let metrics_url = run.wait_for_line("metrics at ");
    let state = r#"{"processId": "h:1", "host": "h", "name": "api", "status": "running", "seq": 1}"#;
    let out = prom(dir.path(), &["--mongo", &url, "publish", "--specs", specs, "process.state", state]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let client = reqwest::Client::new();
    let scraped = scrape_until(&client, &metrics_url, |s| {
        total(s, "prom_projector_applied_total", &["projector=\"processes\"", "outcome=\"upserted\""])
            == Some(1.0)
            && total(s, "prom_projector_lag_events", &["projector=\"processes\""]) == Some(0.0)
            && total(s, "prom_mongo_oplog_window_seconds", &[]).is_some()
            && total(s, "prom_changefeed_resume_token_age_seconds", &["changefeed=\"processes-changed\""])
                .is_some()
    })
    .await;
    let window = total(&scraped, "prom_mongo_oplog_window_seconds", &[]).unwrap_or(-1.0);
    assert!(window >= 0.0, "{window}");

    let out = prom(dir.path(), &["--mongo", &url, "status", "--specs", specs, "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let status: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(status["store"], "mongodb");
    assert!(status["oplog_window_seconds"].as_f64().is_some_and(|w| w >= 0.0), "{status}");
    let topic =
        status["topics"].as_array().expect("topics").iter().find(|t| t["name"] == "process.state").cloned();
    let topic = topic.expect("process.state");
    assert_eq!((topic["head"].as_i64(), topic["partitions"].as_u64()), (Some(1), Some(4)));
    assert_eq!(topic["stored_versions"], serde_json::json!([{ "version": 1, "events": 1 }]), "{topic}");
    let projector = status["projectors"]
        .as_array()
        .expect("projectors")
        .iter()
        .find(|p| p["name"] == "processes")
        .cloned();
    let projector = projector.expect("processes");
    assert_eq!((projector["kind"].as_str(), projector["lag"].as_u64()), (Some("changelog"), Some(0)));
    assert!(
        projector["checkpoint"].as_array().expect("array").iter().any(|c| c.as_i64() == Some(1)),
        "{projector}"
    );
    let feed = &status["changefeeds"][0];
    assert_eq!(feed["name"], "processes-changed");
    assert!(feed["resume_token_age_seconds"].as_f64().is_some_and(|a| a >= 0.0), "{feed}");
    // Nobody runs hb-analyzers (`from: earliest`) and nothing was published to it: no lag, no members.
    let consumer = &status["consumers"][0];
    assert_eq!((consumer["name"].as_str(), consumer["lag"].as_u64()), (Some("hb-analyzers"), Some(0)));
    run.terminate().await;
    target.drop_database().await;
}
