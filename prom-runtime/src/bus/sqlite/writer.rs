//! The committer: one thread owns the write connection and commits whatever jobs queued up
//! while the previous commit was syncing, in one transaction (group commit).
//!
//! Durability costs one fsync per transaction, not per event: under load, publishers' events
//! share transactions; alone, a publish still commits at once. When jobs share a transaction,
//! each runs inside a savepoint, so one failing job (say, a lost lease) does not undo the
//! others; a job alone in its transaction needs none (a failure rolls the transaction back).

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
        write_error(self.path, e)
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
        self.queue(publishes, op)?.await
    }

    /// Queues `op` now, behind every job queued before it (jobs run in the order queued), and
    /// returns the wait for its durable outcome: a caller can prepare its next job meanwhile.
    pub fn queue<T, F>(
        &self,
        publishes: bool,
        op: F,
    ) -> Result<impl std::future::Future<Output = Result<T>> + Send + 'static + use<T, F>>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> Result<T> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job = Box::new(Typed { op: Some(op), result: None, reply, publishes });
        self.jobs.send(job).map_err(|_| Error::Closed)?;
        Ok(async move { rx.await.map_err(|_| Error::Closed)? })
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
        let outcome = commit(&conn, &path, &mut jobs).map_err(|e| write_error(&path, e));
        let woke = outcome.is_ok() && jobs.iter().any(|j| j.publishes());
        for job in jobs {
            job.finish(outcome.as_ref().map(|_| ()));
        }
        if woke {
            published.notify_waiters();
        }
    }
}

/// A failed write as a store error naming the file. A full disk is [`Error::DiskFull`]: SQLite
/// rolled the transaction back and the committer carries on, so freeing space is all it takes.
fn write_error(path: &str, e: rusqlite::Error) -> Error {
    if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) {
        return Error::DiskFull { path: path.to_owned(), source: crate::error::Cause::new(e) };
    }
    Error::store_from(path, e)
}

fn commit(conn: &Connection, path: &str, jobs: &mut [Box<dyn Job>]) -> rusqlite::Result<()> {
    conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
    let result = (|| {
        let mut tx = Tx { conn, path, heads: HashMap::new() };
        if let [job] = jobs {
            // Alone in its transaction, a failed job needs no savepoint: rolling the whole
            // transaction back undoes exactly its writes (and nothing else is reported as
            // committed). This saves the savepoint's journal of every page the job touches.
            if !job.apply(&mut tx) {
                conn.execute_batch("ROLLBACK")?;
                return Ok(());
            }
        } else {
            for job in jobs.iter_mut() {
                conn.prepare_cached("SAVEPOINT job")?.execute([])?;
                let heads = tx.heads.clone();
                if job.apply(&mut tx) {
                    conn.prepare_cached("RELEASE job")?.execute([])?;
                } else {
                    conn.execute_batch("ROLLBACK TO job; RELEASE job")?;
                    tx.heads = heads;
                }
            }
        }
        tx.flush_heads()?;
        conn.prepare_cached("COMMIT")?.execute([])?;
        Ok(())
    })();
    if result.is_err() && !conn.is_autocommit() {
        // Best effort: the error that got us here is the one worth reporting.
        let _ = conn.execute_batch("ROLLBACK");
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::EventBus;
    use crate::bus::sqlite::SqliteBus;
    use crate::record::NewEvent;
    use serde_json::json;
    use std::time::Duration;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
    }

    #[test]
    fn a_failing_job_alone_in_its_commit_leaves_nothing_behind() {
        let dir = tempfile::tempdir().expect("tempdir");
        runtime().block_on(async {
            let bus = SqliteBus::open(dir.path()).expect("open");
            // The second copy of `e` breaks the unique id index after two rows were inserted.
            let e = NewEvent::new("t", json!({ "n": 1 }));
            let batch = vec![e.clone(), NewEvent::new("t", json!({ "n": 2 })), e];
            bus.publish(batch).await.expect_err("a duplicate id fails the whole batch");
            assert_eq!(bus.heads("t").await.expect("head").total(), 0);
            assert!(
                bus.read_topic("t", &crate::bus::TopicPosition::start(), 10).await.expect("read").is_empty()
            );
            let next = bus.publish(vec![NewEvent::new("t", json!({ "n": 3 }))]).await.expect("publish");
            assert_eq!(next[0].offset, 1, "the failed batch assigned no offsets");
        });
    }

    #[test]
    fn jobs_sharing_a_commit_fail_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("w.db");
        let mut conn = Connection::open(&path).expect("open");
        super::super::schema::configure(&conn).expect("configure");
        super::super::schema::migrate(&mut conn).expect("migrate");
        let writer = Writer::spawn(conn, "w.db".into(), Arc::new(Notify::new())).expect("spawn");
        let insert = |name: &'static str, fail: bool| {
            move |tx: &mut Tx<'_>| {
                tx.conn
                    .execute("INSERT INTO topics (name, head) VALUES (?1, 1)", [name])
                    .map_err(|e| tx.err(e))?;
                if fail { Err(Error::store(name, "fails")) } else { Ok(()) }
            }
        };
        runtime().block_on(async {
            // Hold the committer inside a first commit until the next jobs are queued, so they
            // share the following one.
            let (started_tx, started) = std::sync::mpsc::channel();
            let (go, go_rx) = std::sync::mpsc::channel::<()>();
            let w = writer.clone();
            let first = tokio::spawn(async move {
                w.submit(false, move |_| {
                    let _ = started_tx.send(());
                    let _ = go_rx.recv_timeout(Duration::from_secs(10));
                    Ok(())
                })
                .await
            });
            tokio::task::spawn_blocking(move || started.recv_timeout(Duration::from_secs(10)))
                .await
                .expect("join")
                .expect("the first job started");
            let jobs: Vec<_> = [("a", false), ("b", true), ("c", false)]
                .into_iter()
                .map(|(name, fail)| {
                    let w = writer.clone();
                    tokio::spawn(async move { w.submit(false, insert(name, fail)).await })
                })
                .collect();
            tokio::time::sleep(Duration::from_millis(100)).await;
            let _ = go.send(());
            first.await.expect("join").expect("first job");
            let mut outcomes = Vec::new();
            for job in jobs {
                outcomes.push(job.await.expect("join").is_ok());
            }
            assert_eq!(outcomes, [true, false, true]);
        });
        let check = Connection::open(&path).expect("open");
        let names: Vec<String> = check
            .prepare("SELECT name FROM topics ORDER BY name")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .expect("names");
        assert_eq!(names, ["a", "c"], "the failing job's write was rolled back alone");
    }
}
