//! Mapping between events and per-event documents: those of the `events` collection (earlier
//! releases) and the form a chunk's events are read in ([`super::chunk`]).
//!
//! Headers and payload are stored as JSON text, like the embedded store does: the log must give
//! back exactly what was published (integers above `i64::MAX`, keys starting with `$` or holding
//! NUL, which BSON cannot represent), and nothing queries inside them. Projections are the
//! queryable view of payloads.

use crate::error::{Error, Result};
use crate::record::{EventRecord, HeadersText, NewEvent, SCHEMA_VERSION};
use mongodb::bson;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One stored event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventDoc {
    /// The event id (BSON binary subtype 4).
    #[serde(rename = "_id")]
    pub id: bson::Uuid,
    /// Topic name.
    pub topic: String,
    /// Offset within its partition.
    pub off: i64,
    /// Partition key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Partition.
    pub part: i64,
    /// Publish time (ms since the epoch).
    pub ts: i64,
    /// Headers as a JSON object.
    pub headers: String,
    /// Payload as JSON.
    pub payload: String,
    /// The causing event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caused_by: Option<bson::Uuid>,
    /// Session / stream id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Idempotency key (absent, not null, so the partial unique index skips it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup: Option<String>,
    /// The `x-schema-version` header as a number (absent without one), so stored versions are
    /// counted from an index instead of parsing every document's headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v: Option<i64>,
}

/// An event ready to insert, with its offset still to be assigned.
#[derive(Clone)]
pub struct Row {
    /// The event's document (offset 0 until assigned).
    pub doc: EventDoc,
    /// Its partition (for the receipt).
    pub partition: u32,
    /// Its id (for the receipt).
    pub id: Uuid,
}

/// A `uuid` as BSON.
pub fn bson_uuid(id: Uuid) -> bson::Uuid {
    bson::Uuid::from_bytes(id.into_bytes())
}

/// Serializes events (before the transaction, so retries do not redo it).
pub fn rows(events: &[NewEvent]) -> Result<Vec<Row>> {
    events
        .iter()
        .map(|event| {
            Ok(Row {
                doc: EventDoc {
                    id: bson_uuid(event.id),
                    topic: event.topic.clone(),
                    off: 0,
                    key: event.key.clone(),
                    part: i64::from(event.partition),
                    ts: event.ts,
                    headers: json(event, &event.headers)?,
                    payload: json(event, &event.payload)?,
                    caused_by: event.caused_by.map(bson_uuid),
                    sid: event.sid.clone(),
                    dedup: event.dedup.clone(),
                    v: event.headers.get(SCHEMA_VERSION).and_then(|v| v.parse().ok()),
                },
                partition: event.partition,
                id: event.id,
            })
        })
        .collect()
}

fn json<T: Serialize>(event: &NewEvent, value: &T) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|e| Error::serialize(format!("event {} for `{}`", event.id, event.topic), e))
}

impl EventDoc {
    /// The event this document stores (`texts` parses a headers text once for a run of
    /// documents that repeat it).
    pub fn into_record(self, texts: &mut HeadersText) -> std::result::Result<EventRecord, String> {
        let corrupt = |what: &str, e: &dyn std::fmt::Display| {
            format!("event {} at offset {} of `{}` has a corrupt {what}: {e}", self.id, self.off, self.topic)
        };
        let headers = texts.parse(&self.headers).map_err(|e| corrupt("headers", &e))?;
        let payload = serde_json::from_str(&self.payload).map_err(|e| corrupt("payload", &e))?;
        let partition = u32::try_from(self.part).map_err(|e| corrupt("partition", &e))?;
        Ok(EventRecord {
            id: Uuid::from_bytes(self.id.bytes()),
            topic: self.topic,
            key: self.key,
            partition,
            ts: self.ts,
            headers,
            payload,
            caused_by: self.caused_by.map(|id| Uuid::from_bytes(id.bytes())),
            sid: self.sid,
            offset: self.off,
        })
    }
}
