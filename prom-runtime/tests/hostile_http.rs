//! `prom serve` against hostile and broken clients: a real binary on 127.0.0.1, real sockets, a
//! real mongod (a separate one, stopped with SIGSTOP, for the outage test).
#![cfg(all(feature = "mongo", unix))]

mod common;

use common::mongo::Target;
use common::serve::Server;
use reqwest::StatusCode;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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
    snapshot_api: { path: /processes, filters: [status] }
"#;

/// The anti-hang guard of every wait below; no test asserts how fast anything is.
const GUARD: Duration = Duration::from_secs(10);

fn write_spec(dir: &Path) -> PathBuf {
    let specs = dir.join("spec.yaml");
    std::fs::write(&specs, SPEC).expect("write spec");
    specs
}

/// Starts `prom serve` on the test database with `extra` flags, optionally under `ulimit -n`.
fn start(specs: &Path, url: &str, extra: &[&str], max_files: Option<u32>) -> (Server, String) {
    let specs = specs.to_str().expect("a UTF-8 path");
    let mut args = vec!["serve", "--specs", specs, "--mongo", url, "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let server = match max_files {
        None => Server::spawn(&args),
        Some(limit) => {
            // The shell lowers the limit, then becomes prom (same pid, so terminate() works).
            let script = format!("ulimit -n {limit} && exec \"$0\" \"$@\"");
            let mut command = Command::new("sh");
            command.arg("-c").arg(script).arg(env!("CARGO_BIN_EXE_prom")).args(&args);
            spawn_reading_stderr(command)
        }
    };
    let address = server.wait_for_line("listening on ");
    (server, address)
}

fn spawn_reading_stderr(mut command: Command) -> Server {
    let mut child = command
        .env_remove("PROM_MONGO_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start prom");
    let stderr = child.stderr.take().expect("stderr");
    let (send, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                return;
            }
        }
    });
    Server { child, lines }
}

fn client() -> reqwest::Client {
    // Fresh connections, no proxy: every request below must get its own socket accepted.
    reqwest::Client::builder().no_proxy().pool_max_idle_per_host(0).timeout(GUARD).build().expect("client")
}

/// GET `url`; returns the status, the content type, Retry-After and the body as text.
async fn get(url: &str) -> (StatusCode, String, Option<String>, String) {
    let response = client().get(url).send().await.unwrap_or_else(|e| panic!("{url} was not answered: {e}"));
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let (status, content_type, retry_after) =
        (response.status(), header("content-type").unwrap_or_default(), header("retry-after"));
    (status, content_type, retry_after, response.text().await.expect("body"))
}

/// Checks an RFC 9457 problem document of `status`; returns it.
fn assert_problem(status: StatusCode, content_type: &str, body: &str, expected: StatusCode) -> Value {
    assert_eq!(status, expected, "{body}");
    assert_eq!(content_type, "application/problem+json", "{body}");
    let problem: Value = serde_json::from_str(body).expect("a JSON problem document");
    assert_eq!(problem["status"], expected.as_u16(), "{problem}");
    for member in ["type", "title", "detail"] {
        assert!(problem[member].as_str().is_some_and(|s| !s.is_empty()), "no `{member}`: {problem}");
    }
    problem
}

/// Opens `n` connections that never send a byte.
async fn idle_connections(address: &str, n: usize) -> Vec<TcpStream> {
    let mut idle = Vec::with_capacity(n);
    for _ in 0..n {
        idle.push(TcpStream::connect(address).await.expect("connect"));
    }
    idle
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_beyond_the_limit_do_not_stop_a_fresh_request() {
    let Some(target) = Target::from_env() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let specs = write_spec(dir.path());
    let (mut server, address) =
        start(&specs, &target.url_with_database(), &["--max-connections", "32"], None);
    let idle = idle_connections(&address, 100).await;
    // The server is full of silent connections; the quietest make room for this one.
    let (status, _, _, body) = get(&format!("http://{address}/processes/list")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, _, body) = get(&format!("http://{address}/processes/list?status=up")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    drop(idle);
    server.terminate().await;
    target.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_out_of_file_descriptors_does_not_stop_the_server() {
    let Some(target) = Target::from_env() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let specs = write_spec(dir.path());
    // A connection limit far above the descriptor limit: accept itself fails with EMFILE.
    let flags = ["--max-connections", "5000"];
    let (mut server, address) = start(&specs, &target.url_with_database(), &flags, Some(128));
    let idle = idle_connections(&address, 300).await;
    let (status, _, _, body) = get(&format!("http://{address}/processes/openapi.json")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, _, body) = get(&format!("http://{address}/processes/openapi.json")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    drop(idle);
    let said = server.lines_until("prom serve: cannot accept connections");
    assert!(said.last().is_some_and(|l| l.contains("ulimit -n")), "{said:#?}");
    server.terminate().await;
    target.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_connection_is_closed_after_the_header_timeout() {
    let Some(target) = Target::from_env() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let specs = write_spec(dir.path());
    let (mut server, address) = start(&specs, &target.url_with_database(), &["--header-timeout", "2s"], None);
    let mut slow = TcpStream::connect(&address).await.expect("connect");
    slow.write_all(b"GET /processes/list HTTP/1.1\r\nHost: x\r\n").await.expect("first line");
    // One header line every 500 ms (never idle) and never the blank line that ends the head.
    let started = Instant::now();
    let closed = loop {
        assert!(started.elapsed() < GUARD, "the slow head was not cut off");
        tokio::time::sleep(Duration::from_millis(500)).await;
        if slow.write_all(b"X-Slow: 1\r\n").await.is_err() {
            break true;
        }
        let mut byte = [0u8; 1];
        match tokio::time::timeout(Duration::from_millis(10), slow.read(&mut byte)).await {
            Ok(Ok(0) | Err(_)) => break true,
            Ok(Ok(_)) => panic!("the server answered a request whose head never ended"),
            Err(_) => {}
        }
    };
    assert!(closed);
    // Everyone else is still served.
    let (status, _, _, body) = get(&format!("http://{address}/processes/list")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    server.terminate().await;
    target.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_targets_and_unknown_routes_get_problem_documents() {
    let Some(target) = Target::from_env() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let specs = write_spec(dir.path());
    let (mut server, address) = start(&specs, &target.url_with_database(), &[], None);
    let base = format!("http://{address}/processes");
    for bad in ["/list?status=%ff", "/list?status=%zz", "/list?%ff=1", "/snap/%ff", "/snap/%c3"] {
        let (status, content_type, _, body) = get(&format!("{base}{bad}")).await;
        let problem = assert_problem(status, &content_type, &body, StatusCode::BAD_REQUEST);
        assert!(
            problem["detail"].as_str().is_some_and(|d| d.contains("UTF-8") || d.contains("percent")),
            "{bad}: {problem}"
        );
    }
    let (status, content_type, _, body) = get(&format!("http://{address}/nowhere")).await;
    assert_problem(status, &content_type, &body, StatusCode::NOT_FOUND);
    let (status, content_type, _, body) = get(&format!("{base}/snap/nobody")).await;
    assert_problem(status, &content_type, &body, StatusCode::NOT_FOUND);
    let response = client().delete(format!("{base}/snap/p1")).send().await.expect("DELETE answered");
    let (status, content_type) = (response.status(), response.headers()["content-type"].clone());
    let body = response.text().await.expect("body");
    assert_problem(status, content_type.to_str().expect("text"), &body, StatusCode::METHOD_NOT_ALLOWED);
    // Correctly encoded text still works.
    let (status, _, _, body) = get(&format!("{base}/list?status=%C3%A9t%C3%A9")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    server.terminate().await;
    target.drop_database().await;
}

/// A mongod of this test alone (so stopping it affects no other test), stopped on drop.
struct OwnMongo {
    state: tempfile::TempDir,
    url: String,
    pid: String,
}

impl OwnMongo {
    fn start() -> OwnMongo {
        let state = tempfile::tempdir().expect("state dir");
        let output = Command::new(mongo_script())
            .arg("start")
            .env("PROM_MONGO_STATE", state.path())
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/mongo.sh");
        assert!(output.status.success(), "scripts/mongo.sh start failed");
        let url = String::from_utf8(output.stdout).expect("UTF-8 URL").trim().to_string();
        let pid = std::fs::read_to_string(state.path().join("pid")).expect("pid file").trim().to_string();
        OwnMongo { state, url, pid }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([signal, &self.pid]).status().expect("kill");
        assert!(status.success(), "kill {signal} {}", self.pid);
    }
}

impl Drop for OwnMongo {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-CONT", &self.pid]).status();
        let _ = Command::new(mongo_script()).arg("stop").env("PROM_MONGO_STATE", self.state.path()).status();
    }
}

fn mongo_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/mongo.sh")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_mongod_gets_a_fast_short_503_without_driver_internals() {
    // Runs where the other MongoDB tests run, on a server of its own.
    if Target::from_env().is_none() {
        return;
    }
    let mongo = OwnMongo::start();
    let port = mongo.url.split(':').nth(2).and_then(|rest| rest.split('/').next()).expect("port").to_string();
    let url = mongo.url.replace("/?", "/prom_hostile?");
    let dir = tempfile::tempdir().expect("tempdir");
    let specs = write_spec(dir.path());
    let (mut server, address) = start(&specs, &url, &["--store-timeout", "1s"], None);
    let list = format!("http://{address}/processes/list");
    let (status, _, _, body) = get(&list).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    mongo.signal("-STOP");
    for path in ["/processes/list", "/processes/snap/p1"] {
        let (status, content_type, retry_after, body) = get(&format!("http://{address}{path}")).await;
        let problem = assert_problem(status, &content_type, &body, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            retry_after.is_some_and(|s| s.parse::<u64>().is_ok_and(|s| s >= 1)),
            "{path}: no Retry-After"
        );
        for secret in
            [port.as_str(), "127.0.0.1", "rs0", "topology", "Topology", "Label", "ServerSelection", "Pool"]
        {
            assert!(!body.contains(secret), "{path}: the answer shows `{secret}`: {problem}");
        }
    }
    mongo.signal("-CONT");
    // The outage is reported on the server's side, and serving resumes.
    let said = server.lines_until("prom serve: snapshot API `processes`");
    assert!(said.last().is_some_and(|l| l.contains("processes")), "{said:#?}");
    let started = Instant::now();
    loop {
        let (status, _, _, _) = get(&list).await;
        if status == StatusCode::OK {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "serving did not resume after SIGCONT");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.terminate().await;
}
