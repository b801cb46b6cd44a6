//! The handler adapters a pipeline hands to its runners: typed payloads for the user's
//! functions, and one shared handler per consumer.

use crate::error::Result;
use crate::record::EventRecord;
use crate::registry::Registry;
use crate::runner::{Decoded, Handler, HandlerFuture};
use crate::typed::Versioned;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

/// Lets one user handler serve the runner without cloning it.
pub(super) struct Shared(pub(super) Arc<dyn Handler>);

impl Handler for Shared {
    fn handle(&self, event: EventRecord) -> HandlerFuture {
        self.0.handle(event)
    }

    fn decode(&self, registry: &Registry, record: EventRecord) -> Result<Decoded> {
        self.0.decode(registry, record)
    }

    fn attempt(&self, event: &Decoded) -> HandlerFuture {
        self.0.attempt(event)
    }
}

/// Decodes the latest-version payload into `T` before calling the user's handler.
pub(super) struct Typed<F, T> {
    pub(super) handler: F,
    pub(super) payload: PhantomData<fn() -> T>,
}

impl<T, F, Fut, E> Handler for Typed<F, T>
where
    T: DeserializeOwned + Send + 'static,
    F: Fn(T, EventRecord) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
    E: std::fmt::Display,
{
    fn handle(&self, event: EventRecord) -> HandlerFuture {
        call_with_json(&self.handler, event)
    }
}

/// Calls a typed user handler, its error turned into the runner's retry message.
fn call<T, F, Fut, E>(handler: &F, payload: T, record: EventRecord) -> HandlerFuture
where
    F: Fn(T, EventRecord) -> Fut,
    Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
    E: std::fmt::Display,
{
    let fut = handler(payload, record);
    Box::pin(async move { fut.await.map_err(|e| e.to_string()) })
}

/// Decodes stored payloads straight into `V::Latest` (typed upcasters) for the user's handler.
pub(super) struct TypedLatest<F, V> {
    pub(super) handler: F,
    pub(super) versions: PhantomData<fn() -> V>,
}

impl<V, F, Fut, E> Handler for TypedLatest<F, V>
where
    V: Versioned,
    V::Latest: Clone,
    F: Fn(V::Latest, EventRecord) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
    E: std::fmt::Display,
{
    fn handle(&self, event: EventRecord) -> HandlerFuture {
        // Only reached when called directly with an already decoded (latest, JSON) record.
        call_with_json(&self.handler, event)
    }

    fn decode(&self, registry: &Registry, record: EventRecord) -> Result<Decoded> {
        let (payload, record) = registry.decode_typed::<V>(record)?;
        Ok(Decoded::typed(payload, record))
    }

    fn attempt(&self, event: &Decoded) -> HandlerFuture {
        match event.payload::<V::Latest>() {
            Some(payload) => call(&self.handler, payload.clone(), event.record.clone()),
            None => self.handle(event.record.clone()),
        }
    }
}

/// Calls a typed user handler with the record's JSON payload decoded as `T`.
fn call_with_json<T, F, Fut, E>(handler: &F, event: EventRecord) -> HandlerFuture
where
    T: DeserializeOwned,
    F: Fn(T, EventRecord) -> Fut,
    Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
    E: std::fmt::Display,
{
    match serde_json::from_value::<T>(event.payload.clone()) {
        Ok(payload) => call(handler, payload, event),
        // The payload passed schema validation, so this is a type/schema mismatch in the user's
        // crate; retrying would not help, but the DLQ keeps the event.
        Err(error) => {
            Box::pin(async move { Err(format!("payload does not decode into the handler's type: {error}")) })
        }
    }
}
