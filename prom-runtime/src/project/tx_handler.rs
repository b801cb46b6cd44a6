//! What a transactional projector runs: the handler trait, its future and its error. Both the
//! projector ([`super::transactional`]) and the per-event transaction ([`super::checkpoint`])
//! use them, so they live below both.

use crate::record::EventRecord;
use mongodb::{ClientSession, Database};
use std::fmt;
use std::future::Future;
use std::pin::Pin;

/// Why a handler failed: `Db` keeps MongoDB's error labels, so transient errors are retried
/// without counting as a failed attempt.
#[derive(Debug)]
pub enum HandlerError {
    /// A MongoDB operation failed.
    Db(mongodb::error::Error),
    /// The handler refused the event.
    Failed(String),
}

impl HandlerError {
    /// A handler failure with this message.
    pub fn failed(message: impl fmt::Display) -> HandlerError {
        HandlerError::Failed(message.to_string())
    }
}

impl From<mongodb::error::Error> for HandlerError {
    fn from(e: mongodb::error::Error) -> HandlerError {
        HandlerError::Db(e)
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandlerError::Db(e) => write!(f, "MongoDB: {e}"),
            HandlerError::Failed(message) => f.write_str(message),
        }
    }
}

/// The future a transactional handler returns.
pub type TxFuture<'a> = Pin<Box<dyn Future<Output = std::result::Result<(), HandlerError>> + Send + 'a>>;

/// Applies one decoded event; every write must pass `session` to join the transaction.
pub trait TxHandler: Send + Sync {
    /// Applies `event` (upcast to the latest version and validated) inside the transaction;
    /// `db` is the bus's database.
    fn handle<'a>(
        &'a self,
        event: &'a EventRecord,
        db: &'a Database,
        session: &'a mut ClientSession,
    ) -> TxFuture<'a>;
}

impl<F> TxHandler for F
where
    F: for<'a> Fn(&'a EventRecord, &'a Database, &'a mut ClientSession) -> TxFuture<'a> + Send + Sync,
{
    fn handle<'a>(
        &'a self,
        event: &'a EventRecord,
        db: &'a Database,
        session: &'a mut ClientSession,
    ) -> TxFuture<'a> {
        self(event, db, session)
    }
}
