//! Why a handler failed, and whether trying again can help: a retryable error is retried with
//! backoff up to `max_attempts`, a permanent one goes to the DLQ after its first attempt.

use std::any::Any;
use std::fmt;

/// A handler's failure: its message and whether it is worth retrying.
///
/// Handlers may return any `Display` error; it counts as retryable. Return a `HandlerError`
/// (or use [`Permanence`] on a `Result`) to say an event can never succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerError {
    message: String,
    permanent: bool,
}

impl HandlerError {
    /// A failure that may pass on a later attempt (a timeout, a busy dependency).
    pub fn retry(error: impl fmt::Display) -> HandlerError {
        HandlerError { message: error.to_string(), permanent: false }
    }

    /// A failure no retry can fix (a rule the event breaks): dead-lettered at once.
    pub fn permanent(error: impl fmt::Display) -> HandlerError {
        HandlerError { message: error.to_string(), permanent: true }
    }

    /// Whether the event goes to the DLQ without further attempts.
    pub fn is_permanent(&self) -> bool {
        self.permanent
    }

    /// The error as the handler gave it (also the dead letter's `x-dlq-error`).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Turns any handler error into a `HandlerError`: one the handler built keeps its
    /// permanence, any other `Display` error is retryable.
    pub fn from_handler<E: fmt::Display + 'static>(error: E) -> HandlerError {
        // Handlers return their own error types; a `HandlerError` is recognised at run time so
        // `Ok::<_, String>(())`-style handlers need no change.
        match (&error as &dyn Any).downcast_ref::<HandlerError>() {
            Some(own) => own.clone(),
            None => HandlerError::retry(error),
        }
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HandlerError {}

/// Marks a `Result`'s error as permanent or retryable, for `?` in handlers.
pub trait Permanence<T> {
    /// The error, if any, as a [`HandlerError::permanent`].
    fn permanent(self) -> Result<T, HandlerError>;
    /// The error, if any, as a [`HandlerError::retry`].
    fn retryable(self) -> Result<T, HandlerError>;
}

impl<T, E: fmt::Display> Permanence<T> for Result<T, E> {
    fn permanent(self) -> Result<T, HandlerError> {
        self.map_err(HandlerError::permanent)
    }

    fn retryable(self) -> Result<T, HandlerError> {
        self.map_err(HandlerError::retry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_display_error_is_retryable_and_a_handler_error_keeps_its_kind() {
        assert!(!HandlerError::from_handler("busy".to_string()).is_permanent());
        let own = HandlerError::from_handler(HandlerError::permanent("no such account"));
        assert!(own.is_permanent());
        assert_eq!(own.message(), "no such account");
        assert!(Err::<(), _>("bad").permanent().is_err_and(|e| e.is_permanent()));
        assert!(Err::<(), _>("slow").retryable().is_err_and(|e| !e.is_permanent()));
    }
}
