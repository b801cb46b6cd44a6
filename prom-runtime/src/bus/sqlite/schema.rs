//! The on-disk layout and connection settings.

use rusqlite::Connection;
use rusqlite::config::DbConfig;
use std::time::Duration;

/// The layout version stored in `PRAGMA user_version`: 1 had no stream tables, 2 adds
/// `streams` and `snapshots`, 3 the per-key index of events and `key_snapshots` (time travel),
/// 4 the index of each topic's stored schema versions (`prom status`), 5 drops
/// `streams.prev_hash` (a link's predecessor hash is the previous version's `hash`).
/// Every statement is `IF NOT EXISTS`, so migrating from an older layout is running [`DDL`] again
/// (and, from layout 2 to 4, dropping the column: [`drop_prev_hash`]).
pub const VERSION: i64 = 5;

/// The oldest layout this version can migrate (and read read-only).
pub const OLDEST: i64 = 1;

/// Tables and indexes. Offsets are per topic; `topics.head` is the last assigned one, read and
/// bumped inside the writer's transaction so several processes never hand out the same offset.
pub const DDL: &str = "
CREATE TABLE IF NOT EXISTS topics (
    name TEXT PRIMARY KEY,
    head INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    off INTEGER NOT NULL,
    id BLOB NOT NULL,
    key TEXT,
    part INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    headers TEXT NOT NULL,
    payload TEXT NOT NULL,
    caused_by BLOB,
    sid TEXT,
    dedup TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS events_topic_off ON events (topic, off);
CREATE INDEX IF NOT EXISTS events_topic_part_off ON events (topic, part, off);
CREATE UNIQUE INDEX IF NOT EXISTS events_id ON events (id);
CREATE UNIQUE INDEX IF NOT EXISTS events_dedup ON events (topic, dedup) WHERE dedup IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_topic_key_off ON events (topic, key, off) WHERE key IS NOT NULL;
-- The stored schema version of each event (text, as in the header; NULL for headers that are
-- not JSON), so `prom status` counts versions from the index alone. The expression must stay
-- identical to STORED_VERSION below, or the planner cannot use it.
CREATE INDEX IF NOT EXISTS events_topic_version ON events
    (topic, iif(json_valid(headers), json_extract(headers, '$.\"x-schema-version\"'), NULL));
CREATE TABLE IF NOT EXISTS cursors (
    topic TEXT NOT NULL,
    grp TEXT NOT NULL,
    part INTEGER NOT NULL,
    off INTEGER NOT NULL,
    PRIMARY KEY (topic, grp, part)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS members (
    topic TEXT NOT NULL,
    grp TEXT NOT NULL,
    member TEXT NOT NULL,
    expires INTEGER NOT NULL,
    PRIMARY KEY (topic, grp, member)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leases (
    topic TEXT NOT NULL,
    grp TEXT NOT NULL,
    part INTEGER NOT NULL,
    member TEXT NOT NULL,
    expires INTEGER NOT NULL,
    PRIMARY KEY (topic, grp, part)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS streams (
    aggregate TEXT NOT NULL,
    stream_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    topic TEXT NOT NULL,
    off INTEGER NOT NULL,
    hash BLOB,
    PRIMARY KEY (aggregate, stream_id, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS snapshots (
    aggregate TEXT NOT NULL,
    stream_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    state TEXT NOT NULL,
    ts INTEGER NOT NULL,
    PRIMARY KEY (aggregate, stream_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS key_snapshots (
    topic TEXT NOT NULL,
    key TEXT NOT NULL,
    fp TEXT NOT NULL,
    off INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    state TEXT,
    version TEXT,
    PRIMARY KEY (topic, key, fp, off)
) WITHOUT ROWID;
";

/// The indexed expression of `events_topic_version`: an event's `x-schema-version` header.
pub const STORED_VERSION: &str =
    "iif(json_valid(headers), json_extract(headers, '$.\"x-schema-version\"'), NULL)";

/// The index that makes counting stored versions an index-only scan (layout 4 on).
pub const VERSION_INDEX: &str = "events_topic_version";

/// How long a connection waits for another process's write lock before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Applies the per-connection settings: WAL (readers never block the writer, and several
/// processes can share the file) and `synchronous=FULL` (a commit is on disk when it returns, so
/// a kill -9 or power loss never loses an acknowledged publish).
pub fn configure(conn: &Connection) -> rusqlite::Result<()> {
    configure_reader(conn)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    // Savepoints (one per job when several share a commit) journal the pages they touch; in
    // memory that costs no temp-file writes. A transaction is bounded by MAX_JOBS_PER_COMMIT.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // The committer reuses a few dozen distinct statements; keep all of them prepared.
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// Sets up any connection to the store, reading or writing.
pub fn configure_reader(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // Without the query planner stability guarantee SQLite re-plans a cached statement whenever
    // a newly bound value might change its plan: about 50k instructions per read of a page or
    // append's head lookup, on statements whose plan never changes (an index lookup).
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(())
}

/// Creates the layout on a fresh store; refuses a store written by a newer layout.
pub fn migrate(conn: &mut Connection) -> Result<(), String> {
    let current: i64 =
        conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(|e| e.to_string())?;
    if current == VERSION {
        return Ok(());
    }
    if current > VERSION {
        return Err(format!(
            "the store has layout version {current}, but this prom understands up to {VERSION}; \
             upgrade prom or point --store at another directory"
        ));
    }
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(|e| e.to_string())?;
    tx.execute_batch(DDL).map_err(|e| e.to_string())?;
    drop_prev_hash(&tx).map_err(|e| e.to_string())?;
    tx.pragma_update(None, "user_version", VERSION).map_err(|e| e.to_string())?;
    tx.commit().map_err(|e| e.to_string())
}

/// Drops `streams.prev_hash` where a layout before 5 created it. The column only repeated the
/// previous version's `hash` (or zeros where a chain starts), which reads now derive, so stored
/// chains verify as before; the drop rewrites the table once.
fn drop_prev_hash(conn: &Connection) -> rusqlite::Result<()> {
    let has: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info('streams') WHERE name = 'prev_hash')",
        [],
        |r| r.get(0),
    )?;
    if has {
        tracing::info!(
            "store layout 5: dropping streams.prev_hash (derived from the previous version's hash)"
        );
        conn.execute_batch("ALTER TABLE streams DROP COLUMN prev_hash")?;
    }
    Ok(())
}
