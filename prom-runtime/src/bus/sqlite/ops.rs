//! The writes, each run by the committer as one job (in a savepoint when jobs share a commit).

use super::writer::Tx;
use crate::bus::GroupId;
use crate::error::{Error, Result};
use crate::record::{NewEvent, Receipt};
use rusqlite::{OptionalExtension, params};
use std::collections::BTreeMap;

/// An event with its JSON columns serialized by the publisher's task, so the single committer
/// thread spends its time on SQLite only.
pub struct Row {
    pub(super) event: NewEvent,
    headers: String,
    payload: String,
}

/// Serializes the JSON columns of `events`.
pub fn rows(events: Vec<NewEvent>) -> Result<Vec<Row>> {
    events
        .into_iter()
        .map(|event| {
            let headers = serde_json::to_string(&event.headers).map_err(|e| unserializable(&event, e))?;
            let payload = serde_json::to_string(&event.payload).map_err(|e| unserializable(&event, e))?;
            Ok(Row { event, headers, payload })
        })
        .collect()
}

/// The statement that stores one event row.
const INSERT: &str = "INSERT INTO events (topic, off, id, key, part, ts, headers, payload, caused_by, sid, dedup) \
                      VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";

/// The statement that finds the event already stored under a dedup key.
const FIND_DEDUP: &str = "SELECT id, off, part FROM events WHERE topic = ?1 AND dedup = ?2";

/// Appends events, skipping those whose dedup key is already stored.
pub fn publish(tx: &mut Tx<'_>, rows: Vec<Row>) -> Result<Vec<Receipt>> {
    // `conn` is a copy of the shared reference, so the statements below do not borrow `tx`
    // (whose offsets `next_offset` updates). Each is taken from the cache once per job, not
    // once per event: a cache lookup hashes the whole SQL text.
    let conn = tx.conn;
    let mut insert = conn.prepare_cached(INSERT).map_err(|e| tx.err(e))?;
    let mut find = None;
    let mut receipts = Vec::with_capacity(rows.len());
    for row in rows {
        if let Some(dedup) = &row.event.dedup {
            let find = match &mut find {
                Some(find) => find,
                None => find.insert(conn.prepare_cached(FIND_DEDUP).map_err(|e| tx.err(e))?),
            };
            let existing = find
                .query_row(params![row.event.topic, dedup], |r| {
                    Ok(Receipt {
                        id: super::rows::uuid_at(r, 0)?,
                        offset: r.get(1)?,
                        partition: r.get(2)?,
                        duplicate: true,
                    })
                })
                .optional()
                .map_err(|e| tx.err(e))?;
            if let Some(receipt) = existing {
                receipts.push(receipt);
                continue;
            }
        }
        receipts.push(insert_with(tx, &mut insert, row)?);
    }
    Ok(receipts)
}

/// Stores one event at its topic's next offset (no dedup check).
pub fn insert(tx: &mut Tx<'_>, row: Row) -> Result<Receipt> {
    let conn = tx.conn;
    let mut insert = conn.prepare_cached(INSERT).map_err(|e| tx.err(e))?;
    insert_with(tx, &mut insert, row)
}

/// [`insert`] with the statement already taken from the cache.
fn insert_with(tx: &mut Tx<'_>, insert: &mut rusqlite::CachedStatement<'_>, row: Row) -> Result<Receipt> {
    let Row { event, headers, payload } = row;
    let offset = tx.next_offset(&event.topic)?;
    insert
        .execute(params![
            event.topic,
            offset,
            event.id.as_bytes().as_slice(),
            event.key,
            event.partition,
            event.ts,
            headers,
            payload,
            event.caused_by.as_ref().map(|id| id.as_bytes().as_slice()),
            event.sid,
            event.dedup,
        ])
        .map_err(|e| tx.err(e))?;
    Ok(Receipt { id: event.id, offset, partition: event.partition, duplicate: false })
}

/// Sets each partition's cursor to its start unless it exists; returns the cursors in effect.
pub fn init_cursors(tx: &mut Tx<'_>, group: &GroupId, starts: &[(u32, i64)]) -> Result<BTreeMap<u32, i64>> {
    let conn = tx.conn;
    let run = || -> rusqlite::Result<BTreeMap<u32, i64>> {
        let mut out = BTreeMap::new();
        for &(partition, offset) in starts {
            conn.execute(
                "INSERT INTO cursors (topic, grp, part, off) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                params![group.topic, group.group, partition, offset],
            )?;
            let cursor = conn.query_row(
                "SELECT off FROM cursors WHERE topic = ?1 AND grp = ?2 AND part = ?3",
                params![group.topic, group.group, partition],
                |r| r.get(0),
            )?;
            out.insert(partition, cursor);
        }
        Ok(out)
    };
    run().map_err(|e| tx.err(e))
}

/// Commits cursors, fenced by the member's leases when `member` is given.
pub fn commit(tx: &mut Tx<'_>, group: &GroupId, member: Option<&str>, cursors: &[(u32, i64)]) -> Result<()> {
    let conn = tx.conn;
    for &(partition, offset) in cursors {
        if let Some(member) = member {
            // Cached: a projector fences every batch's transaction with this check.
            let holder: Option<String> = conn
                .prepare_cached("SELECT member FROM leases WHERE topic = ?1 AND grp = ?2 AND part = ?3")
                .and_then(|mut s| {
                    s.query_row(params![group.topic, group.group, partition], |r| r.get(0)).optional()
                })
                .map_err(|e| tx.err(e))?;
            if holder.as_deref() != Some(member) {
                return Err(Error::LeaseLost {
                    topic: group.topic.clone(),
                    group: group.group.clone(),
                    partition,
                });
            }
        }
        let sql = if member.is_some() {
            "INSERT INTO cursors (topic, grp, part, off) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT DO UPDATE SET off = max(off, excluded.off)"
        } else {
            "INSERT INTO cursors (topic, grp, part, off) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT DO UPDATE SET off = excluded.off"
        };
        conn.prepare_cached(sql)
            .and_then(|mut s| s.execute(params![group.topic, group.group, partition, offset]))
            .map_err(|e| tx.err(e))?;
    }
    Ok(())
}

/// Refreshes a member, sweeps expired members and their leases, returns the live members.
pub fn heartbeat(
    tx: &mut Tx<'_>,
    group: &GroupId,
    member: &str,
    now: i64,
    expires: i64,
) -> Result<Vec<String>> {
    let conn = tx.conn;
    let run = || -> rusqlite::Result<Vec<String>> {
        conn.execute(
            "INSERT INTO members (topic, grp, member, expires) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT DO UPDATE SET expires = excluded.expires",
            params![group.topic, group.group, member, expires],
        )?;
        conn.execute(
            "DELETE FROM members WHERE topic = ?1 AND grp = ?2 AND expires <= ?3",
            params![group.topic, group.group, now],
        )?;
        conn.execute(
            "DELETE FROM leases WHERE topic = ?1 AND grp = ?2 AND member NOT IN \
             (SELECT member FROM members WHERE topic = ?1 AND grp = ?2)",
            params![group.topic, group.group],
        )?;
        let mut stmt =
            conn.prepare_cached("SELECT member FROM members WHERE topic = ?1 AND grp = ?2 ORDER BY member")?;
        let rows = stmt.query_map(params![group.topic, group.group], |r| r.get(0))?;
        rows.collect()
    };
    run().map_err(|e| tx.err(e))
}

/// Renews, releases and acquires leases; returns the partitions held.
pub fn claim(
    tx: &mut Tx<'_>,
    group: &GroupId,
    member: &str,
    want: &[u32],
    release: &[u32],
    now: i64,
    expires: i64,
) -> Result<Vec<u32>> {
    let conn = tx.conn;
    let run = || -> rusqlite::Result<Vec<u32>> {
        for p in release {
            conn.execute(
                "DELETE FROM leases WHERE topic = ?1 AND grp = ?2 AND part = ?3 AND member = ?4",
                params![group.topic, group.group, p, member],
            )?;
        }
        conn.execute(
            "UPDATE leases SET expires = ?4 WHERE topic = ?1 AND grp = ?2 AND member = ?3",
            params![group.topic, group.group, member, expires],
        )?;
        for p in want {
            conn.execute(
                "INSERT INTO leases (topic, grp, part, member, expires) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT DO UPDATE SET member = excluded.member, expires = excluded.expires \
                 WHERE leases.expires <= ?6 OR leases.member = excluded.member",
                params![group.topic, group.group, p, member, expires, now],
            )?;
        }
        let mut stmt = conn.prepare_cached(
            "SELECT part FROM leases WHERE topic = ?1 AND grp = ?2 AND member = ?3 ORDER BY part",
        )?;
        let rows = stmt.query_map(params![group.topic, group.group, member], |r| r.get(0))?;
        rows.collect()
    };
    run().map_err(|e| tx.err(e))
}

/// Removes a member and its leases.
pub fn leave(tx: &mut Tx<'_>, group: &GroupId, member: &str) -> Result<()> {
    let conn = tx.conn;
    conn.execute(
        "DELETE FROM members WHERE topic = ?1 AND grp = ?2 AND member = ?3",
        params![group.topic, group.group, member],
    )
    .and_then(|_| {
        conn.execute(
            "DELETE FROM leases WHERE topic = ?1 AND grp = ?2 AND member = ?3",
            params![group.topic, group.group, member],
        )
    })
    .map(|_| ())
    .map_err(|e| tx.err(e))
}

fn unserializable(event: &NewEvent, e: serde_json::Error) -> Error {
    Error::serialize(format!("event {} for `{}`", event.id, event.topic), e)
}
