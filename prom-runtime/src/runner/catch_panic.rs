//! Runs one handler attempt and turns a panic in it into a value, without a task of its own.

use super::{Decoded, Handler};
use crate::handler_error::HandlerError;
use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

/// The outcome of one attempt, or the payload of the panic that ended it.
pub(super) type Caught = Result<Result<(), HandlerError>, Box<dyn Any + Send>>;

/// One attempt at `event`: a panic while making the handler's future or while polling it comes
/// back as `Err` with the panic's payload.
pub(super) fn attempt(handler: &dyn Handler, event: &Decoded) -> CatchPanic {
    // The future is dropped after a panic and nothing else the handler touched is used again
    // by the runner, so no broken state can be observed: unwind safety holds.
    match catch_unwind(AssertUnwindSafe(|| handler.attempt(event))) {
        Ok(future) => CatchPanic { future: Some(future), panicked: None },
        Err(payload) => CatchPanic { future: None, panicked: Some(payload) },
    }
}

/// A handler future whose panic is caught where it is polled.
pub(super) struct CatchPanic {
    future: Option<super::HandlerFuture>,
    panicked: Option<Box<dyn Any + Send>>,
}

impl Future for CatchPanic {
    type Output = Caught;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Caught> {
        let this = self.get_mut();
        if let Some(payload) = this.panicked.take() {
            return Poll::Ready(Err(payload));
        }
        let Some(future) = this.future.as_mut() else {
            // Polled after completion (the runner never does): say so rather than run nothing.
            let message = "a handler attempt was polled after it completed";
            return Poll::Ready(Ok(Err(HandlerError::permanent(message))));
        };
        match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(outcome)) => {
                this.future = None;
                Poll::Ready(Ok(outcome))
            }
            Err(payload) => {
                this.future = None;
                Poll::Ready(Err(payload))
            }
        }
    }
}
