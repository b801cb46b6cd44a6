//! `prom serve`: the HTTP gateway on any store; on MongoDB also the declared changelog
//! projectors, their snapshot APIs and the declared changefeeds, until Ctrl-C or SIGTERM.

use super::{Failure, Outcome, SpecArgs};
use crate::bus::{AnyBus, SqliteBus};
use crate::error::Result;
use crate::gateway::{self, GatewayOptions, Tokens};
use crate::publish::Producer;
use crate::registry::Registry;
use crate::server::{self, Limits, Reporter};
use crate::system::System;
use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Arguments of `prom serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    spec: SpecArgs,
    /// Address the server listens on (port 0: any free port, printed on stderr).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: String,
    /// Connections served at once; at the limit the quietest idle one is closed to make room,
    /// and when all are busy a new one gets 503. Keep it below `ulimit -n`.
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
    /// How long a request head may take to arrive, from its first byte (e.g. 10s, 500ms).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration)]
    header_timeout: Duration,
    /// How long a connection may stay silent while no request runs on it.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = duration)]
    idle_timeout: Duration,
    /// How long a request may take before it is answered with 503.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = duration)]
    request_timeout: Duration,
    /// The tokens file (JSON; see the README's gateway section): every request then needs
    /// `Authorization: Bearer TOKEN` scoped to its action and topic. Default: the JSON in
    /// PROM_API_TOKENS, if set. Without tokens the server listens on loopback only.
    #[arg(long, value_name = "FILE")]
    tokens: Option<std::path::PathBuf>,
    /// Serve a non-loopback --listen address without tokens: anyone who can reach it may
    /// publish and subscribe.
    #[arg(long)]
    insecure_no_auth: bool,
    /// The largest body `POST /topics/{topic}/events` takes, in bytes (413 beyond).
    #[arg(long, value_name = "BYTES", default_value_t = 1024 * 1024, value_parser = clap::value_parser!(u64).range(1..=1024 * 1024 * 1024))]
    max_body: u64,
    /// How long a snapshot read waits for MongoDB before answering 503 (with --mongo).
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = duration)]
    store_timeout: Duration,
    /// How often the gauges of `GET /metrics` that need store queries (lag, DLQ depth and age,
    /// resume token age, oplog window) are refreshed.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = duration)]
    metrics_interval: Duration,
}

/// The snapshot APIs' router and the `(projector, path)` of each API it serves.
type Snapshots = (Router, Vec<(String, String)>);

/// Connections the kernel may queue for `accept` (it caps this at `net.core.somaxconn`); tokio's
/// default, 1024, makes a burst of connects wait for SYN retransmits (1 s, 3 s, ...) instead.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds `listen` with [`LISTEN_BACKLOG`].
pub(super) async fn bind(listen: &str) -> Result<TcpListener, Failure> {
    let fail = |e: std::io::Error| Failure::Runtime(format!("cannot listen on `{listen}`: {e}"));
    let address = tokio::net::lookup_host(listen).await.map_err(fail)?.next().ok_or_else(|| {
        Failure::Runtime(format!("cannot listen on `{listen}`: it names no address (write HOST:PORT)"))
    })?;
    let socket = if address.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }.map_err(fail)?;
    // As `TcpListener::bind` does: a restarted server can take its port back at once.
    socket.set_reuseaddr(true).map_err(fail)?;
    socket.bind(address).map_err(fail)?;
    socket.listen(LISTEN_BACKLOG).map_err(fail)
}

/// Parses a flag's duration like the spec's (`<integer><ms|s|m|h|d>`), above zero.
pub(super) fn duration(text: &str) -> Result<Duration, String> {
    match prom_spec::spec::parse_duration(text) {
        Some(d) if !d.is_zero() => Ok(d),
        Some(_) => Err("must be above zero".into()),
        None => Err("write an integer and a unit: ms, s, m, h or d (e.g. `500ms`, `10s`)".into()),
    }
}

/// Serves until Ctrl-C (or SIGTERM), running the projectors and changefeeds on MongoDB; on the
/// way out every task finishes its current batch or change and stops cleanly.
pub async fn run(target: &super::Target, args: Args) -> Outcome {
    let (spec, registry) = super::load(&args.spec)?;
    // Before anything registers a metric handle: handles bind to the recorder installed then.
    let exporter = crate::metrics::prometheus::install().ok_or_else(|| {
        Failure::Runtime("cannot install the Prometheus recorder: another one is installed".into())
    })?;
    let limits = Limits {
        max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
        header_timeout: args.header_timeout,
        idle_timeout: args.idle_timeout,
        request_timeout: args.request_timeout,
    };
    limits.check()?;
    // What clients must not see (store errors, panics) is reported here, on stderr.
    let reporter = Reporter::new(|message| eprintln!("prom serve: {message}"));
    let interrupted = super::interrupted();
    let (stop, stopped) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let tokens = tokens(&args)?;
    // Checked before anything starts: an exposed server without tokens never serves a request.
    let listener = bind(&args.listen).await?;
    let address = listener.local_addr().map_err(|e| Failure::Runtime(format!("no local address: {e}")))?;
    check_exposure(address, tokens.is_some(), args.insecure_no_auth)?;
    let (bus, snapshots) = match &target.mongo {
        Some(url) => {
            on_mongo(url, &spec, Arc::clone(&registry), &args, &reporter, &mut tasks, &stopped).await?
        }
        None => on_embedded(target, &spec, Arc::clone(&registry), &args, &reporter, &mut tasks, &stopped)?,
    };
    let (snapshots, served) = snapshots.unzip();
    // `/metrics` sits with the snapshot APIs, so with tokens it needs one allowing `read`.
    let metrics = crate::metrics::prometheus::router(exporter);
    let snapshots = Some(match snapshots {
        Some(snapshots) => snapshots.merge(metrics),
        None => metrics,
    });
    let (sampled, system, every) = (bus.clone(), spec.clone(), args.metrics_interval);
    let until = super::stopped(&stopped);
    tasks.spawn(async move {
        crate::metrics::run_sampler(sampled, system, every, until).await;
        Ok(())
    });
    let options = GatewayOptions {
        max_body_bytes: usize::try_from(args.max_body).unwrap_or(usize::MAX),
        // Below the idle timeout, so a quiet stream is never closed as idle.
        keep_alive: (limits.idle_timeout / 3).min(GatewayOptions::default().keep_alive),
        tokens: tokens.clone().map(Arc::new),
        reporter: reporter.clone(),
        ..GatewayOptions::default()
    };
    let router = gateway::router(Producer::new(bus, registry), options, stopped.clone(), snapshots);
    eprintln!(
        "gateway at http://{address}/topics/{{topic}}/events (POST publishes, GET subscribes: SSE or WebSocket)"
    );
    eprintln!("metrics at http://{address}/metrics");
    for (projector, path) in served.iter().flatten() {
        eprintln!("serving `{projector}` at http://{address}{path}/ (snap, list, openapi.json)");
    }
    // Tools and tests wait for this line before sending requests.
    eprintln!("listening on {address}");
    tasks.spawn(server::serve(listener, router, limits, reporter, super::stopped(&stopped)));
    super::supervise(&mut tasks, interrupted, &stop, super::NO_PROGRESS).await
}

/// The tokens of `--tokens FILE`, else of PROM_API_TOKENS; `None` when neither is given.
fn tokens(args: &Args) -> std::result::Result<Option<Tokens>, Failure> {
    let (source, text) = match &args.tokens {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Failure::Usage(format!("--tokens {}: cannot read it: {e}", path.display())))?;
            (path.display().to_string(), text)
        }
        None => match std::env::var("PROM_API_TOKENS") {
            Ok(text) if !text.trim().is_empty() => ("PROM_API_TOKENS".to_string(), text),
            _ => return Ok(None),
        },
    };
    Tokens::parse(&source, &text).map(Some).map_err(|e| Failure::Usage(e.to_string()))
}

/// Refuses to serve a non-loopback address without tokens, unless told to; says where it
/// serves without them.
fn check_exposure(address: SocketAddr, has_tokens: bool, insecure: bool) -> std::result::Result<(), Failure> {
    if has_tokens {
        return Ok(());
    }
    if address.ip().is_loopback() {
        eprintln!(
            "no tokens given: serving without authentication on loopback ({address}) only; give --tokens FILE \
             (or PROM_API_TOKENS) to serve other hosts"
        );
        return Ok(());
    }
    if insecure {
        eprintln!(
            "WARNING: serving {address} without authentication (--insecure-no-auth): anyone who can reach it may publish and subscribe"
        );
        return Ok(());
    }
    Err(Failure::Usage(format!(
        "--listen {address} is reachable from other hosts, and no tokens are configured\n  = help: give --tokens FILE \
         (or PROM_API_TOKENS), listen on 127.0.0.1, or pass --insecure-no-auth to serve it open"
    )))
}

/// Opens the embedded store, starts the declared changelog projectors (which publish their
/// tables' changefeeds) and builds the snapshot APIs' router over their tables.
fn on_embedded(
    target: &super::Target,
    spec: &System,
    registry: Arc<Registry>,
    args: &Args,
    reporter: &Reporter,
    tasks: &mut JoinSet<Result<()>>,
    stopped: &watch::Receiver<bool>,
) -> std::result::Result<(AnyBus, Option<Snapshots>), Failure> {
    use crate::snapshot::{self, ApiOptions, SnapshotSpec, read::SqliteRead};
    let bus = SqliteBus::open(&target.store)?;
    let apis = SnapshotSpec::all(spec)?;
    let travel = snapshot::time_travel_embedded(&bus, spec, &registry, &apis);
    let options =
        ApiOptions { store_timeout: args.store_timeout, reporter: reporter.clone(), time_travel: travel };
    let router = snapshot::router_on(Arc::new(SqliteRead::new(bus.clone())), &apis, &options)?;
    super::run::start_embedded(spec, &Producer::new(bus.clone(), registry), tasks, stopped)?;
    let served = apis.into_iter().map(|api| (api.projector, api.path)).collect();
    Ok((bus.into(), Some((router, served))))
}

/// Opens MongoDB, starts the declared changelog projectors and changefeeds, and builds the
/// snapshot APIs' router.
#[cfg(feature = "mongo")]
async fn on_mongo(
    url: &str,
    spec: &System,
    registry: Arc<Registry>,
    args: &Args,
    reporter: &Reporter,
    tasks: &mut JoinSet<Result<()>>,
    stopped: &watch::Receiver<bool>,
) -> std::result::Result<(AnyBus, Option<Snapshots>), Failure> {
    use crate::snapshot::{self, ApiOptions, SnapshotSpec};
    let bus = super::open_mongo_bus(url).await?;
    let db = bus.database().clone();
    let apis = SnapshotSpec::all(spec)?;
    let travel = snapshot::time_travel(&bus, spec, &registry, &apis).await?;
    let options =
        ApiOptions { store_timeout: args.store_timeout, reporter: reporter.clone(), time_travel: travel };
    let producer = Producer::new(bus.clone(), registry);
    let router = snapshot::router_with(&db, &apis, &options)?;
    super::mongo_pipelines::start(spec, &producer, tasks, stopped)?;
    let served = apis.into_iter().map(|api| (api.projector, api.path)).collect();
    Ok((bus.into(), Some((router, served))))
}

/// Without the `mongo` feature a MongoDB URL is refused before any command runs.
#[cfg(not(feature = "mongo"))]
async fn on_mongo(
    _url: &str,
    _spec: &System,
    _registry: Arc<Registry>,
    _args: &Args,
    _reporter: &Reporter,
    _tasks: &mut JoinSet<Result<()>>,
    _stopped: &watch::Receiver<bool>,
) -> std::result::Result<(AnyBus, Option<Snapshots>), Failure> {
    Err(Failure::Usage(super::mongo_missing("`--mongo URL`/PROM_MONGO_URL")))
}
