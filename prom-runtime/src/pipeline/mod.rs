//! A declared pipeline started with one call: every consumer the spec declares runs with the
//! user's handler and the retry, DLQ and partitioning the spec gives it; on a MongoDB bus the
//! declared projectors and changefeeds run too. Generated code wraps this in a typed `Wiring`
//! (one method per consumer), so a missing handler is caught at start and a misspelt consumer
//! at compile time.

mod handlers;
#[cfg(feature = "mongo")]
pub mod mongo;
mod select;

pub use select::{Component, ComponentKind};

use crate::bus::EventBus;
use crate::consumer::SubscribeOptions;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::publish::Producer;
use crate::registry::Registry;
use crate::runner::{Handler, Runner};
use crate::typed::{Topic, Versioned};
use handlers::{Shared, Typed, TypedLatest};
use prom_spec::spec::Spec;
use select::Selection;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use tokio::sync::watch;

/// Every consumer of a spec, with the handlers the user supplied.
pub struct Pipeline<B: EventBus> {
    producer: Producer<B>,
    spec: Arc<Spec>,
    handlers: BTreeMap<String, Arc<dyn Handler>>,
    #[cfg(feature = "mongo")]
    tx_handlers: mongo::TxHandlers,
    /// What [`Pipeline::only`] selected; `None` runs everything.
    selection: Option<Selection>,
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
        let linted = prom_spec::lint_embedded(documents, files);
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
            #[cfg(feature = "mongo")]
            tx_handlers: BTreeMap::new(),
            selection: None,
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

    /// Runs only the named consumers, projectors and changefeeds (generated code has a
    /// constant per component: `consumers::HB_ANALYZERS`; a plain `&str` names every kind of
    /// component with that name). The others are neither started nor need a handler, and
    /// their groups' events stay for whoever runs them. A name the spec does not declare is
    /// an error with the closest declared name and the list of them; a selected consumer
    /// without a handler still makes [`Pipeline::run`] fail. A second call replaces the first.
    pub fn only<I>(mut self, components: I) -> Result<Pipeline<B>>
    where
        I: IntoIterator,
        I::Item: Into<Component>,
    {
        let selection = Selection::resolve(&self.spec, components.into_iter().map(Into::into))?;
        self.selection = Some(selection);
        Ok(self)
    }

    /// Whether consumer `name` runs (every consumer does unless [`Pipeline::only`] chose).
    fn runs_consumer(&self, name: &str) -> bool {
        self.selection.as_ref().is_none_or(|selection| selection.has_consumer(name))
    }

    /// The spec restricted to what [`Pipeline::only`] selected.
    fn selected_spec(&self) -> std::borrow::Cow<'_, Spec> {
        match &self.selection {
            Some(selection) => std::borrow::Cow::Owned(selection.restrict(&self.spec)),
            None => std::borrow::Cow::Borrowed(&self.spec),
        }
    }

    /// Sets the handler of a declared consumer.
    pub fn handle<H: Handler>(mut self, consumer: &str, handler: H) -> Result<Pipeline<B>> {
        if !self.spec.consumers.contains_key(consumer) {
            return Err(undeclared("consumer", consumer, self.spec.consumers.keys()));
        }
        self.handlers.insert(consumer.to_owned(), Arc::new(handler));
        Ok(self)
    }

    /// Sets a handler that receives the payload decoded as `T` (the topic's latest version)
    /// along with its [`Context`] (id, offset, key, headers, attempt number). Its error is
    /// retried unless it is a [`crate::HandlerError::permanent`].
    pub fn handle_typed<T, F, Fut, E>(self, consumer: &str, handler: F) -> Result<Pipeline<B>>
    where
        T: DeserializeOwned + Send + 'static,
        F: Fn(T, Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
        E: std::fmt::Display + 'static,
    {
        self.handle(consumer, Typed { handler, payload: PhantomData })
    }

    /// Sets a handler that receives `topic`'s latest payload type (generated code passes the
    /// topic's `TOPIC` handle). Stored payloads are decoded typed and brought up by the
    /// generated typed upcasters, without a detour through JSON ([`Registry::decode_typed`]);
    /// the handler gets the event's [`Context`] alongside.
    pub fn handle_latest<V, F, Fut, E>(
        self,
        consumer: &str,
        topic: Topic<V>,
        handler: F,
    ) -> Result<Pipeline<B>>
    where
        V: Versioned,
        V::Latest: Clone,
        F: Fn(V::Latest, Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
        E: std::fmt::Display + 'static,
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
        self.handle(consumer, TypedLatest { handler, versions: PhantomData::<fn() -> V> })
    }

    /// Sets the handler of a declared transactional projector (it runs on a MongoDB bus).
    #[cfg(feature = "mongo")]
    pub fn handle_transactional<H>(mut self, projector: &str, handler: H) -> Result<Pipeline<B>>
    where
        H: crate::project::transactional::TxHandler + 'static,
    {
        use prom_spec::spec::ProjectorKind;
        match self.spec.projectors.get(projector) {
            Some(p) if p.kind.value == ProjectorKind::Transactional => {}
            Some(_) => {
                return Err(Error::Config(format!(
                    "projector `{projector}` is a changelog projector: it needs no handler"
                )));
            }
            None => return Err(undeclared("projector", projector, self.spec.projectors.keys())),
        }
        self.tx_handlers.insert(projector.to_owned(), Arc::new(handler));
        Ok(self)
    }

    /// Runs every consumer (those [`Pipeline::only`] selected, if it was called) until
    /// `shutdown` completes, or until one fails. On a MongoDB bus the
    /// declared projectors and changefeeds run as well (a transactional projector without a
    /// handler is an error); on other buses they are skipped with a `tracing` warning. Every
    /// task waits out a MongoDB outage and carries on by itself ([`crate::outage`]); only a
    /// permanent error stops it.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let missing: Vec<&str> = self
            .spec
            .consumers
            .keys()
            .filter(|name| self.runs_consumer(name) && !self.handlers.contains_key(*name))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            let what = if self.selection.is_some() { "selected" } else { "declared" };
            return Err(Error::Config(format!(
                "no handler for consumer(s) {}: give every {what} consumer a handler before `run`",
                missing.join(", ")
            )));
        }
        for name in self.handlers.keys().filter(|name| !self.runs_consumer(name)) {
            tracing::warn!(consumer = %name, "consumer `{name}` has a handler but `only` did not select it: not running it");
        }
        let (stop, stopped) = watch::channel(false);
        let stopped = move || {
            let mut stopped = stopped.clone();
            async move {
                // A closed channel also means stop.
                let _ = stopped.wait_for(|stop| *stop).await;
            }
        };
        let mut tasks = tokio::task::JoinSet::new();
        self.spawn_mongo(&mut tasks, &stopped)?;
        for (name, consumer) in self.spec.consumers.iter().filter(|(name, _)| self.runs_consumer(name)) {
            let runner = Runner::for_consumer(self.producer.clone(), consumer, SubscribeOptions::default())?
                .named(name);
            let handler = Shared(self.handlers[name].clone());
            tasks.spawn(runner.run(handler, stopped()));
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

impl<B: EventBus> Pipeline<B> {
    /// Starts the MongoDB projectors and changefeeds when the bus is MongoDB.
    #[cfg(feature = "mongo")]
    fn spawn_mongo<S, F>(&self, tasks: &mut tokio::task::JoinSet<Result<()>>, stopped: &S) -> Result<()>
    where
        S: Fn() -> F,
        F: Future<Output = ()> + Send + 'static,
    {
        let spec = self.selected_spec();
        let Some(bus) = self.producer.bus().as_mongo() else {
            warn_skipped(&spec, "they need a MongoDB bus");
            return Ok(());
        };
        let producer = Producer::new(bus.clone(), self.producer.registry().clone());
        mongo::spawn_declared(&spec, &producer, Some(&self.tx_handlers), tasks, stopped)?;
        Ok(())
    }

    #[cfg(not(feature = "mongo"))]
    fn spawn_mongo<S>(&self, _tasks: &mut tokio::task::JoinSet<Result<()>>, _stopped: &S) -> Result<()> {
        warn_skipped(&self.selected_spec(), "this build of prom-runtime lacks its `mongo` feature");
        Ok(())
    }
}

/// "The spec declares no <what> `name`", with the closest declared name or the list of them.
fn undeclared<'a>(what: &str, name: &str, declared: impl Iterator<Item = &'a String> + Clone) -> Error {
    let names = declared.map(String::as_str);
    let hint = match prom_spec::suggest::closest(name, names.clone()) {
        Some(close) => format!("; did you mean `{close}`?"),
        None => format!(" (declared: {})", names.collect::<Vec<_>>().join(", ")),
    };
    Error::Config(format!("the spec declares no {what} `{name}`{hint}"))
}

/// What `spec` declares that runs only on MongoDB (projectors, changefeeds), as
/// "projector `name`" / "changefeed `name`".
pub fn mongo_only(spec: &Spec) -> Vec<String> {
    let projectors = spec.projectors.keys().map(|name| format!("projector `{name}`"));
    projectors.chain(spec.changefeeds.keys().map(|name| format!("changefeed `{name}`"))).collect()
}

/// Says once (a `tracing` warning) which declared parts will not run and why.
fn warn_skipped(spec: &Spec, why: &str) {
    let skipped = mongo_only(spec);
    if !skipped.is_empty() {
        tracing::warn!("not running {}: {why}", skipped.join(", "));
    }
}

fn flatten(joined: std::result::Result<Result<()>, tokio::task::JoinError>) -> Result<()> {
    joined.map_err(|e| Error::Config(format!("a pipeline task failed: {e}")))?
}
