//! The snapshot API under a flood: N clients connect to a real `prom serve` on loopback at once,
//! each sending one `GET /processes/snap/{key}` on its own connection; printed next to a
//! baseline measured in the same run (the same requests from 16 clients).
//!
//! `PROM_MONGO_URL=... cargo bench -p prom-runtime --features mongo --bench http [-- flood]`;
//! `PROM_FLOOD_CLIENTS` (default 10000) and `PROM_FLOOD_MAX_CONNECTIONS` (default: prom serve's
//! own default) change the flood. It prints p50/p99 latency of each side, the answers by status,
//! the ratio of the p50s, and the server's peak RSS (VmHWM) after the baseline and after the flood.
//! The bench process needs a descriptor per client (`ulimit -n` above N).

use prom_runtime::bus::mongo::MongoBus;
use prom_runtime::bus::mongo::mongodb::bson::doc;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
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

/// Distinct keys the requests spread over.
const KEYS: usize = 100;
/// Clients of the baseline, each sending its share of the requests one after another.
const BASELINE_CLIENTS: usize = 16;
/// Requests of the baseline.
const BASELINE_REQUESTS: usize = 2000;
/// The longest one request may take before it counts as unanswered.
const REQUEST_GUARD: Duration = Duration::from_secs(60);

fn main() {
    let Ok(url) = std::env::var("PROM_MONGO_URL") else {
        println!(
            "http benchmarks skipped: PROM_MONGO_URL is not set.\n\
             export PROM_MONGO_STATE=$(mktemp -d); export PROM_MONGO_URL=$(scripts/mongo.sh start)\n\
             cargo bench -p prom-runtime --features mongo --bench http; scripts/mongo.sh stop"
        );
        return;
    };
    let sections: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    if !(sections.is_empty() || sections.iter().any(|s| s == "flood")) {
        return;
    }
    let clients = env_number("PROM_FLOOD_CLIENTS").unwrap_or(10_000);
    let max_connections = env_number("PROM_FLOOD_MAX_CONNECTIONS");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    runtime.block_on(flood(&url, clients, max_connections));
}

fn env_number(name: &str) -> Option<usize> {
    std::env::var(name).ok().map(|v| v.parse().unwrap_or_else(|_| panic!("{name}={v} is not a number")))
}

/// The test database's URL (the database name in the path, as `prom --mongo` takes it).
fn with_database(url: &str, database: &str) -> String {
    match url.trim().split_once("/?") {
        Some((hosts, query)) => format!("{hosts}/{database}?{query}"),
        None => format!("{}/{database}", url.trim().trim_end_matches('/')),
    }
}

async fn flood(url: &str, clients: usize, max_connections: Option<usize>) {
    let database = format!("prom_bench_http_{}", std::process::id());
    let bus = MongoBus::open_database(url, Some(&database)).await.expect("open MongoDB");
    let docs: Vec<_> = (0..KEYS).map(|i| doc! { "_id": format!("p{i}"), "seq": 1, "status": "up" }).collect();
    bus.database().collection("processes").insert_many(docs).await.expect("seed the collection");

    let dir = tempfile::tempdir().expect("tempdir");
    let specs = dir.path().join("spec.yaml");
    std::fs::write(&specs, SPEC).expect("write the spec");
    let limit = max_connections.map(|n| n.to_string());
    let mut args = vec![
        "serve".to_string(),
        "--specs".into(),
        specs.display().to_string(),
        "--mongo".into(),
        with_database(url, &database),
        "--listen".into(),
        "127.0.0.1:0".into(),
    ];
    if let Some(limit) = &limit {
        args.extend(["--max-connections".into(), limit.clone()]);
    }
    let (mut server, address) = start_server(&args);
    let pid = server.id();

    // Warm-up (untimed): the driver's pool and the server's first connections.
    run_clients(&address, BASELINE_CLIENTS, BASELINE_REQUESTS / 4).await;
    let baseline = run_clients(&address, BASELINE_CLIENTS, BASELINE_REQUESTS).await;
    let rss_baseline = peak_rss_kib(pid);
    let flood = run_clients(&address, clients, clients).await;
    let rss_flood = peak_rss_kib(pid);

    let limit = limit.unwrap_or_else(|| "default (1024)".into());
    println!(
        "snapshot API flood (GET /processes/snap/{{key}} over {KEYS} keys, one connection per request, --max-connections {limit})"
    );
    baseline.print(&format!("baseline: {BASELINE_CLIENTS} clients, {BASELINE_REQUESTS} requests"));
    flood.print(&format!("flood: {clients} clients at once, one request each"));
    println!(
        "  p50 flood / p50 baseline: {:.1}x; p99 flood / p99 baseline: {:.1}x",
        ratio(flood.percentile(0.5), baseline.percentile(0.5)),
        ratio(flood.percentile(0.99), baseline.percentile(0.99)),
    );
    println!(
        "  server peak RSS (VmHWM): {} after the baseline, {} after the flood",
        show_kib(rss_baseline),
        show_kib(rss_flood)
    );

    let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    let _ = server.wait();
    bus.database().drop().await.expect("drop the bench database");
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-9)
}

fn show_kib(kib: Option<u64>) -> String {
    kib.map_or_else(|| "unknown".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}

/// Starts `prom serve` and waits for its address; stderr keeps being drained.
fn start_server(args: &[String]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_prom"))
        .args(args)
        .env_remove("PROM_MONGO_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start prom serve");
    let stderr = child.stderr.take().expect("stderr");
    let (send, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !sent && let Some(address) = line.strip_prefix("listening on ") {
                let _ = send.send(address.to_string());
                sent = true;
            }
        }
    });
    let address = lines.recv_timeout(Duration::from_secs(30)).expect("prom serve did not start listening");
    (child, address)
}

/// The peak resident set of `pid` in KiB (Linux `/proc`).
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Latencies and answers of one side.
struct Outcome {
    latencies: Vec<Duration>,
    statuses: BTreeMap<String, usize>,
    wall: Duration,
}

impl Outcome {
    fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let index = ((self.latencies.len() - 1) as f64 * p).round() as usize;
        self.latencies[index.min(self.latencies.len() - 1)]
    }

    fn print(&self, what: &str) {
        let answers: Vec<String> = self.statuses.iter().map(|(s, n)| format!("{s}: {n}")).collect();
        println!(
            "  {what:<48}: p50 {:>8.1} ms  p99 {:>8.1} ms  wall {:>6.2} s  ({})",
            self.percentile(0.5).as_secs_f64() * 1e3,
            self.percentile(0.99).as_secs_f64() * 1e3,
            self.wall.as_secs_f64(),
            answers.join(", ")
        );
    }
}

/// `clients` tasks share `requests` requests; each request opens its own connection.
async fn run_clients(address: &str, clients: usize, requests: usize) -> Outcome {
    let address: Arc<str> = address.into();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..clients {
        let address = Arc::clone(&address);
        let share = requests / clients + usize::from(client < requests % clients);
        tasks.spawn(async move {
            let mut results = Vec::with_capacity(share);
            for n in 0..share {
                let key = (client + n * clients) % KEYS;
                results.push(one_request(&address, key).await);
            }
            results
        });
    }
    let mut latencies = Vec::with_capacity(requests);
    let mut statuses = BTreeMap::new();
    while let Some(done) = tasks.join_next().await {
        for (latency, status) in done.expect("client task") {
            latencies.push(latency);
            *statuses.entry(status).or_insert(0) += 1;
        }
    }
    latencies.sort();
    Outcome { latencies, statuses, wall: started.elapsed() }
}

/// One request on a fresh connection: its latency (connect to last byte) and its status line's
/// code, or what went wrong.
async fn one_request(address: &str, key: usize) -> (Duration, String) {
    let started = Instant::now();
    let exchange = async {
        let mut stream = TcpStream::connect(address).await?;
        let request =
            format!("GET /processes/snap/p{key} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        std::io::Result::Ok(answer)
    };
    let status = match tokio::time::timeout(REQUEST_GUARD, exchange).await {
        Ok(Ok(answer)) => {
            let text = String::from_utf8_lossy(&answer[..answer.len().min(12)]).to_string();
            text.split_whitespace().nth(1).map_or_else(|| "no answer".to_string(), str::to_string)
        }
        Ok(Err(e)) => format!("error ({})", e.kind()),
        Err(_) => "unanswered".to_string(),
    };
    (started.elapsed(), status)
}
