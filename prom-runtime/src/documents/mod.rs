//! A small document API over named collections — get, put (upsert), delete by key and find by a
//! declared field — that the embedded store's transaction ([`StoreTx`]) and a MongoDB session
//! ([`MongoDocuments`], feature `mongo`) both implement, so one transactional projector handler
//! runs unchanged on either store.
//!
//! Documents are JSON objects; the key is the document's `_id` (set by `put`, returned by `get`
//! and `find`). [`DocumentsExt`] adds typed helpers (`get_as`, `put_as`) and a [`Collection`]
//! handle. `find` compares one field for equality with a JSON scalar, and only on fields the
//! collection's declared indexes cover ([`Declared`]): a query the store could only answer by
//! scanning is refused with [`Error::UndeclaredField`] instead of getting slow as data grows.
//!
//! [`sqlite`] holds the embedded store's statements; [`store_tx`] the embedded transaction
//! (runs its statements on the store's writer thread while the caller's async code drives it).

#[cfg(feature = "mongo")]
pub mod mongo;
pub(crate) mod sqlite;
pub mod store_tx;

#[cfg(feature = "mongo")]
pub use mongo::MongoDocuments;
pub use store_tx::{StoreTx, TxOptions};

use crate::error::{Error, Result};
use crate::system::{ProjectorKind, System};
use prom_spec::schema::value_kind;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;

/// The future a document operation returns.
pub type DocFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// Document operations inside one transaction of a store.
pub trait Documents: Send {
    /// The document stored under `key` in `collection` (with its `_id`), if any.
    fn get<'a>(&'a mut self, collection: &'a str, key: &'a str) -> DocFuture<'a, Option<Value>>;
    /// Stores `doc` (a JSON object) under `key`, replacing any document there; `_id` is set to
    /// `key`.
    fn put<'a>(&'a mut self, collection: &'a str, key: &'a str, doc: Value) -> DocFuture<'a, ()>;
    /// Deletes the document under `key`; whether there was one.
    fn delete<'a>(&'a mut self, collection: &'a str, key: &'a str) -> DocFuture<'a, bool>;
    /// The documents whose `field` (a declared index field, dotted for nested ones) equals
    /// `value` (a string, number, boolean or null), in key order.
    fn find<'a>(&'a mut self, collection: &'a str, field: &'a str, value: Value)
    -> DocFuture<'a, Vec<Value>>;
    /// The raw MongoDB database and session of the transaction (the escape hatch for what the
    /// document API does not cover); `None` on the embedded store.
    #[cfg(feature = "mongo")]
    fn mongo(&mut self) -> Option<(&mongodb::Database, &mut mongodb::ClientSession)> {
        None
    }
}

/// Typed helpers over any [`Documents`].
pub trait DocumentsExt: Documents {
    /// [`Documents::get`] decoded as `T` (a document that does not decode is
    /// [`Error::InvalidDocument`]).
    fn get_as<'a, T: DeserializeOwned + 'a>(
        &'a mut self,
        collection: &'a str,
        key: &'a str,
    ) -> DocFuture<'a, Option<T>> {
        Box::pin(async move {
            match self.get(collection, key).await? {
                Some(doc) => decode(collection, key, doc).map(Some),
                None => Ok(None),
            }
        })
    }

    /// [`Documents::put`] of `value` serialized (it must serialize to a JSON object).
    fn put_as<'a, T: Serialize + ?Sized + Sync>(
        &'a mut self,
        collection: &'a str,
        key: &'a str,
        value: &'a T,
    ) -> DocFuture<'a, ()> {
        Box::pin(async move {
            let doc = serde_json::to_value(value)
                .map_err(|e| invalid_caused(collection, key, format!("cannot serialize: {e}"), e))?;
            self.put(collection, key, doc).await
        })
    }

    /// [`Documents::find`] with each document decoded as `T`.
    fn find_as<'a, T: DeserializeOwned + 'a>(
        &'a mut self,
        collection: &'a str,
        field: &'a str,
        value: Value,
    ) -> DocFuture<'a, Vec<T>> {
        Box::pin(async move {
            let docs = self.find(collection, field, value).await?;
            docs.into_iter()
                .map(|doc| {
                    let key = doc.get("_id").and_then(Value::as_str).unwrap_or_default().to_owned();
                    decode(collection, &key, doc)
                })
                .collect()
        })
    }

    /// A handle on one collection.
    fn collection<'a>(&'a mut self, name: &'a str) -> Collection<'a, Self> {
        Collection { docs: self, name }
    }
}

impl<D: Documents + ?Sized> DocumentsExt for D {}

/// One collection of a [`Documents`]: the same operations without repeating its name.
pub struct Collection<'a, D: ?Sized> {
    docs: &'a mut D,
    name: &'a str,
}

impl<D: Documents + ?Sized> Collection<'_, D> {
    /// See [`Documents::get`].
    pub async fn get(&mut self, key: &str) -> Result<Option<Value>> {
        self.docs.get(self.name, key).await
    }

    /// See [`DocumentsExt::get_as`].
    pub async fn get_as<T: DeserializeOwned>(&mut self, key: &str) -> Result<Option<T>> {
        self.docs.get_as(self.name, key).await
    }

    /// See [`Documents::put`].
    pub async fn put(&mut self, key: &str, doc: Value) -> Result<()> {
        self.docs.put(self.name, key, doc).await
    }

    /// See [`DocumentsExt::put_as`].
    pub async fn put_as<T: Serialize + ?Sized + Sync>(&mut self, key: &str, value: &T) -> Result<()> {
        self.docs.put_as(self.name, key, value).await
    }

    /// See [`Documents::delete`].
    pub async fn delete(&mut self, key: &str) -> Result<bool> {
        self.docs.delete(self.name, key).await
    }

    /// See [`Documents::find`].
    pub async fn find(&mut self, field: &str, value: Value) -> Result<Vec<Value>> {
        self.docs.find(self.name, field, value).await
    }
}

/// The fields `find` may use, per collection: those the declared indexes cover.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Declared {
    fields: BTreeMap<String, BTreeSet<String>>,
}

impl Declared {
    /// No declared fields (`find` is refused everywhere).
    pub fn none() -> Declared {
        Declared::default()
    }

    /// The fields of the indexes every transactional projector of `system` declares on its
    /// `collection`.
    pub fn of_system(system: &System) -> Declared {
        let mut declared = Declared::none();
        for projector in &system.projectors {
            if let ProjectorKind::Transactional { collection: Some(collection), indexes, .. } =
                &projector.kind
            {
                for index in indexes {
                    for (field, _) in &index.keys {
                        declared = declared.with(collection, field);
                    }
                }
            }
        }
        declared
    }

    /// Also allows `find` on `collection` by `field` (an index must cover it for speed; the
    /// transactional projector creates the indexes it declares).
    pub fn with(mut self, collection: &str, field: &str) -> Declared {
        self.fields.entry(collection.to_owned()).or_default().insert(field.to_owned());
        self
    }

    /// `Ok` when `field` is declared on `collection`, else [`Error::UndeclaredField`].
    pub fn check(&self, collection: &str, field: &str) -> Result<()> {
        let fields = self.fields.get(collection);
        if fields.is_some_and(|f| f.contains(field)) {
            return Ok(());
        }
        Err(Error::UndeclaredField {
            collection: collection.to_owned(),
            field: field.to_owned(),
            declared: fields.map(|f| f.iter().cloned().collect()).unwrap_or_default(),
        })
    }
}

/// Checks a collection name and a key, the same on both stores.
pub(crate) fn check_names(collection: &str, key: &str) -> Result<()> {
    let bad_collection = collection.is_empty()
        || collection.starts_with("system.")
        || collection.contains(['$', '\0', '"'])
        || collection.len() > 120;
    if bad_collection {
        return Err(invalid(
            collection,
            "",
            "a collection name must be 1..=120 characters without `$`, `\"` or NUL and not start with `system.`",
        ));
    }
    if key.is_empty() || key.contains('\0') {
        return Err(invalid(collection, key, "a key must be non-empty text without NUL"));
    }
    Ok(())
}

/// `doc` as stored: a JSON object with `_id` = `key`.
pub(crate) fn with_id(collection: &str, key: &str, doc: Value) -> Result<serde_json::Map<String, Value>> {
    check_names(collection, key)?;
    let Value::Object(mut map) = doc else {
        return Err(invalid(
            collection,
            key,
            format!("a document must be a JSON object, got {}", value_kind(&doc)),
        ));
    };
    match map.get("_id") {
        None => {}
        Some(Value::String(id)) if id == key => {}
        Some(other) => {
            return Err(invalid(
                collection,
                key,
                format!("the document's `_id` ({other}) differs from its key; drop `_id` or make it the key"),
            ));
        }
    }
    map.insert("_id".to_owned(), Value::String(key.to_owned()));
    Ok(map)
}

/// Checks a `find` value: equality on a JSON scalar.
pub(crate) fn check_find(declared: &Declared, collection: &str, field: &str, value: &Value) -> Result<()> {
    check_names(collection, "-")?;
    declared.check(collection, field)?;
    if value.is_array() || value.is_object() {
        return Err(invalid(
            collection,
            "",
            format!(
                "find by `{field}` compares with a string, number, boolean or null, got {}",
                value_kind(value)
            ),
        ));
    }
    Ok(())
}

fn decode<T: DeserializeOwned>(collection: &str, key: &str, doc: Value) -> Result<T> {
    serde_json::from_value(doc).map_err(|e| {
        let reason = format!("the stored document does not decode into the type asked for: {e}");
        invalid_caused(collection, key, reason, e)
    })
}

pub(crate) fn invalid(collection: &str, key: &str, reason: impl Into<String>) -> Error {
    Error::InvalidDocument {
        collection: collection.to_owned(),
        key: key.to_owned(),
        reason: reason.into(),
        source: None,
    }
}

/// [`invalid`], keeping the encoder's or decoder's error as the cause.
pub(crate) fn invalid_caused(
    collection: &str,
    key: &str,
    reason: impl Into<String>,
    cause: impl std::error::Error + Send + Sync + 'static,
) -> Error {
    Error::InvalidDocument {
        collection: collection.to_owned(),
        key: key.to_owned(),
        reason: reason.into(),
        source: Some(crate::error::Cause::new(cause)),
    }
}
