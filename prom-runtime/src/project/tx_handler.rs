//! What a transactional projector runs: the handler trait, its future and its error. Both the
//! projector ([`super::transactional`]) and the per-event transaction ([`super::checkpoint`])
//! use them, so they live below both.

use super::doc_handler::DocHandler;
use crate::documents::{Declared, MongoDocuments, mongo::mongo_cause};
use crate::record::EventRecord;
use mongodb::{ClientSession, Database};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

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

/// Runs a store-neutral [`DocHandler`] on MongoDB: its documents are the session's, so its
/// writes join the transaction; a driver error keeps its labels (write conflicts are retried).
pub struct DocsOnMongo {
    handler: Arc<dyn DocHandler>,
    declared: Declared,
}

impl DocsOnMongo {
    /// `handler`, allowed to `find` by the `declared` fields.
    pub fn new(handler: Arc<dyn DocHandler>, declared: Declared) -> DocsOnMongo {
        DocsOnMongo { handler, declared }
    }
}

impl TxHandler for DocsOnMongo {
    fn handle<'a>(
        &'a self,
        event: &'a EventRecord,
        db: &'a Database,
        session: &'a mut ClientSession,
    ) -> TxFuture<'a> {
        Box::pin(async move {
            let mut docs = MongoDocuments::new(db, session, &self.declared);
            self.handler.handle(event, &mut docs).await.map_err(|e| {
                let runtime = e.downcast_ref::<crate::Error>();
                match runtime.and_then(mongo_cause) {
                    Some(driver) => HandlerError::Db(driver.clone()),
                    None => HandlerError::Failed(e.to_string()),
                }
            })
        })
    }
}
