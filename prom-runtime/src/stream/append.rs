//! The validated stream API on [`Producer`]: payloads are checked like publishes, belong to
//! the aggregate and name the stream; reads come back upcast to the latest versions.

use super::{Appended, ExpectedVersion, StreamAppend, StreamId, StreamRecord};
use crate::bus::EventBus;
use crate::error::{Error, Result};
use crate::publish::{Producer, PublishOptions, prepare};
use crate::registry::Registry;
use serde_json::Value;

impl<B: EventBus> Producer<B> {
    /// Appends `events` (topic, payload) to `stream` atomically if its version is `expected`.
    ///
    /// Each payload is validated against its topic's latest schema, stamped, keyed and
    /// dual-written exactly like [`Producer::publish`]; its topic must be one of the
    /// aggregate's events and the value at the aggregate's id pointer must be `stream.id`.
    /// The aggregate's `tamper_evident` decides whether the events are chained. Fails with
    /// [`Error::StreamConflict`] (nothing stored) when another writer appended first.
    pub async fn append(
        &self,
        stream: StreamId,
        expected: ExpectedVersion,
        events: Vec<(String, Value)>,
    ) -> Result<Appended> {
        let append = stream_append(self.registry(), stream, expected, events)?;
        self.bus().append(append).await
    }

    /// Up to `limit` events of `stream` after `after_version`, each upcast to its topic's
    /// latest version and validated (as consumers see them).
    pub async fn read_stream(
        &self,
        stream: &StreamId,
        after_version: u64,
        limit: usize,
    ) -> Result<Vec<StreamRecord>> {
        let records = self.bus().read_stream(stream, after_version, limit).await?;
        records.into_iter().map(|r| self.registry().decode_stream(r)).collect()
    }
}

impl Registry {
    /// A stored stream event as handlers see it: upcast to the latest version and validated
    /// ([`Registry::decode`]); version and link stay as stored.
    pub fn decode_stream(&self, record: StreamRecord) -> Result<StreamRecord> {
        Ok(StreamRecord { record: self.decode(record.record)?, ..record })
    }
}

/// The checked, prepared append of `events` to `stream`.
pub fn stream_append(
    registry: &Registry,
    stream: StreamId,
    expected: ExpectedVersion,
    events: Vec<(String, Value)>,
) -> Result<StreamAppend> {
    let aggregate = registry.aggregate(&stream.aggregate)?;
    let mut append = StreamAppend::new(stream, expected, Vec::with_capacity(events.len()));
    append.tamper_evident = aggregate.tamper_evident;
    for (topic, payload) in events {
        if !aggregate.events.contains(&topic) {
            return Err(Error::NotAnAggregateEvent {
                aggregate: aggregate.name.clone(),
                topic,
                events: aggregate.events.clone(),
            });
        }
        let mut prepared = prepare(registry, &topic, payload, &PublishOptions::default())?.into_iter();
        let Some(main) = prepared.next() else { return Err(Error::Closed) };
        let found = main.payload.pointer(&aggregate.id).and_then(id_text);
        if found.as_deref() != Some(append.stream.id.as_str()) {
            return Err(Error::StreamIdMismatch {
                stream: append.stream.to_string(),
                topic,
                pointer: aggregate.id.clone(),
                found,
            });
        }
        append.events.push(main);
        append.copies.extend(prepared);
    }
    append.check()?;
    Ok(append)
}

/// A stream id as a payload carries it: a string as it is, an integer in decimal.
pub fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}
