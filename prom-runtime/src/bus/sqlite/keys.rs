//! Per-key reads and time-travel snapshots on the embedded store ([`crate::timetravel`]).
//!
//! A key's events are found through the partial index `events_topic_key_off` (topic, key,
//! offset), so a read touches that key's rows only, never the whole topic. Snapshots live in
//! `key_snapshots`, one row per (topic, key, fingerprint, offset).

use super::{SqliteBus, rows};
use crate::error::Result;
use crate::record::EventRecord;
use crate::timetravel::KeySnapshot;
use rusqlite::{Connection, OptionalExtension, params};

/// Whether the store has the snapshot table (a read-only store of an older layout has not).
fn has_snapshots(conn: &Connection) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'key_snapshots'")?
        .exists([])
}

impl SqliteBus {
    /// Up to `limit` events of `key` on `topic` after offset `after` published at or before
    /// `at_ms`, in offset order.
    pub(crate) async fn key_events(
        &self,
        topic: &str,
        key: &str,
        after: i64,
        at_ms: i64,
        limit: usize,
    ) -> Result<Vec<EventRecord>> {
        let (topic, key) = (topic.to_owned(), key.to_owned());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read_with(move |conn| {
            let sql = format!(
                "SELECT {} FROM events \
                 WHERE topic = ?1 AND key = ?2 AND off > ?3 AND ts <= ?4 ORDER BY off LIMIT ?5",
                rows::COLUMNS
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            rows::collect(&mut stmt, params![topic, key, after, at_ms, limit])
        })
        .await
    }

    /// The offset of the first event of `key` after `after` published later than `at_ms`.
    pub(crate) async fn first_key_event_after(
        &self,
        topic: &str,
        key: &str,
        after: i64,
        at_ms: i64,
    ) -> Result<Option<i64>> {
        let (topic, key) = (topic.to_owned(), key.to_owned());
        self.read_with(move |conn| {
            conn.prepare_cached(
                "SELECT off FROM events \
                 WHERE topic = ?1 AND key = ?2 AND off > ?3 AND ts > ?4 ORDER BY off LIMIT 1",
            )?
            .query_row(params![topic, key, after, at_ms], |r| r.get(0))
            .optional()
        })
        .await
    }

    /// The snapshot of `key` with fingerprint `fp` at the highest offset whose time is at or
    /// before `at_ms`: `(offset, time, state text, version text)`.
    pub(crate) async fn key_snapshot(
        &self,
        topic: &str,
        key: &str,
        fp: &str,
        at_ms: i64,
    ) -> Result<Option<(i64, i64, Option<String>, Option<String>)>> {
        let (topic, key, fp) = (topic.to_owned(), key.to_owned(), fp.to_owned());
        self.read_with(move |conn| {
            if !has_snapshots(conn)? {
                return Ok(None);
            }
            conn.prepare_cached(
                "SELECT off, ts, state, version FROM key_snapshots \
                 WHERE topic = ?1 AND key = ?2 AND fp = ?3 AND ts <= ?4 ORDER BY off DESC LIMIT 1",
            )?
            .query_row(params![topic, key, fp, at_ms], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .optional()
        })
        .await
    }

    /// Stores snapshots (one already stored at the same offset is kept); returns how many were new.
    pub(crate) async fn save_key_snapshots(&self, snapshots: Vec<KeySnapshot>) -> Result<u64> {
        self.writer()?
            .submit(false, move |tx| {
                let mut stmt = tx
                    .conn
                    .prepare_cached(
                        "INSERT INTO key_snapshots (topic, key, fp, off, ts, state, version) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
                    )
                    .map_err(|e| tx.err(e))?;
                let mut stored = 0;
                for s in snapshots {
                    let state = s.state.as_ref().map(|d| d.to_string());
                    let version = s.version.as_ref().map(|v| v.to_string());
                    stored += stmt
                        .execute(params![s.topic, s.key, s.fp, s.off, s.ts, state, version])
                        .map_err(|e| tx.err(e))? as u64;
                }
                Ok(stored)
            })
            .await
    }
}
