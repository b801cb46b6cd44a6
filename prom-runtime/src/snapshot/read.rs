//! How the snapshot handlers read a projection, whatever store holds it: one document by key,
//! and one page in key order with exact-match filters on declared fields. [`MongoRead`] reads
//! MongoDB collections, [`SqliteRead`] the tables of the embedded store
//! ([`crate::project::table`]).

use crate::bus::SqliteBus;
use crate::project::table;
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;

/// One stored document as the API presents it.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// The document's key (`_id`).
    pub key: String,
    /// The document as JSON.
    pub body: Value,
    /// The stored bytes the strong ETag is computed from (they change exactly when the stored
    /// document does).
    pub bytes: Vec<u8>,
}

/// Why a read failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The store could not answer (unreachable, busy, broken): the client gets a 503.
    #[error("{0}")]
    Unavailable(String),
    /// A stored document cannot be presented: the client gets a 500.
    #[error("{0}")]
    Corrupt(String),
}

/// A page request: documents whose key sorts after `after`, whose `filters` fields equal the
/// given strings, at most `limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// Start after this key.
    pub after: Option<String>,
    /// `(field, value)` pairs, each compared for equality with a string.
    pub filters: Vec<(String, String)>,
    /// Documents at most.
    pub limit: u64,
}

/// The future a read returns.
pub type ReadFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, ReadError>> + Send + 'a>>;

/// Reads of a store's projections, by collection name.
pub trait ProjectionRead: Send + Sync {
    /// The document of `key` in `collection`, if any.
    fn get<'a>(&'a self, collection: &'a str, key: &'a str) -> ReadFuture<'a, Option<Found>>;
    /// One page of `collection` in key order.
    fn page<'a>(&'a self, collection: &'a str, request: PageRequest) -> ReadFuture<'a, Vec<Found>>;
    /// The store's kind, for operator reports (`MongoDB`, `the embedded store`).
    fn store(&self) -> &'static str;
}

/// Reads the projection tables of the embedded store.
#[derive(Debug, Clone)]
pub struct SqliteRead {
    bus: SqliteBus,
}

impl SqliteRead {
    /// Reads `bus`'s tables.
    pub fn new(bus: SqliteBus) -> SqliteRead {
        SqliteRead { bus }
    }
}

impl ProjectionRead for SqliteRead {
    fn get<'a>(&'a self, collection: &'a str, key: &'a str) -> ReadFuture<'a, Option<Found>> {
        let sql = format!(
            "SELECT key, doc FROM {} WHERE key = ?1",
            table::quote_ident(&table::table_name(collection))
        );
        let key = key.to_string();
        Box::pin(async move {
            let rows = self
                .bus
                .read_projection(sql, vec![rusqlite::types::Value::Text(key)])
                .await
                .map_err(unavailable)?;
            rows.into_iter().next().map(found).transpose()
        })
    }

    fn page<'a>(&'a self, collection: &'a str, request: PageRequest) -> ReadFuture<'a, Vec<Found>> {
        Box::pin(async move {
            let mut clauses = Vec::new();
            let mut params = Vec::new();
            if let Some(after) = request.after {
                params.push(rusqlite::types::Value::Text(after));
                clauses.push(format!("key > ?{}", params.len()));
            }
            for (field, value) in request.filters {
                // The same expression as the declared index on the field, so the index is used;
                // a string parameter never equals a stored number (as MongoDB's `$eq`).
                let path = table::field_path(&field).map_err(ReadError::Corrupt)?;
                params.push(rusqlite::types::Value::Text(value));
                clauses.push(format!("{} = ?{}", table::field_expr(&path), params.len()));
            }
            params.push(rusqlite::types::Value::Integer(i64::try_from(request.limit).unwrap_or(i64::MAX)));
            let sql = format!(
                "SELECT key, doc FROM {}{} ORDER BY key LIMIT ?{}",
                table::quote_ident(&table::table_name(collection)),
                if clauses.is_empty() { String::new() } else { format!(" WHERE {}", clauses.join(" AND ")) },
                params.len()
            );
            let rows = self.bus.read_projection(sql, params).await.map_err(unavailable)?;
            rows.into_iter().map(found).collect()
        })
    }

    fn store(&self) -> &'static str {
        "the embedded store"
    }
}

fn unavailable(e: crate::error::Error) -> ReadError {
    ReadError::Unavailable(e.to_string())
}

/// A stored row as a document.
fn found((key, text): (String, String)) -> Result<Found, ReadError> {
    let body = serde_json::from_str(&text)
        .map_err(|e| ReadError::Corrupt(format!("the row of key `{key}` is not JSON: {e}")))?;
    Ok(Found { key, body, bytes: text.into_bytes() })
}

#[cfg(feature = "mongo")]
pub use mongo::MongoRead;

#[cfg(feature = "mongo")]
mod mongo {
    use super::{Found, PageRequest, ProjectionRead, ReadError, ReadFuture};
    use futures_util::TryStreamExt;
    use mongodb::Database;
    use mongodb::bson::{Bson, Document, RawDocumentBuf, doc};

    /// Reads MongoDB collections.
    #[derive(Debug, Clone)]
    pub struct MongoRead {
        db: Database,
    }

    impl MongoRead {
        /// Reads the collections of `db`.
        pub fn new(db: Database) -> MongoRead {
            MongoRead { db }
        }
    }

    fn unavailable(e: mongodb::error::Error) -> ReadError {
        ReadError::Unavailable(e.to_string())
    }

    impl ProjectionRead for MongoRead {
        fn get<'a>(&'a self, collection: &'a str, key: &'a str) -> ReadFuture<'a, Option<Found>> {
            Box::pin(async move {
                let coll = self.db.collection::<RawDocumentBuf>(collection);
                let raw = coll.find_one(doc! { "_id": key }).await.map_err(unavailable)?;
                raw.map(|raw| found(&raw)).transpose()
            })
        }

        fn page<'a>(&'a self, collection: &'a str, request: PageRequest) -> ReadFuture<'a, Vec<Found>> {
            Box::pin(async move {
                let mut clauses: Vec<Document> = Vec::new();
                if let Some(after) = request.after {
                    clauses.push(doc! { "_id": { "$gt": after } });
                }
                for (field, value) in request.filters {
                    // `$eq`: the value is compared literally, whatever it looks like.
                    let mut clause = Document::new();
                    clause.insert(field, doc! { "$eq": value });
                    clauses.push(clause);
                }
                let filter = if clauses.is_empty() {
                    Document::new()
                } else {
                    doc! { "$and": clauses }
                };
                let limit = i64::try_from(request.limit).unwrap_or(i64::MAX);
                let coll = self.db.collection::<RawDocumentBuf>(collection);
                let cursor =
                    coll.find(filter).sort(doc! { "_id": 1 }).limit(limit).await.map_err(unavailable)?;
                let docs: Vec<RawDocumentBuf> = cursor.try_collect().await.map_err(unavailable)?;
                docs.iter().map(found).collect()
            })
        }

        fn store(&self) -> &'static str {
            "MongoDB"
        }
    }

    /// A stored document as JSON (relaxed extended JSON: numbers stay numbers).
    fn found(raw: &RawDocumentBuf) -> Result<Found, ReadError> {
        let document = raw
            .to_document()
            .map_err(|e| ReadError::Corrupt(format!("a stored document cannot be read: {e}")))?;
        let key = match document.get("_id") {
            Some(Bson::String(id)) => id.clone(),
            _ => return Err(ReadError::Corrupt("a document's `_id` is not text".into())),
        };
        let bytes = raw.as_bytes().to_vec();
        Ok(Found { key, body: Bson::Document(document).into_relaxed_extjson(), bytes })
    }
}
