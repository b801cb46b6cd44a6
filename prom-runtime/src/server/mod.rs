//! The HTTP/1.1 server under `prom serve` (the gateway and the snapshot APIs): its own accept
//! loop over hyper, so hostile or broken clients cannot take it down.
//!
//! - a connection limit ([`Limits::max_connections`]); at the limit the quietest idle connection
//!   is closed to make room, and when every connection is serving a request the new one gets a
//!   fast 503 problem document ([`connections`] holds the policy);
//! - a header timeout (a request head must arrive complete this long after its first byte), an
//!   idle timeout (no bytes either way and no handler running: keep-alive connections, clients
//!   that connect and send nothing, clients that stop reading an answer) and a request timeout
//!   (a handler's answer, else a 503 problem document);
//! - accept errors never end the loop: when file descriptors run out (`EMFILE`) it closes the
//!   quietest idle connection and backs off (10 ms, doubling to 1 s) instead of spinning.

mod connections;
pub mod fallback;
mod io;
pub mod problem;
mod service;
pub mod target;

use crate::error::{Error, Result};
use axum::Router;
use connections::{Clock, Connections, Expiry, Slot};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use problem::{Kind, Problem};
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// Where the server reports what clients must not see: store errors, handler panics, accept
/// failures. The library prints nothing itself; `prom serve` reports on stderr.
#[derive(Clone)]
pub struct Reporter(Arc<dyn Fn(&str) + Send + Sync>);

impl Reporter {
    /// A reporter calling `report` with each message.
    pub fn new(report: impl Fn(&str) + Send + Sync + 'static) -> Reporter {
        Reporter(Arc::new(report))
    }

    /// A reporter that drops every message.
    pub fn silent() -> Reporter {
        Reporter::new(|_| {})
    }

    /// Reports one message.
    pub fn report(&self, message: &str) {
        (self.0)(message);
    }
}

impl fmt::Debug for Reporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Reporter")
    }
}

/// The server's limits; [`Limits::default`] gives the `prom serve` defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Connections served at once (each holds one file descriptor and at most one request).
    pub max_connections: usize,
    /// How long a request head may take to arrive, from its first byte.
    pub header_timeout: Duration,
    /// How long a connection may stay silent while no handler runs on it.
    pub idle_timeout: Duration,
    /// How long a handler may take to answer.
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
        }
    }
}

impl Limits {
    /// Refuses limits no server could work with (no connections, zero timeouts).
    pub fn check(&self) -> Result<()> {
        let fail = |what: &str| Err(Error::setting("HTTP limits", what));
        if self.max_connections == 0 {
            return fail("the connection limit is 0, so no request could be served; give at least 1");
        }
        for (name, value) in [
            ("header timeout", self.header_timeout),
            ("idle timeout", self.idle_timeout),
            ("request timeout", self.request_timeout),
        ] {
            if value.is_zero() {
                return fail(&format!("the {name} is 0, so every connection would close at once"));
            }
        }
        Ok(())
    }
}

/// Answers to connections refused at the limit that may be sent at once; beyond that a refused
/// connection is closed without an answer, so refusing cannot itself exhaust descriptors.
const MAX_REFUSALS: usize = 256;
/// How long a refused connection may take to take its 503.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(1);
/// The largest request head, and the read buffer of a connection.
const MAX_HEAD_BYTES: usize = 64 * 1024;
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Serves `router` on `listener` under `limits` until `shutdown` completes; then every
/// connection finishes the request it is serving (idle ones close at once, none is waited for
/// longer than the request timeout) and it returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    reporter: Reporter,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    limits.check()?;
    let clock = Clock::new();
    let connections = Arc::new(Connections::new(limits.max_connections, clock));
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS));
    let (stop, stopping) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut backoff = FIRST_BACKOFF;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    backoff = FIRST_BACKOFF;
                    let connection = Connection {
                        router: router.clone(),
                        limits: limits.clone(),
                        reporter: reporter.clone(),
                        stopping: stopping.clone(),
                    };
                    match connections.admit() {
                        Some(slot) => {
                            tasks.spawn(connection.run(stream, slot));
                        }
                        None => refuse(stream, &refusals, &limits),
                    }
                }
                Err(e) if out_of_resources(&e) => {
                    // The connection stays in the listen backlog; freeing a descriptor and
                    // waiting lets the next accept take it, instead of failing in a hot loop.
                    if backoff == FIRST_BACKOFF {
                        reporter.report(&format!(
                            "cannot accept connections: {e}; closing the quietest idle connection and \
                             retrying (raise `ulimit -n` or lower --max-connections)"
                        ));
                    }
                    connections.evict_one();
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                // Errors of one connection (reset before it was accepted, ...): take the next.
                Err(_) => {}
            },
        }
    }
    drop(listener);
    let _ = stop.send(true);
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// Whether an accept error means the process or system is out of descriptors or memory.
fn out_of_resources(e: &std::io::Error) -> bool {
    // EMFILE, ENFILE, ENOBUFS and ENOMEM on Linux and the BSDs (ENOBUFS differs: 105 / 55).
    matches!(e.raw_os_error(), Some(24 | 23 | 105 | 55 | 12)) || e.kind() == std::io::ErrorKind::OutOfMemory
}

/// Answers a connection refused at the limit with a 503 problem document, in the background.
fn refuse(mut stream: TcpStream, refusals: &Arc<Semaphore>, limits: &Limits) {
    let detail = format!(
        "the server is serving its limit of {} connections, each with a request in flight; retry shortly",
        limits.max_connections
    );
    let answer = Problem::new(Kind::Overloaded, detail).retry_after(Duration::from_secs(1)).to_http1_bytes();
    let Ok(permit) = Arc::clone(refusals).try_acquire_owned() else {
        // No task to spare: one non-blocking write into the fresh socket's empty send buffer
        // (it fits), then close; the client may still see a reset if it had sent its request.
        let _ = stream.try_write(&answer);
        return;
    };
    tokio::spawn(async move {
        let _permit = permit;
        let _ = tokio::time::timeout(REFUSAL_TIMEOUT, async {
            stream.write_all(&answer).await?;
            stream.shutdown().await?;
            // Reading what the client sent before closing keeps the kernel from resetting the
            // connection, which could discard the answer before the client reads it.
            let mut sink = [0u8; 4096];
            while stream.read(&mut sink).await? > 0 {}
            std::io::Result::Ok(())
        })
        .await;
    });
}

/// Keeps an upgraded connection (a WebSocket session) counted against the connection limit,
/// and busy (never closed as idle to make room), until it drops. Upgrade requests carry one as
/// an `Arc<ConnectionHold>` extension; the handler that takes the connection over keeps it.
pub struct ConnectionHold {
    _in_flight: connections::InFlight,
    _slot: Arc<Slot>,
}

impl fmt::Debug for ConnectionHold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ConnectionHold")
    }
}

/// What one connection's task needs.
struct Connection {
    router: Router,
    limits: Limits,
    reporter: Reporter,
    stopping: watch::Receiver<bool>,
}

impl Connection {
    /// Serves one connection until the client closes it, a timeout expires, the server needs its
    /// place while it is idle, or the server stops.
    async fn run(mut self, stream: TcpStream, slot: Slot) {
        let _ = stream.set_nodelay(true);
        let slot = Arc::new(slot);
        let service_slot = Arc::clone(&slot);
        let (router, reporter, request_timeout) =
            (self.router.clone(), self.reporter.clone(), self.limits.request_timeout);
        let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
            // An upgrade request may take the connection over (a WebSocket session): it gets a
            // hold that keeps the connection counted against the limit for as long as it lives.
            if request.headers().contains_key(hyper::header::UPGRADE) {
                let hold = ConnectionHold {
                    _in_flight: service_slot.activity.hold(),
                    _slot: Arc::clone(&service_slot),
                };
                request.extensions_mut().insert(Arc::new(hold));
            }
            let activity = Arc::clone(&service_slot.activity);
            service::answer(router.clone(), request, activity, request_timeout, reporter.clone())
        });
        let io = TokioIo::new(io::Watched::new(stream, Arc::clone(&slot.activity)));
        let connection =
            http1::Builder::new().max_buf_size(MAX_HEAD_BYTES).serve_connection(io, service).with_upgrades();
        tokio::pin!(connection);
        let check = (self.limits.header_timeout.min(self.limits.idle_timeout) / 4)
            .clamp(Duration::from_millis(20), Duration::from_secs(1));
        let mut ticks = tokio::time::interval(check);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut draining = None;
        loop {
            tokio::select! {
                _ = connection.as_mut() => break,
                () = slot.evict.notified() => {
                    if slot.activity.is_idle() {
                        break;
                    }
                    slot.keep();
                }
                changed = self.stopping.changed(), if draining.is_none() => {
                    let _ = changed;
                    draining = Some(tokio::time::Instant::now());
                    // Idle connections close at once; a request in flight is answered first.
                    connection.as_mut().graceful_shutdown();
                }
                _ = ticks.tick() => {
                    if draining.is_some_and(|since| since.elapsed() >= self.limits.request_timeout) {
                        break;
                    }
                    let expired = slot.activity.expired(self.limits.header_timeout, self.limits.idle_timeout);
                    // Dropping the connection closes it; with nothing in flight nothing is lost,
                    // and a stalled answer has no reader to lose it to.
                    if matches!(expired, Some(Expiry::Header | Expiry::Idle)) {
                        break;
                    }
                }
            }
        }
    }
}
