//! A transactional projector's declaration and counters, shared by its two runners (MongoDB:
//! [`super::transactional`], the embedded store: [`super::embedded_tx`]).

use crate::documents::Declared;
use crate::system::Index;
use std::sync::atomic::AtomicU64;

/// A transactional projector's declaration, resolved against the registry.
#[derive(Debug, Clone)]
pub struct TransactionalSpec {
    /// Projector name (its consumer group is `projector.<name>`).
    pub name: String,
    /// Source topic.
    pub topic: String,
    /// The topic's partition count.
    pub partitions: u32,
    /// Its main collection (`collection:`), if declared.
    pub collection: Option<String>,
    /// Indexes declared on the collection (created at start).
    pub indexes: Vec<Index>,
    /// The fields the handler may `find` by.
    pub declared: Declared,
}

impl TransactionalSpec {
    /// The consumer group the projector reads with.
    pub fn group(&self) -> String {
        format!("projector.{}", self.name)
    }
}

/// Counters of a running transactional projector.
#[derive(Debug, Default)]
pub struct TxStats {
    /// Events whose effects committed.
    pub applied: AtomicU64,
    /// Events found already applied (redelivered after a crash or a rebalance).
    pub already_applied: AtomicU64,
    /// Handler attempts that failed and were retried.
    pub retried: AtomicU64,
    /// Events sent to the DLQ.
    pub dead_lettered: AtomicU64,
}
