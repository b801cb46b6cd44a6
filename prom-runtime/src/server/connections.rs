//! The live connections: how busy each is, and which one to close when the server is full.
//!
//! Policy at the limit: a new connection is admitted by closing the connection that has been
//! quiet the longest among those with no request in flight (an idle keep-alive connection, or
//! one that never finished a request head); when every connection is serving a request, the
//! new one is refused with a fast 503. Closing a connection with no request in flight loses
//! nothing: no request on it was accepted, or every answer was already sent.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Milliseconds on the server's clock (since it started); `u64` so activity fits in atomics.
#[derive(Debug, Clone, Copy)]
pub(super) struct Clock(Instant);

impl Clock {
    pub(super) fn new() -> Clock {
        Clock(Instant::now())
    }

    pub(super) fn now_ms(self) -> u64 {
        u64::try_from(self.0.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// What one connection is doing, updated by its I/O and its request service.
#[derive(Debug)]
pub(super) struct Activity {
    clock: Clock,
    /// Requests accepted whose answer has not been fully handed to the socket.
    in_flight: AtomicUsize,
    /// Handlers running (a subset of `in_flight`); while one runs, silence is not idleness.
    handlers: AtomicUsize,
    /// When bytes last moved either way.
    last_io_ms: AtomicU64,
    /// When the first byte of a request head arrived (1 + ms; 0: no head is being read).
    head_started_ms: AtomicU64,
}

/// Why a connection is closed by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expiry {
    /// A request head did not arrive complete within the header timeout.
    Header,
    /// Nothing moved for the idle timeout while no handler was running.
    Idle,
}

impl Activity {
    pub(super) fn new(clock: Clock) -> Activity {
        Activity {
            clock,
            in_flight: AtomicUsize::new(0),
            handlers: AtomicUsize::new(0),
            last_io_ms: AtomicU64::new(clock.now_ms()),
            head_started_ms: AtomicU64::new(0),
        }
    }

    /// Bytes moved (`read`: they came from the client).
    pub(super) fn on_io(&self, read: bool) {
        let now = self.clock.now_ms();
        self.last_io_ms.store(now, Ordering::Relaxed);
        // The first bytes read while nothing is in flight start a request head.
        if read && self.in_flight.load(Ordering::Acquire) == 0 {
            let _ = self.head_started_ms.compare_exchange(0, now + 1, Ordering::AcqRel, Ordering::Relaxed);
        }
    }

    /// A request head arrived complete and its handler starts.
    pub(super) fn start_request(self: &Arc<Self>) -> (InFlight, Handling) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.handlers.fetch_add(1, Ordering::AcqRel);
        self.head_started_ms.store(0, Ordering::Release);
        (InFlight(Arc::clone(self)), Handling(Arc::clone(self)))
    }

    /// Counts an upgraded connection (a WebSocket session) as busy until the guard drops, so
    /// it is never closed as idle to make room.
    pub(super) fn hold(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(self))
    }

    /// Whether no request is being handled or answered on this connection.
    pub(super) fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
    }

    fn last_io(&self) -> u64 {
        self.last_io_ms.load(Ordering::Relaxed)
    }

    /// Whether the connection has outlived a timeout, and which.
    pub(super) fn expired(&self, header_timeout: Duration, idle_timeout: Duration) -> Option<Expiry> {
        let now = self.clock.now_ms();
        let older_than =
            |since: u64, limit: Duration| u128::from(now.saturating_sub(since)) >= limit.as_millis();
        let head_started = self.head_started_ms.load(Ordering::Acquire);
        if self.is_idle() && head_started != 0 && older_than(head_started - 1, header_timeout) {
            return Some(Expiry::Header);
        }
        // A running handler is bounded by the request timeout instead.
        if self.handlers.load(Ordering::Acquire) == 0 && older_than(self.last_io(), idle_timeout) {
            return Some(Expiry::Idle);
        }
        None
    }
}

/// Held from the start of a request until its answer's body is dropped by the connection.
#[derive(Debug)]
pub(super) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        // The answer is out: the idle clock starts now, not at the last byte of the request.
        self.0.last_io_ms.store(self.0.clock.now_ms(), Ordering::Relaxed);
    }
}

/// Held while a request's handler runs.
#[derive(Debug)]
pub(super) struct Handling(Arc<Activity>);

impl Drop for Handling {
    fn drop(&mut self) {
        self.0.handlers.fetch_sub(1, Ordering::AcqRel);
    }
}

struct Entry {
    activity: Arc<Activity>,
    evict: Arc<Notify>,
    evicting: bool,
}

/// The registry of live connections, bounded by the connection limit.
pub(super) struct Connections {
    limit: usize,
    clock: Clock,
    next_id: AtomicU64,
    live: Mutex<BTreeMap<u64, Entry>>,
}

/// A registered connection; dropping it unregisters the connection.
pub(super) struct Slot {
    connections: Arc<Connections>,
    id: u64,
    /// The connection's activity.
    pub(super) activity: Arc<Activity>,
    /// Notified when the server needs this connection's place.
    pub(super) evict: Arc<Notify>,
}

impl Slot {
    /// Takes back an eviction that came too late (a request started in between): the
    /// connection counts towards the limit again and may be chosen again later.
    pub(super) fn keep(&self) {
        if let Some(entry) = self.connections.lock().get_mut(&self.id) {
            entry.evicting = false;
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.connections.lock().remove(&self.id);
    }
}

impl Connections {
    pub(super) fn new(limit: usize, clock: Clock) -> Connections {
        Connections { limit, clock, next_id: AtomicU64::new(0), live: Mutex::new(BTreeMap::new()) }
    }

    // A panic elsewhere while holding the lock leaves the map consistent (each operation is one
    // insert or remove), so a poisoned lock is still usable.
    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, Entry>> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The number of live connections (those being closed included).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Registers a new connection, making room by evicting the quietest idle one when full;
    /// `None` when the server is full of busy connections.
    pub(super) fn admit(self: &Arc<Self>) -> Option<Slot> {
        let mut live = self.lock();
        let closing = live.values().filter(|e| e.evicting).count();
        if live.len() - closing >= self.limit && !evict_quietest(&mut live) {
            return None;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let activity = Arc::new(Activity::new(self.clock));
        let evict = Arc::new(Notify::new());
        live.insert(
            id,
            Entry { activity: Arc::clone(&activity), evict: Arc::clone(&evict), evicting: false },
        );
        Some(Slot { connections: Arc::clone(self), id, activity, evict })
    }

    /// Closes the quietest idle connection (to free a file descriptor); whether there was one.
    pub(super) fn evict_one(&self) -> bool {
        evict_quietest(&mut self.lock())
    }
}

fn evict_quietest(live: &mut BTreeMap<u64, Entry>) -> bool {
    let quietest = live
        .iter_mut()
        .filter(|(_, e)| !e.evicting && e.activity.is_idle())
        .min_by_key(|(_, e)| e.activity.last_io())
        .map(|(_, e)| e);
    match quietest {
        Some(entry) => {
            entry.evicting = true;
            entry.evict.notify_one();
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_servers_evict_idle_connections_and_refuse_when_all_are_busy() {
        let connections = Arc::new(Connections::new(2, Clock::new()));
        let first = connections.admit().expect("room");
        let second = connections.admit().expect("room");
        let busy = second.activity.start_request();
        // Full: the idle one (first) makes room.
        let third = connections.admit().expect("evicts the idle connection");
        assert_eq!(connections.len(), 3, "the evicted connection closes by itself");
        drop(first);
        let _busy_too = third.activity.start_request();
        assert!(connections.admit().is_none(), "every connection is busy");
        drop(busy);
        let fourth = connections.admit().expect("the finished one is idle again");
        // An eviction taken back (a request started first) counts the connection again.
        second.keep();
        let _busy_again = second.activity.start_request();
        let _busy_fourth = fourth.activity.start_request();
        assert!(connections.admit().is_none(), "{} live, all busy", connections.len());
    }

    #[test]
    fn heads_expire_after_the_header_timeout_and_silence_after_the_idle_timeout() {
        let activity = Arc::new(Activity::new(Clock::new()));
        let long = Duration::from_secs(3600);
        assert_eq!(activity.expired(long, long), None);
        assert_eq!(activity.expired(long, Duration::ZERO), Some(Expiry::Idle));
        activity.on_io(true);
        assert_eq!(activity.expired(Duration::ZERO, long), Some(Expiry::Header));
        let (in_flight, handling) = activity.start_request();
        assert_eq!(activity.expired(Duration::ZERO, Duration::ZERO), None, "a handler runs");
        drop(handling);
        assert_eq!(activity.expired(Duration::ZERO, Duration::ZERO), Some(Expiry::Idle), "a stalled answer");
        drop(in_flight);
        assert!(activity.is_idle());
    }
}
