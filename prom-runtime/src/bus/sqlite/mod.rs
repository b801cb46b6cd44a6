//! The embedded on-disk store: SQLite (bundled) in WAL mode with `synchronous=FULL`.
//!
//! Several processes may open one store at once (`prom run` in one shell, `prom publish` in
//! another): SQLite's file locks serialize writers, offsets are assigned inside the write
//! transaction, and consumer cursors and leases are rows, so group members in different
//! processes split the work. Opening is cheap (one file open and a pragma check), which matters
//! because every CLI invocation reopens the store.

mod ahead;
mod keys;
mod open;
mod ops;
pub(crate) mod projection;
mod rows;
mod schema;
pub(crate) use schema::{STORED_VERSION, VERSION_INDEX};
mod streams;
mod writer;

use super::{EventBus, GroupId, TopicPosition};
use crate::error::{Error, Result};
use crate::record::{EventRecord, NewEvent, Receipt, now_ms};
use crate::stream::{Appended, Snapshot, StreamAppend, StreamId, StreamRecord};
use open::Mode;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use uuid::Uuid;
use writer::Writer;

/// The store's file name inside its directory.
pub const FILE_NAME: &str = "events.db";

/// Read connections kept for reuse (callers' reads and reads ahead run side by side).
const POOL_SIZE: usize = 6;

/// An event bus stored in `<dir>/events.db`.
#[derive(Clone)]
pub struct SqliteBus {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    display: String,
    /// The committer; `None` for a store opened read-only.
    writer: Option<Writer>,
    /// How read connections open the file: flags, and the name to open (a URI when the
    /// file must be read as immutable).
    reader: (OpenFlags, PathBuf),
    readers: Mutex<Vec<Connection>>,
    published: Arc<Notify>,
    /// Partition pages read ahead for consumers working through a backlog.
    ahead: ahead::ReadAhead,
}

impl std::fmt::Debug for SqliteBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SqliteBus({})", self.inner.display)
    }
}

impl SqliteBus {
    /// Opens the store in directory `dir`, creating it when the directory holds no database
    /// file. An empty (0-byte) file is refused rather than silently made a new store.
    pub fn open(dir: impl AsRef<Path>) -> Result<SqliteBus> {
        let dir = dir.as_ref();
        let path = dir.join(FILE_NAME);
        let display = path.display().to_string();
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::store_caused(
                &display,
                format!("cannot create the store directory `{}`: {e}", dir.display()),
                e,
            )
        })?;
        open::check_file(&path, Mode::ReadWrite).map_err(|e| Error::store(&display, e))?;
        let fail = |e: rusqlite::Error| {
            Error::store_caused(&display, open::open_error(&path, Mode::ReadWrite, &e), e)
        };
        let mut conn = Connection::open(&path).map_err(fail)?;
        // SQLite quietly opens a file it may not write read-only; every write would then fail
        // with "attempt to write a readonly database". Say why now, naming the OS error.
        if conn.is_readonly(rusqlite::MAIN_DB).map_err(fail)? {
            return Err(Error::store(&display, open::read_only_error(&path)));
        }
        schema::configure(&conn).map_err(fail)?;
        schema::migrate(&mut conn).map_err(|e| Error::store(&display, e))?;
        let published = Arc::new(Notify::new());
        let writer = Writer::spawn(conn, display.clone(), published.clone()).map_err(|e| {
            Error::store_caused(&display, format!("cannot start the committer thread: {e}"), e)
        })?;
        let reader = (OpenFlags::default(), path.clone());
        Ok(SqliteBus {
            inner: Arc::new(Inner {
                path,
                display,
                writer: Some(writer),
                reader,
                readers: Mutex::new(Vec::new()),
                published,
                ahead: ahead::ReadAhead::default(),
            }),
        })
    }

    /// Opens an existing store in `dir` for reading only: nothing is created or written, so it
    /// works on read-only files and directories. Writes fail with a store error saying so.
    ///
    /// When SQLite cannot set up its shared-memory index beside the file (a read-only directory
    /// after a clean shutdown, with no write-ahead log left), the file is read as immutable:
    /// nobody can be writing it then.
    pub fn open_read_only(dir: impl AsRef<Path>) -> Result<SqliteBus> {
        let path = dir.as_ref().join(FILE_NAME);
        let display = path.display().to_string();
        open::check_file(&path, Mode::ReadOnly).map_err(|e| Error::store(&display, e))?;
        let fail = |e: rusqlite::Error| {
            Error::store_caused(&display, open::open_error(&path, Mode::ReadOnly, &e), e)
        };
        let shared = (OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX, path.clone());
        let immutable = (
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
            PathBuf::from(format!("file:{}?immutable=1", open::uri_path(&path))),
        );
        // Immutable reads skip the write-ahead log, so they are only right when it holds nothing.
        let wal = dir.as_ref().join(format!("{FILE_NAME}-wal"));
        let wal_empty = std::fs::metadata(&wal).map_or(true, |m| m.len() == 0);
        let (reader, version) = match read_layout(&shared) {
            Ok(version) => (shared, version),
            Err(first) if wal_empty => match read_layout(&immutable) {
                Ok(version) => (immutable, version),
                Err(_) => return Err(fail(first)),
            },
            Err(first) => return Err(fail(first)),
        };
        if !(schema::OLDEST..=schema::VERSION).contains(&version) {
            return Err(Error::store(
                &display,
                format!(
                    "the store has layout version {version}, but this prom reads versions {} to {}; {}",
                    schema::OLDEST,
                    schema::VERSION,
                    if version == 0 {
                        "the file is a SQLite database but not a Prom store (or one never opened for writing)"
                    } else {
                        "use the prom that wrote it"
                    }
                ),
            ));
        }
        Ok(SqliteBus {
            inner: Arc::new(Inner {
                path,
                display,
                writer: None,
                reader,
                readers: Mutex::new(Vec::new()),
                published: Arc::new(Notify::new()),
                ahead: ahead::ReadAhead::default(),
            }),
        })
    }

    /// The committer, or an error for a read-only store.
    fn writer(&self) -> Result<&Writer> {
        self.inner.writer.as_ref().ok_or_else(|| {
            self.err("the store was opened read-only (for a command that only reads); nothing can be written")
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

    /// The next `limit` events of a partition after `after`, exactly as one read of the store
    /// returns them: taken from a page read ahead when one waits at `after` (topped up by a
    /// read when it holds fewer), and, when the page is full, the page after it read ahead.
    async fn read_partition(
        &self,
        topic: &str,
        partition: u32,
        after: i64,
        limit: usize,
    ) -> Result<Vec<EventRecord>> {
        let ahead = &self.inner.ahead;
        let mut events = ahead.take(topic, partition, after).await;
        if events.len() > limit {
            let rest = events.split_off(limit);
            if let Some(last) = events.last() {
                ahead.keep(topic, partition, last.offset, ahead::Page::Ready(rest));
            }
        } else if events.len() < limit {
            let from = events.last().map_or(after, |e| e.offset);
            events.extend(self.read_page(topic.to_owned(), partition, from, limit - events.len()).await?);
        }
        if events.len() == limit
            && let Some(last) = events.last().map(|e| e.offset)
            && ahead.wanted(topic, partition, last, limit)
        {
            let (bus, owned) = (self.clone(), topic.to_owned());
            let reading = tokio::spawn(async move { bus.read_page(owned, partition, last, limit).await });
            ahead.keep(topic, partition, last, ahead::Page::Reading(reading));
        }
        Ok(events)
    }

    /// One read of a partition's next `limit` events after `after`.
    async fn read_page(
        &self,
        topic: String,
        partition: u32,
        after: i64,
        limit: usize,
    ) -> Result<Vec<EventRecord>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read_in_place(move |conn| {
            let mut stmt = conn.prepare_cached(&page_sql())?;
            rows::collect(&mut stmt, params![topic, partition, after, limit])
        })
        .await
    }

    /// Runs a read on a pooled connection off the async threads.
    pub(crate) async fn read_with<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        let joined = tokio::task::spawn_blocking(move || inner.read_now(f)).await;
        joined.map_err(|e| self.err(format!("reader task failed: {e}")))?
    }

    /// Runs a consumer's page read or head lookup: on a multi-threaded runtime in place, on the
    /// worker thread (tokio first hands the worker's other tasks to another one), which saves
    /// every page the hand-off to a blocking thread and back (consumption 0.63-0.75x a raw scan
    /// against 0.46-0.65x in the same runs); elsewhere like [`SqliteBus::read_with`]. Only these
    /// reads: one in place cannot be interrupted by a timeout around it, and these are bounded.
    /// (Tests on a current-thread runtime take the other way; `ahead` tests both.)
    async fn read_in_place<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if multi_thread {
            return tokio::task::block_in_place(|| self.inner.read_now(f));
        }
        self.read_with(f).await
    }
}

impl Inner {
    /// Runs `f` on a pooled read connection (opened when the pool is empty) on this thread.
    fn read_now<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let pooled = self.readers.lock().ok().and_then(|mut pool| pool.pop());
        let conn = match pooled {
            Some(conn) => conn,
            None => {
                let fail = |e: rusqlite::Error| {
                    let mode = if self.writer.is_some() { Mode::ReadWrite } else { Mode::ReadOnly };
                    Error::store_caused(&self.display, open::open_error(&self.path, mode, &e), e)
                };
                let (flags, name) = &self.reader;
                let conn = Connection::open_with_flags(name, *flags).map_err(fail)?;
                schema::configure_reader(&conn).map_err(fail)?;
                conn
            }
        };
        let result = f(&conn).map_err(|e| Error::store_from(&self.display, e));
        if let Ok(mut pool) = self.readers.lock()
            && pool.len() < POOL_SIZE
        {
            pool.push(conn);
        }
        result
    }
}

impl EventBus for SqliteBus {
    fn as_sqlite(&self) -> Option<&SqliteBus> {
        Some(self)
    }

    async fn publish(&self, events: Vec<NewEvent>) -> Result<Vec<Receipt>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let rows = ops::rows(events)?;
        self.writer()?.submit(true, move |tx| ops::publish(tx, rows)).await
    }

    async fn read(&self, topic: &str, partition: u32, after: i64, limit: usize) -> Result<Vec<EventRecord>> {
        self.read_partition(topic, partition, after, limit).await
    }

    async fn read_topic(&self, topic: &str, from: &TopicPosition, limit: usize) -> Result<Vec<EventRecord>> {
        let topic = topic.to_string();
        let from = from.clone();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read_with(move |conn| read_topic(conn, &topic, &from, limit)).await
    }

    fn ordered(&self) -> bool {
        true
    }

    async fn heads(&self, topic: &str) -> Result<TopicPosition> {
        let topic = topic.to_string();
        // A consumer asks before every refill; one index lookup.
        self.read_in_place(move |conn| head(conn, &topic)).await.map(TopicPosition::after)
    }

    async fn position_before_time(&self, topic: &str, at_ms: i64) -> Result<TopicPosition> {
        let topic = topic.to_string();
        let offset = self
            .read_with(move |conn| {
                let first: Option<i64> = conn
                    .prepare_cached(
                        "SELECT off FROM events WHERE topic = ?1 AND ts >= ?2 ORDER BY off LIMIT 1",
                    )?
                    .query_row(params![topic, at_ms], |r| r.get(0))
                    .optional()?;
                match first {
                    Some(off) => Ok(off - 1),
                    None => head(conn, &topic),
                }
            })
            .await?;
        Ok(TopicPosition::after(offset))
    }

    async fn position_of(&self, topic: &str, id: Uuid) -> Result<Option<TopicPosition>> {
        let topic = topic.to_string();
        let offset: Option<i64> = self
            .read_with(move |conn| {
                conn.prepare_cached("SELECT off FROM events WHERE id = ?1 AND topic = ?2")?
                    .query_row(params![id.as_bytes().as_slice(), topic], |r| r.get(0))
                    .optional()
            })
            .await?;
        Ok(offset.map(TopicPosition::after))
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
        start: &TopicPosition,
    ) -> Result<BTreeMap<u32, i64>> {
        let group = group.clone();
        let starts: Vec<(u32, i64)> = partitions.into_iter().map(|p| (p, start.at(p))).collect();
        self.writer()?.submit(false, move |tx| ops::init_cursors(tx, &group, &starts)).await
    }

    async fn commit(&self, group: &GroupId, member: Option<&str>, cursors: Vec<(u32, i64)>) -> Result<()> {
        if cursors.is_empty() {
            return Ok(());
        }
        let group = group.clone();
        let member = member.map(str::to_string);
        self.writer()?.submit(false, move |tx| ops::commit(tx, &group, member.as_deref(), &cursors)).await
    }

    async fn heartbeat(&self, group: &GroupId, member: &str, ttl: Duration) -> Result<Vec<String>> {
        let group = group.clone();
        let member = member.to_string();
        self.writer()?
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
        self.writer()?
            .submit(false, move |tx| {
                let now = now_ms();
                ops::claim(tx, &group, &member, &want, &release, now, now + super::memory::ttl_ms(ttl))
            })
            .await
    }

    async fn leave(&self, group: &GroupId, member: &str) -> Result<()> {
        let group = group.clone();
        let member = member.to_string();
        self.writer()?.submit(false, move |tx| ops::leave(tx, &group, &member)).await
    }

    async fn wait(&self, topic: &str, seen: &TopicPosition, timeout: Duration) {
        super::wait_until(&self.inner.published, timeout, || super::arrived(self, topic, seen)).await;
    }

    async fn append(&self, append: StreamAppend) -> Result<Appended> {
        let job = streams::job(append)?;
        self.writer()?.submit(true, move |tx| streams::append(tx, job)).await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        after_version: u64,
        limit: usize,
    ) -> Result<Vec<StreamRecord>> {
        let stream = stream.clone();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read_with(move |conn| streams::read(conn, &stream, after_version, limit)).await
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Option<u64>> {
        let stream = stream.clone();
        self.read_with(move |conn| streams::version(conn, &stream)).await
    }

    async fn stream_ids(&self, aggregate: &str, after: Option<String>, limit: usize) -> Result<Vec<String>> {
        let aggregate = aggregate.to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read_with(move |conn| streams::ids(conn, &aggregate, after.as_deref(), limit)).await
    }

    async fn save_snapshot(&self, stream: &StreamId, snapshot: Snapshot) -> Result<()> {
        let state = serde_json::to_string(&snapshot.state)
            .map_err(|e| Error::serialize(format!("the snapshot of `{stream}`"), e))?;
        let stream = stream.clone();
        self.writer()?.submit(false, move |tx| streams::save_snapshot(tx, &stream, &snapshot, &state)).await
    }

    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>> {
        let stream = stream.clone();
        self.read_with(move |conn| streams::load_snapshot(conn, &stream)).await
    }
}

/// The highest offset of `topic` (0 when empty).
fn head(conn: &Connection, topic: &str) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT head FROM topics WHERE name = ?1")?
        .query_row([topic], |r| r.get(0))
        .optional()
        .map(|h| h.unwrap_or(0))
}

/// Up to `limit` events of `topic` after `from`, in offset order. Offsets are topic-wide, so
/// everything past the floor qualifies except what a listed partition has read already.
fn read_topic(
    conn: &Connection,
    topic: &str,
    from: &TopicPosition,
    limit: i64,
) -> rusqlite::Result<Vec<EventRecord>> {
    use rusqlite::types::Value;
    if from.parts().is_empty() {
        let sql = format!(
            "SELECT {} FROM events WHERE topic = ?1 AND off > ?2 ORDER BY off LIMIT ?3",
            rows::COLUMNS
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        return rows::collect(&mut stmt, params![topic, from.floor(), limit]);
    }
    let mut sql = format!("SELECT {} FROM events WHERE topic = ?1 AND off > ?2", rows::COLUMNS);
    let mut values = vec![Value::Text(topic.to_owned()), Value::Integer(from.floor())];
    for (&partition, &offset) in from.parts() {
        sql.push_str(&format!(" AND NOT (part = ?{} AND off <= ?{})", values.len() + 1, values.len() + 2));
        values.extend([Value::Integer(i64::from(partition)), Value::Integer(offset)]);
    }
    sql.push_str(&format!(" ORDER BY off LIMIT ?{}", values.len() + 1));
    values.push(Value::Integer(limit));
    // Not cached: the text varies with the number of listed partitions, and such reads are rare
    // on a store whose readers keep one number.
    let mut stmt = conn.prepare(&sql)?;
    rows::collect(&mut stmt, rusqlite::params_from_iter(values))
}

/// A partition's next events: topic, partition, after, limit.
fn page_sql() -> String {
    format!(
        "SELECT {} FROM events WHERE topic = ?1 AND part = ?2 AND off > ?3 ORDER BY off LIMIT ?4",
        rows::COLUMNS
    )
}

/// The layout version of the store `reader` opens (checking that it can be read at all).
fn read_layout((flags, name): &(OpenFlags, PathBuf)) -> rusqlite::Result<i64> {
    let conn = Connection::open_with_flags(name, *flags)?;
    schema::configure_reader(&conn)?;
    // Reading the schema makes SQLite open the WAL index, which is what fails when it cannot.
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get::<_, i64>(0))?;
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
}
