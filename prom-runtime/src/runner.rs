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
use crate::consumer::{Acker, Delivery, Start, SubscribeOptions, Subscription, Token};
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
use crate::typed::{Topic, Versioned};
use attempt::{Attempt, Outcome};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Instant;
use tokio::task::JoinSet;

mod attempt;

/// A boxed handler future.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send>>;

/// Handles one decoded event; an error asks for a retry unless it is
/// [`HandlerError::permanent`].
pub trait Handler: Send + Sync + 'static {
    /// Handles `event` (already upcast to the latest version and validated).
    fn handle(&self, event: EventRecord) -> HandlerFuture;

    /// Starts attempt `attempt` (1, 2, ...) at a stored event: decodes it and calls the handler.
    /// An error is a decode error, which dead-letters the event at once since no retry can fix
    /// a payload. The runner never calls it for a corrupt event ([`EventRecord::corruption`]):
    /// those are dead-lettered first, so an implementation need not check for them again. The runner shares the stored record instead of copying it; by default its
    /// JSON payload is upcast and validated ([`Registry::decode_ref`]) and [`Handler::handle`]
    /// gets a copy. Decoding is repeated on each attempt, so a retried event holds nothing.
    fn attempt(&self, registry: &Registry, event: &Arc<EventRecord>, attempt: u32) -> Result<HandlerFuture> {
        let _ = attempt;
        Ok(self.handle(registry.decode_ref(event)?.into_owned()))
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

/// A handler of `topic`'s latest payload type, for [`Runner::run`]: stored payloads are decoded
/// typed and brought up by the generated typed upcasters ([`Registry::decode_typed`]), and the
/// handler gets the event's [`Context`] alongside (what generated consumer methods and
/// [`crate::Pipeline::handle_latest`] run).
pub fn typed<V, F, Fut, E>(topic: Topic<V>, handler: F) -> impl Handler
where
    V: Versioned,
    F: Fn(V::Latest, Context) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display + 'static,
{
    let _ = topic;
    crate::pipeline::handlers::TypedLatest { handler, versions: std::marker::PhantomData::<fn() -> V> }
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

impl<B: EventBus> Ctx<B> {
    /// Starts attempt `number` at `event` at `now`.
    fn start(&self, event: &Event, number: u32, now: Instant) -> Attempt {
        let registry = self.producer.registry();
        let (handler, trace) = (self.handler.as_ref(), event.trace.as_ref());
        Attempt::start(handler, registry, &self.consumer, &event.record, number, trace, now)
    }

    /// Counts and acks events the handler finished, under one lock.
    fn handled(&self, tokens: &[Token]) {
        self.stats.handled.fetch_add(tokens.len() as u64, Ordering::Relaxed);
        for _ in tokens {
            self.metrics.ok();
        }
        self.acker.ack_tokens(tokens);
    }
}

/// One handed-out event: the stored record, shared by every attempt and the failure path.
struct Event {
    record: Arc<EventRecord>,
    token: Token,
    /// The trace it carries, read once: every attempt and the dead letter continue it.
    trace: Option<TraceContext>,
}

/// Where an event's handling stands when it leaves the batch's inline pass.
enum Step {
    /// The stored event cannot be read back: no attempt can be made.
    Corrupt(Error),
    /// The first attempt is still running.
    Running(Attempt),
    /// The first attempt ended without success.
    Ended(Outcome, Attempt),
}

/// Handles one poll's events in one task. Each event's first attempt is started and polled
/// right here: a handler that finishes at once costs no task and no future of the runner's,
/// and its ack joins the batch's single ack. Only events whose handler is still pending or
/// failed go on, concurrently. A batch holds at most one event per key, so their order holds.
/// The next poll does not wait for this batch; batches run on any worker thread.
async fn process_batch<B: EventBus>(batch: Vec<Delivery>, ctx: Arc<Ctx<B>>) {
    let mut rest = Vec::new();
    let mut handled = Vec::with_capacity(batch.len());
    let mut batch = Some(batch);
    std::future::poll_fn(|cx| {
        // One clock reading per event: an attempt that ends at once starts the next one's time.
        let mut now = Instant::now();
        for Delivery { record, token, .. } in batch.take().into_iter().flatten() {
            let trace = TraceContext::from_headers(&record.headers);
            // Checked before the handler's own decode, which may not know about corrupt records.
            let corrupt = record.corrupt_error();
            let event = Event { record, token, trace };
            if let Some(error) = corrupt {
                rest.push(settle(ctx.clone(), event, Step::Corrupt(error)));
                continue;
            }
            let mut attempt = ctx.start(&event, 1, now);
            match Pin::new(&mut attempt).poll(cx) {
                Poll::Ready((outcome, ended)) => {
                    ctx.metrics.attempt_took(attempt.took(ended));
                    now = ended;
                    match outcome {
                        Outcome::Handled => handled.push(event.token),
                        ended => rest.push(settle(ctx.clone(), event, Step::Ended(ended, attempt))),
                    }
                }
                // Polled again below with a waker of its own, so its wake-up reaches it.
                Poll::Pending => {
                    rest.push(settle(ctx.clone(), event, Step::Running(attempt)));
                    now = Instant::now();
                }
            }
        }
        Poll::Ready(())
    })
    .await;
    ctx.handled(&handled);
    let mut rest: FuturesUnordered<_> = rest.into_iter().collect();
    while rest.next().await.is_some() {}
}

/// Carries an event from `first` to its end: retries with backoff up to `max_attempts` (once
/// for a permanent error), then acked, dead-lettered or nacked.
async fn settle<B: EventBus>(ctx: Arc<Ctx<B>>, event: Event, first: Step) {
    let max = ctx.policy.retry.max_attempts.max(1);
    let r = &event.record;
    let mut number = 1;
    let mut step = first;
    let failure = loop {
        let (outcome, attempt) = match step {
            Step::Corrupt(error) => {
                break Failure { error: format!("cannot decode: {error}"), attempts: 0, permanent: true };
            }
            Step::Ended(outcome, attempt) => (outcome, attempt),
            Step::Running(mut attempt) => {
                let (outcome, ended) = (&mut attempt).await;
                ctx.metrics.attempt_took(attempt.took(ended));
                (outcome, attempt)
            }
        };
        let error = match outcome {
            Outcome::Handled => {
                ctx.handled(std::slice::from_ref(&event.token));
                return;
            }
            Outcome::Undecodable(error) => {
                let error = format!("cannot decode: {error}");
                break Failure { error, attempts: number - 1, permanent: true };
            }
            Outcome::Panicked(panic) => {
                attempt.span().in_scope(|| {
                    tracing::error!(
                        consumer = %ctx.consumer, topic = %r.topic, partition = r.partition, offset = r.offset,
                        id = %r.id, attempt = number, max_attempts = max, panic = %panic,
                        "handler panicked; counted as a failed attempt"
                    );
                });
                HandlerError::retry(format!("the handler panicked: {panic}"))
            }
            Outcome::Failed(error) => error,
        };
        if error.is_permanent() || number >= max {
            let permanent = error.is_permanent();
            break Failure { error: error.message().to_owned(), attempts: number, permanent };
        }
        ctx.stats.retried.fetch_add(1, Ordering::Relaxed);
        ctx.metrics.retried();
        ctx.stats.note_error(error.message());
        let delay = ctx.policy.retry.delay(number);
        attempt.span().in_scope(|| {
            tracing::warn!(
                consumer = %ctx.consumer, topic = %r.topic, partition = r.partition, offset = r.offset,
                id = %r.id, attempt = number, max_attempts = max, error = %error, next_delay_ms = millis(delay),
                "handler failed; retrying"
            );
        });
        drop(attempt);
        tokio::time::sleep(delay).await;
        number += 1;
        step = Step::Running(ctx.start(&event, number, Instant::now()));
    };
    give_up(&ctx, event, failure).await;
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

/// Dead-letters an event given up on (acked once its dead letter is durable), or without a
/// DLQ asks for it again after `max_backoff`.
async fn give_up<B: EventBus>(ctx: &Ctx<B>, event: Event, failure: Failure) {
    let Failure { error, attempts, permanent } = failure;
    let r = &*event.record;
    let max_attempts = ctx.policy.retry.max_attempts.max(1);
    ctx.stats.note_error(&error);
    // Stored bytes no retry can fix go to the DLQ even without `dlq: true`: otherwise their key
    // would be stuck behind them forever. The dead letter keeps the stored text.
    if ctx.policy.dlq || r.corruption().is_some() {
        let traced = Traced::dead_letter(&ctx.consumer, r, attempts, event.trace.as_ref());
        let span = traced.span.clone();
        // Without a durable dead letter the event stays unacked and comes back after a restart.
        if traced.run(dead_letter(ctx, r, &error, attempts)).await {
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
            ctx.acker.ack_token(&event.token);
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
        ctx.acker.nack_token(&event.token, event.record, redelivery);
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
