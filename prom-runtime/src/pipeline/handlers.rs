//! The handler adapters a pipeline hands to its runners: typed payloads (with their
//! [`Context`]) for the user's functions, and one shared handler per consumer.

use crate::context::Context;
use crate::error::Result;
use crate::handler_error::HandlerError;
use crate::record::EventRecord;
use crate::registry::Registry;
use crate::runner::{Handler, HandlerFuture};
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

    fn attempt(&self, registry: &Registry, event: &Arc<EventRecord>, attempt: u32) -> Result<HandlerFuture> {
        self.0.attempt(registry, event, attempt)
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
        call_with_json(&self.handler, Context::new(&event, 1), &event)
    }

    fn attempt(&self, registry: &Registry, event: &Arc<EventRecord>, attempt: u32) -> Result<HandlerFuture> {
        let decoded = registry.decode_shared(event)?;
        Ok(call_with_json(&self.handler, Context::shared(decoded.clone(), attempt), &decoded))
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
pub(crate) struct TypedLatest<F, V> {
    pub(crate) handler: F,
    pub(crate) versions: PhantomData<fn() -> V>,
}

impl<V, F, Fut, E> Handler for TypedLatest<F, V>
where
    V: Versioned,
    F: Fn(V::Latest, Context) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
    E: std::fmt::Display + 'static,
{
    fn handle(&self, event: EventRecord) -> HandlerFuture {
        // Only reached when called directly with an already decoded (latest, JSON) record.
        call_with_json(&self.handler, Context::new(&event, 1), &event)
    }

    fn attempt(&self, registry: &Registry, event: &Arc<EventRecord>, attempt: u32) -> Result<HandlerFuture> {
        // Decoded again on each attempt, so the payload is moved into the handler, not cloned.
        // The runner dead-letters corrupt events before any attempt, so they are not checked
        // for twice.
        let (payload, record) = registry.decode_typed_shared_sound::<V>(event)?;
        Ok(call(&self.handler, payload, Context::shared(record, attempt)))
    }
}

/// Calls a typed user handler with the record's JSON payload decoded as `T`.
fn call_with_json<T, F, Fut, E>(handler: &F, context: Context, event: &EventRecord) -> HandlerFuture
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
