//! One change-stream event as the event published for it: payload, runtime headers and dedup
//! key (pure; no I/O).

use mongodb::bson::{Bson, Document, Timestamp};
use mongodb::change_stream::event::{ChangeStreamEvent, OperationType, ResumeToken};
use serde_json::{Value, json};

/// Runtime header stamped on changefeed events: the operation (`insert`, `update`, ...).
pub const CHANGE_OPERATION: &str = "x-change-operation";
/// Runtime header stamped on changefeed events: the change's cluster time (`seconds.increment`).
pub const CLUSTER_TIME: &str = "x-cluster-time";

pub use crate::system::DEFAULT_OPERATIONS;

/// An operation type as the spec and the payload spell it.
pub fn operation_name(op: &OperationType) -> String {
    // The driver serializes operation types as the server spells them (`insert`, `dropDatabase`).
    match mongodb::bson::to_bson(op) {
        Ok(Bson::String(name)) => name,
        _ => format!("{op:?}"),
    }
}

/// A document id as the event key: strings as they are, ObjectIds as hex, others as JSON.
pub fn key_text(id: &Bson) -> String {
    match id {
        Bson::String(s) => s.clone(),
        Bson::ObjectId(oid) => oid.to_hex(),
        other => other.clone().into_relaxed_extjson().to_string(),
    }
}

/// `{operation, key, document}`: the document is the post-image (null for deletes and for
/// updates in `default` mode).
pub fn payload(change: &ChangeStreamEvent<Document>) -> Result<Value, String> {
    let id =
        change.document_key.as_ref().and_then(|k| k.get("_id")).ok_or("the change has no documentKey._id")?;
    let document = match &change.full_document {
        Some(doc) => Bson::Document(doc.clone()).into_relaxed_extjson(),
        None => Value::Null,
    };
    Ok(json!({
        "operation": operation_name(&change.operation_type),
        "key": key_text(id),
        "document": document,
    }))
}

/// A cluster time as `seconds.increment`.
pub fn cluster_time_text(time: Timestamp) -> String {
    format!("{}.{}", time.time, time.increment)
}

/// The resume token's opaque string (`_data`), used as the publish dedup key.
pub fn token_text(token: &ResumeToken) -> Result<String, String> {
    let bson = mongodb::bson::to_bson(token).map_err(|e| format!("unreadable resume token: {e}"))?;
    match bson {
        Bson::Document(doc) => match doc.get_str("_data") {
            Ok(data) => Ok(data.to_string()),
            Err(_) => Ok(Bson::Document(doc).into_relaxed_extjson().to_string()),
        },
        other => Ok(other.into_relaxed_extjson().to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::oid::ObjectId;

    #[test]
    fn keys_are_text() {
        assert_eq!(key_text(&Bson::String("p1".into())), "p1");
        let oid = ObjectId::new();
        assert_eq!(key_text(&Bson::ObjectId(oid)), oid.to_hex());
        assert_eq!(key_text(&Bson::Int32(7)), "7");
        assert_eq!(cluster_time_text(Timestamp { time: 5, increment: 2 }), "5.2");
    }
}
