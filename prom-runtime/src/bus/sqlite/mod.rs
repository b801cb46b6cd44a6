//! The embedded on-disk store: SQLite (bundled) in WAL mode with `synchronous=FULL`.
//!
//! Several processes may open one store at once (`prom run` in one shell, `prom publish` in
//! another): SQLite's file locks serialize writers, offsets are assigned inside the write
//! transaction, and consumer cursors and leases are rows, so group members in different
//! processes split the work. Opening is cheap (one file open and a pragma check), which matters
//! because every CLI invocation reopens the store.

mod ops;
mod rows;
mod schema;
mod writer;

use super::{EventBus, GroupId};
use crate::error::{Error, Result};
use crate::record::{EventRecord, NewEvent, Receipt, now_ms};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use uuid::Uuid;
use writer::Writer;

/// The store's file name inside its directory.
pub const FILE_NAME: &str = "events.db";

/// Read connections kept for reuse.
const POOL_SIZE: usize = 4;

/// An event bus stored in `<dir>/events.db`.
#[derive(Clone)]
pub struct SqliteBus {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    display: String,
    writer: Writer,
    readers: Mutex<Vec<Connection>>,
    published: Arc<Notify>,
}

impl std::fmt::Debug for SqliteBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SqliteBus({})", self.inner.display)
    }
}

impl SqliteBus {
    /// Opens (creating if needed) the store in directory `dir`.
    pub fn open(dir: impl AsRef<Path>) -> Result<SqliteBus> {
        let dir = dir.as_ref();
        let display = dir.join(FILE_NAME).display().to_string();
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::store(&display, format!("cannot create the store directory `{}`: {e}", dir.display()))
        })?;
        let path = dir.join(FILE_NAME);
        let mut conn = Connection::open(&path).map_err(|e| Error::store(&display, e))?;
        schema::configure(&conn).map_err(|e| Error::store(&display, e))?;
        schema::migrate(&mut conn).map_err(|e| Error::store(&display, e))?;
        let published = Arc::new(Notify::new());
        let writer = Writer::spawn(conn, display.clone(), published.clone())
            .map_err(|e| Error::store(&display, format!("cannot start the committer thread: {e}")))?;
        Ok(SqliteBus {
            inner: Arc::new(Inner { path, display, writer, readers: Mutex::new(Vec::new()), published }),
        })
    }

    /// The table layout (for tools and benchmarks that compare against raw SQLite).
    pub fn layout() -> &'static str {
        schema::DDL
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn err(&self, e: impl std::fmt::Display) -> Error {
        Error::store(&self.inner.display, e)
    }

    /// Runs a read on a pooled connection off the async threads.
    async fn read_with<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let pooled = inner.readers.lock().ok().and_then(|mut pool| pool.pop());
            let conn = match pooled {
                Some(conn) => conn,
                None => {
                    let conn = Connection::open(&inner.path).map_err(|e| Error::store(&inner.display, e))?;
                    conn.busy_timeout(schema::BUSY_TIMEOUT).map_err(|e| Error::store(&inner.display, e))?;
                    conn
                }
            };
            let result = f(&conn).map_err(|e| Error::store(&inner.display, e));
            if let Ok(mut pool) = inner.readers.lock()
                && pool.len() < POOL_SIZE
            {
                pool.push(conn);
            }
            result
        })
        .await;
        joined.map_err(|e| self.err(format!("reader task failed: {e}")))?
    }
}

impl EventBus for SqliteBus {
    async fn publish(&self, events: Vec<NewEvent>) -> Result<Vec<Receipt>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let rows = ops::rows(events)?;
        self.inner.writer.submit(true, move |tx| ops::publish(tx, rows)).await
    }

    async fn read(
        &self,
        topic: &str,
        partition: Option<u32>,
        after: i64,
        limit: usize,
    ) -> Result<Vec<EventRecord>> {
        let topic = topic.to_string();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read_with(move |conn| {
            let events = match partition {
                Some(p) => {
                    let sql = format!(
                        "SELECT {} FROM events WHERE topic = ?1 AND part = ?2 AND off > ?3 ORDER BY off LIMIT ?4",
                        rows::COLUMNS
                    );
                    let mut stmt = conn.prepare_cached(&sql)?;
                    let rows = stmt.query_map(params![topic, p, after, limit], rows::from_row)?;
                    rows.collect::<rusqlite::Result<Vec<_>>>()?
                }
                None => {
                    let sql = format!(
                        "SELECT {} FROM events WHERE topic = ?1 AND off > ?2 ORDER BY off LIMIT ?3",
                        rows::COLUMNS
                    );
                    let mut stmt = conn.prepare_cached(&sql)?;
                    let rows = stmt.query_map(params![topic, after, limit], rows::from_row)?;
                    rows.collect::<rusqlite::Result<Vec<_>>>()?
                }
            };
            Ok(events)
        })
        .await
    }

    async fn head(&self, topic: &str) -> Result<i64> {
        let topic = topic.to_string();
        self.read_with(move |conn| {
            conn.prepare_cached("SELECT head FROM topics WHERE name = ?1")?
                .query_row([topic], |r| r.get(0))
                .optional()
                .map(|h| h.unwrap_or(0))
        })
        .await
    }

    async fn offset_before_time(&self, topic: &str, at_ms: i64) -> Result<i64> {
        let topic = topic.to_string();
        self.read_with(move |conn| {
            let first: Option<i64> = conn
                .prepare_cached("SELECT off FROM events WHERE topic = ?1 AND ts >= ?2 ORDER BY off LIMIT 1")?
                .query_row(params![topic, at_ms], |r| r.get(0))
                .optional()?;
            match first {
                Some(off) => Ok(off - 1),
                None => conn
                    .query_row("SELECT head FROM topics WHERE name = ?1", [&topic], |r| r.get(0))
                    .optional()
                    .map(|h| h.unwrap_or(0)),
            }
        })
        .await
    }

    async fn offset_of(&self, topic: &str, id: Uuid) -> Result<Option<i64>> {
        let topic = topic.to_string();
        self.read_with(move |conn| {
            conn.prepare_cached("SELECT off FROM events WHERE id = ?1 AND topic = ?2")?
                .query_row(params![id.as_bytes().as_slice(), topic], |r| r.get(0))
                .optional()
        })
        .await
    }

    async fn count_after(&self, topic: &str, partition: u32, after: i64) -> Result<u64> {
        let topic = topic.to_string();
        self.read_with(move |conn| {
            conn.prepare_cached("SELECT count(*) FROM events WHERE topic = ?1 AND part = ?2 AND off > ?3")?
                .query_row(params![topic, partition, after], |r| r.get::<_, i64>(0))
                .map(|n| n.unsigned_abs())
        })
        .await
    }

    async fn existing_dedup(&self, topic: &str, keys: Vec<String>) -> Result<Vec<String>> {
        let topic = topic.to_string();
        self.read_with(move |conn| {
            let mut stmt = conn.prepare_cached("SELECT 1 FROM events WHERE topic = ?1 AND dedup = ?2")?;
            let mut out = Vec::new();
            for key in keys {
                if stmt.exists(params![topic, key])? {
                    out.push(key);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn cursors(&self, group: &GroupId) -> Result<BTreeMap<u32, i64>> {
        let group = group.clone();
        self.read_with(move |conn| {
            let mut stmt =
                conn.prepare_cached("SELECT part, off FROM cursors WHERE topic = ?1 AND grp = ?2")?;
            let rows = stmt.query_map(params![group.topic, group.group], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
        .await
    }

    async fn init_cursors(
        &self,
        group: &GroupId,
        partitions: Vec<u32>,
        offset: i64,
    ) -> Result<BTreeMap<u32, i64>> {
        let group = group.clone();
        self.inner.writer.submit(false, move |tx| ops::init_cursors(tx, &group, &partitions, offset)).await
    }

    async fn commit(&self, group: &GroupId, member: Option<&str>, cursors: Vec<(u32, i64)>) -> Result<()> {
        if cursors.is_empty() {
            return Ok(());
        }
        let group = group.clone();
        let member = member.map(str::to_string);
        self.inner.writer.submit(false, move |tx| ops::commit(tx, &group, member.as_deref(), &cursors)).await
    }

    async fn heartbeat(&self, group: &GroupId, member: &str, ttl: Duration) -> Result<Vec<String>> {
        let group = group.clone();
        let member = member.to_string();
        self.inner
            .writer
            .submit(false, move |tx| {
                let now = now_ms();
                ops::heartbeat(tx, &group, &member, now, now + super::memory::ttl_ms(ttl))
            })
            .await
    }

    async fn claim(
        &self,
        group: &GroupId,
        member: &str,
        want: Vec<u32>,
        release: Vec<u32>,
        ttl: Duration,
    ) -> Result<Vec<u32>> {
        let group = group.clone();
        let member = member.to_string();
        self.inner
            .writer
            .submit(false, move |tx| {
                let now = now_ms();
                ops::claim(tx, &group, &member, &want, &release, now, now + super::memory::ttl_ms(ttl))
            })
            .await
    }

    async fn leave(&self, group: &GroupId, member: &str) -> Result<()> {
        let group = group.clone();
        let member = member.to_string();
        self.inner.writer.submit(false, move |tx| ops::leave(tx, &group, &member)).await
    }

    async fn wait(&self, topic: &str, seen: i64, timeout: Duration) {
        // A failing read is retried on the next round; the caller reads (and reports) anyway.
        super::wait_for_head(&self.inner.published, seen, timeout, || async {
            self.head(topic).await.unwrap_or(0)
        })
        .await;
    }
}
