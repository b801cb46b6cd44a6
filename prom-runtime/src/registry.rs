//! The runtime view of a [`System`]: per topic its compiled schemas, key, partitions and upcast
//! chain, plus the user functions for `with:` hops. Built once at startup.

use crate::error::{Cause, Error, MissingUpcaster, Result};
use crate::record::{EventRecord, Headers, Payload, SCHEMA_VERSION, SchemaStamp, UPCASTED_FROM};
use crate::system::{self, System};
use crate::typed::Versioned;
use crate::upcast::{Hop, Steps, UpcastFn};
use crate::validate::CompiledSchema;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;

/// Topic prefix of dead-letter topics.
pub const DLQ_PREFIX: &str = "dlq.";

/// A declared topic, ready for publish and decode.
#[derive(Debug)]
pub struct TopicSchema {
    /// Name.
    pub name: String,
    /// JSON pointer to the key inside the payload.
    pub key: Option<String>,
    /// Partition count (≥ 1).
    pub partitions: u32,
    /// Whether publishes also go to `<name>.v<latest>`.
    pub dual_write: bool,
    /// Declared custom headers.
    pub headers: Vec<String>,
    versions: Vec<VersionSchema>,
}

#[derive(Debug)]
struct VersionSchema {
    schema: CompiledSchema,
    /// Names this schema in payloads validated against it at publish, so a reader with the
    /// same schema skips validating them again.
    stamp: SchemaStamp,
    /// How the previous version becomes this one (version 1 has none).
    hop: Hop,
    /// Lint proves the hop into this version yields a valid payload from any valid one.
    proven: bool,
    /// `x-schema-version` alone at this version: what most publishes stamp, shared by all of
    /// them instead of built per event.
    headers: Headers,
}

impl TopicSchema {
    /// The latest version number.
    pub fn latest(&self) -> u32 {
        u32::try_from(self.versions.len()).unwrap_or(u32::MAX)
    }

    /// The compiled schema of `version`.
    pub fn schema(&self, version: u32) -> Option<&CompiledSchema> {
        self.version(version).map(|v| &v.schema)
    }

    /// Whether every hop from `version` to the latest is proven by lint to produce a valid
    /// payload (declarative steps only, nothing undecided), so the result needs no validation.
    pub fn upcast_proven_from(&self, version: u32) -> bool {
        let from = usize::try_from(version).unwrap_or(usize::MAX);
        self.versions.iter().skip(from).all(|v| v.proven)
    }

    /// The headers of an event published at `version` without custom headers.
    pub(crate) fn version_headers(&self, version: u32) -> Option<&Headers> {
        self.version(version).map(|v| &v.headers)
    }

    /// The stamp of `version`'s schema, which payloads validated at publish carry.
    pub(crate) fn stamp(&self, version: u32) -> Option<SchemaStamp> {
        self.version(version).map(|v| v.stamp)
    }

    /// Validates a stored payload against `version`'s schema (`topic` is the name the event
    /// was stored under, for errors), unless it was validated against this very schema when it
    /// was published in this process: payloads are immutable, so a second check finds nothing.
    fn check_stored(&self, topic: &str, version: u32, payload: &Payload) -> Result<()> {
        let schema = self.version(version).ok_or(Error::Closed)?;
        if payload.is_checked_by(schema.stamp) {
            return Ok(());
        }
        schema.schema.check(topic, version, payload)
    }

    fn version(&self, version: u32) -> Option<&VersionSchema> {
        let index = usize::try_from(version).ok()?.checked_sub(1)?;
        self.versions.get(index)
    }

    /// The key of a payload in its one canonical text ([`crate::payload::key_text`]): strings
    /// as they are, integral numbers as integers (`1`, `1.0` and `1e0` are all `"1"`), other
    /// values as JSON text.
    pub fn key_of(&self, payload: &Value) -> Option<String> {
        match pointer(payload, self.key.as_deref()?)? {
            Value::Null => None,
            other => Some(crate::payload::key_text(other)),
        }
    }

    /// The dual-write topic name for `version`.
    pub fn versioned_name(&self, version: u32) -> String {
        format!("{}.v{version}", self.name)
    }

    /// The dead-letter topic name.
    pub fn dlq_name(&self) -> String {
        format!("{DLQ_PREFIX}{}", self.name)
    }
}

/// What a topic name refers to.
#[derive(Debug, Clone, Copy)]
pub enum Route<'a> {
    /// A declared topic (payloads of any version, read as the latest).
    Topic(&'a TopicSchema),
    /// `<topic>.v<N>`: payloads fixed at version N.
    Versioned(&'a TopicSchema, u32),
    /// `dlq.<topic>`: dead-letter envelopes.
    DeadLetters(&'a TopicSchema),
}

/// The runtime registry.
#[derive(Default)]
pub struct Registry {
    topics: BTreeMap<String, TopicSchema>,
    functions: HashMap<String, UpcastFn>,
    aggregates: BTreeMap<String, system::Aggregate>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("topics", &self.topics.keys().collect::<Vec<_>>())
            .field("functions", &self.functions.keys().collect::<Vec<_>>())
            .field("aggregates", &self.aggregates.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Registry {
    /// Builds the registry from a system's facts (compiling every version's schema once); the
    /// `upcast_proven` bits are taken as given.
    pub fn from_system(system: &System) -> Result<Registry> {
        let mut topics = BTreeMap::new();
        for topic in &system.topics {
            topics.insert(topic.name.clone(), topic_schema(topic)?);
        }
        let aggregates = system.aggregates.iter().map(|a| (a.name.clone(), a.clone())).collect();
        Ok(Registry { topics, functions: HashMap::new(), aggregates })
    }

    /// Builds the registry from a spec that linted clean.
    #[cfg(feature = "specs")]
    pub fn from_spec(spec: &prom_spec::spec::Spec) -> Result<Registry> {
        Registry::from_system(&System::from_spec(spec))
    }

    /// Lints a spec given as YAML text (`file` names it in diagnostics), then builds the
    /// registry; a spec with lint errors is an [`Error::Spec`] carrying the rendered diagnostics.
    #[cfg(feature = "specs")]
    pub fn from_yaml(file: &str, yaml: &str) -> Result<Registry> {
        Registry::from_system(&crate::system::lint_yaml(file, yaml)?)
    }

    /// Registers the function a `with:` hop names (e.g. `crate::upcast::heartbeat_v1_to_v2`).
    pub fn with_upcaster<F, E>(mut self, path: &str, f: F) -> Registry
    where
        F: Fn(Value) -> Result<Value, E> + Send + Sync + 'static,
        E: std::fmt::Display,
    {
        self.functions.insert(path.to_string(), Arc::new(move |v| f(v).map_err(|e| e.to_string())));
        self
    }

    /// Fails if a `with:` hop names a function that is not registered (call at startup).
    pub fn check_upcasters(&self) -> Result<()> {
        let missing: Vec<MissingUpcaster> = self
            .topics
            .values()
            .flat_map(|t| t.versions.iter().enumerate().map(move |(i, v)| (t, i + 1, &v.hop)))
            .filter_map(|(t, n, hop)| match hop {
                Hop::With(path) if !self.functions.contains_key(path) => Some(MissingUpcaster {
                    topic: t.name.clone(),
                    version: u32::try_from(n).unwrap_or(u32::MAX),
                    function: path.clone(),
                }),
                _ => None,
            })
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(Error::MissingUpcasters { missing })
    }

    /// Declared topics by name.
    pub fn topics(&self) -> impl Iterator<Item = &TopicSchema> {
        self.topics.values()
    }

    /// A declared topic.
    pub fn topic(&self, name: &str) -> Result<&TopicSchema> {
        self.topics.get(name).ok_or_else(|| self.unknown(name))
    }

    /// The declared aggregate `name`.
    pub fn aggregate(&self, name: &str) -> Result<&system::Aggregate> {
        self.aggregates.get(name).ok_or_else(|| {
            let candidates: Vec<&str> = self.aggregates.keys().map(String::as_str).collect();
            let hint = match prom_spec::suggest::closest(name, candidates.iter().copied()) {
                Some(close) => format!("; did you mean `{close}`?"),
                None if candidates.is_empty() => "; the spec declares no aggregates".to_owned(),
                None => format!(" (declared: {})", candidates.join(", ")),
            };
            Error::UnknownAggregate { aggregate: name.to_owned(), hint }
        })
    }

    /// Every declared aggregate, by name.
    pub fn aggregates(&self) -> impl Iterator<Item = &system::Aggregate> {
        self.aggregates.values()
    }

    /// Resolves a declared or derived topic name.
    pub fn route(&self, name: &str) -> Result<Route<'_>> {
        if let Some(topic) = self.topics.get(name) {
            return Ok(Route::Topic(topic));
        }
        if let Some(topic) = name.strip_prefix(DLQ_PREFIX).and_then(|base| self.topics.get(base)) {
            return Ok(Route::DeadLetters(topic));
        }
        if let Some((base, v)) = name.rsplit_once(".v")
            && let (Some(topic), Ok(version)) = (self.topics.get(base), v.parse::<u32>())
            && topic.dual_write
            && topic.version(version).is_some()
        {
            return Ok(Route::Versioned(topic, version));
        }
        Err(self.unknown(name))
    }

    fn unknown(&self, name: &str) -> Error {
        let candidates: Vec<&str> = self.topics.keys().map(String::as_str).collect();
        let hint = prom_spec::suggest::closest(name, candidates.iter().copied())
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_else(|| format!(" (declared: {})", candidates.join(", ")));
        Error::UnknownTopic { topic: name.to_string(), hint }
    }

    /// Brings `payload`, stored at `from`, to `topic`'s latest version.
    pub fn upcast(&self, topic: &TopicSchema, from: u32, payload: Value, id: uuid::Uuid) -> Result<Value> {
        let mut payload = payload;
        for to in from.saturating_add(1)..=topic.latest() {
            let fail = |reason: String, source: Option<Cause>| Error::Upcast {
                id,
                topic: topic.name.clone(),
                from: to - 1,
                to,
                reason,
                source,
            };
            let hop = &topic.version(to).ok_or_else(|| fail("the version is not declared".into(), None))?.hop;
            payload = match hop {
                Hop::Identity => payload,
                Hop::Steps(steps) => {
                    steps.apply(payload).map_err(|e| fail(e.to_string(), Some(Cause::new(e))))?
                }
                Hop::With(path) => {
                    let f = self.functions.get(path).ok_or_else(|| {
                        fail(
                            format!(
                                "the hop uses `with: {path}`, but no function is registered under that name; \
                                 call Registry::with_upcaster(\"{path}\", f) at startup"
                            ),
                            None,
                        )
                    })?;
                    f(payload).map_err(|reason| fail(reason, None))?
                }
            };
        }
        Ok(payload)
    }

    /// Turns a stored event into what handlers see: upcast to the latest version (stamping
    /// `x-upcasted-from`) and validated. Dead letters pass through; `<topic>.vN` events are
    /// validated against version N. An event the store could not read back fails with
    /// [`Error::Corrupt`].
    pub fn decode(&self, record: EventRecord) -> Result<EventRecord> {
        match self.decode_needs(&record)? {
            Decoding::AsStored => Ok(record),
            Decoding::Upcast(topic, version) => self.upcast_record(topic, version, record),
        }
    }

    /// [`Registry::decode`] without taking the record: borrowed back when it is stored at the
    /// latest version (validated, nothing to change), an upcast copy otherwise. Readers that
    /// keep the stored record (for dead letters) save a copy of every current payload.
    pub fn decode_ref<'r>(&self, record: &'r EventRecord) -> Result<Cow<'r, EventRecord>> {
        match self.decode_needs(record)? {
            Decoding::AsStored => Ok(Cow::Borrowed(record)),
            Decoding::Upcast(topic, version) => {
                self.upcast_record(topic, version, record.clone()).map(Cow::Owned)
            }
        }
    }

    /// What decoding `record` takes; a record that needs no upcast is validated here.
    fn decode_needs(&self, record: &EventRecord) -> Result<Decoding<'_>> {
        if let Some(corrupt) = record.corrupt_error() {
            return Err(corrupt);
        }
        let topic = match self.route(&record.topic)? {
            Route::DeadLetters(_) => return Ok(Decoding::AsStored),
            Route::Versioned(topic, n) => {
                topic.check_stored(&record.topic, n, &record.payload)?;
                return Ok(Decoding::AsStored);
            }
            Route::Topic(topic) => topic,
        };
        let latest = topic.latest();
        let version = declared_version(topic, record)?;
        if version < latest {
            return Ok(Decoding::Upcast(topic, version));
        }
        topic.check_stored(&topic.name, latest, &record.payload)?;
        Ok(Decoding::AsStored)
    }

    /// Brings `record`, stored at `version` of `topic`, to the latest version and validates it
    /// (the upcast value is new: it is validated whatever the stored one was).
    fn upcast_record(
        &self,
        topic: &TopicSchema,
        version: u32,
        mut record: EventRecord,
    ) -> Result<EventRecord> {
        let latest = topic.latest();
        let payload = std::mem::take(&mut record.payload).into_value();
        record.payload = self.upcast(topic, version, payload, record.id)?.into();
        stamp_upcast(&mut record, version, latest);
        topic.check_stored(&topic.name, latest, &record.payload)?;
        Ok(record)
    }

    /// Decodes a stored event straight into the latest payload type of `V` (generated code's
    /// `AnyVersion`), for typed handlers: the payload is validated against the schema of the
    /// version it was stored at, decoded into that version's type and brought up by the typed
    /// upcasters. The result is validated again only when a hop on the way is not proven by lint
    /// (a `with:` function, or a step the checker could not decide). The typed value is
    /// deserialized from the stored JSON in place (not from a copy), and the returned record
    /// keeps the stored payload, shared; headers are stamped as [`Registry::decode`] stamps them.
    pub fn decode_typed<V: Versioned>(&self, mut record: EventRecord) -> Result<(V::Latest, EventRecord)> {
        let (latest, upcast) = self.decode_typed_in::<V>(&record)?;
        if let Some((from, to)) = upcast {
            stamp_upcast(&mut record, from, to);
        }
        Ok((latest, record))
    }

    /// [`Registry::decode_typed`] of a shared record: the record comes back shared when it was
    /// stored at the latest version, as a stamped copy only when it was upcast.
    pub fn decode_typed_shared<V: Versioned>(
        &self,
        record: &Arc<EventRecord>,
    ) -> Result<(V::Latest, Arc<EventRecord>)> {
        if let Some(corrupt) = record.corrupt_error() {
            return Err(corrupt);
        }
        self.decode_typed_shared_sound::<V>(record)
    }

    /// [`Registry::decode_typed_shared`] of a record the caller found not corrupt (the runner
    /// checks every event once, before its first attempt).
    pub(crate) fn decode_typed_shared_sound<V: Versioned>(
        &self,
        record: &Arc<EventRecord>,
    ) -> Result<(V::Latest, Arc<EventRecord>)> {
        let (latest, upcast) = self.decode_sound::<V>(record)?;
        let record = match upcast {
            None => record.clone(),
            Some((from, to)) => {
                let mut stamped = EventRecord::clone(record);
                stamp_upcast(&mut stamped, from, to);
                Arc::new(stamped)
            }
        };
        Ok((latest, record))
    }

    /// [`Registry::decode`] of a shared record: shared back when nothing changes (stored at the
    /// latest version), an upcast copy otherwise.
    pub fn decode_shared(&self, record: &Arc<EventRecord>) -> Result<Arc<EventRecord>> {
        Ok(match self.decode_ref(record)? {
            Cow::Borrowed(_) => record.clone(),
            Cow::Owned(upcast) => Arc::new(upcast),
        })
    }

    /// The typed decode of `record` and, when it was upcast, the versions to stamp.
    fn decode_typed_in<V: Versioned>(&self, record: &EventRecord) -> Result<(V::Latest, Option<Upcast>)> {
        if let Some(corrupt) = record.corrupt_error() {
            return Err(corrupt);
        }
        self.decode_sound::<V>(record)
    }

    /// [`Registry::decode_typed_in`] of a record known not to be corrupt.
    fn decode_sound<V: Versioned>(&self, record: &EventRecord) -> Result<(V::Latest, Option<Upcast>)> {
        let (topic, version) = match self.route(&record.topic)? {
            Route::Topic(topic) => (topic, declared_version(topic, record)?),
            Route::Versioned(topic, n) => (topic, n),
            Route::DeadLetters(topic) => {
                return Err(Error::TopicMismatch {
                    reads: record.topic.clone(),
                    wants: V::TOPIC.to_owned(),
                    help: format!(
                        "it holds dead letters of `{}`, not its payloads; read it with an untyped handler",
                        topic.name
                    ),
                });
            }
        };
        if topic.name != V::TOPIC {
            return Err(Error::TopicMismatch {
                reads: record.topic.clone(),
                wants: V::TOPIC.to_owned(),
                help: format!(
                    "a `{}` payload type cannot decode them; hand this consumer the `{}` types",
                    V::TOPIC,
                    topic.name
                ),
            });
        }
        topic.check_stored(&record.topic, version, &record.payload)?;
        let upcast_error = |reason: String, source: Option<Cause>| Error::Upcast {
            id: record.id,
            topic: topic.name.clone(),
            from: version,
            to: V::LATEST_VERSION,
            reason,
            source,
        };
        // Valid by its schema yet not decodable means the generated types are older than the spec.
        let any = V::decode(version, &record.payload).map_err(|e| Error::Invalid {
            topic: record.topic.clone(),
            version,
            errors: vec![format!(
                "  at the payload root: {e}; regenerate the code with `prom-codegen build`"
            )],
        })?;
        let latest =
            any.into_latest().map_err(|e| upcast_error(e.message().to_owned(), Some(Cause::new(e))))?;
        let newest = topic.latest();
        if version < newest {
            if !topic.upcast_proven_from(version) {
                let value = serde_json::to_value(&latest)
                    .map_err(|e| upcast_error(e.to_string(), Some(Cause::new(e))))?;
                let schema = topic.schema(newest).ok_or(Error::Closed)?;
                schema.check(&topic.name, newest, &value)?;
            }
            return Ok((latest, Some((version, newest))));
        }
        Ok((latest, None))
    }
}

/// The versions a typed decode upcast a payload between (from, to), to stamp on its record.
type Upcast = (u32, u32);

/// `Value::pointer` without its two string copies per segment: a segment is unescaped
/// (`~1` → `/`, `~0` → `~`) only when it holds a `~`, so a plain key pointer costs no
/// allocation on every publish.
fn pointer<'v>(value: &'v Value, pointer: &str) -> Option<&'v Value> {
    if pointer.is_empty() {
        return Some(value);
    }
    let rest = pointer.strip_prefix('/')?;
    rest.split('/').try_fold(value, |target, token| {
        let unescaped;
        let token = if token.contains('~') {
            unescaped = token.replace("~1", "/").replace("~0", "~");
            unescaped.as_str()
        } else {
            token
        };
        match target {
            Value::Object(map) => map.get(token),
            Value::Array(list) => array_index(token).and_then(|i| list.get(i)),
            _ => None,
        }
    })
}

/// An array index as JSON Pointer writes it: digits, no leading zero (except `0` itself).
fn array_index(token: &str) -> Option<usize> {
    if token.starts_with('+') || (token.starts_with('0') && token.len() > 1) {
        return None;
    }
    token.parse().ok()
}

/// What [`Registry::decode`] does to a record.
enum Decoding<'a> {
    /// Nothing: it is valid as stored (checked already).
    AsStored,
    /// Upcast from this version of this topic, then validated.
    Upcast(&'a TopicSchema, u32),
}

/// The stored version of `record`, which `topic` must declare.
fn declared_version(topic: &TopicSchema, record: &EventRecord) -> Result<u32> {
    let latest = topic.latest();
    let version = stored_version(record)?;
    if version == 0 || version > latest {
        return Err(Error::Version {
            id: record.id,
            topic: record.topic.clone(),
            reason: format!(
                "it was written as v{version}, but the spec declares v1..v{latest}; \
                 update the spec to the writer's version"
            ),
        });
    }
    Ok(version)
}

/// Records that `record` was brought from `from` to `latest`.
fn stamp_upcast(record: &mut EventRecord, from: u32, latest: u32) {
    record.headers.insert(UPCASTED_FROM.to_string(), from.to_string());
    match record.headers.get_mut(SCHEMA_VERSION) {
        Some(stamped) => {
            // Reuses the stored header's allocation.
            stamped.clear();
            let _ = write!(stamped, "{latest}");
        }
        None => {
            record.headers.insert(SCHEMA_VERSION.to_string(), latest.to_string());
        }
    }
}

fn stored_version(record: &EventRecord) -> Result<u32> {
    let Some(text) = record.headers.get(SCHEMA_VERSION) else {
        return Err(Error::Version {
            id: record.id,
            topic: record.topic.clone(),
            reason: format!(
                "it has no `{SCHEMA_VERSION}` header, so its payload version is unknown; \
                 publish through prom_runtime::Producer (or `prom publish`), which stamps it"
            ),
        });
    };
    text.parse().map_err(|_| Error::Version {
        id: record.id,
        topic: record.topic.clone(),
        reason: format!("its `{SCHEMA_VERSION}` header is `{text}`, not a version number"),
    })
}

fn topic_schema(topic: &system::Topic) -> Result<TopicSchema> {
    let name = topic.name.clone();
    let mut versions = Vec::with_capacity(topic.versions.len());
    for (i, version) in topic.versions.iter().enumerate() {
        let n = i + 1;
        let fail = |what: String| Error::system(format!("topic `{name}` v{n}"), format!("the schema {what}"));
        let json: Value =
            serde_json::from_str(&version.schema).map_err(|e| fail(format!("is not JSON: {e}")))?;
        let schema = CompiledSchema::compile(&json).map_err(|e| fail(format!("does not compile: {e}")))?;
        let hop = match &version.upcast {
            None => Hop::Identity,
            Some(system::Upcast::With(path)) => Hop::With(path.clone()),
            Some(system::Upcast::Steps { rename, remove, set_default }) => {
                let mut defaults = Vec::with_capacity(set_default.len());
                for (field, text) in set_default {
                    let value = serde_json::from_str(text)
                        .map_err(|e| fail(format!("has a default for `{field}` that is not JSON: {e}")))?;
                    defaults.push((field.clone(), value));
                }
                Hop::Steps(Steps { rename: rename.clone(), remove: remove.clone(), set_default: defaults })
            }
        };
        let stamp = SchemaStamp::of(&name, u32::try_from(n).unwrap_or(u32::MAX), &version.schema);
        let headers = Headers::from([(SCHEMA_VERSION, n.to_string())]);
        versions.push(VersionSchema { schema, stamp, hop, proven: i > 0 && version.upcast_proven, headers });
    }
    if versions.is_empty() {
        return Err(Error::system(format!("topic `{name}`"), "declares no versions; give it at least v1"));
    }
    Ok(TopicSchema {
        name,
        key: topic.key.clone(),
        partitions: topic.partitions.max(1),
        dual_write: topic.dual_write,
        headers: topic.headers.clone(),
        versions,
    })
}

/// Header values of a stored event that the runtime sets (never copied from user input).
pub fn is_runtime_header(name: &str) -> bool {
    prom_spec::headers::RESERVED_HEADERS.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::pointer;
    use serde_json::json;

    #[test]
    fn the_key_pointer_reads_what_serde_json_pointer_reads() {
        let doc = json!({
            "pid": 7, "a/b": 1, "m~n": 2, "": 3, "list": [10, 11, 12], "nested": { "x": { "y": "z" } },
            "01": "key with a leading zero"
        });
        for p in [
            "",
            "/pid",
            "/a~1b",
            "/m~0n",
            "/",
            "/list/0",
            "/list/2",
            "/list/3",
            "/list/01",
            "/list/+1",
            "/list/-",
            "/nested/x/y",
            "/nested/x/y/z",
            "/missing",
            "pid",
            "/01",
            "/pid/0",
        ] {
            assert_eq!(pointer(&doc, p), doc.pointer(p), "{p}");
        }
    }
}
