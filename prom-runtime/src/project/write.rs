//! Bulk writes of collapsed changes: one unordered `update` command for the upserts and one
//! `delete` command for the deletes per chunk, majority-acknowledged.
//!
//! The version guard is part of each statement's filter, so it is checked by the server against
//! the stored document: an upsert matches only a document whose version is lower (or missing),
//! and when a newer document exists, the upsert's insert collides on `_id` — that duplicate-key
//! error is how MongoDB says "stale", and it is counted as skipped, not failed.

use super::plan::{Change, Op, version_bson};
use mongodb::Database;
use mongodb::bson::{Bson, Document, RawArrayBuf, RawDocumentBuf, doc, rawdoc};

/// Statements per command at most (the server accepts 100,000; smaller keeps latency even).
const MAX_STATEMENTS: usize = 1000;
/// Bytes of documents per command at most (the server's limit is 16 MiB per command).
const MAX_BYTES: usize = 8 * 1024 * 1024;

/// What a bulk write did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Documents inserted or replaced.
    pub upserted: u64,
    /// Documents deleted.
    pub deleted: u64,
    /// Changes skipped because the stored document has a newer version (or a delete found no
    /// document to delete).
    pub skipped: u64,
    /// Changes the server refused for good (for example a unique index of the collection), by
    /// the offset of their event, with the server's message.
    pub rejected: Vec<(i64, String)>,
}

/// Applies `changes` (at most one per key) to `collection`; `version_path` is the dotted path
/// of the version field when updates are guarded.
pub async fn apply(
    db: &Database,
    collection: &str,
    version_path: Option<&str>,
    changes: &[Change],
) -> Result<Outcome, String> {
    let mut outcome = Outcome::default();
    let (upserts, deletes): (Vec<&Change>, Vec<&Change>) =
        changes.iter().partition(|c| matches!(c.op, Op::Upsert(_)));
    // Each document is encoded once, here: its encoding gives the chunk sizes and goes into the
    // command as it is (the driver does not encode it again).
    let mut encoded: Vec<(&Change, RawDocumentBuf)> = Vec::with_capacity(upserts.len());
    for change in upserts {
        let Op::Upsert(doc) = &change.op else { continue };
        match RawDocumentBuf::from_document(doc) {
            Ok(raw) => encoded.push((change, raw)),
            Err(e) => outcome.rejected.push((change.offset, format!("the document cannot be encoded: {e}"))),
        }
    }
    for chunk in chunks(encoded, |(_, raw)| raw.as_bytes().len()) {
        let mut statements = RawArrayBuf::new();
        let mut changes = Vec::with_capacity(chunk.len());
        for (change, raw) in chunk {
            let mut statement = RawDocumentBuf::new();
            statement.append("q", raw_filter(change, version_path, "$lt")?);
            statement.append("u", raw);
            statement.append("upsert", true);
            statements.push(statement);
            changes.push(change);
        }
        let mut command = RawDocumentBuf::new();
        command.append("update", collection);
        command.append("updates", statements);
        command.append("ordered", false);
        let reply = run(db, command).await?;
        let n = count(&reply, "n");
        let errors = write_errors(&reply, &changes, version_path.is_some(), &mut outcome)?;
        outcome.upserted += n;
        outcome.skipped += (changes.len() as u64).saturating_sub(n + errors);
    }
    for chunk in chunks(deletes, |c| c.key.len()) {
        let mut statements = RawArrayBuf::new();
        for change in &chunk {
            let mut statement = RawDocumentBuf::new();
            statement.append("q", raw_filter(change, version_path, "$lte")?);
            statement.append("limit", 1);
            statements.push(statement);
        }
        let mut command = RawDocumentBuf::new();
        command.append("delete", collection);
        command.append("deletes", statements);
        command.append("ordered", false);
        let reply = run(db, command).await?;
        let n = count(&reply, "n");
        let errors = write_errors(&reply, &chunk, false, &mut outcome)?;
        outcome.deleted += n;
        outcome.skipped += (chunk.len() as u64).saturating_sub(n + errors);
    }
    Ok(outcome)
}

fn raw_filter(change: &Change, version_path: Option<&str>, op: &str) -> Result<RawDocumentBuf, String> {
    RawDocumentBuf::from_document(&filter(change, version_path, op))
        .map_err(|e| format!("the filter of key `{}` cannot be encoded: {e}", change.key))
}

/// `{_id: key}`, plus "stored version `op` this one, or none stored" when guarded.
fn filter(change: &Change, version_path: Option<&str>, op: &str) -> Document {
    let mut filter = doc! { "_id": &change.key };
    if let (Some(path), Some(version)) = (version_path, &change.version) {
        let mut older = Document::new();
        older.insert(path, doc! { op: version_bson(version) });
        let mut missing = Document::new();
        missing.insert(path, doc! { "$exists": false });
        filter.insert("$or", vec![older, missing]);
    }
    filter
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

async fn run(db: &Database, mut command: RawDocumentBuf) -> Result<Document, String> {
    // Acknowledged by a majority, journaled: the cursor moves only after this returns.
    command.append("writeConcern", rawdoc! { "w": "majority", "j": true });
    let reply = db.run_raw_command(command).await.map_err(|e| e.to_string())?;
    if let Ok(wce) = reply.get_document("writeConcernError") {
        return Err(format!("the write was not acknowledged by a majority: {wce}"));
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

/// Sorts write errors into stale skips and rejections; returns how many statements failed.
fn write_errors(
    reply: &Document,
    chunk: &[&Change],
    guarded: bool,
    outcome: &mut Outcome,
) -> Result<u64, String> {
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
        failed += 1;
        if code == DUPLICATE_KEY && guarded && on_id {
            outcome.skipped += 1;
        } else {
            outcome.rejected.push((change.offset, format!("{message} (code {code})")));
        }
    }
    Ok(failed)
}
