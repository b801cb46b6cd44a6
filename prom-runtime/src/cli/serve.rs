//! `prom serve`: the declared changelog projectors, their snapshot APIs and the declared
//! changefeeds, until Ctrl-C or SIGTERM — on MongoDB with `--mongo`, else on the embedded store
//! (`--store`).

use super::{Failure, Outcome, SpecArgs};
use crate::bus::SqliteBus;
use crate::publish::Producer;
use crate::snapshot::read::SqliteRead;
use crate::snapshot::{self, ApiOptions, Limits, Reporter, SnapshotSpec};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;

/// Arguments of `prom serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    spec: SpecArgs,
    /// Address the snapshot APIs listen on (port 0: any free port, printed on stderr).
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
    /// How long a snapshot read waits for the store before answering 503.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = duration)]
    store_timeout: Duration,
}

/// Connections the kernel may queue for `accept` (it caps this at `net.core.somaxconn`); tokio's
/// default, 1024, makes a burst of connects wait for SYN retransmits (1 s, 3 s, ...) instead.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds `listen` with [`LISTEN_BACKLOG`].
async fn bind(listen: &str) -> Result<TcpListener, Failure> {
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
fn duration(text: &str) -> Result<Duration, String> {
    match prom_spec::spec::parse_duration(text) {
        Some(d) if !d.is_zero() => Ok(d),
        Some(_) => Err("must be above zero".into()),
        None => Err("write an integer and a unit: ms, s, m, h or d (e.g. `500ms`, `10s`)".into()),
    }
}

/// Runs the projectors and changefeeds and serves the snapshot APIs until Ctrl-C (or SIGTERM);
/// on the way out every task finishes its current batch or change and stops cleanly.
pub async fn run(target: &super::Target, args: Args) -> Outcome {
    let (spec, registry) = super::load(&args.spec)?;
    let limits = Limits {
        max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
        header_timeout: args.header_timeout,
        idle_timeout: args.idle_timeout,
        request_timeout: args.request_timeout,
    };
    limits.check()?;
    // What clients must not see (driver errors, panics) is reported here, on stderr.
    let reporter = Reporter::new(|message| eprintln!("prom serve: {message}"));
    let options = ApiOptions { store_timeout: args.store_timeout, reporter: reporter.clone() };
    let apis = SnapshotSpec::all(&spec)?;
    let interrupted = super::interrupted();
    let (stop, stopped) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let router = match target.mongo.as_deref() {
        Some(url) => {
            let bus = super::open_mongo_bus(url).await?;
            let router = snapshot::router_with(bus.database(), &apis, &options)?;
            super::mongo_pipelines::start(&spec, &Producer::new(bus, registry), &mut tasks, &stopped)?;
            router
        }
        // The embedded store: its projectors write its tables, the APIs read them.
        None => {
            let bus = SqliteBus::open(&target.store)?;
            let router = snapshot::router_on(Arc::new(SqliteRead::new(bus.clone())), &apis, &options)?;
            super::run::start_embedded(&spec, &Producer::new(bus, registry), &mut tasks, &stopped)?;
            router
        }
    };
    let listener = bind(&args.listen).await?;
    let address = listener.local_addr().map_err(|e| Failure::Runtime(format!("no local address: {e}")))?;
    for api in &apis {
        eprintln!("serving `{}` at http://{address}{}/ (snap, list, openapi.json)", api.projector, api.path);
    }
    // Tools and tests wait for this line before sending requests.
    eprintln!("listening on {address}");
    tasks.spawn(snapshot::server::serve(listener, router, limits, reporter, super::stopped(&stopped)));
    super::supervise(&mut tasks, interrupted, &stop, super::NO_PROGRESS).await
}
