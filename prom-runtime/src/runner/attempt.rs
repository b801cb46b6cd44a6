//! One handler attempt as a future the runner can poll inline: decode and the handler's call
//! run inside the attempt's `prom.handle` span with the event's trace current, and a panic in
//! either becomes a value, all without a task or a boxed wrapper of its own.

use super::{Handler, HandlerFuture};
use crate::error::Error;
use crate::handler_error::HandlerError;
use crate::record::EventRecord;
use crate::registry::Registry;
use crate::trace::TraceContext;
use crate::trace::spans::Traced;
use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// How an attempt ended.
pub(super) enum Outcome {
    /// The handler succeeded.
    Handled,
    /// The handler returned an error.
    Failed(HandlerError),
    /// The handler panicked; the panic's message.
    Panicked(String),
    /// The stored event could not be decoded for the handler.
    Undecodable(Error),
}

/// A running attempt; resolves to its outcome and when it ended.
pub(super) struct Attempt {
    traced: Traced,
    future: Option<HandlerFuture>,
    /// Set when the attempt ended before it was polled (decode error or panic).
    ended: Option<Outcome>,
    started: Instant,
}

impl Attempt {
    /// Starts attempt `number` at `record` by `consumer` at `started` (the caller's clock
    /// reading: a batch's inline pass passes the end of the previous attempt, one reading per
    /// event): its span continues `stored`.
    pub(super) fn start(
        handler: &dyn Handler,
        registry: &Registry,
        consumer: &str,
        record: &Arc<EventRecord>,
        number: u32,
        stored: Option<&TraceContext>,
        started: Instant,
    ) -> Attempt {
        let traced = Traced::handle(consumer, record, number, stored);
        // The future is made inside the span too, so even the handler's synchronous part
        // publishes in the event's trace. After a panic the future is dropped and nothing the
        // handler touched is used again by the runner, so unwind safety holds.
        let made =
            traced.in_scope(|| catch_unwind(AssertUnwindSafe(|| handler.attempt(registry, record, number))));
        let (future, ended) = match made {
            Ok(Ok(future)) => (Some(future), None),
            Ok(Err(error)) => (None, Some(Outcome::Undecodable(error))),
            Err(payload) => (None, Some(Outcome::Panicked(panic_message(payload)))),
        };
        Attempt { traced, future, ended, started }
    }

    /// How long the attempt took, given when it `ended`.
    pub(super) fn took(&self, ended: Instant) -> Duration {
        ended.saturating_duration_since(self.started)
    }

    /// The attempt's span, for what the runner logs about it.
    pub(super) fn span(&self) -> &tracing::Span {
        &self.traced.span
    }
}

impl Future for Attempt {
    type Output = (Outcome, Instant);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<(Outcome, Instant)> {
        let this = self.get_mut();
        let outcome = match (this.ended.take(), this.future.as_mut()) {
            (Some(ended), _) => ended,
            (None, Some(future)) => {
                let polled =
                    this.traced.in_scope(|| catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))));
                match polled {
                    Ok(Poll::Pending) => return Poll::Pending,
                    Ok(Poll::Ready(Ok(()))) => Outcome::Handled,
                    Ok(Poll::Ready(Err(error))) => Outcome::Failed(error),
                    Err(payload) => Outcome::Panicked(panic_message(payload)),
                }
            }
            // Polled after completion (the runner never does): say so rather than run nothing.
            (None, None) => {
                Outcome::Failed(HandlerError::permanent("a handler attempt was polled after it completed"))
            }
        };
        this.future = None;
        Poll::Ready((outcome, Instant::now()))
    }
}

/// What a handler's panic said.
fn panic_message(payload: Box<dyn Any + Send>) -> String {
    match payload.downcast_ref::<&str>() {
        Some(text) => (*text).to_owned(),
        None => payload.downcast_ref::<String>().cloned().unwrap_or_else(|| "a non-text panic".to_owned()),
    }
}
