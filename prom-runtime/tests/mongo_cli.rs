//! The real `prom` binary on MongoDB: `--mongo URL` and `PROM_MONGO_URL` pick it over the
//! embedded store, for every command.
#![cfg(feature = "mongo")]

mod common;

use common::mongo::Target;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const PROM: &str = env!("CARGO_BIN_EXE_prom");
const HEARTBEAT: &str =
    r#"{"pid": 7, "name": "api", "host": "h1", "cpu_pct": 0.5, "mem_mib": 12, "region": "eu"}"#;

fn specs() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../specs").to_string_lossy().into_owned()
}

/// The server's URL with the test's own database in its path.
fn url_with_database(target: &Target) -> String {
    let url = target.url.trim();
    match url.split_once("/?") {
        Some((hosts, query)) => format!("{hosts}/{}?{query}", target.database),
        None if !url.contains('?') => format!("{}/{}", url.trim_end_matches('/'), target.database),
        None => panic!("write PROM_MONGO_URL as mongodb://HOST:PORT/?OPTIONS for this test: {url}"),
    }
}

fn prom(dir: &Path, env_url: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(PROM);
    command.current_dir(dir).env_remove("PROM_MONGO_URL").args(args);
    if let Some(url) = env_url {
        command.env("PROM_MONGO_URL", url);
    }
    command.output().expect("run prom")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_and_tail_go_to_mongodb_with_the_flag_or_the_environment() {
    let Some(target) = Target::from_env() else { return };
    let url = url_with_database(&target);
    let dir = tempfile::tempdir().expect("tempdir");
    let specs = specs();
    let out = prom(
        dir.path(),
        None,
        &["--mongo", &url, "publish", "--specs", &specs, "heartbeat.received", HEARTBEAT],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_string();
    assert!(!dir.path().join(".prom").exists(), "nothing was written to the embedded store");

    let out = prom(dir.path(), Some(&url), &["tail", "--specs", &specs, "heartbeat.received"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let events: Vec<serde_json::Value> =
        text(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["id"], id.as_str());

    let bus = target.open_async().await;
    use prom_runtime::EventBus;
    assert_eq!(bus.head("heartbeat.received").await.expect("head"), 1);
    assert_eq!(bus.head("heartbeat.received.v3").await.expect("head"), 1, "dual-written atomically");

    let out = prom(dir.path(), Some(&url), &["dlq", "list", "--specs", &specs, "heartbeat.received"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    target.drop_database().await;
}

#[test]
fn an_unreachable_server_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300";
    let out = prom(dir.path(), None, &["--mongo", url, "tail", "--specs", &specs(), "heartbeat.received"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("cannot reach MongoDB") && stderr.contains("scripts/mongo.sh start"), "{stderr}");
}
