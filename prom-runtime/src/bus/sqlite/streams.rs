//! Streams on the embedded store: the `streams` table maps (aggregate, id, version) to an
//! event's topic and offset (with its chain hash), written in the same job, so the same
//! transaction, as the events; `snapshots` holds one snapshot per stream.

use super::ops::{self, Row};
use super::rows;
use super::writer::Tx;
use crate::error::Result;
use crate::record::Receipt;
use crate::stream::chain::{self, GENESIS, Prefix};
use crate::stream::{
    Appended, ChainLink, ExpectedVersion, Snapshot, StreamAppend, StreamId, StreamRecord, check_expected,
};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, params};

/// An append prepared off the committer thread: JSON columns serialized and, when the
/// expected version fixes the versions, each event's chain hash computed up to its predecessor.
pub struct Job {
    stream: StreamId,
    expected: ExpectedVersion,
    tamper_evident: bool,
    events: Vec<Row>,
    copies: Vec<Row>,
    /// One per event, for the versions the expectation implies (empty when it implies none).
    prefixes: Vec<Prefix>,
}

/// Checks and prepares `append` for the committer.
pub fn job(append: StreamAppend) -> Result<Job> {
    append.check()?;
    let StreamAppend { stream, expected, events, tamper_evident, copies } = append;
    let prefixes = match planned_first(expected) {
        Some(first) if tamper_evident => {
            (first..).zip(&events).map(|(version, e)| Prefix::new(&stream, version, e.into())).collect()
        }
        _ => Vec::new(),
    };
    Ok(Job {
        stream,
        expected,
        tamper_evident,
        events: ops::rows(events)?,
        copies: ops::rows(copies)?,
        prefixes,
    })
}

/// The first version an append gets if it goes through, when `expected` decides it.
fn planned_first(expected: ExpectedVersion) -> Option<u64> {
    match expected {
        ExpectedVersion::NoStream => Some(1),
        ExpectedVersion::Exact(n) => n.checked_add(1),
        ExpectedVersion::Any | ExpectedVersion::Exists => None,
    }
}

/// The stream's last version and hash (planned once per connection: see
/// `schema::configure_reader`).
const HEAD: &str = "SELECT version, hash FROM streams WHERE aggregate = ?1 AND stream_id = ?2 \
                    ORDER BY version DESC LIMIT 1";

/// Runs inside the committer's transaction: the expected-version check sees every commit
/// before it (the write lock is held), and a conflict fails this job alone.
pub fn append(tx: &mut Tx<'_>, job: Job) -> Result<Appended> {
    let Job { stream, expected, tamper_evident, events, copies, prefixes } = job;
    let last: Option<(u64, Option<Vec<u8>>)> = tx
        .conn
        .prepare_cached(HEAD)
        .and_then(|mut s| {
            s.query_row(params![stream.aggregate, stream.id], |r| Ok((unsigned(r.get(0)?), r.get(1)?)))
                .optional()
        })
        .map_err(|e| tx.err(e))?;
    let actual = last.as_ref().map(|(v, _)| *v);
    check_expected(&stream, expected, actual)?;
    // The chain starts where tamper evidence was turned on: after an unlinked event, zeros.
    let mut prev = last.and_then(|(_, h)| h).and_then(|h| <[u8; 32]>::try_from(h).ok()).unwrap_or(GENESIS);
    let first_version = actual.unwrap_or(0) + 1;
    let mut links = Vec::with_capacity(events.len());
    let mut prefixes = prefixes.into_iter();
    for (version, row) in (first_version..).zip(&events) {
        let link = tamper_evident.then(|| {
            // A prefix built for another version (none when the expectation fixed none) is
            // useless: the version is hashed before the content.
            let hash = match prefixes.next().filter(|p| p.version() == version) {
                Some(prefix) => prefix.finish(&prev),
                None => chain::hash(&stream, version, (&row.event).into(), &prev),
            };
            ChainLink { prev, hash }
        });
        prev = link.map_or(GENESIS, |l| l.hash);
        links.push(link);
    }
    let topics: Vec<String> = events.iter().map(|row| row.event.topic.clone()).collect();
    // No event of an append carries a dedup key (`check`), so publishing is inserting, with
    // the statement taken from the cache once per job.
    let receipts = ops::publish(tx, events)?;
    insert_versions(
        tx,
        &stream,
        first_version,
        topics.iter().map(String::as_str).zip(&receipts).zip(&links),
    )?;
    ops::publish(tx, copies)?;
    let last_version = first_version + receipts.len() as u64 - 1;
    Ok(Appended { first_version, last_version, receipts })
}

/// Rows per multi-row insert into `streams`: an append's rows go in statements of these sizes
/// (largest first), so a few cached statements serve every append length.
const VERSION_ROWS: [usize; 3] = [32, 8, 1];

/// Writes the `streams` rows of an append (versions from `first`, in order) with multi-row
/// inserts: one statement per [`VERSION_ROWS`] chunk, not one per event.
fn insert_versions<'a>(
    tx: &Tx<'_>,
    stream: &StreamId,
    first: u64,
    rows: impl ExactSizeIterator<Item = ((&'a str, &'a Receipt), &'a Option<ChainLink>)>,
) -> Result<()> {
    const COLUMNS: usize = 6;
    let mut left = rows.len();
    let mut rows = rows;
    let mut version = first;
    for size in VERSION_ROWS {
        while left >= size {
            let mut stmt = tx.conn.prepare_cached(insert_sql(size)).map_err(|e| tx.err(e))?;
            for (i, ((topic, receipt), link)) in rows.by_ref().take(size).enumerate() {
                let at = i * COLUMNS;
                let bound = (|| {
                    stmt.raw_bind_parameter(at + 1, &stream.aggregate)?;
                    stmt.raw_bind_parameter(at + 2, &stream.id)?;
                    stmt.raw_bind_parameter(at + 3, signed(version))?;
                    stmt.raw_bind_parameter(at + 4, topic)?;
                    stmt.raw_bind_parameter(at + 5, receipt.offset)?;
                    stmt.raw_bind_parameter(at + 6, link.as_ref().map(|l| &l.hash[..]))
                })();
                bound.map_err(|e| tx.err(e))?;
                version += 1;
            }
            stmt.raw_execute().map_err(|e| tx.err(e))?;
            left -= size;
        }
    }
    Ok(())
}

/// The insert of `size` `streams` rows (built once per size).
fn insert_sql(size: usize) -> &'static str {
    static SQL: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let all = SQL.get_or_init(|| {
        (0..=VERSION_ROWS[0])
            .map(|n| {
                let values = vec!["(?, ?, ?, ?, ?, ?)"; n].join(", ");
                format!(
                    "INSERT INTO streams (aggregate, stream_id, version, topic, off, hash) VALUES {values}"
                )
            })
            .collect()
    });
    all.get(size).map_or("", String::as_str)
}

/// Up to `limit` events of `stream` after `after`, in version order. A version whose event row
/// is gone is left out (verification reports the gap). A link's predecessor hash is the stored
/// hash of the version before (zeros where there is none or it has none: a chain's start).
pub fn read(
    conn: &Connection,
    stream: &StreamId,
    after: u64,
    limit: i64,
) -> rusqlite::Result<Vec<StreamRecord>> {
    let columns: Vec<String> = rows::COLUMNS.split(", ").map(|c| format!("e.{c}")).collect();
    let sql = format!(
        "SELECT {}, s.version, (SELECT p.hash FROM streams p WHERE p.aggregate = s.aggregate \
         AND p.stream_id = s.stream_id AND p.version = s.version - 1), s.hash \
         FROM streams s JOIN events e ON e.topic = s.topic AND e.off = s.off \
         WHERE s.aggregate = ?1 AND s.stream_id = ?2 AND s.version > ?3 ORDER BY s.version LIMIT ?4",
        columns.join(", ")
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let found = stmt.query_map(params![stream.aggregate, stream.id, signed(after), limit], |r| {
        Ok(StreamRecord { record: rows::from_row(r)?, version: unsigned(r.get(10)?), link: link(r)? })
    })?;
    found.collect()
}

/// The stored link (none without a hash), after the predecessor's hash; a hash of the wrong
/// size reads as all ones, which no chain produces, so verification reports it as broken.
fn link(r: &rusqlite::Row<'_>) -> rusqlite::Result<Option<ChainLink>> {
    let bytes = |i: usize| -> rusqlite::Result<Option<[u8; 32]>> {
        Ok(match r.get_ref(i)? {
            ValueRef::Null => None,
            ValueRef::Blob(b) => Some(<[u8; 32]>::try_from(b).unwrap_or([0xff; 32])),
            _ => Some([0xff; 32]),
        })
    };
    let prev = bytes(11)?.unwrap_or(GENESIS);
    Ok(bytes(12)?.map(|hash| ChainLink { prev, hash }))
}

/// The stream's version.
pub fn version(conn: &Connection, stream: &StreamId) -> rusqlite::Result<Option<u64>> {
    conn.prepare_cached("SELECT MAX(version) FROM streams WHERE aggregate = ?1 AND stream_id = ?2")?
        .query_row(params![stream.aggregate, stream.id], |r| Ok(r.get::<_, Option<i64>>(0)?.map(unsigned)))
}

/// Stream ids of `aggregate` after `after`, sorted (byte order, as Rust sorts strings).
pub fn ids(
    conn: &Connection,
    aggregate: &str,
    after: Option<&str>,
    limit: i64,
) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT DISTINCT stream_id FROM streams WHERE aggregate = ?1 AND (?2 IS NULL OR stream_id > ?2) \
         ORDER BY stream_id LIMIT ?3",
    )?;
    let found = stmt.query_map(params![aggregate, after, limit], |r| r.get(0))?;
    found.collect()
}

/// Stores `snapshot` unless a higher version is stored.
pub fn save_snapshot(tx: &mut Tx<'_>, stream: &StreamId, snapshot: &Snapshot, state: &str) -> Result<()> {
    tx.conn
        .prepare_cached(
            "INSERT INTO snapshots (aggregate, stream_id, version, fingerprint, state, ts) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (aggregate, stream_id) DO UPDATE SET \
             version = excluded.version, fingerprint = excluded.fingerprint, state = excluded.state, \
             ts = excluded.ts WHERE excluded.version >= snapshots.version",
        )
        .and_then(|mut s| {
            s.execute(params![
                stream.aggregate,
                stream.id,
                signed(snapshot.version),
                snapshot.fingerprint,
                state,
                snapshot.ts
            ])
        })
        .map_err(|e| tx.err(e))?;
    Ok(())
}

/// The stored snapshot; one whose state is not JSON (changed behind the store's back) is
/// skipped with a warning, so the stream is folded from its start instead.
pub fn load_snapshot(conn: &Connection, stream: &StreamId) -> rusqlite::Result<Option<Snapshot>> {
    let row: Option<(i64, String, String, i64)> = conn
        .prepare_cached(
            "SELECT version, fingerprint, state, ts FROM snapshots WHERE aggregate = ?1 AND stream_id = ?2",
        )?
        .query_row(params![stream.aggregate, stream.id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()?;
    Ok(row.and_then(|(version, fingerprint, state, ts)| match serde_json::from_str(&state) {
        Ok(state) => Some(Snapshot { version: unsigned(version), fingerprint, state, ts }),
        Err(e) => {
            tracing::warn!(stream = %stream, version, "the stored snapshot is not JSON ({e}); it is ignored");
            None
        }
    }))
}

/// A version as SQLite stores it (versions stay far below `i64::MAX`).
fn signed(version: u64) -> i64 {
    i64::try_from(version).unwrap_or(i64::MAX)
}

/// A stored version; a negative one (written behind the store's back) reads as 0, which no
/// append writes, so verification reports it.
fn unsigned(version: i64) -> u64 {
    u64::try_from(version).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use crate::bus::EventBus;
    use crate::bus::sqlite::SqliteBus;
    use crate::record::NewEvent;
    use crate::stream::{ExpectedVersion, StreamAppend, StreamId, chain, verify};
    use rusqlite::OptionalExtension;
    use serde_json::json;

    fn chained(stream: &StreamId, expected: ExpectedVersion, cents: &[i64]) -> StreamAppend {
        let events = cents
            .iter()
            .map(|c| {
                NewEvent::new(
                    "money.deposited",
                    json!({ "id": stream.id, "cents": c, "a": [1.0, {"z": 1, "b": 2}] }),
                )
            })
            .collect();
        StreamAppend { tamper_evident: true, ..StreamAppend::new(stream.clone(), expected, events) }
    }

    /// The head lookup runs once per append on the committer: rebinding it must not re-prepare.
    #[test]
    fn the_head_lookup_is_prepared_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = rusqlite::Connection::open(dir.path().join("h.db")).expect("open");
        crate::bus::sqlite::schema::configure(&conn).expect("configure");
        crate::bus::sqlite::schema::migrate(&mut conn).expect("migrate");
        conn.execute(
            "INSERT INTO streams (aggregate, stream_id, version, topic, off) VALUES ('a', 's1', 1, 't', 1)",
            [],
        )
        .expect("insert");
        let mut head = conn.prepare(super::HEAD).expect("prepare");
        for id in ["s1", "s2", "s1", "s3"] {
            let found: Option<i64> = head.query_row(["a", id], |r| r.get(0)).optional().expect("query");
            assert_eq!(found, (id == "s1").then_some(1), "{id}");
        }
        assert_eq!(head.get_status(rusqlite::StatementStatus::RePrepare), 0);
    }

    /// Hashes prepared before queueing (expectations that fix the versions) and hashes computed
    /// in the transaction (`any`, `exists`) chain alike, as `chain::hash` and `verify` see them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_expectation_chains_what_verify_recomputes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bus = SqliteBus::open(dir.path()).expect("open");
        let s = StreamId::new("account", "7");
        let appends = [
            (ExpectedVersion::NoStream, &[1, 2][..]),
            (ExpectedVersion::Exact(2), &[3][..]),
            (ExpectedVersion::Any, &[4, 5][..]),
            (ExpectedVersion::Exists, &[6][..]),
            (ExpectedVersion::Exact(6), &[7, 8, 9][..]),
        ];
        for (expected, cents) in appends {
            bus.append(chained(&s, expected, cents)).await.expect("append");
        }
        let stale = bus.append(chained(&s, ExpectedVersion::Exact(3), &[10])).await;
        assert!(stale.is_err(), "a stale expectation stores nothing");
        let read = bus.read_stream(&s, 0, 100).await.expect("read");
        assert_eq!(read.iter().map(|r| r.version).collect::<Vec<_>>(), (1..=9).collect::<Vec<_>>());
        let mut prev = chain::GENESIS;
        for r in &read {
            let link = r.link.expect("linked");
            assert_eq!(link.prev, prev, "version {}", r.version);
            assert_eq!(
                link.hash,
                chain::hash(&s, r.version, (&r.record).into(), &prev),
                "version {}",
                r.version
            );
            prev = link.hash;
        }
        let report = verify(&bus, "account", None).await.expect("verify");
        assert!(report.ok() && report.linked == 9, "{report:?}");
    }
}
