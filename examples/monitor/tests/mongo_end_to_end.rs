//! Runs the example binary on MongoDB, twice, against the real mongod of `PROM_MONGO_URL`: the
//! declared consumer, the changelog projector, the transactional projector and the changefeed
//! that `wire()` starts all take part, and the second run resumes after the first.

use prom_runtime::bus::mongo::mongodb::Client;
use std::process::Command;

/// `PROM_MONGO_URL` with a fresh database name in its path.
fn database_url() -> Option<(String, String)> {
    let Ok(url) = std::env::var("PROM_MONGO_URL") else {
        assert!(
            std::env::var_os("PROM_REQUIRE_MONGO").is_none(),
            "PROM_REQUIRE_MONGO is set but PROM_MONGO_URL is not: start mongod with scripts/mongo.sh"
        );
        eprintln!("skipped: PROM_MONGO_URL is not set (scripts/mongo.sh starts a server)");
        return None;
    };
    let name = format!("prom_monitor_{}", std::process::id());
    let (server, options) = url.split_once('?').unwrap_or((&url, ""));
    let server = server.trim_end_matches('/');
    let server =
        server.rsplit_once('/').filter(|(scheme, _)| !scheme.ends_with('/')).map_or(server, |(s, _)| s);
    Some((format!("{server}/{name}?{options}"), name))
}

fn run(url: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_prom-example-monitor"))
        .args(["--mongo", url])
        .output()
        .expect("the example runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

#[tokio::test(flavor = "multi_thread")]
async fn the_whole_declared_pipeline_runs_on_mongodb_and_resumes() {
    let Some((url, name)) = database_url() else { return };
    let first = run(&url);
    assert!(first.contains("hb-analyzers: heartbeat.received at offset 1 -> c-1:9 is running"), "{first}");
    assert!(first.contains(r#"{ "_id": "c-1:9", "status": "running", "seq": 1 }"#), "projected: {first}");
    assert!(first.contains(r#"{ "_id": "c-1", "changes": 1, "processes": { "cache": 1 } }"#), "{first}");
    let second = run(&url);
    assert!(second.contains("at offset 2 -> c-1:9"), "{second}");
    assert!(!second.contains("at offset 1 "), "the consumer group resumed: {second}");
    assert!(second.contains(r#"{ "_id": "c-1:9", "status": "running", "seq": 2 }"#), "{second}");
    // Each state change counted exactly once across both runs.
    assert!(second.contains(r#"{ "_id": "c-1", "changes": 2, "processes": { "cache": 1 } }"#), "{second}");
    let client = Client::with_uri_str(&url).await.expect("client");
    client.database(&name).drop().await.expect("drop the test database");
}
