//! Publishing and appending together with the caller's own writes, committed or rolled back as
//! one (the outbox problem, solved natively: the bus lives in the same database).
//!
//! [`Outbox`] is what a store transaction offers for it: the embedded store's
//! [`crate::documents::StoreTx`] (`producer.transaction()`), and on MongoDB a [`MongoTx`]
//! wrapping the caller's own `ClientSession` with a transaction they started
//! (`producer.in_session(&mut session)`, or the `Producer::publish_in` family). Typed code
//! takes any `Outbox`: `Topic::publish_in`, and the generated `STREAM.append_in`.
//!
//! Everything written through it is validated exactly like a plain publish or append, and
//! becomes visible to consumers only when the transaction commits; a rolled-back or aborted
//! transaction leaves no event and no gap in any topic's offsets.

#[cfg(feature = "mongo")]
mod mongo;

#[cfg(feature = "mongo")]
pub use mongo::MongoTx;

use crate::error::Result;
use crate::publish::PublishOptions;
use crate::record::Receipt;
use crate::stream::{Appended, ExpectedVersion, StreamId};
use crate::typed::Event;
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;

/// The future an [`Outbox`] operation returns.
pub type OutboxFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// Publishes and stream appends that join an open store transaction.
pub trait Outbox: Send {
    /// Publishes `payload` to `topic` in the transaction, validated like
    /// [`crate::Producer::publish`] (dual-write copy and dedup key included).
    fn publish<'a>(
        &'a mut self,
        topic: &'a str,
        payload: Value,
        options: PublishOptions,
    ) -> OutboxFuture<'a, Receipt>;

    /// Publishes several payloads in the transaction, validated like
    /// [`crate::Producer::publish_all`]; the receipts of the events on their topics.
    fn publish_all(&mut self, items: Vec<(String, Value, PublishOptions)>) -> OutboxFuture<'_, Vec<Receipt>>;

    /// Appends `events` (topic, payload) to `stream` in the transaction if its version is
    /// `expected`, validated like [`crate::Producer::append`]; the version is checked in the
    /// transaction.
    fn append(
        &mut self,
        stream: StreamId,
        expected: ExpectedVersion,
        events: Vec<(String, Value)>,
    ) -> OutboxFuture<'_, Appended>;

    /// Publishes a typed payload at its type's topic and version in the transaction (see
    /// [`crate::Producer::publish_event`]).
    fn publish_event<'a, E: Event>(&'a mut self, event: &E) -> OutboxFuture<'a, Receipt>
    where
        Self: Sized,
    {
        let prepared = crate::publish::event_payload(event, PublishOptions::default());
        Box::pin(async move {
            let (value, options) = prepared?;
            self.publish(E::TOPIC, value, options).await
        })
    }
}

impl Outbox for crate::documents::StoreTx {
    fn publish<'a>(
        &'a mut self,
        topic: &'a str,
        payload: Value,
        options: PublishOptions,
    ) -> OutboxFuture<'a, Receipt> {
        Box::pin(crate::documents::StoreTx::publish(self, topic, payload, options))
    }

    fn publish_all(&mut self, items: Vec<(String, Value, PublishOptions)>) -> OutboxFuture<'_, Vec<Receipt>> {
        Box::pin(crate::documents::StoreTx::publish_all(self, items))
    }

    fn append(
        &mut self,
        stream: StreamId,
        expected: ExpectedVersion,
        events: Vec<(String, Value)>,
    ) -> OutboxFuture<'_, Appended> {
        Box::pin(crate::documents::StoreTx::append(self, stream, expected, events))
    }
}
