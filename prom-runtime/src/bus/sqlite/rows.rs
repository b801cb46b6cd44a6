//! Mapping between events and table rows.

use crate::record::{EventRecord, Headers};
use rusqlite::Row;
use uuid::Uuid;

/// The columns [`from_row`] reads, in order.
pub const COLUMNS: &str = "id, topic, key, part, ts, headers, payload, caused_by, sid, off";

fn bad(column: usize, what: impl std::fmt::Display) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Blob, what.to_string().into())
}

/// Reads a UUID stored as 16 bytes.
pub fn uuid_at(row: &Row<'_>, column: usize) -> rusqlite::Result<Uuid> {
    let bytes: Vec<u8> = row.get(column)?;
    Uuid::from_slice(&bytes).map_err(|e| bad(column, e))
}

/// An event from a row selected with [`COLUMNS`].
pub fn from_row(row: &Row<'_>) -> rusqlite::Result<EventRecord> {
    let headers: String = row.get(5)?;
    let payload: String = row.get(6)?;
    let caused_by: Option<Vec<u8>> = row.get(7)?;
    Ok(EventRecord {
        id: uuid_at(row, 0)?,
        topic: row.get(1)?,
        key: row.get(2)?,
        partition: row.get(3)?,
        ts: row.get(4)?,
        headers: serde_json::from_str::<Headers>(&headers).map_err(|e| bad(5, e))?,
        payload: serde_json::from_str(&payload).map_err(|e| bad(6, e))?,
        caused_by: caused_by.map(|b| Uuid::from_slice(&b).map_err(|e| bad(7, e))).transpose()?,
        sid: row.get(8)?,
        offset: row.get(9)?,
    })
}
