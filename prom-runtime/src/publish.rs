//! The publish middleware: validate against the schema, stamp the version, compute key and
//! partition, and dual-write, all in one atomic batch.

use crate::bus::EventBus;
use crate::error::{Derived, Error, Result};
use crate::metrics::PublishCounters;
use crate::partition::partition_for;
use crate::record::{Headers, NewEvent, Payload, Receipt, SCHEMA_VERSION};
use crate::registry::{Registry, Route, TopicSchema, is_runtime_header};
use crate::typed::{Event, Topic, Versioned};
use serde_json::Value;
use std::sync::Arc;
use uuid::Uuid;

/// Options for one publish.
#[derive(Debug, Clone, Default)]
pub struct PublishOptions {
    /// Custom headers (declared in the topic's `headers:`).
    pub headers: Headers,
    /// The event that caused this one.
    pub caused_by: Option<Uuid>,
    /// Session / stream id.
    pub sid: Option<String>,
    /// Publish as an older version (a producer not yet migrated); default the latest.
    pub version: Option<u32>,
    /// Idempotency key: republishing with the same key stores nothing new.
    pub dedup: Option<String>,
    /// The trace the event continues (stored as its `traceparent`); by default the current
    /// handler's ([`crate::trace::TraceContext::current`]), else (feature `otel`) the current
    /// OpenTelemetry-exported `tracing` span's, else a new trace only when
    /// [`crate::trace::set_new_traces`] is on, else none.
    pub trace: Option<crate::trace::TraceContext>,
}

/// Publishes validated, stamped events on any bus.
#[derive(Debug, Clone)]
pub struct Producer<B> {
    bus: B,
    registry: Arc<Registry>,
    published: Arc<PublishCounters>,
}

impl<B: EventBus> Producer<B> {
    /// A producer for the registry's topics.
    pub fn new(bus: B, registry: Arc<Registry>) -> Producer<B> {
        let published = Arc::new(PublishCounters::new(&registry));
        Producer { bus, registry, published }
    }

    /// The bus.
    pub fn bus(&self) -> &B {
        &self.bus
    }

    /// The registry.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Publishes one payload; returns the receipt of the event on `topic`.
    pub async fn publish(&self, topic: &str, payload: Value, opts: PublishOptions) -> Result<Receipt> {
        let events = prepare(&self.registry, topic, payload, &opts)?;
        let receipts = self.bus.publish(events).await?;
        let receipt = receipts.into_iter().next().ok_or(Error::Closed)?;
        if !receipt.duplicate {
            self.published.published(topic);
        }
        Ok(receipt)
    }

    /// Publishes a typed payload at its type's topic and version ([`Event::TOPIC`],
    /// [`Event::VERSION`]): a `#[derive(Event)]` struct or a generated version struct
    /// (`heartbeat_received::V1`). It is validated against that version's schema and stored at
    /// that version; readers get it upcast to the latest. This covers publishing an older
    /// version, so topics have no separate `publish_version`.
    ///
    /// Fails with [`Error::UnknownVersion`] when the spec has no such version,
    /// [`Error::Invalid`] (JSON pointers) when the payload breaks the schema, and
    /// [`Error::Serialize`] when the value cannot be written as JSON.
    pub async fn publish_event<E: Event>(&self, event: &E) -> Result<Receipt> {
        self.publish_event_with(event, PublishOptions::default()).await
    }

    /// [`Producer::publish_event`] with headers, a causation id, a session id or a dedup key.
    /// The version is always `E::VERSION`; `options.version`, if set, must agree.
    pub async fn publish_event_with<E: Event>(&self, event: &E, options: PublishOptions) -> Result<Receipt> {
        let (value, options) = event_payload(event, options)?;
        self.publish(E::TOPIC, value, options).await
    }

    /// Publishes several payloads atomically; returns the receipts of the events on their
    /// topics (dual-write copies are written but not returned).
    pub async fn publish_all(&self, items: Vec<(String, Value, PublishOptions)>) -> Result<Vec<Receipt>> {
        let mut events = Vec::with_capacity(items.len());
        let mut primary = Vec::with_capacity(items.len());
        let mut topics = Vec::with_capacity(items.len());
        // One batch, one trace: a new trace (when switched on) is shared by all its events.
        let ambient = crate::trace::for_publish(None);
        for (topic, payload, mut opts) in items {
            if opts.trace.is_none() {
                opts.trace.clone_from(&ambient);
            }
            primary.push(events.len());
            prepare_into(&self.registry, &topic, payload, &opts, &mut events)?;
            topics.push(topic);
        }
        let receipts = self.bus.publish(events).await?;
        let receipts: Vec<Receipt> = primary.into_iter().filter_map(|i| receipts.get(i).copied()).collect();
        for (topic, receipt) in topics.iter().zip(&receipts) {
            if !receipt.duplicate {
                self.published.published(topic);
            }
        }
        Ok(receipts)
    }
}

/// `event` as JSON, with the publish options pinned to its version.
pub(crate) fn event_payload<E: Event>(
    event: &E,
    mut options: PublishOptions,
) -> Result<(Value, PublishOptions)> {
    if let Some(asked) = options.version
        && asked != E::VERSION
    {
        return Err(Error::VersionMismatch { topic: E::TOPIC.to_owned(), version: E::VERSION, asked });
    }
    options.version = Some(E::VERSION);
    let value = serde_json::to_value(event)
        .map_err(|e| Error::serialize(format!("a `{}` v{} payload", E::TOPIC, E::VERSION), e))?;
    Ok((value, options))
}

/// The events one publish writes: the event itself and, with dual-write, its copy on
/// `<topic>.v<latest>` (both go into the same durable batch).
pub fn prepare(
    registry: &Registry,
    topic: &str,
    payload: Value,
    opts: &PublishOptions,
) -> Result<Vec<NewEvent>> {
    let mut events = Vec::with_capacity(2);
    prepare_into(registry, topic, payload, opts, &mut events)?;
    Ok(events)
}

/// [`prepare`], adding the events to `events` (a batch's one vector, not one per payload).
pub(crate) fn prepare_into(
    registry: &Registry,
    topic: &str,
    mut payload: Value,
    opts: &PublishOptions,
    events: &mut Vec<NewEvent>,
) -> Result<()> {
    let schema = publishable(registry, topic, "a publish")?;
    let latest = schema.latest();
    let version = opts.version.unwrap_or(latest);
    let compiled = schema.schema(version).ok_or_else(|| Error::UnknownVersion {
        topic: topic.to_owned(),
        version,
        latest,
    })?;
    // Canonical before the key is taken: `1.0` and `1` must land on one key and partition.
    compiled.check_canonical(topic, version, &mut payload)?;
    check_headers(schema, &opts.headers)?;
    let key = schema.key_of(&payload);
    let partition = partition_for(key.as_deref(), schema.partitions);
    // Without custom headers, the version's shared `x-schema-version` list: no map per event.
    let mut headers = match schema.version_headers(version) {
        Some(stamped) if opts.headers.is_empty() => stamped.clone(),
        _ => {
            let mut headers = opts.headers.clone();
            headers.insert(SCHEMA_VERSION.to_string(), version.to_string());
            headers
        }
    };
    if let Some(trace) = crate::trace::for_publish(opts.trace.as_ref()) {
        trace.inject(&mut headers);
    }
    // Stamped with the schema it passed, so an in-process reader with the same schema does not
    // validate it again; the dual-write copy shares the same value.
    let stamp = schema.stamp(version).ok_or(Error::Closed)?;
    let mut main = NewEvent::new(topic, Payload::checked(payload, stamp));
    main.key = key;
    main.partition = partition;
    main.caused_by = opts.caused_by;
    main.sid = opts.sid.clone();
    main.dedup = opts.dedup.clone();
    if schema.dual_write {
        let id = crate::record::new_id();
        let payload = if version < latest {
            let upcast = registry.upcast(schema, version, main.payload.value().clone(), main.id)?;
            let latest_schema = schema.schema(latest).ok_or(Error::Closed)?;
            latest_schema.check(topic, latest, &upcast)?;
            Payload::checked(upcast, schema.stamp(latest).ok_or(Error::Closed)?)
        } else {
            main.payload.clone()
        };
        let mut copy_headers = headers.clone();
        copy_headers.insert(SCHEMA_VERSION.to_string(), latest.to_string());
        main.headers = headers;
        let copy = NewEvent {
            id,
            topic: schema.versioned_name(latest),
            payload,
            headers: copy_headers,
            ..main.clone()
        };
        events.push(main);
        events.push(copy);
    } else {
        main.headers = headers;
        events.push(main);
    }
    Ok(())
}

fn check_headers(schema: &TopicSchema, headers: &Headers) -> Result<()> {
    for name in headers.keys() {
        if is_runtime_header(name) {
            return Err(Error::ReservedHeader { header: name.clone() });
        }
        if !schema.headers.iter().any(|h| h == name) {
            return Err(Error::UndeclaredHeader {
                header: name.clone(),
                topic: schema.name.clone(),
                declared: schema.headers.clone(),
            });
        }
    }
    Ok(())
}

impl<V: Versioned> Topic<V> {
    /// Publishes a latest-version payload: validated, stamped, partitioned and dual-written as
    /// the spec declares. To publish an older version, pass its struct to
    /// [`crate::Producer::publish_event`] (`producer.publish_event(&heartbeat_received::V1 { .. })`).
    pub async fn publish<B: EventBus>(&self, producer: &Producer<B>, payload: &V::Latest) -> Result<Receipt> {
        self.publish_with(producer, payload, PublishOptions::default()).await
    }

    /// [`Topic::publish`] with headers, a causation id or a session id.
    pub async fn publish_with<B: EventBus>(
        &self,
        producer: &Producer<B>,
        payload: &V::Latest,
        options: PublishOptions,
    ) -> Result<Receipt> {
        // `V::Latest: Event`, so this is the typed publish at the latest version.
        producer.publish_event_with(payload, options).await
    }
}

impl<V: Versioned> Topic<V> {
    /// Publishes a latest-version payload inside an open store transaction (the embedded
    /// store's `producer.transaction()`, or a MongoDB session's `producer.in_session(..)`):
    /// stored only if the transaction commits. See [`crate::outbox`].
    pub async fn publish_in<T: crate::outbox::Outbox>(
        &self,
        tx: &mut T,
        payload: &V::Latest,
    ) -> Result<Receipt> {
        tx.publish_event(payload).await
    }
}

/// The error for a publish (or changefeed, or replay: `by`) to `topic`, which derives from `declared`.
/// The declared topic `topic` names, or why `by` may not publish to it: a dual-write copy or a
/// dead-letter topic is written by the runtime only.
pub(crate) fn publishable<'r>(registry: &'r Registry, topic: &str, by: &str) -> Result<&'r TopicSchema> {
    let (declared, derived) = match registry.route(topic)? {
        Route::Topic(t) => return Ok(t),
        Route::Versioned(t, _) => (t, Derived::DualWrite),
        Route::DeadLetters(t) => (t, Derived::DeadLetters),
    };
    Err(Error::NotPublishable {
        by: by.to_owned(),
        topic: topic.to_owned(),
        declared: declared.name.clone(),
        derived,
    })
}
