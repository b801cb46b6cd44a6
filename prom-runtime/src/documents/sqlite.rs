//! The document API's statements on the embedded store: collection `c` is the table `proj_c
//! (key TEXT PRIMARY KEY, doc TEXT)` the changelog projector also uses, and `find` filters with
//! the exact `json_extract` expression a declared index is built on, so it uses the index.
//! Synchronous: they run on the caller's connection inside its open transaction.

use super::invalid;
use crate::project::table;
use rusqlite::types::Value as Sql;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

/// Whether `e` says the table does not exist (a collection nothing wrote yet reads as empty).
fn no_table(e: &rusqlite::Error) -> bool {
    e.to_string().starts_with("no such table")
}

fn parse(collection: &str, key: &str, text: &str) -> crate::Result<Value> {
    serde_json::from_str(text).map_err(|e| {
        invalid(
            collection,
            key,
            format!("the stored document is not JSON ({e}); the file was changed behind Prom's back"),
        )
    })
}

/// The document under `key`.
pub(crate) fn get(conn: &Connection, collection: &str, key: &str) -> Result<Option<Value>, Failed> {
    let sql =
        format!("SELECT doc FROM {} WHERE key = ?1", table::quote_ident(&table::table_name(collection)));
    let text: Option<String> = match conn.prepare_cached(&sql) {
        Ok(mut stmt) => stmt.query_row([key], |r| r.get(0)).optional()?,
        Err(e) if no_table(&e) => None,
        Err(e) => return Err(e.into()),
    };
    text.map(|t| parse(collection, key, &t)).transpose().map_err(Failed::Runtime)
}

/// Creates the table of `collection` (idempotent).
pub(crate) fn create(conn: &Connection, collection: &str) -> rusqlite::Result<()> {
    conn.execute_batch(&table::create_table(collection))
}

/// Upserts `doc` (already carrying `_id`) under `key`; the table must exist.
pub(crate) fn put(conn: &Connection, collection: &str, key: &str, doc: &str) -> rusqlite::Result<()> {
    let sql = format!(
        "INSERT INTO {} (key, doc) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET doc = excluded.doc",
        table::quote_ident(&table::table_name(collection))
    );
    conn.prepare_cached(&sql)?.execute(params![key, doc]).map(|_| ())
}

/// Deletes the document under `key`; whether there was one.
pub(crate) fn delete(conn: &Connection, collection: &str, key: &str) -> rusqlite::Result<bool> {
    let sql = format!("DELETE FROM {} WHERE key = ?1", table::quote_ident(&table::table_name(collection)));
    match conn.prepare_cached(&sql) {
        Ok(mut stmt) => Ok(stmt.execute([key])? > 0),
        Err(e) if no_table(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The documents whose `field` equals the scalar `value`, in key order.
pub(crate) fn find(
    conn: &Connection,
    collection: &str,
    field: &str,
    value: &Value,
) -> Result<Vec<Value>, Failed> {
    let path = table::field_path(field).map_err(|e| Failed::Runtime(invalid(collection, "", e)))?;
    let expr = table::field_expr(&path);
    let quoted_path = path.replace('\'', "''");
    // Booleans are stored as JSON true/false, which json_extract reads as 1/0: the JSON type
    // keeps `find(f, true)` from matching a number 1 (as MongoDB would not).
    let (condition, bound): (String, Option<Sql>) = match value {
        Value::Null => (format!("{expr} IS NULL"), None),
        Value::Bool(b) => (format!("json_type(doc, '{quoted_path}') = '{b}'"), None),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => (format!("{expr} = ?1"), Some(Sql::Integer(i))),
            (None, Some(f)) => (format!("{expr} = ?1"), Some(Sql::Real(f))),
            (None, None) => {
                return Err(Failed::Runtime(invalid(collection, "", format!("cannot compare with {n}"))));
            }
        },
        Value::String(s) => (format!("{expr} = ?1"), Some(Sql::Text(s.clone()))),
        Value::Array(_) | Value::Object(_) => {
            return Err(Failed::Runtime(invalid(collection, "", "find compares with a scalar only")));
        }
    };
    let sql = format!(
        "SELECT key, doc FROM {} WHERE {condition} ORDER BY key",
        table::quote_ident(&table::table_name(collection))
    );
    let rows: Vec<(String, String)> = match conn.prepare_cached(&sql) {
        Ok(mut stmt) => {
            let rows = stmt.query_map(rusqlite::params_from_iter(bound), |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<rusqlite::Result<_>>()?
        }
        Err(e) if no_table(&e) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    rows.iter().map(|(key, doc)| parse(collection, key, doc).map_err(Failed::Runtime)).collect()
}

/// Why a statement failed: the store, or a document the API refuses.
#[derive(Debug)]
pub(crate) enum Failed {
    /// SQLite failed.
    Sql(rusqlite::Error),
    /// A typed runtime error (bad document, bad field).
    Runtime(crate::Error),
}

impl From<rusqlite::Error> for Failed {
    fn from(e: rusqlite::Error) -> Failed {
        Failed::Sql(e)
    }
}
