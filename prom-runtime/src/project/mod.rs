//! Projectors: consumers that keep a collection (a MongoDB collection or a table of the embedded
//! store) in step with a topic.
//!
//! [`changelog`] upserts one document per key into MongoDB, deletes on tombstones and never lets
//! a stale event overwrite a newer version; [`embedded`] does the same into the embedded store,
//! committing each batch's writes, changefeed events and cursor in one SQLite transaction.
//! [`plan`] is their pure part (event → change, collapsing a batch to one write per key),
//! [`write`] the MongoDB bulk writes, [`table`] the SQL of a projection table.
//! [`transactional`] (MongoDB) and [`embedded_tx`] (the embedded store) run a user handler in
//! one transaction with the group's cursor (exactly-once effects); [`doc_handler`] is the
//! store-neutral handler they share.
//! [`rebuild`] folds a changelog projection again from offset 0 into a shadow and swaps it in.

#[cfg(feature = "mongo")]
pub mod changelog;
#[cfg(feature = "mongo")]
mod checkpoint;
pub mod doc_handler;
pub mod embedded;
pub mod embedded_tx;
pub mod plan;
pub mod rebuild;
pub mod table;
#[cfg(feature = "mongo")]
pub mod transactional;
mod transactional_spec;
#[cfg(feature = "mongo")]
mod tx_handler;
#[cfg(feature = "mongo")]
pub mod write;

#[cfg(feature = "mongo")]
pub use changelog::{ChangelogProjector, ChangelogSpec, ProjectorStats};
pub use doc_handler::{AnyTxHandler, DocHandler, DocHandlerError, DocTxFuture, TypedDocs, typed_tx};
pub use embedded::{EmbeddedProjector, EmbeddedSpec, EmbeddedStats};
pub use embedded_tx::EmbeddedTxProjector;
pub use rebuild::{RebuildOptions, RebuildReport, rebuild};
#[cfg(feature = "mongo")]
pub use transactional::{DocsOnMongo, HandlerError, TransactionalProjector, TxFuture, TxHandler};
pub use transactional_spec::{TransactionalSpec, TxStats};
