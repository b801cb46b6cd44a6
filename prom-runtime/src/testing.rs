//! A dev harness for tests of a Prom system: a store (in memory or an embedded store in a
//! directory), optionally the wired [`Pipeline`], and the HTTP gateway on an ephemeral loopback
//! port, all stopped cleanly by [`Harness::stop`].
//!
//! ```no_run
//! # async fn example() -> prom_runtime::Result<()> {
//! let spec = "topics:\n  t:\n    versions:\n      1:\n        schema: { type: object }\n";
//! let harness = prom_runtime::testing::Harness::memory(spec).await?;
//! // POST harness.url("/topics/t/events") with any HTTP client, subscribe with GET.
//! harness.stop().await
//! # }
//! ```

use crate::bus::{AnyBus, MemoryBus, SqliteBus};
use crate::error::{Error, Result};
use crate::gateway::{self, GatewayOptions};
use crate::pipeline::Pipeline;
use crate::publish::Producer;
use crate::registry::Registry;
use crate::server::{self, Limits, Reporter};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running store, pipeline and gateway; dropping it without [`Harness::stop`] stops the
/// server in the background.
#[derive(Debug)]
pub struct Harness {
    address: SocketAddr,
    producer: Producer<AnyBus>,
    stop: watch::Sender<bool>,
    server: Option<JoinHandle<Result<()>>>,
    pipeline: Option<JoinHandle<Result<()>>>,
}

impl Harness {
    /// The gateway over an in-memory store for the spec `yaml` (linted first).
    pub async fn memory(yaml: &str) -> Result<Harness> {
        Harness::gateway_only(MemoryBus::new().into(), yaml, GatewayOptions::default()).await
    }

    /// The gateway over the embedded store in `dir` (created if missing) for the spec `yaml`.
    pub async fn embedded(dir: &Path, yaml: &str) -> Result<Harness> {
        Harness::gateway_only(SqliteBus::open(dir)?.into(), yaml, GatewayOptions::default()).await
    }

    /// The gateway over `bus` for the spec `yaml`, with `options` (tokens, limits).
    pub async fn gateway_only(bus: AnyBus, yaml: &str, options: GatewayOptions) -> Result<Harness> {
        let registry = Registry::from_yaml("spec.yaml", yaml)?;
        Harness::start(Producer::new(bus, Arc::new(registry)), None, options).await
    }

    /// Runs `pipeline` (its consumers with their handlers, and what else runs on its store) and
    /// the gateway over the same producer.
    pub async fn with_pipeline(pipeline: Pipeline<AnyBus>, options: GatewayOptions) -> Result<Harness> {
        let producer = pipeline.producer().clone();
        Harness::start(producer, Some(pipeline), options).await
    }

    async fn start(
        producer: Producer<AnyBus>,
        pipeline: Option<Pipeline<AnyBus>>,
        options: GatewayOptions,
    ) -> Result<Harness> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| Error::setting("the harness's listener", format!("cannot bind 127.0.0.1:0: {e}")))?;
        let address = listener
            .local_addr()
            .map_err(|e| Error::setting("the harness's listener", format!("no local address: {e}")))?;
        let (stop, stopped) = watch::channel(false);
        let until_stopped = |stopped: &watch::Receiver<bool>| {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            }
        };
        let pipeline = pipeline.map(|pipeline| tokio::spawn(pipeline.run(until_stopped(&stopped))));
        let router = gateway::router(producer.clone(), options, stopped.clone(), None);
        let server = tokio::spawn(server::serve(
            listener,
            router,
            Limits::default(),
            Reporter::new(|message| tracing::warn!("gateway: {message}")),
            until_stopped(&stopped),
        ));
        Ok(Harness { address, producer, stop, server: Some(server), pipeline })
    }

    /// The gateway's address (loopback, ephemeral port).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `http://ADDRESS{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// The producer the gateway publishes through (publish or read the store directly).
    pub fn producer(&self) -> &Producer<AnyBus> {
        &self.producer
    }

    /// Stops the gateway (open streams end) and the pipeline, and waits for both; the first
    /// error either met.
    pub async fn stop(mut self) -> Result<()> {
        let _ = self.stop.send(true);
        let mut outcome = Ok(());
        for task in [self.server.take(), self.pipeline.take()].into_iter().flatten() {
            let result = task.await.map_err(|e| Error::TaskFailed { source: crate::error::Cause::new(e) });
            if let Err(e) = result.and_then(|r| r) {
                outcome = outcome.and(Err(e));
            }
        }
        outcome
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
