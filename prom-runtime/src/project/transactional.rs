//! The transactional projector: a user handler whose MongoDB writes commit in one transaction
//! with the consumer group's cursor, so every event's effects are applied exactly once — a
//! crash before the commit leaves neither, and after it the cursor says the event is done.
//!
//! It is a consumer group (`projector.<name>`) on a [`MongoBus`]: members split partitions and
//! apply their events one by one, in offset order. A failing handler is retried per the
//! [`FailurePolicy`]; after the last attempt the event goes to `dlq.<topic>` (its dead letter
//! carries a dedup key, so a crash cannot dead-letter it twice), or without a DLQ it is retried
//! every `max_backoff` and its member makes no progress until it succeeds — skipping it would
//! lose it, because the cursor of later events would pass it.
//!
//! After a crash mid-transaction the server keeps that transaction open until its lifetime
//! (`transactionLifetimeLimitSeconds`, 60 s by default) ends; the next member's transactions on
//! the same documents conflict and retry with backoff until then.

use super::checkpoint::{self, Applied, Failure};
pub use super::transactional_spec::{TransactionalSpec, TxStats};
pub use super::tx_handler::{DocsOnMongo, HandlerError, TxFuture, TxHandler};
use crate::bus::EventBus;
use crate::bus::mongo::MongoBus;
use crate::consumer::{Delivery, SubscribeOptions, Subscription};
use crate::dlq;
use crate::error::Result;
use crate::outage::{self, Outage};
use crate::publish::Producer;
use crate::record::EventRecord;
use crate::runner::FailurePolicy;
use crate::trace::TraceContext;
use crate::trace::spans::Traced;
use crate::typed::Versioned;
use mongodb::options::{Acknowledgment, ReadConcern, TransactionOptions, WriteConcern};
use mongodb::{ClientSession, Database};
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// A [`TxHandler`] that hands the user's function the payload decoded as `V::Latest` (what
/// generated code registers for a `handler:` path).
pub struct TypedTx<V, F> {
    handler: F,
    versions: PhantomData<fn() -> V>,
}

impl<V, F> TypedTx<V, F>
where
    V: Versioned,
    F: for<'a> Fn(V::Latest, &'a EventRecord, &'a Database, &'a mut ClientSession) -> TxFuture<'a>
        + Send
        + Sync,
{
    /// Wraps `handler`, a function of the topic's latest payload type.
    pub fn new(handler: F) -> TypedTx<V, F> {
        TypedTx { handler, versions: PhantomData }
    }
}

impl<V, F> TxHandler for TypedTx<V, F>
where
    V: Versioned,
    F: for<'a> Fn(V::Latest, &'a EventRecord, &'a Database, &'a mut ClientSession) -> TxFuture<'a>
        + Send
        + Sync,
{
    fn handle<'a>(
        &'a self,
        event: &'a EventRecord,
        db: &'a Database,
        session: &'a mut ClientSession,
    ) -> TxFuture<'a> {
        // The record was upcast and validated already; a mismatch means the generated types
        // are older than the spec, which retrying cannot fix (the DLQ keeps the event).
        match <V::Latest as serde::Deserialize>::deserialize(&*event.payload) {
            Ok(payload) => (self.handler)(payload, event, db, session),
            Err(e) => Box::pin(async move {
                Err(HandlerError::failed(format!("payload does not decode into the handler's type: {e}")))
            }),
        }
    }
}

/// Runs a [`TxHandler`] over a topic with exactly-once effects.
pub struct TransactionalProjector {
    producer: Producer<MongoBus>,
    spec: TransactionalSpec,
    opts: SubscribeOptions,
    policy: FailurePolicy,
    stats: Arc<TxStats>,
}

impl TransactionalProjector {
    /// A projector; `opts` gives member id, TTL, batch size and poll timeout (partitions come
    /// from the spec, acks are manual), `policy` the retries and whether to dead-letter.
    pub fn new(
        producer: Producer<MongoBus>,
        spec: TransactionalSpec,
        opts: SubscribeOptions,
        policy: FailurePolicy,
    ) -> TransactionalProjector {
        let opts =
            SubscribeOptions { partitions: spec.partitions, ack: crate::consumer::AckMode::Manual, ..opts };
        TransactionalProjector { producer, spec, opts, policy, stats: Arc::default() }
    }

    /// The counters (shared; readable while running).
    pub fn stats(&self) -> Arc<TxStats> {
        self.stats.clone()
    }

    /// Projects until `shutdown` completes (an event in progress is rolled back and redelivered
    /// later), then leaves the group. A MongoDB outage is waited out ([`crate::outage`]): the
    /// event in hand is applied again once the server is back, and its cursor check makes that
    /// exactly once.
    pub async fn run(self, handler: impl TxHandler, shutdown: impl Future<Output = ()>) -> Result<()> {
        let bus = self.producer.bus().clone();
        let mut outage = Outage::new(format!("transactional projector `{}`", self.spec.name));
        tokio::pin!(shutdown);
        let Some(mut session) = outage.retry(shutdown.as_mut(), || self.session(&bus)).await? else {
            return Ok(());
        };
        let mut sub =
            Subscription::new(bus.clone(), &self.spec.topic, &self.spec.group(), self.opts.clone())?;
        let group = sub.group().clone();
        let outcome = 'run: loop {
            let batch = match outage.retry_on(shutdown.as_mut(), &mut sub, |sub| Box::pin(sub.poll())).await {
                Ok(Some(batch)) => batch,
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            };
            for delivery in &batch {
                // Dropping `process` mid-transaction leaves it open in the session, which is
                // aborted when the session is dropped below; nothing is committed half.
                // Where the cursor may move once this event is done (it stays before events
                // still out); the event's transaction stores it.
                let cursors = sub.cursors_if_acked(std::slice::from_ref(delivery));
                let cursor_to =
                    cursors.iter().find(|(p, _)| *p == delivery.record.partition).map(|&(_, c)| c);
                loop {
                    let done = tokio::select! {
                        biased;
                        () = shutdown.as_mut() => break 'run Ok(()),
                        done = self.process(bus.database(), &mut session, &group, &handler, delivery, cursor_to) => done,
                    };
                    match done {
                        Ok(stored) => {
                            outage.recovered();
                            sub.ack(delivery);
                            // The event's transaction stored them; otherwise the
                            // subscription commits them.
                            if stored {
                                sub.committed_by_caller(&cursors);
                            }
                            break;
                        }
                        // Applying it again is safe: its cursor check sees a commit that went through.
                        Err(e) => match outage.wait(e, shutdown.as_mut()).await {
                            Ok(true) => {}
                            Ok(false) => break 'run Ok(()),
                            Err(e) => break 'run Err(e),
                        },
                    }
                }
            }
        };
        drop(session);
        let closed = sub.close().await;
        outcome.and(closed)
    }

    async fn session(&self, bus: &MongoBus) -> Result<ClientSession> {
        // Snapshot reads make the cursor check and the handler's reads one consistent view;
        // majority + journal makes a committed event survive a failover.
        let durable = WriteConcern::builder().w(Acknowledgment::Majority).journal(true).build();
        let options = TransactionOptions::builder()
            .read_concern(ReadConcern::snapshot())
            .write_concern(durable)
            .build();
        checkpoint::create_ledger(bus.database())
            .await
            .map_err(|e| outage::mongo::error(self.path(), "cannot create the applied-events ledger", &e))?;
        bus.client()
            .start_session()
            .default_transaction_options(options)
            .await
            .map_err(|e| outage::mongo::error(self.path(), "cannot start a MongoDB session", &e))
    }

    /// Applies one delivery: decode, attempts per the policy, then dead letter (or keep trying);
    /// whether its transaction stored the cursors.
    async fn process(
        &self,
        db: &Database,
        session: &mut ClientSession,
        group: &crate::bus::GroupId,
        handler: &dyn TxHandler,
        delivery: &Delivery,
        cursor_to: Option<i64>,
    ) -> Result<bool> {
        let record = &delivery.record;
        let stored = TraceContext::from_headers(&record.headers);
        let name = &self.spec.name;
        let event = match self.producer.registry().decode(EventRecord::clone(record)) {
            Ok(event) => event,
            Err(e) => {
                Traced::dead_letter(name, record, 0, stored.as_ref())
                    .run(self.dead_letter(record, &format!("cannot decode: {e}"), 0))
                    .await?;
                return Ok(false);
            }
        };
        let max = self.policy.retry.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            // Each attempt in its own `prom.handle` span, continuing the event's trace.
            let traced = Traced::handle(name, record, attempt, stored.as_ref());
            match traced.run(checkpoint::apply_once(db, session, group, handler, &event, cursor_to)).await {
                Ok(Applied::Committed) => {
                    self.stats.applied.fetch_add(1, Ordering::Relaxed);
                    return Ok(true);
                }
                Ok(Applied::AlreadyApplied) => {
                    self.stats.already_applied.fetch_add(1, Ordering::Relaxed);
                    return Ok(false);
                }
                Err(Failure::Store(what, e)) => {
                    let what = format!("cannot apply event {} at offset {}: {what}", event.id, event.offset);
                    return Err(outage::mongo::error(self.path(), what, &e));
                }
                Err(Failure::Handler(e)) if attempt >= max && self.policy.dlq => {
                    Traced::dead_letter(name, record, attempt, stored.as_ref())
                        .run(self.dead_letter(record, &e, attempt))
                        .await?;
                    return Ok(false);
                }
                Err(Failure::Handler(_)) => {
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

    /// Writes the dead letter durably (its dedup key makes a repeat after a crash a no-op).
    async fn dead_letter(&self, record: &EventRecord, reason: &str, attempts: u32) -> Result<()> {
        let letter = dlq::dead_letter(record, &self.spec.group(), reason, attempts);
        self.producer.bus().publish(vec![letter]).await?;
        self.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn path(&self) -> String {
        format!("transactional projector `{}`", self.spec.name)
    }
}
