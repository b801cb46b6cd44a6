//! The committer: one thread owns the write connection and commits whatever jobs queued up
//! while the previous commit was syncing, in one transaction (group commit).
//!
//! Durability costs one fsync per transaction, not per event: under load, publishers' events
//! share transactions; alone, a publish still commits at once. Each job runs inside a savepoint,
//! so one failing job (say, a lost lease) does not undo the others.

use crate::error::{Error, Result};
use rusqlite::Connection;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender};
use tokio::sync::{Notify, oneshot};

/// Jobs committed together at most; bounds a transaction's size and latency.
const MAX_JOBS_PER_COMMIT: usize = 4096;

/// The state a job sees: the connection inside an open transaction, and topic heads.
pub(super) struct Tx<'a> {
    /// The write connection (inside `BEGIN IMMEDIATE`).
    pub conn: &'a Connection,
    path: &'a str,
    /// Topic heads read or assigned in this transaction; `true` when changed.
    heads: HashMap<String, (i64, bool)>,
}

impl Tx<'_> {
    /// Maps a SQLite error to a store error naming the file.
    pub fn err(&self, e: rusqlite::Error) -> Error {
        Error::store(self.path, e)
    }

    /// The next offset of `topic` (heads are cached for the transaction; the write lock keeps
    /// other processes out until commit).
    pub fn next_offset(&mut self, topic: &str) -> Result<i64> {
        if !self.heads.contains_key(topic) {
            let head: Option<i64> = self
                .conn
                .prepare_cached("SELECT head FROM topics WHERE name = ?1")
                .and_then(|mut s| {
                    let mut rows = s.query([topic])?;
                    rows.next()?.map(|r| r.get(0)).transpose()
                })
                .map_err(|e| self.err(e))?;
            self.heads.insert(topic.to_string(), (head.unwrap_or(0), false));
        }
        let entry = self.heads.get_mut(topic).ok_or(Error::Closed)?;
        entry.0 += 1;
        entry.1 = true;
        Ok(entry.0)
    }

    fn flush_heads(&self) -> rusqlite::Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO topics (name, head) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET head = excluded.head",
        )?;
        for (topic, (head, dirty)) in &self.heads {
            if *dirty {
                stmt.execute(rusqlite::params![topic, head])?;
            }
        }
        Ok(())
    }
}

/// A queued write.
pub(super) trait Job: Send {
    /// Runs the write; `false` when it failed (its savepoint is then rolled back).
    fn apply(&mut self, tx: &mut Tx<'_>) -> bool;
    /// Reports the outcome once the transaction committed (or failed).
    fn finish(self: Box<Self>, commit: Result<(), &Error>);
    /// Whether the job may have added events (readers are woken after commit).
    fn publishes(&self) -> bool;
}

struct Typed<T, F> {
    op: Option<F>,
    result: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
    publishes: bool,
}

impl<T: Send, F: FnOnce(&mut Tx<'_>) -> Result<T> + Send> Job for Typed<T, F> {
    fn apply(&mut self, tx: &mut Tx<'_>) -> bool {
        let Some(op) = self.op.take() else { return false };
        let result = op(tx);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, commit: Result<(), &Error>) {
        let outcome = match (self.result, commit) {
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(v)), Ok(())) => Ok(v),
            (_, Err(e)) => Err(e.clone()),
            (None, Ok(())) => Err(Error::Closed),
        };
        // The caller may have given up waiting; nothing to report to then.
        let _ = self.reply.send(outcome);
    }

    fn publishes(&self) -> bool {
        self.publishes
    }
}

/// The sending side of the committer.
#[derive(Clone)]
pub(super) struct Writer {
    jobs: Sender<Box<dyn Job>>,
}

impl Writer {
    /// Starts the committer thread on `conn`.
    pub fn spawn(conn: Connection, path: String, published: Arc<Notify>) -> std::io::Result<Writer> {
        let (jobs, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("prom-committer".into())
            .spawn(move || run(conn, rx, path, published))?;
        Ok(Writer { jobs })
    }

    /// Queues `op` and waits until its transaction is durable.
    pub async fn submit<T, F>(&self, publishes: bool, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> Result<T> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job = Box::new(Typed { op: Some(op), result: None, reply, publishes });
        self.jobs.send(job).map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }
}

fn run(conn: Connection, rx: Receiver<Box<dyn Job>>, path: String, published: Arc<Notify>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_JOBS_PER_COMMIT {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let outcome = commit(&conn, &path, &mut jobs).map_err(|e| Error::store(&path, e));
        let woke = outcome.is_ok() && jobs.iter().any(|j| j.publishes());
        for job in jobs {
            job.finish(outcome.as_ref().map(|_| ()));
        }
        if woke {
            published.notify_waiters();
        }
    }
}

fn commit(conn: &Connection, path: &str, jobs: &mut [Box<dyn Job>]) -> rusqlite::Result<()> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| {
        let mut tx = Tx { conn, path, heads: HashMap::new() };
        for job in jobs.iter_mut() {
            conn.execute_batch("SAVEPOINT job")?;
            let heads = tx.heads.clone();
            if job.apply(&mut tx) {
                conn.execute_batch("RELEASE job")?;
            } else {
                conn.execute_batch("ROLLBACK TO job; RELEASE job")?;
                tx.heads = heads;
            }
        }
        tx.flush_heads()?;
        conn.execute_batch("COMMIT")
    })();
    if result.is_err() && !conn.is_autocommit() {
        // Best effort: the error that got us here is the one worth reporting.
        let _ = conn.execute_batch("ROLLBACK");
    }
    result
}
