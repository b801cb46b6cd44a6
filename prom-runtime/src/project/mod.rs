//! Projectors: consumers that keep a MongoDB collection in step with a topic.
//!
//! [`changelog`] upserts one document per key, deletes on tombstones and never lets a stale
//! event overwrite a newer version; [`plan`] is its pure part (event → change, collapsing a
//! batch to one write per key), [`write`] the bulk writes. [`transactional`] runs a user handler
//! in one transaction with the group's cursor (exactly-once effects).

pub mod changelog;
mod checkpoint;
pub mod plan;
pub mod transactional;
mod tx_handler;
pub mod write;

pub use changelog::{ChangelogProjector, ChangelogSpec, ProjectorStats};
pub use transactional::{
    HandlerError, TransactionalProjector, TransactionalSpec, TxFuture, TxHandler, TxStats,
};
