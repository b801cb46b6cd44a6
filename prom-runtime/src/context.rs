//! What a typed handler learns about the event besides its payload: where it was stored, its
//! headers, and which attempt this is.

use crate::record::{EventRecord, Headers, SCHEMA_VERSION, UPCASTED_FROM};
use uuid::Uuid;

/// The event a typed handler is called for, without its payload (which the handler receives
/// decoded), and the attempt number.
#[derive(Debug, Clone, PartialEq)]
pub struct Context {
    id: Uuid,
    topic: String,
    key: Option<String>,
    partition: u32,
    offset: i64,
    ts: i64,
    headers: Headers,
    caused_by: Option<Uuid>,
    sid: Option<String>,
    attempt: u32,
}

impl Context {
    /// The context of `record` on its `attempt`-th attempt (1 for the first).
    pub fn new(record: &EventRecord, attempt: u32) -> Context {
        Context {
            id: record.id,
            topic: record.topic.clone(),
            key: record.key.clone(),
            partition: record.partition,
            offset: record.offset,
            ts: record.ts,
            headers: record.headers.clone(),
            caused_by: record.caused_by,
            sid: record.sid.clone(),
            attempt,
        }
    }

    /// The event's id (UUIDv7).
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// The topic it was read from.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Its partition key, if the topic declares one.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// The partition it is stored in.
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// Its position in the topic.
    pub fn offset(&self) -> i64 {
        self.offset
    }

    /// Publish time, milliseconds since the Unix epoch.
    pub fn ts(&self) -> i64 {
        self.ts
    }

    /// All headers (`x-schema-version`, `x-upcasted-from`, the topic's custom headers).
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// One header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// The event that caused this one, if the producer said.
    pub fn caused_by(&self) -> Option<Uuid> {
        self.caused_by
    }

    /// The session / stream id the producer attached, if any.
    pub fn sid(&self) -> Option<&str> {
        self.sid.as_deref()
    }

    /// Which attempt this is: 1, then 2, 3, ... up to the consumer's `max_attempts`. It starts
    /// over at 1 when an event without a DLQ is redelivered.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The schema version the payload was stored at, when it was upcast to the latest one.
    pub fn upcast_from(&self) -> Option<u32> {
        self.header(UPCASTED_FROM)?.parse().ok()
    }

    /// The schema version of the payload the handler receives.
    pub fn schema_version(&self) -> Option<u32> {
        self.header(SCHEMA_VERSION)?.parse().ok()
    }
}
