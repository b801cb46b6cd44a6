//! A declared pipeline started with one call: every consumer the spec declares runs with the
//! user's handler and the retry, DLQ and partitioning the spec gives it. Generated code wraps
//! this in a typed `Wiring` (one method per consumer), so a missing handler is caught at start
//! and a misspelt consumer at compile time.

use crate::bus::EventBus;
use crate::consumer::SubscribeOptions;
use crate::error::{Error, Result};
use crate::publish::Producer;
use crate::record::EventRecord;
use crate::registry::Registry;
use crate::runner::{Decoded, Handler, HandlerFuture, Runner};
use crate::typed::{Topic, Versioned};
use prom_codegen::spec::Spec;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::watch;

/// Every consumer of a spec, with the handlers the user supplied.
pub struct Pipeline<B: EventBus> {
    producer: Producer<B>,
    spec: Arc<Spec>,
    handlers: BTreeMap<String, Arc<dyn Handler>>,
}

impl<B: EventBus> Pipeline<B> {
    /// A pipeline over a spec embedded as text (what generated code passes); `configure`
    /// registers `with:` upcasters before the registry is checked.
    pub fn embedded(
        bus: B,
        documents: &[&str],
        files: &[(&str, &str)],
        configure: impl FnOnce(Registry) -> Registry,
    ) -> Result<Pipeline<B>> {
        let linted = prom_codegen::lint_embedded(documents, files);
        if linted.has_errors() {
            return Err(Error::Config(format!("the embedded spec has errors:\n{}", linted.render())));
        }
        Pipeline::new(bus, linted.spec, configure)
    }

    /// A pipeline over a linted spec.
    pub fn new(bus: B, spec: Spec, configure: impl FnOnce(Registry) -> Registry) -> Result<Pipeline<B>> {
        let registry = configure(Registry::from_spec(&spec)?);
        registry.check_upcasters()?;
        Ok(Pipeline {
            producer: Producer::new(bus, Arc::new(registry)),
            spec: Arc::new(spec),
            handlers: BTreeMap::new(),
        })
    }

    /// Publishes (validated, stamped, dual-written) through this pipeline's registry.
    pub fn producer(&self) -> &Producer<B> {
        &self.producer
    }

    /// The spec the pipeline runs.
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// Sets the handler of a declared consumer.
    pub fn handle<H: Handler>(mut self, consumer: &str, handler: H) -> Result<Pipeline<B>> {
        if !self.spec.consumers.contains_key(consumer) {
            let hint =
                prom_codegen::suggest::did_you_mean(consumer, self.spec.consumers.keys().map(String::as_str));
            return Err(Error::Config(format!("the spec declares no consumer `{consumer}` {hint}")));
        }
        self.handlers.insert(consumer.to_owned(), Arc::new(handler));
        Ok(self)
    }

    /// Sets a handler that receives the payload decoded as `T` (the topic's latest version)
    /// along with its record.
    pub fn handle_typed<T, F, Fut, E>(self, consumer: &str, handler: F) -> Result<Pipeline<B>>
    where
        T: DeserializeOwned + Send + 'static,
        F: Fn(T, EventRecord) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
        E: std::fmt::Display,
    {
        self.handle(consumer, Typed { handler, payload: std::marker::PhantomData })
    }

    /// Sets a handler that receives `topic`'s latest payload type (generated code passes the
    /// topic's `TOPIC` handle). Stored payloads are decoded typed and brought up by the
    /// generated typed upcasters, without a detour through JSON ([`Registry::decode_typed`]).
    pub fn handle_latest<V, F, Fut, E>(
        self,
        consumer: &str,
        topic: Topic<V>,
        handler: F,
    ) -> Result<Pipeline<B>>
    where
        V: Versioned,
        V::Latest: Clone,
        F: Fn(V::Latest, EventRecord) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
        E: std::fmt::Display,
    {
        if let Some(declared) = self.spec.consumers.get(consumer)
            && declared.topic.value != topic.name()
        {
            return Err(Error::Config(format!(
                "consumer `{consumer}` reads `{}`, but its handler takes `{}` payloads",
                declared.topic.value,
                topic.name()
            )));
        }
        self.handle(consumer, TypedLatest { handler, versions: std::marker::PhantomData::<fn() -> V> })
    }

    /// Runs every consumer until `shutdown` completes, or until one fails.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let missing: Vec<&str> = self
            .spec
            .consumers
            .keys()
            .filter(|name| !self.handlers.contains_key(*name))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(Error::Config(format!(
                "no handler for consumer(s) {}: give every declared consumer a handler before `run`",
                missing.join(", ")
            )));
        }
        let (stop, stopped) = watch::channel(false);
        let mut tasks = tokio::task::JoinSet::new();
        for (name, consumer) in &self.spec.consumers {
            let runner = Runner::for_consumer(self.producer.clone(), consumer, SubscribeOptions::default())?;
            let handler = Shared(self.handlers[name].clone());
            let mut stopped = stopped.clone();
            tasks.spawn(runner.run(handler, async move {
                // A closed channel also means stop.
                let _ = stopped.wait_for(|stop| *stop).await;
            }));
        }
        tokio::pin!(shutdown);
        let outcome = tokio::select! {
            () = &mut shutdown => Ok(()),
            Some(first) = tasks.join_next() => flatten(first),
        };
        let _ = stop.send(true);
        let mut result = outcome;
        while let Some(done) = tasks.join_next().await {
            result = result.and(flatten(done));
        }
        result
    }
}

fn flatten(joined: std::result::Result<Result<()>, tokio::task::JoinError>) -> Result<()> {
    joined.map_err(|e| Error::Config(format!("a consumer task failed: {e}")))?
}

/// Lets one user handler serve the runner without cloning it.
struct Shared(Arc<dyn Handler>);

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
struct Typed<F, T> {
    handler: F,
    payload: std::marker::PhantomData<fn() -> T>,
}

impl<T, F, Fut, E> Handler for Typed<F, T>
where
    T: DeserializeOwned + Send + 'static,
    F: Fn(T, EventRecord) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
    E: std::fmt::Display,
{
    fn handle(&self, event: EventRecord) -> HandlerFuture {
        match serde_json::from_value::<T>(event.payload.clone()) {
            Ok(payload) => {
                let fut = (self.handler)(payload, event);
                Box::pin(async move { fut.await.map_err(|e| e.to_string()) })
            }
            Err(error) => not_decodable(error),
        }
    }
}

/// Decodes stored payloads straight into `V::Latest` (typed upcasters) for the user's handler.
struct TypedLatest<F, V> {
    handler: F,
    versions: std::marker::PhantomData<fn() -> V>,
}

impl<V, F, Fut, E> TypedLatest<F, V>
where
    V: Versioned,
    F: Fn(V::Latest, EventRecord) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
    E: std::fmt::Display,
{
    fn call(&self, payload: V::Latest, record: EventRecord) -> HandlerFuture {
        let fut = (self.handler)(payload, record);
        Box::pin(async move { fut.await.map_err(|e| e.to_string()) })
    }
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
        match serde_json::from_value::<V::Latest>(event.payload.clone()) {
            Ok(payload) => self.call(payload, event),
            Err(error) => not_decodable(error),
        }
    }

    fn decode(&self, registry: &Registry, record: EventRecord) -> Result<Decoded> {
        let (payload, record) = registry.decode_typed::<V>(record)?;
        Ok(Decoded::typed(payload, record))
    }

    fn attempt(&self, event: &Decoded) -> HandlerFuture {
        match event.payload::<V::Latest>() {
            Some(payload) => self.call(payload.clone(), event.record.clone()),
            None => self.handle(event.record.clone()),
        }
    }
}

/// The payload passed schema validation, so this is a type/schema mismatch in the user's crate;
/// retrying would not help, but the DLQ keeps the event.
fn not_decodable(error: serde_json::Error) -> HandlerFuture {
    Box::pin(async move { Err(format!("payload does not decode into the handler's type: {error}")) })
}
