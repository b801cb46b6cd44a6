//! Runs a handler over a consumer group: decode (upcast + validate), retry with backoff, dead-
//! letter after `max_attempts`, ack. Events of different keys are handled concurrently; one
//! key's events strictly in order.
//!
//! A poison event costs only its own key: its retries sleep on timers (no spinning), other keys
//! keep flowing, and after the last attempt it goes to `dlq.<topic>` so its key moves on too.
//! Without a DLQ the event is redelivered every `max_backoff`, never dropped. An event the store
//! cannot read back ([`crate::error::Error::Corrupt`]) goes to the DLQ at once, `dlq: true` or
//! not: no retry can fix stored bytes, and its dead letter keeps the raw text and the error.
//! A handler error marked [`HandlerError::permanent`] is dead-lettered after its first attempt.
//!
//! Retries, dead letters, handler panics and start/stop are logged through `tracing` (target
//! `prom_runtime::runner`), with the consumer, topic, partition, offset and id as fields. Each
//! attempt runs in a `prom.handle` span and each dead letter is written in a `prom.dead_letter`
//! span, both continuing the event's stored trace ([`crate::trace`]).

use crate::bus::EventBus;
use crate::consumer::{Acker, Delivery, Start, SubscribeOptions, Subscription};
use crate::context::Context;
use crate::dlq;
use crate::error::{Error, Result};
use crate::handler_error::HandlerError;
use crate::metrics::ConsumerMetrics;
use crate::outage::Outage;
use crate::publish::Producer;
use crate::record::EventRecord;
use crate::registry::{Registry, Route};
use crate::retry::RetryPolicy;
use crate::system::{Consumer, StartFrom};
use crate::trace::TraceContext;
use crate::trace::spans::Traced;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::task::JoinSet;

mod catch_panic;

/// A boxed handler future.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send>>;

/// One event decoded for its handler, once, before the first attempt.
pub struct Decoded {
    /// The record: payload upcast and validated, or moved into `typed`.
    pub record: EventRecord,
    typed: Option<Box<dyn Any + Send + Sync>>,
    attempt: u32,
}

impl Decoded {
    /// An event whose JSON payload is what the handler reads.
    pub fn json(record: EventRecord) -> Decoded {
        Decoded { record, typed: None, attempt: 1 }
    }

    /// An event decoded into a typed payload (the record's own payload is left `null`; the
    /// handler reads the event through [`Decoded::context`]).
    pub fn typed<T: Send + Sync + 'static>(payload: T, record: EventRecord) -> Decoded {
        Decoded { record, typed: Some(Box::new(payload)), attempt: 1 }
    }

    /// Which attempt the runner is making: 1, 2, ... up to `max_attempts`.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The event's context for a typed handler, on the current attempt.
    pub fn context(&self) -> Context {
        Context::new(&self.record, self.attempt)
    }

    /// The typed payload, if it was decoded as a `T`.
    pub fn payload<T: 'static>(&self) -> Option<&T> {
        self.typed.as_ref()?.downcast_ref()
    }
}

/// Handles one decoded event; an error asks for a retry unless it is
/// [`HandlerError::permanent`].
pub trait Handler: Send + Sync + 'static {
    /// Handles `event` (already upcast to the latest version and validated).
    fn handle(&self, event: EventRecord) -> HandlerFuture;

    /// Decodes a stored event once, before its first attempt; an error dead-letters the event
    /// at once, since retrying cannot fix a payload. By default the JSON payload is upcast and
    /// validated ([`Registry::decode`]).
    fn decode(&self, registry: &Registry, record: EventRecord) -> Result<Decoded> {
        registry.decode(record).map(Decoded::json)
    }

    /// One attempt at a decoded event; by default [`Handler::handle`] on a copy of the record.
    fn attempt(&self, event: &Decoded) -> HandlerFuture {
        self.handle(event.record.clone())
    }
}

impl<F, Fut, E> Handler for F
where
    F: Fn(EventRecord) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display + 'static,
{
    fn handle(&self, event: EventRecord) -> HandlerFuture {
        let fut = self(event);
        Box::pin(async move { fut.await.map_err(HandlerError::from_handler) })
    }
}

/// Counters of a running consumer.
#[derive(Debug, Default)]
pub struct Stats {
    /// Events handled successfully.
    pub handled: AtomicU64,
    /// Retries made.
    pub retried: AtomicU64,
    /// Events sent to the DLQ.
    pub dead_lettered: AtomicU64,
    /// Events that exhausted their attempts with no DLQ (redelivered later).
    pub failed: AtomicU64,
    /// The latest failure, for progress output.
    pub last_error: Mutex<Option<String>>,
}

impl Stats {
    fn note_error(&self, error: &str) {
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(error.to_string());
        }
    }

    /// `(handled, retried, dead_lettered, failed)`.
    pub fn snapshot(&self) -> (u64, u64, u64, u64) {
        (
            self.handled.load(Ordering::Relaxed),
            self.retried.load(Ordering::Relaxed),
            self.dead_lettered.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

/// What a runner does with events that keep failing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailurePolicy {
    /// Retries.
    pub retry: RetryPolicy,
    /// Whether exhausted events go to `dlq.<topic>`.
    pub dlq: bool,
}

/// Drives one group member.
pub struct Runner<B: EventBus> {
    sub: Subscription<B>,
    producer: Producer<B>,
    policy: FailurePolicy,
    stats: Arc<Stats>,
    name: Option<String>,
}

impl<B: EventBus> Runner<B> {
    /// A runner over an existing subscription.
    pub fn new(sub: Subscription<B>, producer: Producer<B>, policy: FailurePolicy) -> Runner<B> {
        Runner { sub, producer, policy, stats: Arc::default(), name: None }
    }

    /// Names the consumer in log events (by default its group).
    pub fn named(mut self, consumer: impl Into<String>) -> Runner<B> {
        self.name = Some(consumer.into());
        self
    }

    /// A runner for a consumer declared in the spec (`opts` supplies what the spec does not
    /// say: member id, TTL without `member_ttl`, poll timeout).
    pub fn for_consumer(
        producer: Producer<B>,
        consumer: &Consumer,
        opts: SubscribeOptions,
    ) -> Result<Runner<B>> {
        let topic = consumer.topic.as_str();
        let partitions = match producer.registry().route(topic)? {
            Route::Topic(t) | Route::Versioned(t, _) | Route::DeadLetters(t) => t.partitions,
        };
        let opts = SubscribeOptions {
            start: match consumer.start {
                StartFrom::Latest => Start::Latest,
                StartFrom::Earliest => Start::Earliest,
            },
            batch_size: consumer.batch_size.unwrap_or(opts.batch_size).max(1),
            max_in_flight: consumer.max_in_flight.unwrap_or(opts.max_in_flight).max(1),
            partitions,
            partitioned: consumer.partitioned,
            member_ttl: consumer.member_ttl.unwrap_or(opts.member_ttl),
            ..opts
        };
        let sub = Subscription::new(producer.bus().clone(), topic, &consumer.group, opts)?;
        let policy = FailurePolicy { retry: consumer.retry, dlq: consumer.dlq };
        Ok(Runner::new(sub, producer, policy))
    }

    /// The counters (shared; readable while running).
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// The subscription's group.
    pub fn group(&self) -> &crate::bus::GroupId {
        self.sub.group()
    }

    /// Fixes where the group starts ([`Subscription::start`]): once this returns, every event
    /// published afterwards reaches the group, `from: latest` included. [`Runner::run`] does it
    /// at its first poll otherwise, so call this before spawning `run` when events may be
    /// published meanwhile.
    pub async fn start(&mut self) -> Result<()> {
        self.sub.start().await
    }

    /// Runs until `shutdown` completes, then stops handlers, commits what was acked and leaves
    /// the group (events in progress are redelivered to whoever takes over).
    pub async fn run<H: Handler>(mut self, handler: H, shutdown: impl Future<Output = ()>) -> Result<()> {
        let consumer = self.name.take().unwrap_or_else(|| self.sub.group().group.clone());
        let ctx = Arc::new(Ctx {
            handler: Arc::new(handler),
            producer: self.producer.clone(),
            acker: self.sub.acker(),
            policy: self.policy,
            stats: self.stats.clone(),
            group: self.sub.group().group.clone(),
            consumer: consumer.clone(),
            metrics: ConsumerMetrics::new(&consumer),
        });
        let topic = self.sub.group().topic.clone();
        tracing::info!(consumer = %ctx.consumer, group = %ctx.group, topic = %topic, "consumer `{}` started", ctx.consumer);
        let mut tasks = JoinSet::new();
        // A store outage is waited out: `poll` is cancel-safe, so the next one carries on.
        let mut outage = Outage::new(format!("consumer group `{}`", ctx.group));
        tokio::pin!(shutdown);
        let outcome = loop {
            match outage.retry_on(shutdown.as_mut(), &mut self.sub, |sub| Box::pin(sub.poll())).await {
                Ok(Some(batch)) => {
                    tasks.spawn(process_batch(batch, ctx.clone()));
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
            // Reap finished tasks so the set does not grow; `process` never panics (handler
            // panics are caught in their own task), so the results carry nothing.
            while tasks.try_join_next().is_some() {}
        };
        tasks.shutdown().await;
        let closed = self.sub.close().await;
        let result = outcome.and(closed);
        match &result {
            Ok(()) => {
                tracing::info!(consumer = %ctx.consumer, topic = %topic, "consumer `{}` stopped", ctx.consumer)
            }
            Err(e) => {
                tracing::error!(consumer = %ctx.consumer, topic = %topic, error = %e, "consumer `{}` stopped: {e}", ctx.consumer)
            }
        }
        result
    }
}

struct Ctx<B: EventBus> {
    handler: Arc<dyn Handler>,
    producer: Producer<B>,
    acker: Acker,
    policy: FailurePolicy,
    stats: Arc<Stats>,
    group: String,
    consumer: String,
    metrics: ConsumerMetrics,
}

/// Handles one poll's events concurrently in one task: at most one event per key is out at a
/// time, so their order holds, and a task per event cost more than a cheap handler. The next
/// poll does not wait for this batch; batches run on any worker thread.
async fn process_batch<B: EventBus>(batch: Vec<Delivery>, ctx: Arc<Ctx<B>>) {
    let mut running: FuturesUnordered<_> = batch.into_iter().map(|d| process(d, ctx.clone())).collect();
    while running.next().await.is_some() {}
}

async fn process<B: EventBus>(delivery: Delivery, ctx: Arc<Ctx<B>>) {
    // Checked before the handler's own decode, which may not know about corrupt records.
    let corrupt = delivery.record.corrupt_error();
    let decoded = match corrupt {
        Some(e) => Err(e),
        None => ctx.handler.decode(ctx.producer.registry(), delivery.record.clone()),
    };
    // Read once: every attempt and the dead letter continue the same stored trace.
    let stored = TraceContext::from_headers(&delivery.record.headers);
    let failure = match decoded {
        Err(e) => Failure { error: format!("cannot decode: {e}"), attempts: 0, permanent: true },
        Ok(event) => match attempt_all(&ctx, &delivery.record, stored.as_ref(), event).await {
            None => {
                ctx.stats.handled.fetch_add(1, Ordering::Relaxed);
                ctx.metrics.ok();
                ctx.acker.ack(&delivery);
                return;
            }
            Some(failure) => failure,
        },
    };
    let Failure { error, attempts, permanent } = failure;
    let r = &delivery.record;
    let max_attempts = ctx.policy.retry.max_attempts.max(1);
    ctx.stats.note_error(&error);
    // Stored bytes no retry can fix go to the DLQ even without `dlq: true`: otherwise their key
    // would be stuck behind them forever. The dead letter keeps the stored text.
    if ctx.policy.dlq || r.corruption().is_some() {
        let traced = Traced::dead_letter(&ctx.consumer, r, attempts, stored.as_ref());
        let span = traced.span.clone();
        // Without a durable dead letter the event stays unacked and comes back after a restart.
        if traced.run(dead_letter(&ctx, r, &error, attempts)).await {
            ctx.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
            ctx.metrics.dead_lettered();
            span.in_scope(|| {
                tracing::error!(
                    consumer = %ctx.consumer, topic = %r.topic, partition = r.partition, offset = r.offset,
                    id = %r.id, attempt = attempts, max_attempts, permanent, error = %error,
                    dlq_topic = %format!("{}{}", crate::registry::DLQ_PREFIX, r.topic),
                    "event dead-lettered"
                );
            });
            ctx.acker.ack(&delivery);
        }
    } else {
        ctx.stats.failed.fetch_add(1, Ordering::Relaxed);
        ctx.metrics.failed();
        let redelivery = ctx.policy.retry.max_backoff;
        tracing::error!(
            consumer = %ctx.consumer, topic = %r.topic, partition = r.partition, offset = r.offset,
            id = %r.id, attempt = attempts, max_attempts, permanent, error = %error,
            redeliver_in_ms = millis(redelivery),
            "event failed and the consumer has no DLQ: redelivering it later"
        );
        ctx.acker.nack(&delivery, redelivery);
    }
}

/// Why an event was given up on.
struct Failure {
    /// The last error.
    error: String,
    /// Handler attempts made (0 when it could not be decoded).
    attempts: u32,
    /// Whether the handler (or decoding) said no retry can help.
    permanent: bool,
}

/// Runs the handler up to `max_attempts` times (once for a permanent error); `None` on
/// success, else the last failure. `stored` is the event as stored, for logs, and `trace` the
/// trace it carries, which each attempt's `prom.handle` span continues.
async fn attempt_all<B: EventBus>(
    ctx: &Ctx<B>,
    stored: &EventRecord,
    trace: Option<&TraceContext>,
    mut event: Decoded,
) -> Option<Failure> {
    let max = ctx.policy.retry.max_attempts.max(1);
    let r = stored;
    let mut attempt = 1;
    loop {
        event.attempt = attempt;
        let traced = Traced::handle(&ctx.consumer, r, attempt, trace);
        let span = traced.span.clone();
        // A handler panic is a failed attempt instead of a lost event: it is retried and
        // dead-lettered like any other failure. Caught in place, not in a task of its own, so
        // an event costs one task. The handler's future is made inside the span too, so even
        // its synchronous part publishes in the event's trace.
        let started = std::time::Instant::now();
        let attempted = traced.run(async { catch_panic::attempt(ctx.handler.as_ref(), &event).await }).await;
        ctx.metrics.attempt_took(started.elapsed());
        let outcome = match attempted {
            Ok(outcome) => outcome,
            Err(payload) => {
                let panic = panic_message(payload);
                span.in_scope(|| {
                    tracing::error!(
                        consumer = %ctx.consumer, topic = %r.topic, partition = r.partition, offset = r.offset,
                        id = %r.id, attempt, max_attempts = max, panic = %panic,
                        "handler panicked; counted as a failed attempt"
                    );
                });
                Err(HandlerError::retry(format!("the handler panicked: {panic}")))
            }
        };
        match outcome {
            Ok(()) => return None,
            Err(e) if e.is_permanent() || attempt >= max => {
                let permanent = e.is_permanent();
                return Some(Failure { error: e.message().to_owned(), attempts: attempt, permanent });
            }
            Err(e) => {
                ctx.stats.retried.fetch_add(1, Ordering::Relaxed);
                ctx.metrics.retried();
                ctx.stats.note_error(e.message());
                let delay = ctx.policy.retry.delay(attempt);
                span.in_scope(|| {
                    tracing::warn!(
                        consumer = %ctx.consumer, topic = %r.topic, partition = r.partition, offset = r.offset,
                        id = %r.id, attempt, max_attempts = max, error = %e, next_delay_ms = millis(delay),
                        "handler failed; retrying"
                    );
                });
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
        }
    }
}

/// What a handler's panic said.
fn panic_message(payload: Box<dyn Any + Send>) -> String {
    match payload.downcast_ref::<&str>() {
        Some(text) => (*text).to_owned(),
        None => payload.downcast_ref::<String>().cloned().unwrap_or_else(|| "a non-text panic".to_owned()),
    }
}

/// A duration as whole milliseconds, for log fields.
fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Writes the dead letter, retrying until the store takes it; `false` only if the bus closed.
/// The event is acked only after its dead letter is durable, so it is never lost.
async fn dead_letter<B: EventBus>(ctx: &Ctx<B>, original: &EventRecord, error: &str, attempts: u32) -> bool {
    let mut failures = 0;
    loop {
        let event = dlq::dead_letter(original, &ctx.group, error, attempts);
        match ctx.producer.bus().publish(vec![event]).await {
            Ok(_) => return true,
            Err(e) => {
                failures += 1;
                ctx.stats.note_error(&format!("cannot write the dead letter of {}: {e}", original.id));
                if matches!(e, Error::Closed) {
                    return false;
                }
                let delay = ctx.policy.retry.delay(failures);
                tracing::warn!(
                    consumer = %ctx.consumer, topic = %original.topic, offset = original.offset,
                    id = %original.id, error = %e, next_delay_ms = millis(delay),
                    "cannot write a dead letter; retrying"
                );
                tokio::time::sleep(delay).await;
            }
        }
    }
}
