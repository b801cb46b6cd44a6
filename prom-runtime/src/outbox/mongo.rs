//! The outbox on MongoDB: publishes and appends inside the caller's own session and
//! transaction ([`MongoTx`], [`Producer::publish_in`] and friends).

use super::{Outbox, OutboxFuture};
use crate::bus::mongo::in_session;
use crate::bus::{EventBus, MongoBus};
use crate::error::{Error, Result};
use crate::publish::{self, Producer, PublishOptions};
use crate::record::Receipt;
use crate::registry::Registry;
use crate::stream::{Appended, ExpectedVersion, StreamId, stream_append};
use crate::typed::Event;
use mongodb::ClientSession;
use serde_json::Value;
use std::sync::Arc;

/// The caller's MongoDB session, with a transaction they started, joined by Prom's publishes
/// and appends: events are validated like any publish and stored by the transaction, so they
/// and the caller's own writes commit or abort together. Prom never commits, aborts or retries
/// the transaction: the caller does. Build one with [`Producer::in_session`].
///
/// Failures: an invalid payload ([`Error::Invalid`] and the other validation errors) is refused
/// before anything reaches the server and leaves the transaction usable; a stream conflict
/// ([`Error::StreamConflict`]) has only read, so it leaves the transaction open and usable too
/// (abort it, or commit it without the events); a conflict with a concurrent writer
/// ([`Error::TransactionConflict`]) means the server aborted the transaction: run it again.
pub struct MongoTx<'s> {
    bus: MongoBus,
    registry: Arc<Registry>,
    session: &'s mut ClientSession,
}

impl<B: EventBus> Producer<B> {
    /// Joins the caller's `session` (from the bus's client, with a transaction started) for
    /// publishes and appends; fails with [`Error::NotMongo`] when the bus is not MongoDB.
    pub fn in_session<'s>(&self, session: &'s mut ClientSession) -> Result<MongoTx<'s>> {
        let Some(bus) = self.bus().as_mongo() else {
            return Err(Error::NotMongo { what: "a publish in a MongoDB session".to_owned() });
        };
        Ok(MongoTx { bus: bus.clone(), registry: self.registry().clone(), session })
    }

    /// Publishes `payload` to `topic` inside the caller's transaction (see [`MongoTx`]): stored
    /// and visible to consumers only if that transaction commits.
    pub async fn publish_in(
        &self,
        session: &mut ClientSession,
        topic: &str,
        payload: Value,
        options: PublishOptions,
    ) -> Result<Receipt> {
        self.in_session(session)?.publish(topic, payload, options).await
    }

    /// Publishes several payloads inside the caller's transaction (see [`MongoTx`]); the
    /// receipts of the events on their topics.
    pub async fn publish_all_in(
        &self,
        session: &mut ClientSession,
        items: Vec<(String, Value, PublishOptions)>,
    ) -> Result<Vec<Receipt>> {
        self.in_session(session)?.publish_all(items).await
    }

    /// Publishes a typed payload at its type's topic and version inside the caller's
    /// transaction (see [`Producer::publish_event`] and [`MongoTx`]).
    pub async fn publish_event_in<E: Event>(
        &self,
        session: &mut ClientSession,
        event: &E,
    ) -> Result<Receipt> {
        self.in_session(session)?.publish_event(event).await
    }

    /// Appends to `stream` inside the caller's transaction if its version is `expected` (checked
    /// in that transaction; see [`Producer::append`] and [`MongoTx`]).
    pub async fn append_in(
        &self,
        session: &mut ClientSession,
        stream: StreamId,
        expected: ExpectedVersion,
        events: Vec<(String, Value)>,
    ) -> Result<Appended> {
        self.in_session(session)?.append(stream, expected, events).await
    }
}

impl MongoTx<'_> {
    /// The caller's session, for their own writes in the same transaction.
    pub fn session(&mut self) -> &mut ClientSession {
        self.session
    }

    /// The bus whose collections the events go to.
    pub fn bus(&self) -> &MongoBus {
        &self.bus
    }

    /// Publishes `payload` to `topic` in the transaction, validated like
    /// [`Producer::publish`] (dual-write copy in the same transaction; a dedup key already
    /// stored, or published earlier in this transaction, gives that event's receipt with
    /// `duplicate: true`).
    pub async fn publish(&mut self, topic: &str, payload: Value, options: PublishOptions) -> Result<Receipt> {
        let events = publish::prepare(&self.registry, topic, payload, &options)?;
        let what = format!("publish to `{topic}`");
        let receipts = in_session::publish(&self.bus, self.session, &what, &events).await?;
        receipts.into_iter().next().ok_or(Error::Closed)
    }

    /// Publishes several payloads in the transaction, validated like
    /// [`Producer::publish_all`]: one invalid payload refuses them all before anything is
    /// written.
    pub async fn publish_all(&mut self, items: Vec<(String, Value, PublishOptions)>) -> Result<Vec<Receipt>> {
        let mut events = Vec::new();
        let mut primary = Vec::with_capacity(items.len());
        for (topic, payload, options) in items {
            primary.push(events.len());
            events.extend(publish::prepare(&self.registry, &topic, payload, &options)?);
        }
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let what = format!("publish of {} events", primary.len());
        let receipts = in_session::publish(&self.bus, self.session, &what, &events).await?;
        Ok(primary.into_iter().filter_map(|i| receipts.get(i).copied()).collect())
    }

    /// Publishes a typed payload at its type's topic and version in the transaction.
    pub async fn publish_event<E: Event>(&mut self, event: &E) -> Result<Receipt> {
        let (value, options) = publish::event_payload(event, PublishOptions::default())?;
        self.publish(E::TOPIC, value, options).await
    }

    /// Appends `events` (topic, payload) to `stream` in the transaction if its version is
    /// `expected`, validated like [`Producer::append`] (the aggregate's topics, its id pointer,
    /// the hash chain when tamper-evident). The version is read in the transaction's snapshot:
    /// a mismatch is [`Error::StreamConflict`] with nothing written; a writer that commits the
    /// same version after the snapshot makes this write conflict
    /// ([`Error::TransactionConflict`]), so two writers never both store one version.
    pub async fn append(
        &mut self,
        stream: StreamId,
        expected: ExpectedVersion,
        events: Vec<(String, Value)>,
    ) -> Result<Appended> {
        let what = format!("append to stream `{stream}`");
        let append = stream_append(&self.registry, stream, expected, events)?;
        in_session::append(&self.bus, self.session, &what, append).await
    }
}

impl Outbox for MongoTx<'_> {
    fn publish<'a>(
        &'a mut self,
        topic: &'a str,
        payload: Value,
        options: PublishOptions,
    ) -> OutboxFuture<'a, Receipt> {
        Box::pin(MongoTx::publish(self, topic, payload, options))
    }

    fn publish_all(&mut self, items: Vec<(String, Value, PublishOptions)>) -> OutboxFuture<'_, Vec<Receipt>> {
        Box::pin(MongoTx::publish_all(self, items))
    }

    fn append(
        &mut self,
        stream: StreamId,
        expected: ExpectedVersion,
        events: Vec<(String, Value)>,
    ) -> OutboxFuture<'_, Appended> {
        Box::pin(MongoTx::append(self, stream, expected, events))
    }
}
