//! The SQL of one projection table in the embedded store (pure: statements and names, plus the
//! writes on a connection the caller holds inside its transaction).
//!
//! A collection `c` is the table `proj_c (key TEXT PRIMARY KEY, doc TEXT NOT NULL)`: the key as
//! text (the document's `_id`) and the document as JSON text, `_id` included. Fields are read
//! with `json_extract(doc, '$."a"."b"')`; a declared index is an expression index on exactly
//! that expression, so the snapshot API's filters (written the same way) use it.
//!
//! The version guard follows the MongoDB projector's order: a stored version that is missing or
//! `null` is older than any number, numbers compare numerically, and a stored version of another
//! type (text, a boolean) is never overwritten by a guarded write.

use super::plan::{Change, Op};
use crate::system::Index;
use rusqlite::{CachedStatement, Connection, ErrorCode, params};
use serde_json::Number;

/// The table holding `collection`.
pub fn table_name(collection: &str) -> String {
    format!("proj_{collection}")
}

/// `name` quoted as an SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The `json_extract` path of a field given as JSON pointer segments.
fn json_path<'a>(segments: impl IntoIterator<Item = &'a str>) -> Result<String, String> {
    let mut path = String::from("$");
    for segment in segments {
        if segment.is_empty() || segment.contains('"') {
            return Err(format!(
                "the field segment `{segment}` cannot be addressed in the embedded store (empty or \
                 containing `\"`); rename the field"
            ));
        }
        path.push_str(&format!(".\"{segment}\""));
    }
    Ok(path)
}

/// The `json_extract` path of a JSON pointer (`/meta/seq` → `$."meta"."seq"`).
pub fn pointer_path(pointer: &str) -> Result<String, String> {
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(format!("`{pointer}` is not a JSON pointer (it must start with `/`)"));
    };
    let segments: Vec<String> = rest.split('/').map(|s| s.replace("~1", "/").replace("~0", "~")).collect();
    json_path(segments.iter().map(String::as_str))
}

/// The `json_extract` path of a dotted field name (`meta.seq`, as indexes and filters name
/// fields).
pub fn field_path(field: &str) -> Result<String, String> {
    json_path(field.split('.'))
}

/// The SQL expression reading a field at `path` (a path from [`pointer_path`] or
/// [`field_path`]); queries must spell it exactly so to use an index on it.
pub fn field_expr(path: &str) -> String {
    format!("json_extract(doc, '{}')", path.replace('\'', "''"))
}

/// `CREATE TABLE IF NOT EXISTS` for `collection`.
pub fn create_table(collection: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {} (key TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL)",
        quote_ident(&table_name(collection))
    )
}

/// `CREATE [UNIQUE] INDEX IF NOT EXISTS` for a declared index: one expression per field, in
/// order, with its direction. Unnamed indexes are named like MongoDB names them (`a_1_b_-1`).
pub fn create_index(collection: &str, index: &Index) -> Result<String, String> {
    if index.keys.is_empty() {
        return Err("an index needs at least one field".into());
    }
    let mut columns = Vec::with_capacity(index.keys.len());
    for (field, direction) in &index.keys {
        let path = field_path(field).map_err(|e| format!("index field `{field}`: {e}"))?;
        let order = if *direction < 0 { "DESC" } else { "ASC" };
        columns.push(format!("{} {order}", field_expr(&path)));
    }
    let table = table_name(collection);
    Ok(format!(
        "CREATE {}INDEX IF NOT EXISTS {} ON {} ({})",
        if index.unique { "UNIQUE " } else { "" },
        quote_ident(&index_name(collection, index)),
        quote_ident(&table),
        columns.join(", ")
    ))
}

/// The SQLite name of a declared index of `collection` (`proj_<collection>__<name>`).
pub fn index_name(collection: &str, index: &Index) -> String {
    let name = index.name.clone().unwrap_or_else(|| {
        index
            .keys
            .iter()
            .map(|(field, direction)| format!("{field}_{direction}"))
            .collect::<Vec<_>>()
            .join("_")
    });
    format!("{}__{name}", table_name(collection))
}

/// The ledger of events a projector applied past its group's cursor.
///
/// A batch takes at most one event per key (per-key order), so its cursor — just before the
/// oldest event not yet done — can trail events of other keys it applied. Applying those again
/// after a crash would be harmless to the row only when versions never go back: a tombstone
/// replayed after a later stale upsert deletes what the first pass kept, and its changefeed
/// event would differ. So each batch records here, in its transaction, the offsets it applied
/// past the cursor it commits, skips the offsets recorded, and drops what the cursor passed.
/// Its size is bounded by the events in flight.
pub const LEDGER: &str = "CREATE TABLE IF NOT EXISTS proj__applied (\
    topic TEXT NOT NULL, grp TEXT NOT NULL, part INTEGER NOT NULL, off INTEGER NOT NULL, \
    PRIMARY KEY (topic, grp, part, off)) WITHOUT ROWID";

/// The offsets of `partition` the group applied past `cursor`.
pub fn applied_past(
    conn: &Connection,
    group: &crate::bus::GroupId,
    partition: u32,
    cursor: i64,
) -> rusqlite::Result<std::collections::BTreeSet<i64>> {
    let mut stmt = conn.prepare_cached(
        "SELECT off FROM proj__applied WHERE topic = ?1 AND grp = ?2 AND part = ?3 AND off > ?4",
    )?;
    let rows = stmt.query_map(params![group.topic, group.group, partition, cursor], |r| r.get(0))?;
    rows.collect()
}

/// Per partition: the stored cursor and the offsets applied past it.
pub type Progress = std::collections::BTreeMap<u32, (i64, std::collections::BTreeSet<i64>)>;

/// Where a group stands in every partition: its stored cursor (0 when none) and the offsets
/// the ledger lists past it. Two statements, whatever the number of partitions: a projector's
/// transaction reads this once per batch.
pub fn progress(conn: &Connection, group: &crate::bus::GroupId) -> rusqlite::Result<Progress> {
    let mut out = Progress::new();
    let mut cursors = conn.prepare_cached("SELECT part, off FROM cursors WHERE topic = ?1 AND grp = ?2")?;
    for row in cursors.query_map(params![group.topic, group.group], |r| Ok((r.get(0)?, r.get(1)?)))? {
        let (partition, cursor): (u32, i64) = row?;
        out.entry(partition).or_default().0 = cursor;
    }
    let mut ledger =
        conn.prepare_cached("SELECT part, off FROM proj__applied WHERE topic = ?1 AND grp = ?2")?;
    for row in ledger.query_map(params![group.topic, group.group], |r| Ok((r.get(0)?, r.get(1)?)))? {
        let (partition, offset): (u32, i64) = row?;
        let (cursor, past) = out.entry(partition).or_default();
        // Entries the cursor passed are dropped by the transaction that moved it; skip any left.
        if offset > *cursor {
            past.insert(offset);
        }
    }
    Ok(out)
}

/// Records `offsets` of `partition` as applied, and forgets those at or below `cursor`.
pub fn record_applied(
    conn: &Connection,
    group: &crate::bus::GroupId,
    partition: u32,
    offsets: impl IntoIterator<Item = i64>,
    cursor: i64,
) -> rusqlite::Result<()> {
    let mut insert = conn.prepare_cached(
        "INSERT OR IGNORE INTO proj__applied (topic, grp, part, off) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for offset in offsets {
        insert.execute(params![group.topic, group.group, partition, offset])?;
    }
    conn.prepare_cached(
        "DELETE FROM proj__applied WHERE topic = ?1 AND grp = ?2 AND part = ?3 AND off <= ?4",
    )?
    .execute(params![group.topic, group.group, partition, cursor])?;
    Ok(())
}

/// The statements of one table's writes, built once per projector.
#[derive(Debug, Clone)]
pub struct Statements {
    exists: String,
    guarded_upsert: Option<String>,
    plain_upsert: String,
    guarded_delete: Option<String>,
    plain_delete: String,
}

/// What one change did to its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// A new row.
    Inserted,
    /// An existing row replaced.
    Replaced,
    /// The row deleted.
    Deleted,
    /// Nothing: the stored version is the same or newer, or a delete found no row.
    Skipped,
}

impl Statements {
    /// The statements for `collection`, guarded by the version at `version_path` (a
    /// `json_extract` path) when given.
    pub fn new(collection: &str, version_path: Option<&str>) -> Statements {
        let table = quote_ident(&table_name(collection));
        // Older than the new version, by the order in the module docs (`?3` / `?2`: the new one).
        let older = |stored: &str, param: &str, equal: bool| {
            let path = version_path.unwrap_or("$").replace('\'', "''");
            let cmp = if equal { "<=" } else { "<" };
            format!(
                "(json_type({stored}, '{path}') IS NULL OR json_type({stored}, '{path}') = 'null' OR \
                 (json_type({stored}, '{path}') IN ('integer', 'real') AND \
                 json_extract({stored}, '{path}') {cmp} {param}))"
            )
        };
        let upsert = format!(
            "INSERT INTO {table} (key, doc) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET doc = excluded.doc"
        );
        Statements {
            exists: format!("SELECT 1 FROM {table} WHERE key = ?1"),
            guarded_upsert: version_path
                .map(|_| format!("{upsert} WHERE {}", older(&format!("{table}.doc"), "?3", false))),
            plain_upsert: upsert,
            guarded_delete: version_path
                .map(|_| format!("DELETE FROM {table} WHERE key = ?1 AND {}", older("doc", "?2", true))),
            plain_delete: format!("DELETE FROM {table} WHERE key = ?1"),
        }
    }

    /// Applies one change (`track`: find out whether an upsert inserted or replaced, which
    /// costs a lookup); [`Refused::Change`] when the store refuses it for good (a declared
    /// unique index), [`Refused::Store`] for any other failure.
    pub fn apply(&self, conn: &Connection, change: &Change, track: bool) -> Result<Written, Refused> {
        self.prepare(conn).apply(change, track)
    }

    /// The statements prepared on `conn` for a batch of writes: each is looked up in the
    /// connection's cache once per batch, not once per row (the lookup hashes and compares the
    /// whole SQL text).
    pub fn prepare<'c>(&'c self, conn: &'c Connection) -> Prepared<'c> {
        Prepared {
            statements: self,
            conn,
            exists: None,
            guarded_upsert: None,
            plain_upsert: None,
            guarded_delete: None,
            plain_delete: None,
        }
    }
}

/// A table's statements prepared on one connection (see [`Statements::prepare`]).
pub struct Prepared<'c> {
    statements: &'c Statements,
    conn: &'c Connection,
    exists: Option<CachedStatement<'c>>,
    guarded_upsert: Option<CachedStatement<'c>>,
    plain_upsert: Option<CachedStatement<'c>>,
    guarded_delete: Option<CachedStatement<'c>>,
    plain_delete: Option<CachedStatement<'c>>,
}

/// The statement in `slot`, prepared on first use.
fn prepared<'s, 'c>(
    slot: &'s mut Option<CachedStatement<'c>>,
    conn: &'c Connection,
    sql: &str,
) -> rusqlite::Result<&'s mut CachedStatement<'c>> {
    if slot.is_none() {
        *slot = Some(conn.prepare_cached(sql)?);
    }
    slot.as_mut().ok_or(rusqlite::Error::InvalidQuery)
}

impl Prepared<'_> {
    /// [`Statements::apply`] with the prepared statements.
    pub fn apply(&mut self, change: &Change, track: bool) -> Result<Written, Refused> {
        let text = match &change.op {
            Op::Upsert(doc) => Some(
                serde_json::to_string(doc)
                    .map_err(|e| Refused::Change(format!("the document cannot be encoded: {e}")))?,
            ),
            Op::Delete => None,
        };
        self.write(&change.key, change.version.as_ref(), text.as_deref(), track)
    }

    /// Writes one change given as its key, version and document text (`None` deletes the row);
    /// otherwise as [`Statements::apply`].
    pub fn write(
        &mut self,
        key: &str,
        version: Option<&Number>,
        text: Option<&str>,
        track: bool,
    ) -> Result<Written, Refused> {
        let Prepared { statements, conn, .. } = *self;
        let existed = if track {
            prepared(&mut self.exists, conn, &statements.exists)
                .and_then(|s| s.exists([key]))
                .map_err(Refused::Store)?
        } else {
            false
        };
        let changed = match text {
            Some(text) => match (&statements.guarded_upsert, version) {
                (Some(sql), Some(version)) => prepared(&mut self.guarded_upsert, conn, sql)
                    .and_then(|s| s.execute(params![key, text, VersionParam(version)])),
                _ => prepared(&mut self.plain_upsert, conn, &statements.plain_upsert)
                    .and_then(|s| s.execute(params![key, text])),
            },
            None => match (&statements.guarded_delete, version) {
                (Some(sql), Some(version)) => prepared(&mut self.guarded_delete, conn, sql)
                    .and_then(|s| s.execute(params![key, VersionParam(version)])),
                _ => prepared(&mut self.plain_delete, conn, &statements.plain_delete)
                    .and_then(|s| s.execute([key])),
            },
        };
        let changed = changed.map_err(|e| match e.sqlite_error_code() {
            Some(ErrorCode::ConstraintViolation) => {
                Refused::Change(format!("the document breaks a declared unique index: {e}"))
            }
            _ => Refused::Store(e),
        })?;
        Ok(match (text.is_some(), changed > 0, existed || !track) {
            (_, false, _) => Written::Skipped,
            (false, true, _) => Written::Deleted,
            (true, true, true) => Written::Replaced,
            (true, true, false) => Written::Inserted,
        })
    }
}

/// Why a change was not written.
#[derive(Debug)]
pub enum Refused {
    /// The store refuses this change for good (it is dead-lettered).
    Change(String),
    /// The store failed (the batch is rolled back).
    Store(rusqlite::Error),
}

/// A version bound as an integer when it is one, else as a real.
struct VersionParam<'a>(&'a Number);

impl rusqlite::ToSql for VersionParam<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        let value = match self.0.as_i64() {
            Some(i) => rusqlite::types::Value::Integer(i),
            None => rusqlite::types::Value::Real(self.0.as_f64().unwrap_or(f64::MAX)),
        };
        Ok(rusqlite::types::ToSqlOutput::Owned(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn change(key: &str, version: Option<i64>, doc: Option<serde_json::Value>) -> Change {
        Change {
            key: key.into(),
            version: version.map(Number::from),
            op: doc.map_or(Op::Delete, Op::Upsert),
            offset: 0,
        }
    }

    fn stored(conn: &Connection, key: &str) -> Option<serde_json::Value> {
        conn.query_row("SELECT doc FROM proj_c WHERE key = ?1", [key], |r| r.get::<_, String>(0))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
    }

    #[test]
    fn paths_quote_segments_and_refuse_what_they_cannot_address() {
        assert_eq!(pointer_path("/meta/seq").as_deref(), Ok("$.\"meta\".\"seq\""));
        assert_eq!(pointer_path("/a~1b").as_deref(), Ok("$.\"a/b\""));
        assert_eq!(field_path("a.b").as_deref(), Ok("$.\"a\".\"b\""));
        assert!(pointer_path("seq").is_err());
        assert!(field_path("a\"b").is_err());
        assert_eq!(field_expr("$.\"o'k\""), "json_extract(doc, '$.\"o''k\"')");
    }

    #[test]
    fn the_guard_keeps_newer_and_foreign_versions() {
        let conn = Connection::open_in_memory().expect("open");
        conn.execute_batch(&create_table("c")).expect("table");
        let path = pointer_path("/v").expect("path");
        let statements = Statements::new("c", Some(&path));
        let apply =
            |c: Change| statements.apply(&conn, &c, true).map_err(|e| format!("{e:?}")).expect("apply");
        assert_eq!(apply(change("a", Some(2), Some(json!({"_id": "a", "v": 2})))), Written::Inserted);
        assert_eq!(apply(change("a", Some(1), Some(json!({"_id": "a", "v": 1})))), Written::Skipped);
        assert_eq!(apply(change("a", Some(2), Some(json!({"_id": "a", "v": 2, "x": 1})))), Written::Skipped);
        assert_eq!(apply(change("a", Some(3), Some(json!({"_id": "a", "v": 3})))), Written::Replaced);
        assert_eq!(apply(change("a", Some(2), None)), Written::Skipped, "a stale tombstone");
        assert_eq!(apply(change("a", Some(3), None)), Written::Deleted, "a tombstone of the same version");
        assert_eq!(stored(&conn, "a"), None);
        // A stored version of another type is never overwritten by a guarded write.
        assert_eq!(apply(change("b", None, Some(json!({"_id": "b", "v": "two"})))), Written::Inserted);
        assert_eq!(apply(change("b", Some(9), Some(json!({"_id": "b", "v": 9})))), Written::Skipped);
        assert_eq!(apply(change("b", Some(9), Some(json!({"_id": "b", "v": 9})))), Written::Skipped);
        assert_eq!(stored(&conn, "b"), Some(json!({"_id": "b", "v": "two"})));
        // A null or missing stored version is older than any number.
        assert_eq!(apply(change("c", None, Some(json!({"_id": "c"})))), Written::Inserted);
        assert_eq!(apply(change("c", Some(-5), Some(json!({"_id": "c", "v": -5})))), Written::Replaced);
    }

    #[test]
    fn unique_indexes_refuse_the_change_not_the_batch() {
        let conn = Connection::open_in_memory().expect("open");
        conn.execute_batch(&create_table("c")).expect("table");
        let index = Index { keys: vec![("email".into(), 1)], unique: true, name: None };
        let ddl = create_index("c", &index).expect("ddl");
        assert!(ddl.contains("\"proj_c__email_1\""), "{ddl}");
        conn.execute_batch(&ddl).expect("index");
        let statements = Statements::new("c", None);
        let upsert = |key: &str| change(key, None, Some(json!({"_id": key, "email": "x@y"})));
        assert!(statements.apply(&conn, &upsert("a"), false).is_ok());
        assert!(matches!(statements.apply(&conn, &upsert("b"), false), Err(Refused::Change(_))));
        assert_eq!(stored(&conn, "a"), Some(json!({"_id": "a", "email": "x@y"})));
    }
}
