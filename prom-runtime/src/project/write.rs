//! Bulk writes of collapsed changes: unordered `update` commands for the upserts and `delete`
//! commands for the deletes, per chunk, majority-acknowledged.
//!
//! The version guard is checked by the server against the stored document, atomically per
//! document, so a stale or replayed event never overwrites a newer document, even with two
//! writers. For upserts it lives in the update, not in the filter: the filter stays `{_id: key}`,
//! which MongoDB answers by its `_id` fast path, and the update is a one-stage pipeline that keeps
//! the stored document unless its version is older:
//!
//! ```text
//! q: {_id: key}, upsert: true,
//! u: [{$replaceWith: {$cond: [{$lt: ["$<version>", v]}, {$literal: <document>}, "$$ROOT"]}}]
//! ```
//!
//! A guard in the filter (`{_id, $or: [{v: {$lt}}, {v: {$exists: false}}]}`) costs a query plan
//! per statement and ran at 0.6x a raw bulk write; a larger condition (`$type`, `$isNumber`) is
//! parsed per statement too and costs as much (see `benches/mongo.rs`). `$literal` keeps strings
//! such as `"$status"` in payloads from being read as field paths. A stale event is "matched, not
//! modified"; so is an identical replay of the stored version, which is counted as skipped too.
//! A missing document is upserted from `{_id: key}`, whose version is missing, so it is inserted;
//! when two writers insert one key at once the server retries the loser's upsert as an update
//! (should a duplicate `_id` still come back, the whole write fails and is retried).
//!
//! Order of versions (BSON comparison): a stored version that is missing or `null` is older than
//! any number, numbers compare numerically, and a stored version of another type (a string, say)
//! is never overwritten by a guarded write. Deletes have no pipeline form, so their guard stays in
//! the filter (`{_id, $or: [{v: {$lte}}, {v: null}]}`, the same order); tombstones are rare next
//! to updates.

use super::plan::{Change, Op, version_bson};
use crate::error::Cause;
use mongodb::Database;
use mongodb::bson::{Bson, Document, RawArrayBuf, RawBson, RawDocumentBuf, doc, rawdoc};

/// Statements per command at most (the server accepts 100,000; smaller keeps latency even).
const MAX_STATEMENTS: usize = 1000;
/// Bytes of statements per command at most (the server's limit is 16 MiB per command).
const MAX_BYTES: usize = 8 * 1024 * 1024;

/// What a bulk write did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Documents inserted or replaced.
    pub upserted: u64,
    /// Documents deleted.
    pub deleted: u64,
    /// Changes skipped because the stored document has the same or a newer version (or a delete
    /// found no document to delete).
    pub skipped: u64,
    /// Changes the server refused for good (for example a unique index of the collection), by
    /// the offset of their event, with the server's message.
    pub rejected: Vec<(i64, String)>,
}

/// Why a bulk write failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// MongoDB could not be reached or has no primary now: write again once it is back.
    #[error("{message}")]
    Unavailable {
        /// What failed.
        message: String,
        /// The driver's error, when one caused it.
        #[source]
        source: Option<Cause>,
    },
    /// Anything else: a racing insert of the same key, an encoding error, a refused command.
    #[error("{message}")]
    Failed {
        /// What failed.
        message: String,
        /// The driver's or encoder's error, when one caused it.
        #[source]
        source: Option<Cause>,
    },
}

impl WriteError {
    /// What failed, and the cause when there is one.
    pub fn into_parts(self) -> (String, Option<Cause>) {
        match self {
            WriteError::Unavailable { message, source } | WriteError::Failed { message, source } => {
                (message, source)
            }
        }
    }
}

impl From<String> for WriteError {
    fn from(message: String) -> WriteError {
        WriteError::Failed { message, source: None }
    }
}

/// One upsert statement, encoded once: its size gives the chunks and it goes into the command
/// as it is (the driver does not encode it again).
struct Statement<'a> {
    change: &'a Change,
    raw: RawDocumentBuf,
}

/// Applies `changes` (at most one per key) to `collection`; `version_path` is the dotted path
/// of the version field when updates are guarded.
pub async fn apply(
    db: &Database,
    collection: &str,
    version_path: Option<&str>,
    changes: &[Change],
) -> Result<Outcome, WriteError> {
    let mut outcome = Outcome::default();
    // Guarded and plain upserts go in separate commands: their replies are counted differently.
    let (mut guarded, mut plain) = (Vec::new(), Vec::new());
    let mut deletes = Vec::new();
    for change in changes {
        let Op::Upsert(doc) = &change.op else {
            deletes.push(change);
            continue;
        };
        let guard = version_path.zip(change.version.as_ref());
        match upsert_statement(change, doc, guard) {
            Ok(raw) if guard.is_some() => guarded.push(Statement { change, raw }),
            Ok(raw) => plain.push(Statement { change, raw }),
            Err(e) => outcome.rejected.push((change.offset, e)),
        }
    }
    for (statements, is_guarded) in [(guarded, true), (plain, false)] {
        for chunk in chunks(statements, |s| s.raw.as_bytes().len()) {
            let mut updates = RawArrayBuf::new();
            let mut changes = Vec::with_capacity(chunk.len());
            for Statement { change, raw } in chunk {
                updates.push(raw);
                changes.push(change);
            }
            let mut command = RawDocumentBuf::new();
            command.append("update", collection);
            command.append("updates", updates);
            command.append("ordered", false);
            let reply = run(db, command).await?;
            let failed = write_errors(&reply, &changes, &mut outcome)?;
            // Every statement that did not fail matched its key or inserted it (`n`); a guarded
            // one wrote only if it inserted or modified.
            let written =
                if is_guarded { inserted(&reply) + count(&reply, "nModified") } else { count(&reply, "n") };
            outcome.upserted += written;
            outcome.skipped += (changes.len() as u64).saturating_sub(written + failed);
        }
    }
    for chunk in chunks(deletes, |c| c.key.len()) {
        let mut statements = RawArrayBuf::new();
        for change in &chunk {
            let mut statement = RawDocumentBuf::new();
            statement.append("q", delete_filter(change, version_path)?);
            statement.append("limit", 1);
            statements.push(statement);
        }
        let mut command = RawDocumentBuf::new();
        command.append("delete", collection);
        command.append("deletes", statements);
        command.append("ordered", false);
        let reply = run(db, command).await?;
        let n = count(&reply, "n");
        let failed = write_errors(&reply, &chunk, &mut outcome)?;
        outcome.deleted += n;
        outcome.skipped += (chunk.len() as u64).saturating_sub(n + failed);
    }
    Ok(outcome)
}

/// `{q: {_id: key}, u: ..., upsert: true}`: the document itself, or with `guard` (version path,
/// version) the pipeline that keeps a stored document of the same or a newer version.
fn upsert_statement(
    change: &Change,
    doc: &serde_json::Value,
    guard: Option<(&str, &serde_json::Number)>,
) -> Result<RawDocumentBuf, String> {
    let doc = mongodb::bson::to_document(doc)
        .map_err(|e| format!("the payload cannot be stored as a MongoDB document: {e}"))?;
    let raw =
        RawDocumentBuf::from_document(&doc).map_err(|e| format!("the document cannot be encoded: {e}"))?;
    let update = match guard {
        None => RawBson::Document(raw),
        Some((path, version)) => {
            let version = RawBson::try_from(version_bson(version))
                .map_err(|e| format!("the version cannot be encoded: {e}"))?;
            let mut older = RawArrayBuf::new();
            older.push(format!("${path}"));
            older.push(version);
            let mut branches = RawArrayBuf::new();
            branches.push(rawdoc! { "$lt": older });
            branches.push(rawdoc! { "$literal": raw });
            branches.push("$$ROOT");
            let mut pipeline = RawArrayBuf::new();
            pipeline.push(rawdoc! { "$replaceWith": { "$cond": branches } });
            RawBson::Array(pipeline)
        }
    };
    let mut statement = RawDocumentBuf::new();
    statement.append("q", rawdoc! { "_id": change.key.as_str() });
    statement.append("u", update);
    statement.append("upsert", true);
    Ok(statement)
}

/// `{_id: key}`, plus "stored version at most this one, or none stored" when guarded.
fn delete_filter(change: &Change, version_path: Option<&str>) -> Result<RawDocumentBuf, String> {
    let mut filter = doc! { "_id": &change.key };
    if let (Some(path), Some(version)) = (version_path, &change.version) {
        let mut older = Document::new();
        older.insert(path, doc! { "$lte": version_bson(version) });
        let mut missing = Document::new();
        missing.insert(path, Bson::Null);
        filter.insert("$or", vec![older, missing]);
    }
    RawDocumentBuf::from_document(&filter)
        .map_err(|e| format!("the filter of key `{}` cannot be encoded: {e}", change.key))
}

/// Splits `items` into commands of at most [`MAX_STATEMENTS`] statements and about
/// [`MAX_BYTES`] bytes (by `size`), in order.
fn chunks<T>(items: Vec<T>, size: impl Fn(&T) -> usize) -> Vec<Vec<T>> {
    let mut out: Vec<Vec<T>> = Vec::new();
    let mut bytes = 0;
    for item in items {
        let size = size(&item);
        let full = out.last().is_none_or(|c| c.len() >= MAX_STATEMENTS || bytes + size > MAX_BYTES);
        if full {
            out.push(Vec::new());
            bytes = 0;
        }
        bytes += size;
        if let Some(chunk) = out.last_mut() {
            chunk.push(item);
        }
    }
    out
}

async fn run(db: &Database, mut command: RawDocumentBuf) -> Result<Document, WriteError> {
    // Acknowledged by a majority, journaled: the cursor moves only after this returns.
    command.append("writeConcern", rawdoc! { "w": "majority", "j": true });
    let reply = db.run_raw_command(command).await.map_err(|e| {
        if crate::outage::mongo::transient(&e) {
            WriteError::Unavailable { message: e.kind.to_string(), source: Some(Cause::new(e)) }
        } else {
            WriteError::Failed { message: e.to_string(), source: Some(Cause::new(e)) }
        }
    })?;
    if let Ok(wce) = reply.get_document("writeConcernError") {
        let message = format!("the write was not acknowledged by a majority: {wce}");
        let code = wce.get_i32("code").unwrap_or(0);
        return Err(if crate::outage::mongo::transient_code(code) {
            WriteError::Unavailable { message, source: None }
        } else {
            WriteError::Failed { message, source: None }
        });
    }
    Ok(reply)
}

fn count(reply: &Document, field: &str) -> u64 {
    match reply.get(field) {
        Some(Bson::Int32(n)) => u64::try_from(*n).unwrap_or(0),
        Some(Bson::Int64(n)) => u64::try_from(*n).unwrap_or(0),
        _ => 0,
    }
}

/// How many statements of an `update` reply inserted their document.
fn inserted(reply: &Document) -> u64 {
    reply.get_array("upserted").map_or(0, |ids| ids.len() as u64)
}

/// Records write errors as rejections; returns how many statements failed.
///
/// A duplicate `_id` means two writers inserted one key at once and the server did not resolve
/// it: an error of the whole write (retried, harmless since every statement is idempotent),
/// never a rejection — its document may be the newer one.
fn write_errors(reply: &Document, chunk: &[&Change], outcome: &mut Outcome) -> Result<u64, String> {
    const DUPLICATE_KEY: i32 = 11000;
    let Ok(errors) = reply.get_array("writeErrors") else { return Ok(0) };
    let mut failed = 0;
    for error in errors {
        let Bson::Document(error) = error else { continue };
        let index = error.get_i32("index").ok().and_then(|i| usize::try_from(i).ok());
        let change =
            index.and_then(|i| chunk.get(i)).ok_or_else(|| format!("unexpected write error {error}"))?;
        let code = error.get_i32("code").unwrap_or(0);
        let message = error.get_str("errmsg").unwrap_or("no message").to_string();
        let on_id = error
            .get_document("keyPattern")
            .map_or_else(|_| message.contains("index: _id_ "), |pattern| pattern.keys().eq(["_id"]));
        if code == DUPLICATE_KEY && on_id {
            return Err(format!(
                "key `{}` was inserted by another writer at the same time: {message}",
                change.key
            ));
        }
        failed += 1;
        outcome.rejected.push((change.offset, format!("{message} (code {code})")));
    }
    Ok(failed)
}
