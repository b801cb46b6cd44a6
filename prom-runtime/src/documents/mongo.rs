//! The document API on MongoDB: every operation runs in the caller's session (inside its
//! transaction), collection `c` is the collection `c` of the bus's database, and the key is
//! `_id`. Documents go through BSON's relaxed extended JSON, so JSON in is JSON out (integers
//! stay integers, whatever their size class).

use super::{Declared, DocFuture, Documents, check_find, check_names, invalid_caused, with_id};
use crate::error::{Cause, Error};
use futures_util::TryStreamExt;
use mongodb::bson::{Bson, Document, doc};
use mongodb::{ClientSession, Database};
use serde_json::Value;

/// The document API over a MongoDB session; its writes join the session's transaction.
pub struct MongoDocuments<'s> {
    db: &'s Database,
    session: &'s mut ClientSession,
    declared: &'s Declared,
}

impl<'s> MongoDocuments<'s> {
    /// Documents of `db`, every operation in `session`; `find` limited to `declared` fields.
    pub fn new(
        db: &'s Database,
        session: &'s mut ClientSession,
        declared: &'s Declared,
    ) -> MongoDocuments<'s> {
        MongoDocuments { db, session, declared }
    }
}

/// A driver error as the runtime reports it; the transactional projector looks at the labels
/// of the original ([`mongo_cause`]) to retry write conflicts.
fn driver(collection: &str, e: mongodb::error::Error) -> Error {
    Error::MongoDocuments { collection: collection.to_owned(), source: Cause::new(e) }
}

/// The driver error inside a document API error, if it is one.
pub fn mongo_cause(e: &Error) -> Option<&mongodb::error::Error> {
    match e {
        Error::MongoDocuments { source, .. } => source.inner().downcast_ref(),
        _ => None,
    }
}

fn to_json(doc: Document) -> Value {
    Bson::Document(doc).into_relaxed_extjson()
}

impl Documents for MongoDocuments<'_> {
    fn get<'a>(&'a mut self, collection: &'a str, key: &'a str) -> DocFuture<'a, Option<Value>> {
        Box::pin(async move {
            check_names(collection, key)?;
            let found = self
                .db
                .collection::<Document>(collection)
                .find_one(doc! { "_id": key })
                .session(&mut *self.session)
                .await
                .map_err(|e| driver(collection, e))?;
            Ok(found.map(to_json))
        })
    }

    fn put<'a>(&'a mut self, collection: &'a str, key: &'a str, doc: Value) -> DocFuture<'a, ()> {
        Box::pin(async move {
            let doc = with_id(collection, key, doc)?;
            let doc = Document::try_from(doc)
                .map_err(|e| invalid_caused(collection, key, format!("cannot be stored as BSON: {e}"), e))?;
            self.db
                .collection::<Document>(collection)
                .replace_one(doc! { "_id": key }, doc)
                .upsert(true)
                .session(&mut *self.session)
                .await
                .map_err(|e| driver(collection, e))?;
            Ok(())
        })
    }

    fn delete<'a>(&'a mut self, collection: &'a str, key: &'a str) -> DocFuture<'a, bool> {
        Box::pin(async move {
            check_names(collection, key)?;
            let deleted = self
                .db
                .collection::<Document>(collection)
                .delete_one(doc! { "_id": key })
                .session(&mut *self.session)
                .await
                .map_err(|e| driver(collection, e))?;
            Ok(deleted.deleted_count > 0)
        })
    }

    fn find<'a>(
        &'a mut self,
        collection: &'a str,
        field: &'a str,
        value: Value,
    ) -> DocFuture<'a, Vec<Value>> {
        Box::pin(async move {
            check_find(self.declared, collection, field, &value)?;
            let value = Bson::try_from(value)
                .map_err(|e| invalid_caused(collection, "", format!("find value: {e}"), e))?;
            let mut filter = Document::new();
            filter.insert(field, value);
            let mut cursor = self
                .db
                .collection::<Document>(collection)
                .find(filter)
                .sort(doc! { "_id": 1 })
                .session(&mut *self.session)
                .await
                .map_err(|e| driver(collection, e))?;
            let docs: Vec<Document> =
                cursor.stream(&mut *self.session).try_collect().await.map_err(|e| driver(collection, e))?;
            Ok(docs.into_iter().map(to_json).collect())
        })
    }

    fn mongo(&mut self) -> Option<(&Database, &mut ClientSession)> {
        Some((self.db, &mut *self.session))
    }
}
