//! `prom serve`: the declared changelog projectors, their snapshot APIs and the declared
//! changefeeds, until Ctrl-C or SIGTERM.

use super::{Failure, Outcome, SpecArgs};
use crate::bus::MongoBus;
use crate::publish::Producer;
use crate::snapshot::{self, SnapshotSpec};
use tokio::sync::watch;

/// Arguments of `prom serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    spec: SpecArgs,
    /// Address the snapshot APIs listen on (port 0: any free port, printed on stderr).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: String,
}

/// Runs the projectors and changefeeds and serves the snapshot APIs until Ctrl-C (or SIGTERM);
/// on the way out every task finishes its current batch or change and stops cleanly.
pub async fn run(target: &super::Target, args: Args) -> Outcome {
    let (spec, registry) = super::load(&args.spec)?;
    let url = target.mongo.as_deref().ok_or_else(|| {
        Failure::Runtime("prom serve runs on MongoDB: pass --mongo URL or set PROM_MONGO_URL".into())
    })?;
    let bus = MongoBus::open(url).await?;
    let db = bus.database().clone();
    let producer = Producer::new(bus, registry);
    let apis = SnapshotSpec::all(&spec)?;
    let router = snapshot::router(&db, &apis)?;
    let interrupted = super::interrupted();
    let (stop, stopped) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    super::mongo_pipelines::start(&spec, &producer, &mut tasks, &stopped)?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| Failure::Runtime(format!("cannot listen on `{}`: {e}", args.listen)))?;
    let address = listener.local_addr().map_err(|e| Failure::Runtime(format!("no local address: {e}")))?;
    for api in &apis {
        eprintln!("serving `{}` at http://{address}{}/ (snap, list, openapi.json)", api.projector, api.path);
    }
    // Tools and tests wait for this line before sending requests.
    eprintln!("listening on {address}");
    tasks.spawn(snapshot::serve(listener, router, super::stopped(&stopped)));
    super::supervise(&mut tasks, interrupted, &stop, super::NO_PROGRESS).await
}
