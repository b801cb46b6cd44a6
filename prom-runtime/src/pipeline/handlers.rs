//! The handler adapters a pipeline hands to its runners: typed payloads (with their
//! [`Context`]) for the user's functions, and one shared handler per consumer.

use crate::context::Context;
use crate::error::Result;
use crate::handler_error::HandlerError;
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
    F: Fn(T, Context) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
    E: std::fmt::Display + 'static,
{
    fn handle(&self, event: EventRecord) -> HandlerFuture {
        let context = Context::new(&event, 1);
        call_with_json(&self.handler, &event, context)
    }

    fn attempt(&self, event: &Decoded) -> HandlerFuture {
        call_with_json(&self.handler, &event.record, event.context())
    }
}

/// Calls a typed user handler, its error classified for the runner (retry or dead-letter).
fn call<T, F, Fut, E>(handler: &F, payload: T, context: Context) -> HandlerFuture
where
    F: Fn(T, Context) -> Fut,
    Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
    E: std::fmt::Display + 'static,
{
    let fut = handler(payload, context);
    Box::pin(async move { fut.await.map_err(HandlerError::from_handler) })
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
    F: Fn(V::Latest, Context) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
    E: std::fmt::Display + 'static,
{
    fn handle(&self, event: EventRecord) -> HandlerFuture {
        // Only reached when called directly with an already decoded (latest, JSON) record.
        let context = Context::new(&event, 1);
        call_with_json(&self.handler, &event, context)
    }

    fn decode(&self, registry: &Registry, record: EventRecord) -> Result<Decoded> {
        let (payload, record) = registry.decode_typed::<V>(record)?;
        Ok(Decoded::typed(payload, record))
    }

    fn attempt(&self, event: &Decoded) -> HandlerFuture {
        match event.payload::<V::Latest>() {
            Some(payload) => call(&self.handler, payload.clone(), event.context()),
            None => call_with_json(&self.handler, &event.record, event.context()),
        }
    }
}

/// Calls a typed user handler with the record's JSON payload decoded as `T`.
fn call_with_json<T, F, Fut, E>(handler: &F, event: &EventRecord, context: Context) -> HandlerFuture
where
    T: DeserializeOwned,
    F: Fn(T, Context) -> Fut,
    Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
    E: std::fmt::Display + 'static,
{
    match T::deserialize(&*event.payload) {
        Ok(payload) => call(handler, payload, context),
        // The payload passed schema validation, so this is a type/schema mismatch in the user's
        // crate: no retry can fix it, and the DLQ keeps the event.
        Err(error) => Box::pin(async move {
            Err(HandlerError::permanent(format!("payload does not decode into the handler's type: {error}")))
        }),
    }
}
