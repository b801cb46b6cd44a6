//! A declared pipeline started with one call: every consumer the spec declares runs with the
//! user's handler and the retry, DLQ and partitioning the spec gives it; on a MongoDB bus the
//! declared projectors and changefeeds run too, on the embedded store its changelog projectors
//! and the changefeeds they feed. Generated code wraps this in a typed `Wiring`
//! (one method per consumer), so a missing handler is caught at start and a misspelt consumer
//! at compile time.

pub mod embedded;
pub(crate) mod handlers;
#[cfg(feature = "mongo")]
pub mod mongo;
mod select;

pub use select::{Component, ComponentKind};

use crate::bus::EventBus;
use crate::consumer::SubscribeOptions;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::outage::Outage;
use crate::publish::Producer;
use crate::registry::Registry;
use crate::runner::{Handler, Runner};
use crate::system::System;
use crate::typed::{Topic, Versioned};
use handlers::{Shared, Typed, TypedLatest};
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
    system: Arc<System>,
    handlers: BTreeMap<String, Arc<dyn Handler>>,
    tx_handlers: BTreeMap<String, crate::project::AnyTxHandler>,
    /// What [`Pipeline::only`] selected; `None` runs everything.
    selection: Option<Selection>,
}

impl<B: EventBus> Pipeline<B> {
    /// A pipeline over a system's facts (what generated code's `spec::system()` returns);
    /// `configure` registers `with:` upcasters before the registry is checked.
    pub fn new(bus: B, system: System, configure: impl FnOnce(Registry) -> Registry) -> Result<Pipeline<B>> {
        let registry = configure(Registry::from_system(&system)?);
        registry.check_upcasters()?;
        Ok(Pipeline {
            producer: Producer::new(bus, Arc::new(registry)),
            system: Arc::new(system),
            handlers: BTreeMap::new(),
            tx_handlers: BTreeMap::new(),
            selection: None,
        })
    }

    /// A pipeline over a system's facts without `with:` upcasters.
    pub fn from_system(bus: B, system: System) -> Result<Pipeline<B>> {
        Pipeline::new(bus, system, |registry| registry)
    }

    /// A pipeline over a spec given as YAML text, linted first (lint errors are an
    /// [`Error::Spec`] with the rendered diagnostics). `$ref`s resolve against the working
    /// directory; for `with:` upcasters use [`crate::system::lint_yaml`] and [`Pipeline::new`].
    #[cfg(feature = "specs")]
    pub fn from_yaml(bus: B, yaml: &str) -> Result<Pipeline<B>> {
        Pipeline::from_system(bus, crate::system::lint_yaml("spec.yaml", yaml)?)
    }

    /// A pipeline over spec files or directories, linted first (lint errors are an
    /// [`Error::Spec`] with the rendered diagnostics).
    #[cfg(feature = "specs")]
    pub fn from_paths(bus: B, paths: &[impl AsRef<std::path::Path>]) -> Result<Pipeline<B>> {
        let paths: Vec<std::path::PathBuf> = paths.iter().map(|p| p.as_ref().to_path_buf()).collect();
        Pipeline::from_system(bus, crate::system::lint_paths(&paths)?)
    }

    /// Publishes (validated, stamped, dual-written) through this pipeline's registry.
    pub fn producer(&self) -> &Producer<B> {
        &self.producer
    }

    /// The system the pipeline runs.
    pub fn system(&self) -> &System {
        &self.system
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
        let selection = Selection::resolve(&self.system, components.into_iter().map(Into::into))?;
        self.selection = Some(selection);
        Ok(self)
    }

    /// Whether consumer `name` runs (every consumer does unless [`Pipeline::only`] chose).
    fn runs_consumer(&self, name: &str) -> bool {
        self.selection.as_ref().is_none_or(|selection| selection.has_consumer(name))
    }

    /// The system restricted to what [`Pipeline::only`] selected.
    fn selected_system(&self) -> std::borrow::Cow<'_, System> {
        match &self.selection {
            Some(selection) => std::borrow::Cow::Owned(selection.restrict(&self.system)),
            None => std::borrow::Cow::Borrowed(&self.system),
        }
    }

    /// Sets the handler of a declared consumer.
    pub fn handle<H: Handler>(mut self, consumer: &str, handler: H) -> Result<Pipeline<B>> {
        if self.system.consumer(consumer).is_none() {
            return Err(undeclared("consumer", consumer, self.system.consumers.iter().map(|c| &c.name)));
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
        F: Fn(V::Latest, Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
        E: std::fmt::Display + 'static,
    {
        if let Some(declared) = self.system.consumer(consumer)
            && declared.topic != topic.name()
        {
            return Err(Error::TopicMismatch {
                reads: declared.topic.clone(),
                wants: topic.name().to_owned(),
                help: format!(
                    "consumer `{consumer}` reads `{}`, but its handler takes `{}` payloads; give it a \
                     handler of `{}` payloads",
                    declared.topic,
                    topic.name(),
                    declared.topic
                ),
            });
        }
        self.handle(consumer, TypedLatest { handler, versions: PhantomData::<fn() -> V> })
    }

    /// Sets the handler of a declared transactional projector, one taking the MongoDB session
    /// (it runs on a MongoDB bus only; a [`crate::project::DocHandler`] runs on both stores).
    #[cfg(feature = "mongo")]
    pub fn handle_transactional<H>(self, projector: &str, handler: H) -> Result<Pipeline<B>>
    where
        H: crate::project::transactional::TxHandler + 'static,
    {
        self.handle_tx(projector, crate::project::AnyTxHandler::Session(Arc::new(handler)))
    }

    /// Sets the handler of a declared transactional projector through the document API: it
    /// runs unchanged on the embedded store and on MongoDB.
    pub fn handle_documents<H>(self, projector: &str, handler: H) -> Result<Pipeline<B>>
    where
        H: crate::project::DocHandler + 'static,
    {
        self.handle_tx(projector, crate::project::AnyTxHandler::Documents(Arc::new(handler)))
    }

    /// Sets the handler of a declared transactional projector, of either kind (what generated
    /// code's `wire()` calls with [`crate::project::typed_tx`]).
    pub fn handle_tx(
        mut self,
        projector: &str,
        handler: crate::project::AnyTxHandler,
    ) -> Result<Pipeline<B>> {
        use crate::system::ProjectorKind;
        match self.system.projector(projector).map(|p| &p.kind) {
            Some(ProjectorKind::Transactional { .. }) => {}
            Some(ProjectorKind::Changelog(_)) => {
                return Err(Error::WrongProjectorKind {
                    projector: projector.to_owned(),
                    kind: "changelog",
                    help: "it needs no handler",
                });
            }
            None => {
                return Err(undeclared(
                    "projector",
                    projector,
                    self.system.projectors.iter().map(|p| &p.name),
                ));
            }
        }
        self.tx_handlers.insert(projector.to_owned(), handler);
        Ok(self)
    }

    /// Runs every consumer (those [`Pipeline::only`] selected, if it was called) until
    /// `shutdown` completes, or until one fails. On a MongoDB bus the
    /// declared projectors and changefeeds run as well (a transactional projector without a
    /// handler is an error); on the embedded store the changelog projectors run and publish the
    /// changefeeds of their tables, and the transactional projectors run their document handlers
    /// ([`embedded`]); what it cannot run is skipped with a `tracing`
    /// warning, and so is everything on the in-memory bus. Every
    /// task waits out a MongoDB outage and carries on by itself ([`crate::outage`]); only a
    /// permanent error stops it. [`Pipeline::start`] then [`Running::until`], in one call.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        tokio::pin!(shutdown);
        match self.start_until(shutdown.as_mut()).await? {
            Some(running) => running.until(shutdown).await,
            None => Ok(()),
        }
    }

    /// Starts every consumer like [`Pipeline::run`] and returns once each consumer group's
    /// start position is fixed (its cursors exist), so every event published after this returns
    /// is delivered, `from: latest` included. The components run on the current Tokio runtime
    /// until [`Running::stop`] (or [`Running::until`]); dropping the handle aborts them without
    /// a final commit (their groups see the events since their last commit again). A store
    /// outage while starting is waited out like one while running.
    pub async fn start(self) -> Result<Running> {
        let never = std::future::pending::<()>();
        tokio::pin!(never);
        // `never` does not complete, so `start_until` gives up only with an error.
        self.start_until(never).await?.ok_or(Error::Closed)
    }

    /// [`Pipeline::start`], giving up (`None`) when `shutdown` completes first.
    async fn start_until<S>(self, mut shutdown: std::pin::Pin<&mut S>) -> Result<Option<Running>>
    where
        S: Future<Output = ()> + ?Sized,
    {
        let missing: Vec<String> = self
            .system
            .consumers
            .iter()
            .map(|c| c.name.as_str())
            .filter(|name| self.runs_consumer(name) && !self.handlers.contains_key(*name))
            .map(str::to_owned)
            .collect();
        if !missing.is_empty() {
            return Err(Error::MissingHandler { consumers: missing, selected: self.selection.is_some() });
        }
        for name in self.handlers.keys().filter(|name| !self.runs_consumer(name)) {
            tracing::warn!(consumer = %name, "consumer `{name}` has a handler but `only` did not select it: not running it");
        }
        let mut runners = Vec::new();
        for consumer in self.system.consumers.iter().filter(|c| self.runs_consumer(&c.name)) {
            let Some(handler) = self.handlers.get(&consumer.name) else { continue };
            let mut runner =
                Runner::for_consumer(self.producer.clone(), consumer, SubscribeOptions::default())?
                    .named(&consumer.name);
            // Fixed before anything runs, so nothing published once `start` returns is skipped.
            let mut outage = Outage::new(format!("consumer `{}`", consumer.name));
            let started =
                outage.retry_on(shutdown.as_mut(), &mut runner, |runner| Box::pin(runner.start())).await?;
            if started.is_none() {
                return Ok(None);
            }
            runners.push((runner, Shared(handler.clone())));
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
        self.spawn_stores(&mut tasks, &stopped)?;
        for (runner, handler) in runners {
            tasks.spawn(runner.run(handler, stopped()));
        }
        Ok(Some(Running { stop, tasks }))
    }
}

/// A started pipeline (see [`Pipeline::start`]).
pub struct Running {
    stop: watch::Sender<bool>,
    tasks: tokio::task::JoinSet<Result<()>>,
}

impl Running {
    /// Runs until `shutdown` completes or a component fails, then stops the others; returns
    /// the first error.
    pub async fn until(mut self, shutdown: impl Future<Output = ()>) -> Result<()> {
        tokio::pin!(shutdown);
        let outcome = tokio::select! {
            () = &mut shutdown => Ok(()),
            Some(first) = self.tasks.join_next() => flatten(first),
        };
        self.finish(outcome).await
    }

    /// Stops every component (consumers commit what was acked and leave their groups) and
    /// waits for them; returns the first error any of them met.
    pub async fn stop(self) -> Result<()> {
        self.finish(Ok(())).await
    }

    async fn finish(mut self, outcome: Result<()>) -> Result<()> {
        let _ = self.stop.send(true);
        let mut result = outcome;
        while let Some(done) = self.tasks.join_next().await {
            result = result.and(flatten(done));
        }
        result
    }
}

impl<B: EventBus> Pipeline<B> {
    /// Starts the declared projectors and changefeeds on the store they run on: all of them on
    /// MongoDB, the changelog projectors (feeding the changefeeds of their tables) on the
    /// embedded store; elsewhere they are skipped with a warning.
    fn spawn_stores<S, F>(&self, tasks: &mut tokio::task::JoinSet<Result<()>>, stopped: &S) -> Result<()>
    where
        S: Fn() -> F,
        F: Future<Output = ()> + Send + 'static,
    {
        let system = self.selected_system();
        #[cfg(feature = "mongo")]
        if let Some(bus) = self.producer.bus().as_mongo() {
            let producer = Producer::new(bus.clone(), self.producer.registry().clone());
            mongo::spawn_declared(&system, &producer, Some(&self.tx_handlers), tasks, stopped)?;
            return Ok(());
        }
        if let Some(bus) = self.producer.bus().as_sqlite() {
            for (what, why) in embedded::not_run_with_handlers(&system) {
                tracing::warn!("not running {what} on the embedded store: {why}");
            }
            let producer = Producer::new(bus.clone(), self.producer.registry().clone());
            embedded::spawn_transactional(&system, &producer, &self.tx_handlers, tasks, stopped)?;
            embedded::spawn_declared(&system, &producer, tasks, stopped)?;
            return Ok(());
        }
        warn_skipped(&system, "they need the embedded store or a MongoDB bus");
        Ok(())
    }
}

/// "The spec declares no <what> `name`", with the closest declared name or the list of them.
fn undeclared<'a>(what: &str, name: &str, declared: impl Iterator<Item = &'a String> + Clone) -> Error {
    let names = declared.map(String::as_str);
    let hint = prom_spec::suggest::closest(name, names.clone()).map(str::to_owned);
    // The list helps only when no declared name is close.
    let declared = hint.is_none().then(|| format!("{what}s: {}", name_list(names)));
    Error::UnknownComponent { kind: what.to_owned(), name: name.to_owned(), hint, declared }
}

/// "`a`, `b`" or "none": declared names as error messages list them.
fn name_list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<String> = names.map(|n| format!("`{n}`")).collect();
    if names.is_empty() { "none".to_owned() } else { names.join(", ") }
}

/// What `system` declares that runs only on MongoDB (projectors, changefeeds), as
/// "projector `name`" / "changefeed `name`".
pub fn mongo_only(system: &System) -> Vec<String> {
    let projectors = system.projectors.iter().map(|p| format!("projector `{}`", p.name));
    projectors.chain(system.changefeeds.iter().map(|c| format!("changefeed `{}`", c.name))).collect()
}

/// Says once (a `tracing` warning) which declared parts will not run and why.
fn warn_skipped(system: &System, why: &str) {
    let skipped = mongo_only(system);
    if !skipped.is_empty() {
        tracing::warn!("not running {}: {why}", skipped.join(", "));
    }
}

fn flatten(joined: std::result::Result<Result<()>, tokio::task::JoinError>) -> Result<()> {
    joined.map_err(|e| Error::TaskFailed { source: crate::error::Cause::new(e) })?
}
