//! What loading, appending and handling a stream can fail with.

use crate::error::Error;
use crate::stream::ExpectedVersion;

/// Loading or appending a stream failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// The stream's version is not the expected one: another writer appended first. Nothing
    /// was stored; load again and retry (what [`super::Stream::handle`] does).
    #[error(
        "stream `{stream}` is at {}, not at the expected version {expected}: another writer appended first; \
         load it again and retry",
        actual.map_or_else(|| "no version (it does not exist)".to_owned(), |v| format!("version {v}"))
    )]
    Conflict {
        /// The stream (`account/42`).
        stream: String,
        /// What the append expected.
        expected: ExpectedVersion,
        /// The stream's version when the append ran (`None`: no stream).
        actual: Option<u64>,
    },
    /// A stored event of the stream cannot be read as one of the aggregate's events (its topic
    /// is not the aggregate's, or its payload does not decode or upcast). Nothing is skipped:
    /// folding past it would silently produce a wrong state.
    #[error(
        "stream `{stream}` version {version} (`{topic}` offset {offset}) cannot be folded: {source}; \
         fix the stored event or the generated code's spec (is it older than the writer's?)"
    )]
    Event {
        /// The stream (`account/42`).
        stream: String,
        /// The event's version in the stream.
        version: u64,
        /// The event's topic.
        topic: String,
        /// The event's offset in its topic.
        offset: i64,
        /// Why it could not be decoded.
        #[source]
        source: Error,
    },
    /// The store, validation or encoding failed.
    #[error(transparent)]
    Store(Error),
}

impl StreamError {
    /// Whether this is an expected-version conflict (retrying after a new load may succeed).
    pub fn is_conflict(&self) -> bool {
        matches!(self, StreamError::Conflict { .. })
    }
}

impl From<Error> for StreamError {
    fn from(error: Error) -> Self {
        match error {
            Error::StreamConflict { stream, expected, actual } => {
                StreamError::Conflict { stream, expected, actual }
            }
            other => StreamError::Store(other),
        }
    }
}

/// [`super::Stream::handle`] failed; `E` is the decide step's own error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandleError<E> {
    /// The decide step refused the command (its error, passed through); nothing was appended.
    #[error("the command was rejected: {0}")]
    Rejected(E),
    /// Every attempt lost the race to another writer; nothing was appended.
    #[error(
        "stream `{stream}` changed under each of {attempts} attempts; nothing was appended \
         (raise `ConflictRetry::max_attempts` or reduce contention on this stream)"
    )]
    Conflicts {
        /// The stream (`account/42`).
        stream: String,
        /// Attempts made.
        attempts: u32,
        /// The last conflict.
        #[source]
        last: StreamError,
    },
    /// Loading or appending failed for another reason.
    #[error(transparent)]
    Stream(#[from] StreamError),
}

impl<E> HandleError<E> {
    /// The decide step's error, when that is why the command failed.
    pub fn rejected(&self) -> Option<&E> {
        match self {
            HandleError::Rejected(e) => Some(e),
            _ => None,
        }
    }
}

/// For callbacks of the driver's `start_transaction().and_run(..)`: a store error converts as
/// [`Error`] does (a transaction conflict keeps the driver's `TransientTransactionError` label,
/// so `and_run` retries it); any other error becomes a custom driver error carrying this one.
#[cfg(feature = "mongo")]
impl From<StreamError> for mongodb::error::Error {
    fn from(error: StreamError) -> mongodb::error::Error {
        match error {
            StreamError::Store(error) => error.into(),
            other => mongodb::error::Error::custom(other),
        }
    }
}
