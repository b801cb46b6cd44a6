//! What a typed handler learns about the event besides its payload: where it was stored, its
//! headers, and which attempt this is.

use crate::record::{EventRecord, Headers, SCHEMA_VERSION, UPCASTED_FROM};
use std::sync::Arc;
use uuid::Uuid;

/// The event a typed handler is called for, without its payload (which the handler receives
/// decoded), and the attempt number. It shares the runner's record instead of copying it.
#[derive(Debug, Clone, PartialEq)]
pub struct Context {
    record: Arc<EventRecord>,
    attempt: u32,
}

impl Context {
    /// The context of `record` on its `attempt`-th attempt (1 for the first).
    pub fn new(record: &EventRecord, attempt: u32) -> Context {
        Context::shared(Arc::new(record.clone()), attempt)
    }

    /// [`Context::new`] of a shared record, without a copy.
    pub fn shared(record: Arc<EventRecord>, attempt: u32) -> Context {
        Context { record, attempt }
    }

    /// The event's id (UUIDv7).
    pub fn id(&self) -> Uuid {
        self.record.id
    }

    /// The topic it was read from.
    pub fn topic(&self) -> &str {
        &self.record.topic
    }

    /// Its partition key, if the topic declares one.
    pub fn key(&self) -> Option<&str> {
        self.record.key.as_deref()
    }

    /// The partition it is stored in.
    pub fn partition(&self) -> u32 {
        self.record.partition
    }

    /// Its position in the topic.
    pub fn offset(&self) -> i64 {
        self.record.offset
    }

    /// Publish time, milliseconds since the Unix epoch.
    pub fn ts(&self) -> i64 {
        self.record.ts
    }

    /// All headers (`x-schema-version`, `x-upcasted-from`, the topic's custom headers).
    pub fn headers(&self) -> &Headers {
        &self.record.headers
    }

    /// One header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.record.headers.get(name).map(String::as_str)
    }

    /// The event that caused this one, if the producer said.
    pub fn caused_by(&self) -> Option<Uuid> {
        self.record.caused_by
    }

    /// The session / stream id the producer attached, if any.
    pub fn sid(&self) -> Option<&str> {
        self.record.sid.as_deref()
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
