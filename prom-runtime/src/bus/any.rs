//! A bus whose backend is chosen at run time (the CLI's `--store`, tests' backend matrix).

use super::{EventBus, GroupId, MemoryBus, SqliteBus, TopicPosition};
use crate::error::Result;
use crate::record::{EventRecord, NewEvent, Receipt};
use crate::stream::{Appended, Snapshot, StreamAppend, StreamId, StreamRecord};
use std::collections::BTreeMap;
use std::time::Duration;
use uuid::Uuid;

/// One of the built-in backends.
#[derive(Debug, Clone)]
pub enum AnyBus {
    /// In memory.
    Memory(MemoryBus),
    /// The embedded on-disk store.
    Sqlite(SqliteBus),
    /// A MongoDB replica set.
    #[cfg(feature = "mongo")]
    Mongo(super::MongoBus),
}

impl From<MemoryBus> for AnyBus {
    fn from(bus: MemoryBus) -> AnyBus {
        AnyBus::Memory(bus)
    }
}

impl From<SqliteBus> for AnyBus {
    fn from(bus: SqliteBus) -> AnyBus {
        AnyBus::Sqlite(bus)
    }
}

#[cfg(feature = "mongo")]
impl From<super::MongoBus> for AnyBus {
    fn from(bus: super::MongoBus) -> AnyBus {
        AnyBus::Mongo(bus)
    }
}

macro_rules! delegate {
    ($self:ident, $bus:ident => $call:expr) => {
        match $self {
            AnyBus::Memory($bus) => $call.await,
            AnyBus::Sqlite($bus) => $call.await,
            #[cfg(feature = "mongo")]
            AnyBus::Mongo($bus) => $call.await,
        }
    };
}

impl EventBus for AnyBus {
    fn as_sqlite(&self) -> Option<&SqliteBus> {
        match self {
            AnyBus::Sqlite(bus) => Some(bus),
            _ => None,
        }
    }

    #[cfg(feature = "mongo")]
    fn as_mongo(&self) -> Option<&super::MongoBus> {
        match self {
            AnyBus::Mongo(bus) => Some(bus),
            _ => None,
        }
    }

    async fn publish(&self, events: Vec<NewEvent>) -> Result<Vec<Receipt>> {
        delegate!(self, b => b.publish(events))
    }

    async fn read(&self, topic: &str, partition: u32, after: i64, limit: usize) -> Result<Vec<EventRecord>> {
        delegate!(self, b => b.read(topic, partition, after, limit))
    }

    async fn read_shared(
        &self,
        topic: &str,
        partition: u32,
        after: i64,
        limit: usize,
    ) -> Result<Vec<std::sync::Arc<EventRecord>>> {
        delegate!(self, b => b.read_shared(topic, partition, after, limit))
    }

    async fn read_topic(&self, topic: &str, from: &TopicPosition, limit: usize) -> Result<Vec<EventRecord>> {
        delegate!(self, b => b.read_topic(topic, from, limit))
    }

    fn ordered(&self) -> bool {
        match self {
            AnyBus::Memory(bus) => bus.ordered(),
            AnyBus::Sqlite(bus) => bus.ordered(),
            #[cfg(feature = "mongo")]
            AnyBus::Mongo(bus) => bus.ordered(),
        }
    }

    async fn heads(&self, topic: &str) -> Result<TopicPosition> {
        delegate!(self, b => b.heads(topic))
    }

    async fn position_before_time(&self, topic: &str, at_ms: i64) -> Result<TopicPosition> {
        delegate!(self, b => b.position_before_time(topic, at_ms))
    }

    async fn position_of(&self, topic: &str, id: Uuid) -> Result<Option<TopicPosition>> {
        delegate!(self, b => b.position_of(topic, id))
    }

    async fn count_after(&self, topic: &str, partition: u32, after: i64) -> Result<u64> {
        delegate!(self, b => b.count_after(topic, partition, after))
    }

    async fn existing_dedup(&self, topic: &str, keys: Vec<String>) -> Result<Vec<String>> {
        delegate!(self, b => b.existing_dedup(topic, keys))
    }

    async fn cursors(&self, group: &GroupId) -> Result<BTreeMap<u32, i64>> {
        delegate!(self, b => b.cursors(group))
    }

    async fn init_cursors(
        &self,
        group: &GroupId,
        partitions: Vec<u32>,
        start: &TopicPosition,
    ) -> Result<BTreeMap<u32, i64>> {
        delegate!(self, b => b.init_cursors(group, partitions, start))
    }

    async fn commit(&self, group: &GroupId, member: Option<&str>, cursors: Vec<(u32, i64)>) -> Result<()> {
        delegate!(self, b => b.commit(group, member, cursors))
    }

    async fn heartbeat(&self, group: &GroupId, member: &str, ttl: Duration) -> Result<Vec<String>> {
        delegate!(self, b => b.heartbeat(group, member, ttl))
    }

    async fn claim(
        &self,
        group: &GroupId,
        member: &str,
        want: Vec<u32>,
        release: Vec<u32>,
        ttl: Duration,
    ) -> Result<Vec<u32>> {
        delegate!(self, b => b.claim(group, member, want, release, ttl))
    }

    async fn leave(&self, group: &GroupId, member: &str) -> Result<()> {
        delegate!(self, b => b.leave(group, member))
    }

    async fn wait(&self, topic: &str, seen: &TopicPosition, timeout: Duration) {
        delegate!(self, b => b.wait(topic, seen, timeout))
    }

    async fn append(&self, append: StreamAppend) -> Result<Appended> {
        delegate!(self, b => b.append(append))
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        after_version: u64,
        limit: usize,
    ) -> Result<Vec<StreamRecord>> {
        delegate!(self, b => b.read_stream(stream, after_version, limit))
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Option<u64>> {
        delegate!(self, b => b.stream_version(stream))
    }

    async fn stream_ids(&self, aggregate: &str, after: Option<String>, limit: usize) -> Result<Vec<String>> {
        delegate!(self, b => b.stream_ids(aggregate, after, limit))
    }

    async fn save_snapshot(&self, stream: &StreamId, snapshot: Snapshot) -> Result<()> {
        delegate!(self, b => b.save_snapshot(stream, snapshot))
    }

    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>> {
        delegate!(self, b => b.load_snapshot(stream))
    }
}
