//! Mapping between events and table rows.
//!
//! Rows are written by the store itself, but the file is an ordinary SQLite database that other
//! tools can change. A row whose payload or headers are not JSON, or whose id is not a UUID, is
//! not an error that stops the whole read (that would stop every reader of the topic at that
//! row, naming no event): it becomes a record marked with [`CORRUPT`], carrying the stored text
//! as a JSON string, which readers report by topic, partition, offset and id, and consumers
//! dead-letter.

use crate::record::{CORRUPT, CORRUPT_HEADERS, EventRecord, Headers, HeadersText};
use rusqlite::types::ValueRef;
use rusqlite::{Row, Statement};
use serde_json::Value;
use uuid::Uuid;

/// The columns [`from_row`] reads, in order.
pub const COLUMNS: &str = "id, topic, key, part, ts, headers, payload, caused_by, sid, off";

fn bad(column: usize, what: impl std::fmt::Display) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Blob, what.to_string().into())
}

/// Reads a UUID stored as 16 bytes (borrowed from the row, not copied first).
pub fn uuid_at(row: &Row<'_>, column: usize) -> rusqlite::Result<Uuid> {
    match row.get_ref(column)? {
        ValueRef::Blob(bytes) => Uuid::from_slice(bytes).map_err(|e| bad(column, e)),
        // Not a blob: rusqlite's own conversion says why.
        _ => row
            .get::<_, Vec<u8>>(column)
            .and_then(|bytes| Uuid::from_slice(&bytes).map_err(|e| bad(column, e))),
    }
}

/// What is wrong with one row, collected while reading it.
#[derive(Default)]
struct Damage {
    reasons: Vec<String>,
    raw_headers: Option<String>,
}

/// An event from a row selected with [`COLUMNS`]; a row with unreadable JSON or ids becomes a
/// corrupt record (see the module docs). Only unreadable positional columns (topic, partition,
/// offset, time) fail the read.
pub fn from_row(row: &Row<'_>) -> rusqlite::Result<EventRecord> {
    record(row, &mut HeadersText::default())
}

/// The events of a statement's rows selected with [`COLUMNS`] (see [`from_row`]); a headers
/// text repeated by consecutive rows is parsed once and shared.
pub fn collect<P: rusqlite::Params>(
    stmt: &mut Statement<'_>,
    params: P,
) -> rusqlite::Result<Vec<EventRecord>> {
    let mut texts = HeadersText::default();
    stmt.query_map(params, |row| record(row, &mut texts))?.collect()
}

/// See [`from_row`]; `texts` parses the headers.
fn record(row: &Row<'_>, texts: &mut HeadersText) -> rusqlite::Result<EventRecord> {
    let mut damage = Damage::default();
    let id = match uuid_at(row, 0) {
        Ok(id) => id,
        Err(e) => {
            damage.reasons.push(format!("its id is not a 16-byte UUID ({})", conversion(&e)));
            Uuid::nil()
        }
    };
    // The JSON columns are parsed straight from SQLite's buffer: one pass, no copy of the text.
    let mut headers = match json_text(row, 5) {
        Ok(text) => match texts.parse(text) {
            Ok(headers) => headers,
            Err(e) => {
                damage.reasons.push(format!("its headers are not a JSON object of strings ({e})"));
                damage.raw_headers = Some(text.to_owned());
                Headers::new()
            }
        },
        Err(why) => {
            damage.reasons.push(format!("its headers are unreadable: {why}"));
            Headers::new()
        }
    };
    let payload = match json_text(row, 6) {
        Ok(text) => match serde_json::from_str(text) {
            Ok(payload) => payload,
            Err(e) => {
                damage.reasons.push(format!("its payload is not JSON ({e})"));
                Value::String(text.to_owned())
            }
        },
        Err(why) => {
            damage.reasons.push(format!("its payload is unreadable: {why}"));
            raw_text(row, 6).map_or(Value::Null, Value::String)
        }
    };
    let caused_by = match row.get_ref(7)? {
        ValueRef::Null => None,
        _ => match uuid_at(row, 7) {
            Ok(id) => Some(id),
            Err(e) => {
                damage.reasons.push(format!("its caused_by is not a 16-byte UUID ({})", conversion(&e)));
                None
            }
        },
    };
    let key = optional_text(row, 2, "key", &mut damage);
    let sid = optional_text(row, 8, "sid", &mut damage);
    if !damage.reasons.is_empty() {
        headers.insert(CORRUPT.to_string(), damage.reasons.join("; "));
        if let Some(raw) = damage.raw_headers {
            headers.insert(CORRUPT_HEADERS.to_string(), raw);
        }
    }
    Ok(EventRecord {
        id,
        topic: row.get(1)?,
        key,
        partition: row.get(3)?,
        ts: row.get(4)?,
        headers,
        payload: payload.into(),
        caused_by,
        sid,
        offset: row.get(9)?,
    })
}

/// A JSON column's text, borrowed from the row, or why it is not text.
fn json_text<'r>(row: &'r Row<'_>, column: usize) -> Result<&'r str, String> {
    match row.get_ref(column) {
        Ok(ValueRef::Text(bytes)) => std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8 text ({e})")),
        Ok(ValueRef::Null) => Err("NULL".into()),
        Ok(ValueRef::Blob(_)) => Err("a BLOB, not text".into()),
        Ok(ValueRef::Integer(_) | ValueRef::Real(_)) => Err("a number, not JSON text".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// A column's content as text, whatever its storage class (lossily for bytes that are not
/// UTF-8), so a corrupt record keeps what was stored.
fn raw_text(row: &Row<'_>, column: usize) -> Option<String> {
    match row.get_ref(column).ok()? {
        ValueRef::Null => None,
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        ValueRef::Integer(n) => Some(n.to_string()),
        ValueRef::Real(x) => Some(x.to_string()),
    }
}

/// An optional text column (key, sid); a value of another type marks the row corrupt.
fn optional_text(row: &Row<'_>, column: usize, name: &str, damage: &mut Damage) -> Option<String> {
    match row.get::<_, Option<String>>(column) {
        Ok(value) => value,
        Err(e) => {
            damage.reasons.push(format!("its {name} is not text ({})", conversion(&e)));
            raw_text(row, column)
        }
    }
}

/// The cause of a conversion failure, without rusqlite's column-index preamble.
fn conversion(error: &rusqlite::Error) -> String {
    match error {
        rusqlite::Error::FromSqlConversionFailure(_, _, cause) => cause.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::SCHEMA_VERSION;

    #[test]
    fn rows_repeating_a_headers_text_share_it_and_a_corrupt_one_between_them_stays_alone() {
        let conn = rusqlite::Connection::open_in_memory().expect("open");
        conn.execute_batch(
            "CREATE TABLE events (id BLOB, topic TEXT, key TEXT, part INTEGER, ts INTEGER,
                                 headers TEXT, payload TEXT, caused_by BLOB, sid TEXT, off INTEGER)",
        )
        .expect("create");
        let texts = [
            r#"{"x-schema-version":"1"}"#,
            r#"{"x-schema-version":"1"}"#,
            "not json",
            r#"{"x-schema-version":"1"}"#,
            r#"{"x-schema-version":"2"}"#,
        ];
        for (off, headers) in (1..).zip(texts) {
            conn.execute(
                "INSERT INTO events VALUES (?1, 't', NULL, 0, 0, ?2, '{}', NULL, NULL, ?3)",
                rusqlite::params![Uuid::now_v7().as_bytes().to_vec(), headers, off],
            )
            .expect("insert");
        }
        let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM events ORDER BY off")).expect("prepare");
        let records = collect(&mut stmt, []).expect("read");
        let versions: Vec<Option<u32>> = records.iter().map(EventRecord::schema_version).collect();
        assert_eq!(versions, [Some(1), Some(1), None, Some(1), Some(2)]);
        let corrupt: Vec<bool> = records.iter().map(|r| r.corruption().is_some()).collect();
        assert_eq!(corrupt, [false, false, true, false, false]);
        assert_eq!(records[2].headers.get(CORRUPT_HEADERS).map(String::as_str), Some("not json"));
        assert_eq!(
            records[3].headers,
            Headers::from([(SCHEMA_VERSION, "1")]),
            "the corrupt row marked only itself"
        );
    }
}
