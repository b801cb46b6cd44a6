//! The changelog projector on the embedded store: a topic mirrored into a table of the store's
//! own file, one row per key, with the changefeeds of that table.
//!
//! It is a consumer group (`projector.<name>`) like the MongoDB projector
//! ([`super::changelog`]), with the same rules (upsert by key, tombstones delete, version guard,
//! dead letters for events that can never be projected), but each poll batch commits in **one**
//! SQLite transaction: the row writes, the events of the changefeeds declared on the table, the
//! dead letters and the group's cursors. A crash before the commit leaves none of them, after it
//! all of them, so effects and changefeed events are exactly-once. Inside the transaction,
//! events at or below the stored cursor are skipped (applied before), and the cursor write is
//! fenced by this member's lease (a member that lost its partition rolls back).

use super::plan::{self, Change, Encoded, Pointers};
use super::table::{self, Refused, Statements, Written};
use crate::bus::sqlite::projection::ProjectionTx;
use crate::bus::{GroupId, SqliteBus};
use crate::consumer::{AckMode, Acker, Delivery, SubscribeOptions, Subscription, Token};
use crate::dlq;
use crate::error::{Error, Result};
use crate::metrics::ProjectorMetrics;
use crate::outage::Outage;
use crate::publish::{self, Producer, PublishOptions};
use crate::record::{EventRecord, NewEvent};
use crate::registry::Registry;
use crate::system::{Changefeed, FullDocument, Index, Projector, ProjectorKind, System};
use crate::trace::TraceContext;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::task::JoinHandle;

/// The runtime header naming a changefeed event's operation (as MongoDB changefeeds stamp it).
pub const CHANGE_OPERATION: &str = "x-change-operation";

/// A changefeed of the projected table.
#[derive(Debug, Clone)]
pub struct FeedSpec {
    /// The changefeed's name.
    pub name: String,
    /// The topic its events go to.
    pub topic: String,
    /// Operations republished (`insert`, `update`, `delete`).
    pub operations: Vec<String>,
    /// Whether updates carry the new document (every mode but `default`).
    pub update_document: bool,
}

/// An embedded changelog projector's declaration, resolved against the registry.
#[derive(Debug, Clone)]
pub struct EmbeddedSpec {
    /// Projector name (its consumer group is `projector.<name>`).
    pub name: String,
    /// Source topic.
    pub topic: String,
    /// The topic's partitions.
    pub partitions: u32,
    /// Target collection (table `proj_<collection>`).
    pub collection: String,
    /// Where key and version are.
    pub pointers: Pointers,
    /// The version's `json_extract` path, when updates are guarded.
    pub version_path: Option<String>,
    /// `CREATE TABLE` and `CREATE INDEX` statements run at start.
    pub ddl: Vec<String>,
    /// Changefeeds declared on the collection.
    pub feeds: Vec<FeedSpec>,
}

impl EmbeddedSpec {
    /// Resolves a changelog projector of `system` (and the changefeeds on its collection).
    pub fn from_system(projector: &Projector, system: &System, registry: &Registry) -> Result<EmbeddedSpec> {
        let name = projector.name.clone();
        let fail = |what: String| Error::system(format!("projector `{name}`"), what);
        let ProjectorKind::Changelog(changelog) = &projector.kind else {
            return Err(Error::WrongProjectorKind {
                projector: name,
                kind: "transactional",
                help: "run it with the transactional projector",
            });
        };
        let topic = registry.topic(&projector.topic)?;
        let version_path = changelog
            .version
            .as_deref()
            .map(table::pointer_path)
            .transpose()
            .map_err(|e| fail(format!("version {e}")))?;
        let mut ddl = vec![table::create_table(&changelog.collection)];
        for index in &changelog.indexes {
            ddl.push(index_ddl(&changelog.collection, index).map_err(&fail)?);
        }
        let feeds = system
            .changefeeds
            .iter()
            .filter(|feed| feed.collection == changelog.collection)
            .map(|feed| feed_spec(feed, registry))
            .collect::<Result<Vec<_>>>()?;
        let key_is_event_key = topic.key.as_deref() == Some(changelog.key.as_str());
        Ok(EmbeddedSpec {
            name: name.clone(),
            topic: topic.name.clone(),
            partitions: topic.partitions,
            collection: changelog.collection.clone(),
            pointers: Pointers {
                key: changelog.key.clone(),
                version: changelog.version.clone(),
                key_is_event_key,
            },
            version_path,
            ddl,
            feeds,
        })
    }

    /// The consumer group the projector reads with.
    pub fn group(&self) -> String {
        format!("projector.{}", self.name)
    }
}

fn index_ddl(collection: &str, index: &Index) -> std::result::Result<String, String> {
    table::create_index(collection, index).map_err(|e| format!("index: {e}"))
}

fn feed_spec(feed: &Changefeed, registry: &Registry) -> Result<FeedSpec> {
    let name = feed.name.clone();
    crate::publish::publishable(registry, &feed.topic, &format!("changefeed `{name}`"))?;
    let operations = feed.operations_or_default();
    Ok(FeedSpec {
        name,
        topic: feed.topic.clone(),
        operations,
        update_document: feed.full_document != FullDocument::Default,
    })
}

/// Counters of a running embedded projector.
#[derive(Debug, Default)]
pub struct EmbeddedStats {
    /// Events consumed (their batch committed).
    pub events: AtomicU64,
    /// Rows inserted or replaced.
    pub upserted: AtomicU64,
    /// Rows deleted.
    pub deleted: AtomicU64,
    /// Events not written: superseded in their batch, not newer than the stored row, or
    /// applied before (at or below the stored cursor).
    pub skipped: AtomicU64,
    /// Events sent to the DLQ.
    pub dead_lettered: AtomicU64,
    /// Changefeed events published.
    pub fed: AtomicU64,
}

/// What one batch's transaction did.
#[derive(Debug, Default)]
struct BatchOutcome {
    upserted: u64,
    deleted: u64,
    skipped: u64,
    dead_lettered: u64,
    fed: u64,
}

/// Keeps a table of the embedded store in step with a topic.
pub struct EmbeddedProjector {
    producer: Producer<SqliteBus>,
    spec: Arc<EmbeddedSpec>,
    statements: Arc<Statements>,
    opts: SubscribeOptions,
    stats: Arc<EmbeddedStats>,
    metrics: ProjectorMetrics,
}

impl EmbeddedProjector {
    /// A projector writing into `producer`'s store; `opts` gives member id, TTL, batch size and
    /// poll timeout (partitions come from the registry, acks are manual).
    pub fn new(
        producer: Producer<SqliteBus>,
        spec: EmbeddedSpec,
        opts: SubscribeOptions,
    ) -> EmbeddedProjector {
        let opts =
            SubscribeOptions { partitions: spec.partitions, partitioned: true, ack: AckMode::Manual, ..opts };
        let statements = Arc::new(Statements::new(&spec.collection, spec.version_path.as_deref()));
        let metrics = ProjectorMetrics::new(&spec.name);
        EmbeddedProjector { producer, spec: Arc::new(spec), statements, opts, stats: Arc::default(), metrics }
    }

    /// The counters (shared; readable while running).
    pub fn stats(&self) -> Arc<EmbeddedStats> {
        self.stats.clone()
    }

    /// Creates the table and the declared indexes (idempotent).
    pub async fn create_table(&self) -> Result<()> {
        let ddl = format!("{};\n{}", self.spec.ddl.join(";\n"), table::LEDGER);
        self.producer
            .bus()
            .in_transaction(false, move |tx| tx.conn().execute_batch(&ddl).map_err(|e| tx.err(e)))
            .await
    }

    /// Creates the table, then projects until `shutdown` completes; leaves the group on the way
    /// out. A batch that `shutdown` cuts short is rolled back whole and projected by the next
    /// start.
    ///
    /// Batches are pipelined: while one commits on the store's committer thread, the next is
    /// read, decoded and queued behind it ([`IN_FLIGHT_BATCHES`]; events of keys a committing
    /// batch holds are not handed out until it is acked, so per-key order stays). Its cursors
    /// count the queued batch's events in its partitions as done, so its transaction first
    /// checks that they were applied: otherwise it rolls back and nothing of it is acked.
    ///
    /// A transient failure (the store's disk full) is waited out like an outage: the projector
    /// starts again from its stored cursors, under the same member id, so its leases resume.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<()> {
        self.opts.member.get_or_insert_with(crate::consumer::member_id);
        let mut outage = Outage::new(format!("projector `{}`", self.spec.name));
        tokio::pin!(shutdown);
        loop {
            let ran = match self.create_table().await {
                Ok(()) => self.project(shutdown.as_mut(), &mut outage).await,
                Err(e) => Err(e),
            };
            let Err(e) = ran else { return Ok(()) };
            if !outage.wait(e, shutdown.as_mut()).await? {
                return Ok(());
            }
        }
    }

    /// Projects until `shutdown` completes or a batch fails (see [`EmbeddedProjector::run`]).
    async fn project<S>(&self, mut shutdown: Pin<&mut S>, outage: &mut Outage) -> Result<()>
    where
        S: Future<Output = ()> + ?Sized,
    {
        let mut sub = Subscription::new(
            self.producer.bus().clone(),
            &self.spec.topic,
            &self.spec.group(),
            self.opts.clone(),
        )?;
        let acker = sub.acker();
        let mut committing: VecDeque<Committing> = VecDeque::new();
        let mut outcome = 'run: loop {
            let batch = tokio::select! {
                biased;
                () = shutdown.as_mut() => break Ok(()),
                polled = sub.poll() => match polled {
                    Ok(batch) => batch,
                    Err(e) => break Err(e),
                },
            };
            // Decoding needs no store: it overlaps the commits in flight.
            let prepared = (!batch.is_empty()).then(|| self.prepare(batch));
            while committing.len() >= IN_FLIGHT_BATCHES
                || committing.front().is_some_and(|c| c.task.is_finished())
            {
                let Some(oldest) = committing.pop_front() else { break };
                if let Err(e) = joined(oldest.task).await {
                    break 'run Err(e);
                }
                outage.recovered();
            }
            let Some((tokens, job)) = prepared else { continue };
            // Where the cursors move once this batch and those before it are done: stored by
            // the batch's own transaction, so the subscription is told instead of committing
            // them again.
            let mine: BTreeSet<u32> = tokens.iter().map(|t| t.partition).collect();
            let queued =
                || committing.iter().flat_map(|c| c.tokens.iter()).filter(|t| mine.contains(&t.partition));
            let cursors = sub.cursors_if_tokens_acked(queued().chain(&tokens));
            let requires = queued().map(|t| (t.partition, t.offset)).collect();
            let job = Job {
                group: sub.group().clone(),
                member: sub.member().to_string(),
                cursors,
                requires,
                ..job
            };
            let task = tokio::spawn(self.commit(job, tokens.clone(), acker.clone()));
            committing.push_back(Committing { task, tokens });
        };
        // Not raced with `shutdown`: once submitted, the committer finishes the transactions
        // anyway, and waiting for them (milliseconds) keeps the counters and acks exact.
        while let Some(oldest) = committing.pop_front() {
            outcome = outcome.and(joined(oldest.task).await);
        }
        let closed = sub.close().await;
        outcome.and(closed)
    }

    /// Decodes a batch into its transaction's job (in offset order: publish order, as a batch
    /// takes partitions in turn; `collapse` needs it, and a unique index then keeps the row
    /// published first), and the tokens to ack once it committed.
    fn prepare(&self, batch: Vec<Delivery>) -> (Vec<Token>, Job) {
        let mut tokens = Vec::with_capacity(batch.len());
        let mut records = Vec::with_capacity(batch.len());
        for delivery in batch {
            tokens.push(delivery.token);
            records.push(std::sync::Arc::unwrap_or_clone(delivery.record));
        }
        records.sort_unstable_by_key(|r| r.offset);
        // The changefeed events depend on what each write did, so they are built in the
        // transaction; the changes are not.
        let decoded = records.iter().map(|record| self.change_of(record)).collect();
        let job = Job {
            spec: self.spec.clone(),
            statements: self.statements.clone(),
            registry: self.producer.registry().clone(),
            group: GroupId::new("", ""),
            member: String::new(),
            records,
            decoded,
            cursors: Vec::new(),
            requires: Vec::new(),
        };
        (tokens, job)
    }

    /// Commits one batch's job in one transaction with its cursors; then counts it and acks
    /// its deliveries. A lost lease is no error: another member holds a partition of the batch
    /// now and projects it from the stored cursor; nothing is acked, that partition is dropped
    /// and the batch's other partitions are read again from their cursors.
    fn commit(&self, job: Job, tokens: Vec<Token>, acker: Acker) -> impl Future<Output = Result<()>> + use<> {
        let bus = self.producer.bus().clone();
        let (stats, metrics) = (self.stats.clone(), self.metrics.clone());
        async move {
            let cursors = job.cursors.clone();
            let publishes = true;
            let (done, leftovers) = match bus.in_transaction(publishes, move |tx| job.run(tx)).await {
                Ok(done) => done,
                Err(Error::LeaseLost { partition, .. }) => {
                    // Its deliveries are never acked now: read its partitions again (events
                    // of the ones still held come back, and are applied once, thanks to the
                    // version guard and ledger) instead of leaving their keys blocked.
                    let partitions = tokens.iter().map(|t| t.partition).collect();
                    acker.rewind(&partitions, partition);
                    return Ok(());
                }
                Err(e) => return Err(e),
            };
            stats.upserted.fetch_add(done.upserted, Ordering::Relaxed);
            stats.deleted.fetch_add(done.deleted, Ordering::Relaxed);
            stats.skipped.fetch_add(done.skipped, Ordering::Relaxed);
            stats.dead_lettered.fetch_add(done.dead_lettered, Ordering::Relaxed);
            stats.fed.fetch_add(done.fed, Ordering::Relaxed);
            metrics.applied(done.upserted, done.deleted, done.skipped, done.dead_lettered);
            acker.committed_by_caller(&cursors);
            for token in &tokens {
                acker.ack_token(token);
            }
            // Last: a reader that sees every event counted sees them acked too.
            stats.events.fetch_add(tokens.len() as u64, Ordering::Relaxed);
            drop(leftovers);
            Ok(())
        }
    }

    /// The change `record` asks for, its document encoded here (off the committer); the
    /// document is kept as a value too only when changefeeds publish it.
    fn change_of(&self, record: &EventRecord) -> std::result::Result<Encoded, String> {
        let feeds = !self.spec.feeds.is_empty();
        // A null tombstone has no payload to upcast or validate.
        if record.payload.is_null() {
            return plan::encoded_of(record, &self.spec.pointers, feeds);
        }
        // Borrowed unless upcast: the stored record stays whole for a dead letter.
        let decoded =
            self.producer.registry().decode_ref(record).map_err(|e| format!("cannot decode: {e}"))?;
        plan::encoded_of(&decoded, &self.spec.pointers, feeds)
    }
}

/// Batches submitted to the committer at once at most: the next ones are queued behind the one
/// committing, so the committer does not wait for the projector between them (and commits
/// those queued together in one transaction). More than two, because each batch crosses
/// threads four times (to the committer and back, plus the reads): on a busy machine every
/// crossing waits for a core, and a deeper queue keeps the committer fed meanwhile.
pub const IN_FLIGHT_BATCHES: usize = 4;

/// A batch submitted to the committer.
struct Committing {
    task: JoinHandle<Result<()>>,
    tokens: Vec<Token>,
}

/// Waits for a committing batch; a task that died (it cannot panic short of a bug) is an error.
async fn joined(task: JoinHandle<Result<()>>) -> Result<()> {
    task.await.map_err(|e| Error::TaskFailed { source: crate::error::Cause::new(e) })?
}

/// One batch's transaction, run on the committer thread.
struct Job {
    spec: Arc<EmbeddedSpec>,
    statements: Arc<Statements>,
    registry: Arc<Registry>,
    group: GroupId,
    member: String,
    /// The batch's events in offset order (offsets are unique within a topic).
    records: Vec<EventRecord>,
    /// Each record's change, or why it cannot be projected.
    decoded: Vec<std::result::Result<Encoded, String>>,
    cursors: Vec<(u32, i64)>,
    /// The events (partition, offset) of the batches queued before this one in its partitions,
    /// which its cursors count as done: they must be applied.
    requires: Vec<(u32, i64)>,
}

impl Job {
    /// Runs the batch; returns what it did and its records and changes, so they are freed by
    /// the caller rather than on the committer thread, which every writer of the store waits for.
    fn run(self, tx: &mut ProjectionTx<'_, '_>) -> Result<(BatchOutcome, Leftovers)> {
        let Job { spec, statements, registry, group, member, records, decoded, cursors, requires } = self;
        // Events at or below the stored cursor, and those the ledger lists past it, were
        // applied by an earlier transaction (before a crash, or by another member).
        let mut progress = table::progress(tx.conn(), &group).map_err(|e| tx.err(e))?;
        check_applied(&progress, &group, &requires)?;
        let mut outcome = BatchOutcome::default();
        let partitions: BTreeSet<u32> = records.iter().map(|r| r.partition).collect();
        let done: BTreeMap<u32, (i64, BTreeSet<i64>)> =
            partitions.into_iter().map(|p| (p, progress.remove(&p).unwrap_or_default())).collect();
        let applied = |record: &EventRecord| {
            done.get(&record.partition)
                .is_some_and(|(cursor, past)| record.offset <= *cursor || past.contains(&record.offset))
        };
        let mut changes = Vec::with_capacity(records.len());
        let mut letters: Vec<(i64, String)> = Vec::new();
        for (record, decoded) in records.iter().zip(decoded) {
            if applied(record) {
                outcome.skipped += 1;
                continue;
            }
            match decoded {
                Ok(change) => changes.push(change),
                Err(reason) => letters.push((record.offset, reason)),
            }
        }
        let collapsed_from = changes.len();
        let changes = plan::collapse_by(changes, |c| (&c.key, c.version.as_ref()));
        outcome.skipped += (collapsed_from - changes.len()) as u64;
        let track = !spec.feeds.is_empty();
        let mut events = Vec::new();
        let mut writes = statements.prepare(tx.conn());
        // Kept to be freed off the committer thread, but for those the changefeeds consumed.
        let mut kept = Vec::with_capacity(changes.len());
        for change in changes {
            let text = change.text.as_deref();
            match writes.write(&change.key, change.version.as_ref(), text, track) {
                Ok(Written::Skipped) => outcome.skipped += 1,
                Ok(written) => {
                    if written == Written::Deleted {
                        outcome.deleted += 1;
                    } else {
                        outcome.upserted += 1;
                    }
                    // With changefeeds (`track`), upserts kept their documents for them.
                    if track {
                        let cause = records
                            .binary_search_by_key(&change.offset, |r| r.offset)
                            .ok()
                            .map(|i| &records[i]);
                        if let Some(change) = change.into_change() {
                            for feed in &spec.feeds {
                                events.extend(feed_events(&registry, feed, &change, written, cause)?);
                            }
                        }
                        continue;
                    }
                }
                Err(Refused::Change(reason)) => letters.push((change.offset, reason)),
                Err(Refused::Store(e)) => return Err(tx.err(e)),
            }
            kept.push(change);
        }
        drop(writes);
        let feed_count = events.len();
        for (offset, reason) in &letters {
            if let Ok(i) = records.binary_search_by_key(offset, |r| r.offset) {
                events.push(dlq::dead_letter(&records[i], &group.group, reason, 0));
                outcome.dead_lettered += 1;
            }
        }
        let receipts = tx.publish(events)?;
        // What this batch applied past the cursors it commits goes into the ledger.
        for &partition in done.keys() {
            // The cursor stored is never moved back: past one another transaction moved (a
            // rebuild's swap), the events were skipped here, not applied, so not recorded.
            let stored = done.get(&partition).map_or(0, |(c, _)| *c);
            let cursor =
                cursors.iter().find(|(p, _)| *p == partition).map_or(stored, |&(_, c)| c.max(stored));
            let past = records.iter().filter(|r| r.partition == partition && r.offset > cursor);
            table::record_applied(tx.conn(), &group, partition, past.map(|r| r.offset), cursor)
                .map_err(|e| tx.err(e))?;
        }
        // A change applied again (past the cursor before a crash, unguarded) finds its feed
        // event stored already: its dedup key is the source event's offset.
        outcome.fed = receipts.iter().take(feed_count).filter(|r| !r.duplicate).count() as u64;
        // Every partition of the batch is fenced by this member's lease, also one whose cursor
        // does not move (its stored cursor is written again, a no-op).
        let fenced: Vec<(u32, i64)> = done
            .iter()
            .map(|(&p, (stored, _))| {
                let moved = cursors.iter().find(|(q, _)| *q == p).map(|&(_, c)| c);
                (p, moved.unwrap_or(*stored).max(*stored))
            })
            .collect();
        tx.commit_cursors(&group, &member, &fenced)?;
        Ok((outcome, Leftovers { _records: records, _changes: kept }))
    }
}

/// Fails (rolling the batch back) unless every event in `required` was applied: at or below
/// its partition's stored cursor, or in the ledger past it. The batch queued before failed
/// otherwise — it lost a partition's lease, or the run is ending with its error — and the
/// cursors of this one would skip its events; this one is then not applied either (reported
/// as the lost lease it is, or is superseded by, so nothing is acked and the events stay with
/// whoever holds the partition).
fn check_applied(progress: &table::Progress, group: &GroupId, required: &[(u32, i64)]) -> Result<()> {
    let applied = |partition: u32, offset: i64| {
        progress.get(&partition).is_some_and(|(cursor, past)| offset <= *cursor || past.contains(&offset))
            || offset <= 0
    };
    match required.iter().find(|&&(p, off)| !applied(p, off)) {
        Some(&(partition, _)) => {
            Err(Error::LeaseLost { topic: group.topic.clone(), group: group.group.clone(), partition })
        }
        None => Ok(()),
    }
}

/// A committed batch's records and changes, dropped off the committer thread.
struct Leftovers {
    _records: Vec<EventRecord>,
    _changes: Vec<Encoded>,
}

/// The events a changefeed publishes for one written change (with a dual-write copy when its
/// topic declares one), validated like any publish; none when the feed does not republish that
/// operation. `cause` is the event the change came from: the feed's events name it as their
/// cause and continue its trace.
pub(crate) fn feed_events(
    registry: &Registry,
    feed: &FeedSpec,
    change: &Change,
    written: Written,
    cause: Option<&EventRecord>,
) -> Result<Vec<NewEvent>> {
    let (operation, document) = match (written, &change.op) {
        (Written::Inserted, plan::Op::Upsert(doc)) => ("insert", doc.clone()),
        (Written::Replaced, plan::Op::Upsert(doc)) => {
            ("update", if feed.update_document { doc.clone() } else { Value::Null })
        }
        (Written::Deleted, _) => ("delete", Value::Null),
        _ => return Ok(Vec::new()),
    };
    if !feed.operations.iter().any(|op| op == operation) {
        return Ok(Vec::new());
    }
    let payload = json!({ "operation": operation, "key": change.key, "document": document });
    // The source event's offset names the change: a repeat (which the cursor check prevents
    // anyway) would be recognised as a duplicate.
    let opts = PublishOptions {
        dedup: Some(format!("{}:{}", feed.name, change.offset)),
        caused_by: cause.map(|record| record.id),
        trace: cause.and_then(|record| TraceContext::from_headers(&record.headers)).map(|t| t.child()),
        ..PublishOptions::default()
    };
    let mut events = publish::prepare(registry, &feed.topic, payload, &opts).map_err(|e| {
        Error::system(
            format!("changefeed `{}`", feed.name),
            format!("its event for key `{}` is refused: {e}", change.key),
        )
    })?;
    for event in &mut events {
        event.headers.insert(CHANGE_OPERATION.to_string(), operation.to_string());
    }
    Ok(events)
}
