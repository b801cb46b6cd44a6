//! Dead letters: what a consumer writes to `dlq.<topic>` when it gives up on an event, and
//! replay, which republishes dead letters to their topic.

use crate::bus::{EventBus, TopicPosition};
use crate::error::{Error, JsonError, Result};
use crate::publish::{self, Producer, PublishOptions};
use crate::record::{DLQ_ERROR, EventRecord, NewEvent, REPLAY_OF, format_ts, now_ms};
use crate::registry::is_runtime_header;
use crate::trace::TraceContext;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashSet;
use std::sync::Arc;
use uuid::Uuid;

/// The payload of a dead letter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The event as stored (at its stored version, not upcast).
    pub original: EventRecord,
    /// Why it failed (the last error).
    pub error: String,
    /// Handler attempts made (0 when it could not even be decoded).
    pub attempts: u32,
    /// When it was dead-lettered (RFC 3339).
    pub failed_at: String,
    /// The consumer group that gave up.
    pub group: String,
}

/// The event that dead-letters `original` for `group`.
///
/// It keeps the original's key and partition, so replay sees one key's failures in order, and
/// its dedup key makes a redelivery after a crash (between the dead letter and the cursor
/// commit) not dead-letter the event twice.
pub fn dead_letter(original: &EventRecord, group: &str, error: &str, attempts: u32) -> NewEvent {
    let letter = DeadLetter {
        original: original.clone(),
        error: error.to_string(),
        attempts,
        failed_at: format_ts(now_ms()),
        group: group.to_string(),
    };
    // Serializing plain strings, numbers and JSON values cannot fail (no non-string map keys).
    let payload = serde_json::to_value(&letter).unwrap_or(Value::Null);
    // A corrupt row may have lost its id (it reads as nil); its offset still tells it apart.
    let dedup = if original.id.is_nil() {
        format!("dlq:{group}:{}@{}", original.topic, original.offset)
    } else {
        format!("dlq:{group}:{}", original.id)
    };
    let mut event = NewEvent::new(format!("{}{}", crate::registry::DLQ_PREFIX, original.topic), payload)
        .header(DLQ_ERROR, first_line(error))
        .dedup(dedup);
    event.key = original.key.clone();
    event.partition = original.partition;
    event.caused_by = Some(original.id);
    // The dead letter continues the trace: the `prom.dead_letter` span's when the runner writes
    // it, else the original's (the original's own headers stay inside the payload either way).
    if let Some(trace) = TraceContext::current().or_else(|| TraceContext::from_headers(&original.headers)) {
        trace.inject(&mut event.headers);
    }
    event
}

fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    line.chars().take(200).collect()
}

/// A stored dead letter.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The dead-letter event itself.
    pub event: EventRecord,
    /// Its decoded payload.
    pub letter: DeadLetter,
    /// Whether it was already replayed.
    pub replayed: bool,
}

pub(crate) fn replay_key(dlq_id: Uuid) -> String {
    format!("replay:{dlq_id}")
}

/// Dead letters of `topic`, oldest first, at most `limit`.
pub async fn list<B: EventBus>(producer: &Producer<B>, topic: &str, limit: usize) -> Result<Vec<Entry>> {
    let schema = producer.registry().topic(topic)?;
    let events = producer.bus().read_topic(&schema.dlq_name(), &TopicPosition::start(), limit).await?;
    let keys: Vec<String> = events.iter().map(|e| replay_key(e.id)).collect();
    let replayed: HashSet<String> = producer.bus().existing_dedup(topic, keys).await?.into_iter().collect();
    events
        .into_iter()
        .map(|event| {
            let letter = parse(&event)?;
            let replayed = replayed.contains(&replay_key(event.id));
            Ok(Entry { event, letter, replayed })
        })
        .collect()
}

fn parse(event: &EventRecord) -> Result<DeadLetter> {
    if let Some(corrupt) = event.corrupt_error() {
        return Err(corrupt);
    }
    DeadLetter::deserialize(&*event.payload).map_err(|e| Error::NotDeadLetter {
        id: event.id,
        topic: event.topic.clone(),
        source: JsonError::new(e),
    })
}

/// A payload transformation applied before republishing.
pub type Transform = Arc<dyn Fn(Value) -> Result<Value, String> + Send + Sync>;

/// What to replay.
#[derive(Clone, Default)]
pub struct ReplayOptions {
    /// Replay at most this many dead letters (already replayed ones do not count).
    pub limit: usize,
    /// Only dead letters written at or after this time (ms since the epoch).
    pub since: Option<i64>,
    /// Only dead letters written before this time (ms since the epoch).
    pub until: Option<i64>,
    /// Applied to the payload after upcasting, before validation.
    pub transform: Option<Transform>,
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplayReport {
    /// `(dead letter id, new event id)` of each republished event, in order.
    pub replayed: Vec<(Uuid, Uuid)>,
    /// Dead letters in range that were replayed before (skipped).
    pub already_replayed: usize,
    /// Dead letters that failed to upcast, transform or validate, with the error (e.g.
    /// [`Error::ReplayTransform`], [`Error::Invalid`]).
    pub failed: Vec<(Uuid, Error)>,
    /// Dead letters skipped because an earlier one of the same key failed (keeps key order).
    pub held_back: Vec<Uuid>,
}

/// Pages read from the DLQ at a time.
const PAGE: usize = 500;

/// Republishes dead letters of `topic` to it: upcast to the latest version, transformed,
/// validated, in per-key order, each at most once ever, all in one atomic batch.
pub async fn replay<B: EventBus>(
    producer: &Producer<B>,
    topic: &str,
    opts: &ReplayOptions,
) -> Result<ReplayReport> {
    let registry = producer.registry();
    let schema = crate::publish::publishable(registry, topic, "a DLQ replay")?;
    let mut report = ReplayReport::default();
    let mut events = Vec::new();
    let mut failed_keys: HashSet<Option<String>> = HashSet::new();
    let mut after = TopicPosition::start();
    let ordered = producer.bus().ordered();
    'pages: loop {
        let page = producer.bus().read_topic(&schema.dlq_name(), &after, PAGE).await?;
        if page.is_empty() {
            break;
        }
        for event in &page {
            after.advance(event, ordered);
        }
        let in_range: Vec<EventRecord> = page
            .into_iter()
            .filter(|e| opts.since.is_none_or(|s| e.ts >= s) && opts.until.is_none_or(|u| e.ts < u))
            .collect();
        let keys = in_range.iter().map(|e| replay_key(e.id)).collect();
        let done: HashSet<String> = producer.bus().existing_dedup(topic, keys).await?.into_iter().collect();
        for entry in in_range {
            if report.replayed.len() >= opts.limit {
                break 'pages;
            }
            if done.contains(&replay_key(entry.id)) {
                report.already_replayed += 1;
                continue;
            }
            if failed_keys.contains(&entry.key) {
                report.held_back.push(entry.id);
                continue;
            }
            match rebuild(producer, topic, &entry, opts) {
                Ok(mut rebuilt) => {
                    for event in &mut rebuilt {
                        event.headers.insert(REPLAY_OF.to_string(), entry.id.to_string());
                    }
                    if let Some(main) = rebuilt.first() {
                        report.replayed.push((entry.id, main.id));
                    }
                    events.extend(rebuilt);
                }
                Err(e) => {
                    failed_keys.insert(entry.key.clone());
                    report.failed.push((entry.id, e));
                }
            }
        }
    }
    if !events.is_empty() {
        producer.bus().publish(events).await?;
    }
    Ok(report)
}

fn rebuild<B: EventBus>(
    producer: &Producer<B>,
    topic: &str,
    entry: &EventRecord,
    opts: &ReplayOptions,
) -> Result<Vec<NewEvent>> {
    let registry = producer.registry();
    let schema = registry.topic(topic)?;
    let letter = parse(entry)?;
    let original = letter.original;
    let version = original.schema_version().ok_or_else(|| Error::Version {
        id: original.id,
        topic: topic.to_string(),
        reason: "the dead-lettered event has no usable x-schema-version header".into(),
    })?;
    let mut payload = registry.upcast(schema, version, original.payload.into_value(), original.id)?;
    if let Some(transform) = &opts.transform {
        payload = transform(payload).map_err(|reason| Error::ReplayTransform { id: original.id, reason })?;
    }
    // The replayed event is the original again: it keeps the original's trace, so its
    // handler's span joins the trace the first attempts were part of.
    let trace = TraceContext::from_headers(&original.headers);
    let headers = original
        .headers
        .into_iter()
        .filter(|(name, _)| !is_runtime_header(name) && schema.headers.contains(name))
        .collect();
    let publish_opts = PublishOptions {
        headers,
        caused_by: Some(original.id),
        sid: original.sid,
        version: None,
        dedup: Some(replay_key(entry.id)),
        trace,
    };
    publish::prepare(registry, topic, payload, &publish_opts)
}
