//! The event bus: durable topics, consumer-group cursors, group membership and leases.
//!
//! The trait is the storage contract only; delivery semantics (per-key order, in-flight limits,
//! acks, rebalancing) live in [`crate::consumer`] on top of it, so every backend gets them for
//! free. Nothing here assumes one process owns a topic: offsets are assigned inside the
//! store's transaction, cursors are committed only by the member holding the partition's lease,
//! and membership expires by time, so a MongoDB backend can implement the same contract.

mod any;
pub mod memory;
#[cfg(feature = "mongo")]
pub mod mongo;
mod position;
pub mod sqlite;

pub use any::AnyBus;
pub use memory::MemoryBus;
#[cfg(feature = "mongo")]
pub use mongo::MongoBus;
pub use position::{PositionError, TopicPosition};
pub use sqlite::SqliteBus;

use crate::error::Result;
use crate::record::{EventRecord, NewEvent, Receipt};
use crate::stream::{Appended, Snapshot, StreamAppend, StreamId, StreamRecord};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Identifies a consumer group on a topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId {
    /// Topic name.
    pub topic: String,
    /// Group name.
    pub group: String,
}

impl GroupId {
    /// A group on a topic.
    pub fn new(topic: impl Into<String>, group: impl Into<String>) -> GroupId {
        GroupId { topic: topic.into(), group: group.into() }
    }
}

/// Storage operations every backend provides.
///
/// Offsets start at 1 and increase strictly per partition; a cursor `c` for a partition means
/// every event of that partition with offset `<= c` is done. A reader of the whole topic keeps a
/// [`TopicPosition`] (one offset per partition). On a store where [`EventBus::ordered`] holds,
/// offsets are moreover topic-wide in commit order, so such a position stays one number.
pub trait EventBus: Clone + Send + Sync + 'static {
    /// Stores `events` atomically (all or none) and returns after they are durable.
    ///
    /// An event whose `dedup` key was already stored on its topic is not written again; its
    /// receipt points at the earlier event and says `duplicate`.
    fn publish(&self, events: Vec<NewEvent>) -> impl Future<Output = Result<Vec<Receipt>>> + Send;

    /// Events of `partition` of `topic` with offset `> after`, in offset order.
    fn read(
        &self,
        topic: &str,
        partition: u32,
        after: i64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<EventRecord>>> + Send;

    /// [`EventBus::read`] as shared records: a store that keeps its records in memory hands out
    /// its own instead of copies (a consumer shares each record with its handlers anyway).
    fn read_shared(
        &self,
        topic: &str,
        partition: u32,
        after: i64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Arc<EventRecord>>>> + Send {
        async move { Ok(self.read(topic, partition, after, limit).await?.into_iter().map(Arc::new).collect()) }
    }

    /// Up to `limit` events of `topic` after `from`: each partition's in offset order, and each
    /// partition's returned events the first ones after `from`, so advancing `from` by every
    /// returned record ([`TopicPosition::advance`]) never skips an event. Across partitions the
    /// order is the store's (commit order on an [`EventBus::ordered`] store).
    fn read_topic(
        &self,
        topic: &str,
        from: &TopicPosition,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<EventRecord>>> + Send;

    /// Whether offsets are topic-wide in commit order (then [`EventBus::read_topic`] returns
    /// events in offset order and a reader's position stays one number).
    fn ordered(&self) -> bool;

    /// The position after every event stored on `topic` ([`TopicPosition::start`] when empty).
    fn heads(&self, topic: &str) -> impl Future<Output = Result<TopicPosition>> + Send;

    /// The position just before the first event with `ts >= at_ms` of each partition (a
    /// partition with none such: after its last event).
    fn position_before_time(
        &self,
        topic: &str,
        at_ms: i64,
    ) -> impl Future<Output = Result<TopicPosition>> + Send;

    /// The position just after the event with `id` on `topic`, if stored: its partition at its
    /// offset, every other partition before the first event published after it (by offset on
    /// an ordered store, else by the store's commit order or, lacking one, by time).
    fn position_of(
        &self,
        topic: &str,
        id: Uuid,
    ) -> impl Future<Output = Result<Option<TopicPosition>>> + Send;

    /// How many events of `partition` have offset `> after` (for lag).
    fn count_after(
        &self,
        topic: &str,
        partition: u32,
        after: i64,
    ) -> impl Future<Output = Result<u64>> + Send;

    /// Which of `keys` are already stored as dedup keys on `topic`.
    fn existing_dedup(
        &self,
        topic: &str,
        keys: Vec<String>,
    ) -> impl Future<Output = Result<Vec<String>>> + Send;

    /// The group's committed cursors by partition.
    fn cursors(&self, group: &GroupId) -> impl Future<Output = Result<BTreeMap<u32, i64>>> + Send;

    /// Sets the cursor of each of `partitions` to where `start` has it unless it exists;
    /// returns the cursors in effect for them.
    ///
    /// Two members starting at once both get the first one's position, and a restarted
    /// `from: latest` group keeps its original start instead of skipping what arrived meanwhile.
    fn init_cursors(
        &self,
        group: &GroupId,
        partitions: Vec<u32>,
        start: &TopicPosition,
    ) -> impl Future<Output = Result<BTreeMap<u32, i64>>> + Send;

    /// Commits cursors. With `member`, only partitions whose lease that member holds are
    /// committed (fails with `LeaseLost` otherwise) and cursors never move backwards; without,
    /// the cursors are set as given (an operator's `cursor set`).
    fn commit(
        &self,
        group: &GroupId,
        member: Option<&str>,
        cursors: Vec<(u32, i64)>,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Records that `member` is alive for `ttl`, removes members (and their leases) whose time
    /// ran out, and returns the live members, sorted.
    fn heartbeat(
        &self,
        group: &GroupId,
        member: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<Vec<String>>> + Send;

    /// Renews `member`'s leases, releases `release`, takes each of `want` that is free or
    /// expired, and returns the partitions `member` now holds, sorted.
    fn claim(
        &self,
        group: &GroupId,
        member: &str,
        want: Vec<u32>,
        release: Vec<u32>,
        ttl: Duration,
    ) -> impl Future<Output = Result<Vec<u32>>> + Send;

    /// Removes `member` and releases its leases at once (a clean shutdown).
    fn leave(&self, group: &GroupId, member: &str) -> impl Future<Output = Result<()>> + Send;

    /// Returns when some partition of `topic` has an event after `seen`, or `timeout` elapses.
    fn wait(&self, topic: &str, seen: &TopicPosition, timeout: Duration) -> impl Future<Output = ()> + Send;

    /// Appends events to a stream atomically (all or none) if its version is what
    /// `append.expected` says, else fails with [`crate::Error::StreamConflict`] and stores
    /// nothing. The check and the writes happen in one store transaction; versions run from 1
    /// without gaps, and the events become ordinary events of their topics. Events must carry
    /// no dedup key ([`StreamAppend::check`]).
    fn append(&self, append: StreamAppend) -> impl Future<Output = Result<Appended>> + Send;

    /// Up to `limit` events of `stream` with version `> after_version`, in version order.
    fn read_stream(
        &self,
        stream: &StreamId,
        after_version: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<StreamRecord>>> + Send;

    /// The stream's current version (`None`: no event appended yet).
    fn stream_version(&self, stream: &StreamId) -> impl Future<Output = Result<Option<u64>>> + Send;

    /// Up to `limit` stream ids of `aggregate`, sorted, those after `after` only.
    fn stream_ids(
        &self,
        aggregate: &str,
        after: Option<String>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<String>>> + Send;

    /// Stores a snapshot of `stream`, unless one of a higher version is stored already.
    fn save_snapshot(&self, stream: &StreamId, snapshot: Snapshot)
    -> impl Future<Output = Result<()>> + Send;

    /// The stored snapshot of `stream`, if any.
    fn load_snapshot(&self, stream: &StreamId) -> impl Future<Output = Result<Option<Snapshot>>> + Send;

    /// This bus as a MongoDB bus, if it is one: projectors and changefeeds need MongoDB.
    #[cfg(feature = "mongo")]
    fn as_mongo(&self) -> Option<&MongoBus> {
        None
    }

    /// This bus as the embedded store, if it is one: embedded projectors write its tables.
    fn as_sqlite(&self) -> Option<&SqliteBus> {
        None
    }
}

/// How often a waiting reader looks for events other processes published.
pub(crate) const CROSS_PROCESS_POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// Waits until `arrived()` says so, this process publishes (`published` fires), or `timeout`
/// elapses; publishes by other processes are noticed by polling every [`CROSS_PROCESS_POLL`].
pub(crate) async fn wait_until<F, Fut>(
    published: &tokio::sync::Notify,
    timeout: std::time::Duration,
    arrived: F,
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let notified = published.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if arrived().await {
            return;
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return;
        }
        let nap = (deadline - now).min(CROSS_PROCESS_POLL);
        tokio::select! {
            () = notified => {}
            () = tokio::time::sleep(nap) => {}
        }
    }
}

/// Whether `topic` has an event after `seen`. On an ordered store the head tells when `seen`
/// is one number (the cheap check a waiting reader repeats); otherwise a one-event read does.
pub(crate) async fn arrived<B: EventBus>(bus: &B, topic: &str, seen: &TopicPosition) -> bool {
    // A failing read counts as nothing new: the caller reads (and reports) after the wait.
    if bus.ordered() {
        let head = bus.heads(topic).await.map_or(0, |h| h.floor());
        if head <= seen.floor() {
            return false;
        }
        if seen.parts().is_empty() {
            return true;
        }
    }
    bus.read_topic(topic, seen, 1).await.is_ok_and(|page| !page.is_empty())
}
