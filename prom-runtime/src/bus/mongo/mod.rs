//! The MongoDB backend: the same contract as the embedded store, shared by any number of
//! processes and machines.
//!
//! Layout (one database; see [`layout`]): `chunks` (a transaction's events of one partition in
//! one document, [`chunk`]), `events` (per-event documents of earlier releases, read and never
//! written), `partitions` (per-partition offset counters), `cursors`, `members` and `leases`.
//! Dead letters are events on `dlq.<topic>` like any other. Events are written by `publish` and
//! `streams` and read only through `stored`, by this bus and by `prom status` and time travel
//! alike.
//!
//! Every write that must be atomic runs in a multi-document transaction (which is why MongoDB
//! must run as a replica set): a publish reads the batch's dedup keys, bumps the counter of each
//! partition it writes with `$inc` and inserts the events in one transaction. Two publishers to
//! one partition conflict on its counter document, so one of them retries; a partition's
//! offsets therefore stay gap-free and become visible in order, whatever the number of
//! processes, while publishers of different partitions never conflict ([`counters`]). The store
//! is not [`EventBus::ordered`]: topic-wide readers keep one position per partition. Membership and lease expiry use the
//! server's clock (`$$NOW`), so clock skew between machines cannot hand a partition to two
//! members.

mod chunk;
pub mod clients;
mod committer;
mod counters;
pub(crate) mod docs;
mod groups;
pub(crate) mod in_session;
pub mod layout;
mod publish;
pub(crate) mod stored;
mod streams;
mod txn;

pub use mongodb;

use super::{EventBus, GroupId, TopicPosition};
use crate::error::{Error, Result};
use crate::record::{EventRecord, HeadersText, NewEvent, Receipt};
use crate::stream::{Appended, Snapshot, StreamAppend, StreamId, StreamRecord};
use mongodb::bson::Document;
use mongodb::options::{ClientOptions, ReadConcern, TransactionOptions, WriteConcern};
use mongodb::{Client, ClientSession, Collection, Database};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use uuid::Uuid;

/// The database used when the URL names none.
pub const DEFAULT_DATABASE: &str = "prom";

/// How long to look for a server before an operation fails (unless the URL says otherwise).
const SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the driver checks on each server (unless the URL says otherwise; the driver's
/// default is 10 s). A server that stops answering is noticed after this plus
/// [`CONNECT_TIMEOUT`], and only then do operations waiting on it fail and get retried.
const HEARTBEAT_FREQUENCY: Duration = Duration::from_secs(2);
/// How long connecting (and each server check beyond the heartbeat) may take (unless the URL
/// says otherwise; the driver's default is 10 s).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// An event bus stored in a MongoDB replica set (or sharded cluster).
#[derive(Clone)]
pub struct MongoBus {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    db: Database,
    display: String,
    published: Notify,
    committer: committer::Committer,
    legacy: Arc<stored::Legacy>,
}

impl std::fmt::Debug for MongoBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MongoBus({})", self.inner.display)
    }
}

impl MongoBus {
    /// Connects to `url` (a `mongodb://` or `mongodb+srv://` URL), using the database the URL
    /// names or [`DEFAULT_DATABASE`], and creates the collections' indexes.
    pub async fn open(url: &str) -> Result<MongoBus> {
        MongoBus::open_database(url, None).await
    }

    /// Like [`MongoBus::open`], in database `database` whatever the URL says.
    pub async fn open_database(url: &str, database: Option<&str>) -> Result<MongoBus> {
        let mut options = ClientOptions::parse(url).await.map_err(|e| {
            Error::store(
                "mongodb",
                format!(
                    "not a usable MongoDB URL: {e}; write it like mongodb://127.0.0.1:27017/?replicaSet=rs0"
                ),
            )
        })?;
        let name = database.map(str::to_string).or_else(|| options.default_database.clone());
        let name = name.unwrap_or_else(|| DEFAULT_DATABASE.to_string());
        let hosts: Vec<String> = options.hosts.iter().map(ToString::to_string).collect();
        // Never print credentials: the display names hosts and database only.
        let display = format!("mongodb://{}/{name}", hosts.join(","));
        options.app_name.get_or_insert_with(|| "prom".to_string());
        options.server_selection_timeout.get_or_insert(SERVER_SELECTION_TIMEOUT);
        // A frozen server (connections open, nothing answers) is detected in ~7 s instead of ~20 s.
        options.heartbeat_freq.get_or_insert(HEARTBEAT_FREQUENCY);
        options.connect_timeout.get_or_insert(CONNECT_TIMEOUT);
        // An acknowledged publish must survive a failover: majority, journaled.
        options.write_concern.get_or_insert_with(durable);
        let client = Client::with_options(options).map_err(|e| Error::store_from(&display, e))?;
        clients::opened(&client);
        let db = client.database(&name);
        let sharded = layout::check_server(&db, &display).await?;
        layout::create_indexes(&db).await.map_err(|e| {
            Error::store_caused(&display, format!("cannot create the indexes of database `{name}`: {e}"), e)
        })?;
        let bus = MongoBus {
            inner: Arc::new(Inner {
                client,
                db,
                display,
                published: Notify::new(),
                committer: Default::default(),
                legacy: Default::default(),
            }),
        };
        bus.group_per_partition(sharded);
        Ok(bus)
    }

    /// Makes each group commit hold one partition's publishes (else a group takes every queued
    /// publish whatever its partition). On by default on a sharded cluster, where it keeps every
    /// transaction of the publish path on one shard; off on a replica set, where one group per
    /// process commits more events per transaction.
    pub fn group_per_partition(&self, on: bool) {
        self.inner.committer.per_partition(on);
    }

    /// The database holding the bus's collections (projections may live next to them).
    pub fn database(&self) -> &Database {
        &self.inner.db
    }

    /// What this bus knows of the frozen per-event documents, shared with time travel so it
    /// too stops querying them past each topic's last one.
    pub(crate) fn legacy(&self) -> Arc<stored::Legacy> {
        self.inner.legacy.clone()
    }

    /// The client (for other databases on the same deployment).
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    fn err(&self, e: impl std::fmt::Display) -> Error {
        Error::store(&self.inner.display, e)
    }

    /// A driver error as a runtime error: [`Error::Unavailable`] when retrying may succeed.
    fn db(&self, what: &str, e: &mongodb::error::Error) -> Error {
        crate::outage::mongo::error(&self.inner.display, what, e)
    }

    fn abort(&self, abort: txn::Abort) -> Error {
        match abort {
            txn::Abort::Db(e) => self.db("a transaction failed", &e),
            txn::Abort::Fail(e) => e,
        }
    }

    fn chunks(&self) -> Collection<chunk::ChunkDoc> {
        self.inner.db.collection(layout::CHUNKS)
    }

    /// The newest per-event document (of an earlier release) of each partition of `topic`.
    async fn legacy_heads(&self, topic: &str) -> mongodb::error::Result<Arc<BTreeMap<i64, i64>>> {
        self.inner.legacy.heads(&self.inner.db, topic).await
    }

    fn coll(&self, name: &str) -> Collection<Document> {
        self.inner.db.collection(name)
    }

    /// A session whose transactions read a snapshot and commit durably.
    async fn session(&self) -> Result<ClientSession> {
        let options = TransactionOptions::builder()
            .read_concern(ReadConcern::snapshot())
            .write_concern(durable())
            .build();
        self.inner
            .client
            .start_session()
            .default_transaction_options(options)
            .await
            .map_err(|e| self.db("cannot start a session", &e))
    }

    async fn find_events(
        &self,
        topic: &str,
        from: stored::From<'_>,
        limit: usize,
    ) -> Result<Vec<EventRecord>> {
        let docs = stored::page(&self.inner.db, &self.inner.legacy, topic, from, limit)
            .await
            .map_err(|e| self.db("cannot read events", &e))?;
        let mut texts = HeadersText::default();
        docs.into_iter().map(|d| d.into_record(&mut texts).map_err(|e| self.err(e))).collect()
    }
}

/// Majority-acknowledged and journaled.
fn durable() -> WriteConcern {
    WriteConcern::builder().w(mongodb::options::Acknowledgment::Majority).journal(true).build()
}

impl EventBus for MongoBus {
    fn as_mongo(&self) -> Option<&MongoBus> {
        Some(self)
    }

    async fn publish(&self, events: Vec<NewEvent>) -> Result<Vec<Receipt>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let rows = docs::rows(&events)?;
        let receipts = committer::publish(self, rows).await?;
        self.inner.published.notify_waiters();
        Ok(receipts)
    }

    async fn read(&self, topic: &str, partition: u32, after: i64, limit: usize) -> Result<Vec<EventRecord>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.find_events(topic, stored::From::Partition(partition, after), limit).await
    }

    async fn read_topic(&self, topic: &str, from: &TopicPosition, limit: usize) -> Result<Vec<EventRecord>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.find_events(topic, stored::From::Topic(from), limit).await
    }

    fn ordered(&self) -> bool {
        false
    }

    async fn heads(&self, topic: &str) -> Result<TopicPosition> {
        counters::heads(self, topic).await.map_err(|e| self.db("cannot read the topic head", &e))
    }

    async fn position_before_time(&self, topic: &str, at_ms: i64) -> Result<TopicPosition> {
        counters::before_time(self, topic, at_ms)
            .await
            .map_err(|e| self.db("cannot find a position by time", &e))
    }

    async fn position_of(&self, topic: &str, id: Uuid) -> Result<Option<TopicPosition>> {
        let found = stored::by_id(&self.inner.db, topic, id)
            .await
            .map_err(|e| self.db("cannot look the event up", &e))?;
        let Some(event) = found else { return Ok(None) };
        // No commit order across partitions: the other partitions start before their first
        // event published in the same millisecond or later (publish time, by the publisher's
        // clock), so a doubt redelivers instead of skipping.
        let mut position = self.position_before_time(topic, event.ts).await?;
        let partition =
            u32::try_from(event.part).map_err(|e| self.err(format!("event {id}: partition {e}")))?;
        position.set(partition, event.off);
        Ok(Some(position))
    }

    async fn count_after(&self, topic: &str, partition: u32, after: i64) -> Result<u64> {
        stored::count_after(&self.inner.db, &self.inner.legacy, topic, partition, after)
            .await
            .map_err(|e| self.db("cannot count events", &e))
    }

    async fn existing_dedup(&self, topic: &str, keys: Vec<String>) -> Result<Vec<String>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let legacy =
            !self.legacy_heads(topic).await.map_err(|e| self.db("cannot read dedup keys", &e))?.is_empty();
        let found = stored::dedup(&self.inner.db, None, legacy, topic, &keys)
            .await
            .map_err(|e| self.db("cannot read dedup keys", &e))?;
        Ok(keys.into_iter().filter(|k| found.contains_key(k)).collect())
    }

    async fn cursors(&self, group: &GroupId) -> Result<BTreeMap<u32, i64>> {
        groups::cursors(self, group).await
    }

    async fn init_cursors(
        &self,
        group: &GroupId,
        partitions: Vec<u32>,
        start: &TopicPosition,
    ) -> Result<BTreeMap<u32, i64>> {
        let starts: Vec<(u32, i64)> = partitions.into_iter().map(|p| (p, start.at(p))).collect();
        groups::init_cursors(self, group, &starts).await
    }

    async fn commit(&self, group: &GroupId, member: Option<&str>, cursors: Vec<(u32, i64)>) -> Result<()> {
        if cursors.is_empty() {
            return Ok(());
        }
        groups::commit(self, group, member, &cursors).await
    }

    async fn heartbeat(&self, group: &GroupId, member: &str, ttl: Duration) -> Result<Vec<String>> {
        groups::heartbeat(self, group, member, super::memory::ttl_ms(ttl)).await
    }

    async fn claim(
        &self,
        group: &GroupId,
        member: &str,
        want: Vec<u32>,
        release: Vec<u32>,
        ttl: Duration,
    ) -> Result<Vec<u32>> {
        groups::claim(self, group, member, &want, &release, super::memory::ttl_ms(ttl)).await
    }

    async fn leave(&self, group: &GroupId, member: &str) -> Result<()> {
        groups::leave(self, group, member).await
    }

    async fn wait(&self, topic: &str, seen: &TopicPosition, timeout: Duration) {
        super::wait_until(&self.inner.published, timeout, || super::arrived(self, topic, seen)).await;
    }

    async fn append(&self, append: StreamAppend) -> Result<Appended> {
        let job = streams::job(append)?;
        let appended = streams::append(self, job).await?;
        self.inner.published.notify_waiters();
        Ok(appended)
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        after_version: u64,
        limit: usize,
    ) -> Result<Vec<StreamRecord>> {
        streams::read(self, stream, after_version, limit).await
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Option<u64>> {
        streams::version(self, stream).await
    }

    async fn stream_ids(&self, aggregate: &str, after: Option<String>, limit: usize) -> Result<Vec<String>> {
        streams::ids(self, aggregate, after, limit).await
    }

    async fn save_snapshot(&self, stream: &StreamId, snapshot: Snapshot) -> Result<()> {
        let state = serde_json::to_string(&snapshot.state)
            .map_err(|e| Error::serialize(format!("the snapshot of `{stream}`"), e))?;
        streams::save_snapshot(self, stream, snapshot, state).await
    }

    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>> {
        streams::load_snapshot(self, stream).await
    }
}
