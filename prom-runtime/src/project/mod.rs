//! Projectors: consumers that keep a collection (a MongoDB collection or a table of the embedded
//! store) in step with a topic.
//!
//! [`changelog`] upserts one document per key into MongoDB, deletes on tombstones and never lets
//! a stale event overwrite a newer version; [`embedded`] does the same into the embedded store,
//! committing each batch's writes, changefeed events and cursor in one SQLite transaction.
//! [`plan`] is their pure part (event → change, collapsing a batch to one write per key),
//! [`write`] the MongoDB bulk writes, [`table`] the SQL of a projection table.
//! [`rebuild`] folds a changelog projection again from offset 0 into a shadow and swaps it in.
//! [`transactional`] runs a user handler in one transaction with the group's cursor
//! (exactly-once effects).

#[cfg(feature = "mongo")]
pub mod changelog;
#[cfg(feature = "mongo")]
mod checkpoint;
pub mod embedded;
pub mod plan;
pub mod rebuild;
pub mod table;
#[cfg(feature = "mongo")]
pub mod transactional;
#[cfg(feature = "mongo")]
mod tx_handler;
#[cfg(feature = "mongo")]
pub mod write;

#[cfg(feature = "mongo")]
pub use changelog::{ChangelogProjector, ChangelogSpec, ProjectorStats};
pub use embedded::{EmbeddedProjector, EmbeddedSpec, EmbeddedStats};
pub use rebuild::{RebuildOptions, RebuildReport, rebuild};
#[cfg(feature = "mongo")]
pub use transactional::{
    HandlerError, TransactionalProjector, TransactionalSpec, TxFuture, TxHandler, TxStats,
};
