//! Events as stored and delivered, and events about to be published.

mod headers;
mod payload;

pub use headers::Headers;
pub(crate) use headers::HeadersText;
pub use payload::Payload;
pub(crate) use payload::SchemaStamp;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Header stamped on publish: the payload's schema version.
pub const SCHEMA_VERSION: &str = "x-schema-version";
/// Header stamped on read when a payload was upcast: the version it was stored at.
pub const UPCASTED_FROM: &str = "x-upcasted-from";
/// Header on dead letters: why the event failed.
pub const DLQ_ERROR: &str = "x-dlq-error";
/// Header on replayed events: the id of the dead letter they came from.
pub const REPLAY_OF: &str = "x-replay-of";
/// Header the store sets on an event it cannot read back (a row changed behind its back): why.
/// Such a record carries the stored payload text as a JSON string, so nothing is lost.
pub const CORRUPT: &str = "x-prom-corrupt";
/// Header on a corrupt record whose stored headers are not JSON: their raw text.
pub const CORRUPT_HEADERS: &str = "x-prom-corrupt-headers";

/// A stored event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Time-ordered unique id (UUIDv7).
    pub id: Uuid,
    /// Topic name.
    pub topic: String,
    /// Partition key (the value at the topic's `key` pointer), if any.
    pub key: Option<String>,
    /// Partition the key hashes to.
    pub partition: u32,
    /// Publish time, milliseconds since the Unix epoch.
    pub ts: i64,
    /// Headers.
    pub headers: Headers,
    /// The payload, shared by every copy of this record (read it as a `serde_json::Value`).
    pub payload: Payload,
    /// The event that caused this one, if any.
    pub caused_by: Option<Uuid>,
    /// Session / stream id the producer attached, if any.
    pub sid: Option<String>,
    /// Position in its partition: starts at 1 and increases strictly per partition (per topic, in
    /// commit order, on an [`crate::EventBus::ordered`] store).
    pub offset: i64,
}

impl EventRecord {
    /// The payload's schema version from its header, if present and numeric.
    pub fn schema_version(&self) -> Option<u32> {
        self.headers.get(SCHEMA_VERSION).and_then(|v| v.parse().ok())
    }

    /// Why the store could not read this event back, when it is corrupt (see [`CORRUPT`]).
    pub fn corruption(&self) -> Option<&str> {
        self.headers.get(CORRUPT).map(String::as_str)
    }

    /// The error that reports this event as corrupt, naming its topic, partition, offset and
    /// id; `None` for a sound event.
    pub fn corrupt_error(&self) -> Option<crate::error::Error> {
        self.corruption().map(|reason| crate::error::Error::Corrupt {
            id: self.id,
            topic: self.topic.clone(),
            partition: self.partition,
            offset: self.offset,
            reason: reason.to_string(),
        })
    }
}

/// An event to publish; the store assigns its offset.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// Id (set at construction so the caller can chain `caused_by`).
    pub id: Uuid,
    /// Topic name.
    pub topic: String,
    /// Partition key.
    pub key: Option<String>,
    /// Partition.
    pub partition: u32,
    /// Publish time, ms since the epoch.
    pub ts: i64,
    /// Headers.
    pub headers: Headers,
    /// The payload; the stored record shares it instead of copying it.
    pub payload: Payload,
    /// The causing event.
    pub caused_by: Option<Uuid>,
    /// Session / stream id.
    pub sid: Option<String>,
    /// Idempotency key: a second event with the same key on the same topic is not stored.
    pub dedup: Option<String>,
}

impl NewEvent {
    /// A new event on partition 0 with a fresh id and the current time.
    pub fn new(topic: impl Into<String>, payload: impl Into<Payload>) -> NewEvent {
        let id = new_id();
        NewEvent {
            id,
            topic: topic.into(),
            key: None,
            partition: 0,
            // The id was made from the clock just now: its millisecond is the publish time, so
            // the clock is read once per event, not twice.
            ts: id_ms(&id).unwrap_or_else(now_ms),
            headers: Headers::new(),
            payload: payload.into(),
            caused_by: None,
            sid: None,
            dedup: None,
        }
    }

    /// Sets the key and partition.
    pub fn keyed(mut self, key: impl Into<String>, partition: u32) -> NewEvent {
        self.key = Some(key.into());
        self.partition = partition;
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> NewEvent {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// Sets the idempotency key.
    pub fn dedup(mut self, key: impl Into<String>) -> NewEvent {
        self.dedup = Some(key.into());
        self
    }

    /// The stored record this event becomes at `offset`.
    pub fn into_record(self, offset: i64) -> EventRecord {
        EventRecord {
            id: self.id,
            topic: self.topic,
            key: self.key,
            partition: self.partition,
            ts: self.ts,
            headers: self.headers,
            payload: self.payload,
            caused_by: self.caused_by,
            sid: self.sid,
            offset,
        }
    }
}

/// What a publish did with one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    /// The stored event's id (the earlier event's id for a duplicate).
    pub id: Uuid,
    /// Its offset.
    pub offset: i64,
    /// Its partition.
    pub partition: u32,
    /// Whether an event with the same dedup key was already stored (nothing was written).
    pub duplicate: bool,
}

/// A fresh time-ordered id.
pub fn new_id() -> Uuid {
    // The uuid crate's v7 context keeps ids monotonic within a process, even within one ms.
    Uuid::now_v7()
}

/// The millisecond a time-ordered (v7) id was made at.
fn id_ms(id: &Uuid) -> Option<i64> {
    let (secs, nanos) = id.get_timestamp()?.to_unix();
    i64::try_from(secs).ok()?.checked_mul(1000)?.checked_add(i64::from(nanos / 1_000_000))
}

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Formats a ms timestamp as RFC 3339 (UTC, milliseconds).
pub fn format_ts(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map_or_else(|| ms.to_string(), |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// Parses an RFC 3339 timestamp or a number of ms since the epoch.
pub fn parse_ts(text: &str) -> Result<i64, String> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    chrono::DateTime::parse_from_rfc3339(text).map(|t| t.timestamp_millis()).map_err(|e| {
        format!("`{text}` is not a timestamp ({e}); write RFC 3339 like 2026-11-24T13:00:00Z or ms since the epoch")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_event_is_stamped_with_the_millisecond_its_id_was_made() {
        let before = now_ms();
        let event = NewEvent::new("t", serde_json::json!({}));
        let after = now_ms();
        assert!((before..=after).contains(&event.ts), "{before} <= {} <= {after}", event.ts);
        assert_eq!(id_ms(&event.id), Some(event.ts));
        assert_eq!(id_ms(&Uuid::nil()), None, "an id without a time gives none");
    }
}
