//! Access for the embedded projectors ([`crate::project::embedded`]): a batch's table writes,
//! changefeed events and group cursor run as one job of the committer, so they commit in one
//! SQLite transaction (all or nothing, durable when the call returns); and reads of the
//! projection tables on the pooled read connections.
//!
//! Projection tables live in the store's own file: SQLite commits a transaction over attached
//! files in WAL mode atomically per file only, so a sibling file could keep a write whose
//! cursor was lost (or the reverse) after a crash.

use super::writer::Tx;
use super::{SqliteBus, ops};
use crate::bus::GroupId;
use crate::error::{Error, Result};
use crate::record::{NewEvent, Receipt};
use rusqlite::{Connection, OptionalExtension, params};

/// The write transaction one projector batch runs in.
pub(crate) struct ProjectionTx<'a, 'b> {
    tx: &'a mut Tx<'b>,
}

impl ProjectionTx<'_, '_> {
    /// The write connection, inside the open transaction.
    pub fn conn(&self) -> &Connection {
        self.tx.conn
    }

    /// Maps a SQLite error to a store error naming the file.
    pub fn err(&self, e: rusqlite::Error) -> Error {
        self.tx.err(e)
    }

    /// The group's stored cursor of `partition` (the last offset it consumed), if any.
    pub fn cursor(&self, group: &GroupId, partition: u32) -> Result<Option<i64>> {
        self.tx
            .conn
            .prepare_cached("SELECT off FROM cursors WHERE topic = ?1 AND grp = ?2 AND part = ?3")
            .and_then(|mut s| {
                s.query_row(params![group.topic, group.group, partition], |r| r.get(0)).optional()
            })
            .map_err(|e| self.err(e))
    }

    /// Moves the group's cursors, fenced by `member`'s leases ([`Error::LeaseLost`] otherwise,
    /// which rolls the whole job back).
    pub fn commit_cursors(&mut self, group: &GroupId, member: &str, cursors: &[(u32, i64)]) -> Result<()> {
        ops::commit(self.tx, group, Some(member), cursors)
    }

    /// Events of `topic` with offset `> after` (all partitions, at most `limit`), in offset
    /// order, as this transaction sees them.
    pub fn read_events(
        &self,
        topic: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<crate::record::EventRecord>> {
        let sql = format!(
            "SELECT {} FROM events WHERE topic = ?1 AND off > ?2 ORDER BY off LIMIT ?3",
            super::rows::COLUMNS
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.tx
            .conn
            .prepare_cached(&sql)
            .and_then(|mut s| super::rows::collect(&mut s, params![topic, after, limit]))
            .map_err(|e| self.err(e))
    }

    /// Appends events (already validated) in this transaction.
    pub fn publish(&mut self, events: Vec<NewEvent>) -> Result<Vec<Receipt>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let rows = ops::rows(events)?;
        ops::publish(self.tx, rows)
    }

    /// Appends to a stream (already validated) in this transaction: the expected version is
    /// checked against what this transaction sees (the writer lock is held, so every commit).
    pub fn append(&mut self, append: crate::stream::StreamAppend) -> Result<crate::stream::Appended> {
        let job = super::streams::job(append)?;
        super::streams::append(self.tx, job)
    }
}

impl SqliteBus {
    /// Runs `job` in one write transaction of the committer and waits until it is durable; an
    /// error from `job` rolls back everything it wrote. `publishes` wakes subscribers after the
    /// commit (set it when `job` may append events).
    pub(crate) async fn in_transaction<T, F>(&self, publishes: bool, job: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut ProjectionTx<'_, '_>) -> Result<T> + Send + 'static,
    {
        self.writer()?.submit(publishes, move |tx| job(&mut ProjectionTx { tx })).await
    }

    /// [`SqliteBus::in_transaction`] queued now (behind every write queued before it, so
    /// transactions queued one after another commit in that order), returning the wait for
    /// its outcome: the caller prepares its next transaction while this one commits.
    pub(crate) fn queue_transaction<T, F>(
        &self,
        publishes: bool,
        job: F,
    ) -> Result<impl std::future::Future<Output = Result<T>> + Send + 'static + use<T, F>>
    where
        T: Send + 'static,
        F: FnOnce(&mut ProjectionTx<'_, '_>) -> Result<T> + Send + 'static,
    {
        self.writer()?.queue(publishes, move |tx| job(&mut ProjectionTx { tx }))
    }

    /// Runs a query of the projection tables returning `(key, doc)` rows, on a pooled read
    /// connection (one statement: a consistent view of the last commit). A table no projector
    /// created yet reads as empty. (Its reader, the snapshot API, is built with the HTTP server.)
    #[cfg(feature = "serve")]
    pub(crate) async fn read_projection(
        &self,
        sql: String,
        params: Vec<rusqlite::types::Value>,
    ) -> Result<Vec<(String, String)>> {
        self.read_with(move |conn| {
            let mut stmt = match conn.prepare_cached(&sql) {
                Ok(stmt) => stmt,
                Err(e) if e.to_string().starts_with("no such table") => return Ok(Vec::new()),
                Err(e) => return Err(e),
            };
            let rows = stmt.query_map(rusqlite::params_from_iter(params), |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
        .await
    }
}
