//! The transactional projector on the embedded store: the user's [`DocHandler`] applies each
//! event through the documents of one store transaction ([`StoreTx`]) that also moves the
//! group's cursor, so every event's effects are applied exactly once — a crash before the commit
//! leaves neither, after it the cursor (or the applied-offsets ledger) says the event is done.
//!
//! It is the consumer group `projector.<name>`; members split partitions. Per event, inside the
//! transaction: an event at or below the stored cursor, or listed in the ledger past it, was
//! applied before and is skipped; otherwise the handler runs, the offset goes into the ledger
//! when the cursor cannot pass it yet (an earlier event of another key is still out), and the
//! cursor moves fenced by this member's lease. A failing handler is rolled back and retried per
//! the [`FailurePolicy`]; after the last attempt the event is dead-lettered to `dlq.<topic>` in
//! a transaction that also moves the cursor (so it is dead-lettered exactly once), or without a
//! DLQ retried every `max_backoff` until it succeeds.

use super::doc_handler::{CatchPanic, DocHandler};
use super::table;
use crate::bus::{GroupId, SqliteBus};
use crate::consumer::{AckMode, Delivery, SubscribeOptions, Subscription};
use crate::dlq;
use crate::documents::Declared;
use crate::documents::store_tx::{StoreTx, TxOptions};
use crate::error::{Error, Result};
use crate::outage::Outage;
use crate::publish::Producer;
use crate::record::EventRecord;
use crate::registry::Route;
use crate::runner::FailurePolicy;
use crate::system::{Projector, ProjectorKind};
use crate::trace::TraceContext;
use crate::trace::spans::Traced;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;

pub use super::transactional_spec::{TransactionalSpec, TxStats};

/// Runs a [`DocHandler`] over a topic on the embedded store with exactly-once effects.
pub struct EmbeddedTxProjector {
    producer: Producer<SqliteBus>,
    spec: TransactionalSpec,
    opts: SubscribeOptions,
    policy: FailurePolicy,
    stats: Arc<TxStats>,
    tx: TxOptions,
}

/// What one attempt at an event did.
enum Attempt {
    Committed,
    AlreadyApplied,
    Failed(String),
}

impl EmbeddedTxProjector {
    /// A projector; `opts` gives member id, TTL, batch size and poll timeout (partitions come
    /// from the spec, acks are manual), `policy` the retries and whether to dead-letter.
    pub fn new(
        producer: Producer<SqliteBus>,
        spec: TransactionalSpec,
        opts: SubscribeOptions,
        policy: FailurePolicy,
    ) -> EmbeddedTxProjector {
        let opts =
            SubscribeOptions { partitions: spec.partitions, partitioned: true, ack: AckMode::Manual, ..opts };
        let tx = TxOptions { declared: spec.declared.clone(), ..TxOptions::default() };
        EmbeddedTxProjector { producer, spec, opts, policy, stats: Arc::default(), tx }
    }

    /// The counters (shared; readable while running).
    pub fn stats(&self) -> Arc<TxStats> {
        self.stats.clone()
    }

    /// Creates the projector's collection with its declared indexes and the ledger (idempotent).
    pub async fn create_tables(&self) -> Result<()> {
        let mut ddl = vec![table::LEDGER.to_owned()];
        if let Some(collection) = &self.spec.collection {
            ddl.push(table::create_table(collection));
            for index in &self.spec.indexes {
                let sql = table::create_index(collection, index).map_err(|e| {
                    Error::system(format!("projector `{}`", self.spec.name), format!("index: {e}"))
                })?;
                ddl.push(sql);
            }
        }
        let ddl = ddl.join(";\n");
        self.producer
            .bus()
            .in_transaction(false, move |tx| tx.conn().execute_batch(&ddl).map_err(|e| tx.err(e)))
            .await
    }

    /// Creates the tables, then projects until `shutdown` completes (an event in progress is
    /// rolled back and applied by the next start), then leaves the group. A transient failure
    /// (the store's disk full) is waited out like an outage: it starts again from its stored
    /// cursors, under the same member id, so its leases resume.
    pub async fn run(mut self, handler: impl DocHandler, shutdown: impl Future<Output = ()>) -> Result<()> {
        self.opts.member.get_or_insert_with(crate::consumer::member_id);
        let mut outage = Outage::new(format!("projector `{}`", self.spec.name));
        tokio::pin!(shutdown);
        loop {
            let ran = match self.create_tables().await {
                Ok(()) => self.project(&handler, shutdown.as_mut(), &mut outage).await,
                Err(e) => Err(e),
            };
            let Err(e) = ran else { return Ok(()) };
            if !outage.wait(e, shutdown.as_mut()).await? {
                return Ok(());
            }
        }
    }

    /// Projects until `shutdown` completes or an event fails (see [`EmbeddedTxProjector::run`]).
    async fn project<S>(
        &self,
        handler: &dyn DocHandler,
        mut shutdown: Pin<&mut S>,
        outage: &mut Outage,
    ) -> Result<()>
    where
        S: Future<Output = ()> + ?Sized,
    {
        let mut sub = Subscription::new(
            self.producer.bus().clone(),
            &self.spec.topic,
            &self.spec.group(),
            self.opts.clone(),
        )?;
        let outcome = 'run: loop {
            let batch = tokio::select! {
                biased;
                () = shutdown.as_mut() => break Ok(()),
                polled = sub.poll() => match polled {
                    Ok(batch) => batch,
                    Err(e) => break Err(e),
                },
            };
            for delivery in &batch {
                let done = tokio::select! {
                    biased;
                    () = shutdown.as_mut() => break 'run Ok(()),
                    done = self.process(&sub, handler, delivery) => done,
                };
                match done {
                    Ok(cursors) => {
                        sub.ack(delivery);
                        sub.committed_by_caller(&cursors);
                        outage.recovered();
                    }
                    // Another member holds the partition now and applies the event from the
                    // stored cursor; the rest of the batch is theirs too.
                    Err(Error::LeaseLost { .. }) => break,
                    Err(e) => break 'run Err(e),
                }
            }
        };
        let closed = sub.close().await;
        outcome.and(closed)
    }

    /// Applies one delivery (attempts per the policy, then the dead letter); the cursors its
    /// transaction stored.
    async fn process(
        &self,
        sub: &Subscription<SqliteBus>,
        handler: &dyn DocHandler,
        delivery: &Delivery,
    ) -> Result<Vec<(u32, i64)>> {
        let cursors = sub.cursors_if_acked(std::slice::from_ref(delivery));
        let (group, member) = (sub.group().clone(), sub.member().to_string());
        let record = &delivery.record;
        let stored = TraceContext::from_headers(&record.headers);
        let name = &self.spec.name;
        let event = match self.producer.registry().decode(EventRecord::clone(record)) {
            Ok(event) => event,
            Err(e) => {
                let reason = format!("cannot decode: {e}");
                Traced::dead_letter(name, record, 0, stored.as_ref())
                    .run(self.dead_letter(&group, &member, &cursors, record, &reason, 0))
                    .await?;
                return Ok(cursors);
            }
        };
        let max = self.policy.retry.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            // Each attempt in its own `prom.handle` span: what the handler publishes continues
            // the event's trace.
            let traced = Traced::handle(name, record, attempt, stored.as_ref());
            match traced.run(self.attempt(&group, &member, &cursors, handler, &event)).await? {
                Attempt::Committed => {
                    self.stats.applied.fetch_add(1, Ordering::Relaxed);
                    return Ok(cursors);
                }
                Attempt::AlreadyApplied => {
                    self.stats.already_applied.fetch_add(1, Ordering::Relaxed);
                    return Ok(Vec::new());
                }
                Attempt::Failed(reason) if attempt >= max && self.policy.dlq => {
                    Traced::dead_letter(name, record, attempt, stored.as_ref())
                        .run(self.dead_letter(&group, &member, &cursors, record, &reason, attempt))
                        .await?;
                    return Ok(cursors);
                }
                Attempt::Failed(reason) => {
                    tracing::warn!(projector = %self.spec.name, offset = event.offset, attempt, "handler failed: {reason}");
                    self.stats.retried.fetch_add(1, Ordering::Relaxed);
                    let delay = if attempt >= max {
                        self.policy.retry.max_backoff
                    } else {
                        self.policy.retry.delay(attempt)
                    };
                    tokio::time::sleep(delay).await;
                    attempt = attempt.saturating_add(1);
                }
            }
        }
    }

    /// One transaction: skip check, the handler, the ledger and the fenced cursor.
    async fn attempt(
        &self,
        group: &GroupId,
        member: &str,
        cursors: &[(u32, i64)],
        handler: &dyn DocHandler,
        event: &EventRecord,
    ) -> Result<Attempt> {
        let mut tx = self.producer.transaction_with(self.tx.clone())?;
        if applied(&mut tx, group, event.partition, event.offset).await? {
            tx.rollback().await;
            return Ok(Attempt::AlreadyApplied);
        }
        let handled = CatchPanic(handler.handle(event, &mut tx)).await;
        match handled {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                tx.rollback().await;
                return Ok(Attempt::Failed(e.to_string()));
            }
            None => {
                tx.rollback().await;
                return Ok(Attempt::Failed("the handler panicked".into()));
            }
        }
        finish(&mut tx, group, member, cursors, event.partition, event.offset).await?;
        match tx.commit().await {
            Ok(()) => Ok(Attempt::Committed),
            // Timed out, or one of the handler's writes failed: nothing is stored.
            Err(e @ Error::TransactionAborted { .. }) => Ok(Attempt::Failed(e.to_string())),
            Err(e) => Err(e),
        }
    }

    /// Dead-letters `record` in a transaction that also moves the cursor past it.
    async fn dead_letter(
        &self,
        group: &GroupId,
        member: &str,
        cursors: &[(u32, i64)],
        record: &EventRecord,
        reason: &str,
        attempts: u32,
    ) -> Result<()> {
        let mut tx = self.producer.transaction_with(self.tx.clone())?;
        if applied(&mut tx, group, record.partition, record.offset).await? {
            tx.rollback().await;
            return Ok(());
        }
        let letter = dlq::dead_letter(record, &group.group, reason, attempts);
        tx.raw(move |ptx| ptx.publish(vec![letter]).map(|_| ())).await?;
        finish(&mut tx, group, member, cursors, record.partition, record.offset).await?;
        tx.commit().await?;
        self.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Whether the event at `offset` was applied by an earlier transaction.
async fn applied(tx: &mut StoreTx, group: &GroupId, partition: u32, offset: i64) -> Result<bool> {
    let group = group.clone();
    tx.raw(move |ptx| {
        let cursor = ptx.cursor(&group, partition)?.unwrap_or(0);
        if offset <= cursor {
            return Ok(true);
        }
        let past = table::applied_past(ptx.conn(), &group, partition, cursor).map_err(|e| ptx.err(e))?;
        Ok(past.contains(&offset))
    })
    .await
}

/// Records the event as applied: in the ledger when the cursor cannot pass it yet, and moves
/// the cursor, fenced by `member`'s lease.
async fn finish(
    tx: &mut StoreTx,
    group: &GroupId,
    member: &str,
    cursors: &[(u32, i64)],
    partition: u32,
    offset: i64,
) -> Result<()> {
    let (group, member) = (group.clone(), member.to_owned());
    let moved = cursors.iter().find(|(p, _)| *p == partition).map(|&(_, c)| c);
    tx.raw(move |ptx| {
        let stored = ptx.cursor(&group, partition)?.unwrap_or(0);
        let cursor = moved.unwrap_or(stored).max(stored);
        let past = (offset > cursor).then_some(offset);
        table::record_applied(ptx.conn(), &group, partition, past, cursor).map_err(|e| ptx.err(e))?;
        ptx.commit_cursors(&group, &member, &[(partition, cursor)])
    })
    .await
}

impl TransactionalSpec {
    /// Resolves a transactional projector of a system against the registry.
    pub fn from_system(
        projector: &Projector,
        registry: &crate::registry::Registry,
    ) -> Result<TransactionalSpec> {
        let name = projector.name.clone();
        let ProjectorKind::Transactional { collection, indexes, .. } = &projector.kind else {
            return Err(Error::WrongProjectorKind {
                projector: name,
                kind: "changelog",
                help: "run it with the changelog projector",
            });
        };
        let topic = match registry.route(&projector.topic)? {
            Route::Topic(t) | Route::Versioned(t, _) | Route::DeadLetters(t) => t,
        };
        let mut declared = Declared::none();
        if let Some(collection) = collection {
            for index in indexes {
                for (field, _) in &index.keys {
                    declared = declared.with(collection, field);
                }
            }
        }
        Ok(TransactionalSpec {
            name,
            topic: projector.topic.clone(),
            partitions: topic.partitions,
            collection: collection.clone(),
            indexes: indexes.clone(),
            declared,
        })
    }
}
