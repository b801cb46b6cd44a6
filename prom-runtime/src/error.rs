//! The runtime's error type: every message says what failed, where, and how to fix it.

use std::sync::Arc;
use uuid::Uuid;

/// A runtime error.
///
/// Errors are `Clone` because one failed group commit must be reported to every publisher whose
/// events were in the batch.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The on-disk store failed (I/O, corruption, lock timeout).
    #[error("store `{path}`: {message}")]
    Store {
        /// The store's path (or `memory`).
        path: String,
        /// What the store reported.
        message: String,
        /// The driver's or the OS's error, when one caused it (`rusqlite::Error`,
        /// `mongodb::error::Error`, `std::io::Error`); reachable through `source()`.
        #[source]
        source: Option<Cause>,
    },
    /// The store is unreachable for now (network, no primary, server selection timed out);
    /// retrying later may succeed. Long-running tasks wait it out (see [`crate::outage`]).
    #[error(
        "{path}: the store is unreachable: {message}\nhelp: check that MongoDB is running and reachable; \
         long-running tasks (prom run, prom serve, Pipeline::run) wait and resume by themselves, one-shot \
         commands can be run again"
    )]
    Unavailable {
        /// The store (its URL without credentials) or the task that reached for it.
        path: String,
        /// What failed and what the driver reported.
        message: String,
        /// The driver's error, when one caused it; reachable through `source()`.
        #[source]
        source: Option<Cause>,
    },
    /// The disk holding the embedded store is full: the write was rolled back whole. Freeing
    /// space is all it takes; long-running tasks wait it out like an outage.
    #[error(
        "store `{path}`: the disk holding the store is full (SQLite: database or disk is full), so nothing of \
         this write was stored\nhelp: free space on it; long-running tasks (prom run, prom serve, \
         Pipeline::run) wait and resume by themselves (no restart needed), one-shot commands can be run again"
    )]
    DiskFull {
        /// The store's file.
        path: String,
        /// SQLite's error; reachable through `source()`.
        #[source]
        source: Cause,
    },
    /// A topic is not declared in the spec.
    #[error("topic `{topic}` is not declared in the spec{hint}")]
    UnknownTopic {
        /// The name asked for.
        topic: String,
        /// A suggestion (`; did you mean ...?`) or nothing.
        hint: String,
    },
    /// A payload does not satisfy its version's JSON Schema.
    #[error("payload for `{topic}` v{version} is invalid:\n{}", .errors.join("\n"))]
    Invalid {
        /// Topic name.
        topic: String,
        /// Schema version checked against.
        version: u32,
        /// One line per violation, each starting with the JSON pointer of the offending value.
        errors: Vec<String>,
    },
    /// A publish names a version the topic does not declare (`PublishOptions::version`,
    /// `prom publish --version`, or an [`crate::Event`] type older or newer than the spec).
    #[error(
        "`{topic}` has no version {version}; the spec declares {}\nhelp: publish one of those versions, \
         or add version {version} to the topic in the spec",
        version_list(*.latest)
    )]
    UnknownVersion {
        /// Topic name.
        topic: String,
        /// The version asked for.
        version: u32,
        /// The newest version the spec declares (versions run from 1 to it without gaps).
        latest: u32,
    },
    /// A value could not be turned into JSON (a `Serialize` impl failed, or a map has
    /// non-string keys): the value can never be published as it is.
    #[error("cannot serialize {what}: {source}")]
    Serialize {
        /// What was being serialized, e.g. "a `heartbeat.received` v3 payload".
        what: String,
        /// What serde reported.
        #[source]
        source: JsonError,
    },
    /// A stored payload could not be brought to the latest version.
    #[error("cannot upcast event {id} of `{topic}` from v{from} to v{to}: {reason}")]
    Upcast {
        /// Event id.
        id: Uuid,
        /// Topic name.
        topic: String,
        /// The hop's source version.
        from: u32,
        /// The hop's target version.
        to: u32,
        /// Why.
        reason: String,
        /// The upcast step's or typed upcaster's own error, when there is one (a `with:`
        /// function reports a message only).
        #[source]
        source: Option<Cause>,
    },
    /// An event carries no usable `x-schema-version` header.
    #[error("event {id} of `{topic}`: {reason}")]
    Version {
        /// Event id.
        id: Uuid,
        /// Topic name.
        topic: String,
        /// What is wrong with the header.
        reason: String,
    },
    /// A stored event cannot be read back as it was written (its payload or headers are not
    /// JSON, or its id is not a UUID): the store was changed behind Prom's back.
    #[error(
        "event {id} of `{topic}` (partition {partition}, offset {offset}) is corrupt in the store: {reason}"
    )]
    Corrupt {
        /// Event id (the nil UUID when the stored id itself is unreadable).
        id: Uuid,
        /// Topic name.
        topic: String,
        /// Partition.
        partition: u32,
        /// Offset in the topic.
        offset: i64,
        /// What is wrong with the stored row.
        reason: String,
    },
    /// A consumer lost its lease on a partition (another member owns it now).
    #[error("lease on `{topic}` partition {partition} for group `{group}` is held by another member")]
    LeaseLost {
        /// Topic name.
        topic: String,
        /// Group name.
        group: String,
        /// Partition.
        partition: u32,
    },
    /// A consumer, projector or changefeed name the spec does not declare (`Pipeline::only`,
    /// `Pipeline::handle*`).
    #[error("the spec declares no {kind} `{name}`{}{}", did_you_mean(.hint), declared_line(.declared))]
    UnknownComponent {
        /// What was looked for: "consumer", "projector", "changefeed" or "consumer, projector or changefeed".
        kind: String,
        /// The name asked for.
        name: String,
        /// The closest declared name, if one is close.
        hint: Option<String>,
        /// The declared names, when they help (e.g. "consumers: `a`; projectors: none").
        declared: Option<String>,
    },
    /// `Pipeline::only` was given no names.
    #[error(
        "`only` was given no names: name at least one consumer, projector or changefeed \
         (generated code has constants such as `consumers::NAME`), or drop `only` to run them all"
    )]
    EmptySelection,
    /// `Pipeline::run` found consumers without a handler.
    #[error(
        "no handler for consumer(s) {}: give every {} consumer a handler before `run`",
        .consumers.join(", "),
        if *.selected { "selected" } else { "declared" }
    )]
    MissingHandler {
        /// The consumers without a handler.
        consumers: Vec<String>,
        /// Whether `only` selected them (otherwise every declared consumer runs).
        selected: bool,
    },
    /// `Pipeline::run` found a transactional projector without a handler.
    #[error("no handler for transactional projector `{projector}`: give it one before `run`")]
    MissingTxHandler {
        /// The projector's name.
        projector: String,
    },
    /// A projector was given to the runner of another kind (or a handler it does not take).
    #[error("projector `{projector}` is a {kind} projector: {help}")]
    WrongProjectorKind {
        /// The projector's name.
        projector: String,
        /// Its declared kind: "changelog" or "transactional".
        kind: &'static str,
        /// What to do instead.
        help: &'static str,
    },
    /// A typed handler or decode names another topic than the events it is given.
    #[error("events of `{reads}` cannot be read as `{wants}` payloads: {help}")]
    TopicMismatch {
        /// The topic the events come from.
        reads: String,
        /// The topic of the payload type.
        wants: String,
        /// What to do instead.
        help: String,
    },
    /// A publish (or a changefeed or DLQ replay) targets a topic the runtime derives from a
    /// declared one: a dual-write copy or a dead-letter topic.
    #[error("{by} cannot write `{topic}`: {}", derived_text(*.derived, .declared))]
    NotPublishable {
        /// Who tried: "a publish", "changefeed `name`", "a DLQ replay".
        by: String,
        /// The derived topic.
        topic: String,
        /// The declared topic it derives from.
        declared: String,
        /// How it derives.
        derived: Derived,
    },
    /// A publish sets a header the runtime sets itself (`x-schema-version`, ...).
    #[error("header `{header}` is set by the runtime; remove it from the publish")]
    ReservedHeader {
        /// The header name.
        header: String,
    },
    /// A publish sets a header the topic does not declare.
    #[error(
        "header `{header}` is not declared for `{topic}` (declared: {}); add it to the topic's \
         `headers:` in the spec",
        if .declared.is_empty() { "none".to_owned() } else { .declared.join(", ") }
    )]
    UndeclaredHeader {
        /// The header name.
        header: String,
        /// Topic name.
        topic: String,
        /// The headers the topic declares.
        declared: Vec<String>,
    },
    /// A typed publish asks for another version than its type's (`PublishOptions::version`).
    #[error(
        "a `{topic}` v{version} payload cannot be published as v{asked}: leave `PublishOptions::version` \
         unset for typed publishes (the type decides the version)"
    )]
    VersionMismatch {
        /// Topic name.
        topic: String,
        /// The type's version.
        version: u32,
        /// The version `PublishOptions::version` asked for.
        asked: u32,
    },
    /// A consumer group was asked to start after an event id its topic does not hold.
    #[error(
        "cannot start group `{group}` after event {id}: no such event on `{topic}`; check the id \
         (prom tail prints ids) or start from earliest/latest"
    )]
    UnknownStartEvent {
        /// Group name.
        group: String,
        /// Topic name.
        topic: String,
        /// The id asked for.
        id: Uuid,
    },
    /// Upcast functions a `with:` hop names are not registered.
    #[error(
        "upcast functions are not registered: {}; register each with Registry::with_upcaster",
        .missing.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    )]
    MissingUpcasters {
        /// Each hop whose function is missing.
        missing: Vec<MissingUpcaster>,
    },
    /// A runtime option is unusable (a zero limit or timeout, a zero batch size, ...).
    #[error("{what}: {reason}")]
    InvalidSetting {
        /// The option, e.g. "HTTP limits" or "subscription to `t` (group `g`)".
        what: String,
        /// What is wrong with it and how to fix it.
        reason: String,
    },
    /// The system's facts (a hand-built [`crate::system::System`], which no lint checked) are
    /// unusable: a schema that is not JSON, a topic without versions, a bad `snapshot_api`, ...
    #[error("{component}: {reason}")]
    InvalidSystem {
        /// The component, e.g. "projector `balances`" or "topic `orders` v2".
        component: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// A dead-letter topic holds an event that is not a dead-letter envelope.
    #[error("dead letter {id} on `{topic}` is not a dead-letter envelope: {source}")]
    NotDeadLetter {
        /// Event id.
        id: Uuid,
        /// The dead-letter topic.
        topic: String,
        /// What serde reported.
        #[source]
        source: JsonError,
    },
    /// A DLQ replay's transform refused a payload.
    #[error("the replay transform failed on dead letter {id}: {reason}")]
    ReplayTransform {
        /// The original event's id.
        id: Uuid,
        /// What the transform returned.
        reason: String,
    },
    /// A stored time-travel snapshot cannot be read back.
    #[error("a stored time-travel snapshot of `{topic}` has a corrupt {field}")]
    CorruptSnapshot {
        /// Topic name.
        topic: String,
        /// The unreadable field.
        field: &'static str,
    },
    /// A pipeline task panicked or was cancelled.
    #[error("a pipeline task failed: {source}")]
    TaskFailed {
        /// The join error (a panic's message, or the cancellation).
        #[source]
        source: Cause,
    },
    /// A spec given as YAML text or paths has lint errors (`Pipeline::from_yaml`,
    /// `Pipeline::from_paths`, `Registry::from_yaml`).
    #[error("the spec has errors; fix them (`prom-codegen lint` reports the same):\n{diagnostics}")]
    Spec {
        /// Every diagnostic, rendered as `prom-codegen lint` does (file:line:col, help).
        diagnostics: String,
    },
    /// An append's expected version did not match the stream's: another writer appended
    /// first. Nothing was stored; load the stream again, decide again and retry.
    #[error(
        "stream `{stream}`: expected version {expected}, but the stream {}\nhelp: another writer \
         appended first; read the stream again, re-decide and retry with the new version",
        actual_text(*.actual)
    )]
    StreamConflict {
        /// The stream (`aggregate/id`).
        stream: String,
        /// What the append expected.
        expected: crate::stream::ExpectedVersion,
        /// The stream's version when the append was checked (`None`: no stream).
        actual: Option<u64>,
    },
    /// An append the store cannot take as it is (no events, a dedup key, ...).
    #[error("cannot append to stream `{stream}`: {reason}")]
    InvalidAppend {
        /// The stream (`aggregate/id`).
        stream: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// An aggregate is not declared in the spec.
    #[error("aggregate `{aggregate}` is not declared in the spec{hint}")]
    UnknownAggregate {
        /// The name asked for.
        aggregate: String,
        /// A suggestion (`; did you mean ...?`), the declared names, or nothing.
        hint: String,
    },
    /// An append to a stream carries an event of a topic the aggregate does not list.
    #[error(
        "topic `{topic}` is not an event of aggregate `{aggregate}` (its events: {})\nhelp: append one \
         of those topics, or add `{topic}` to the aggregate's `events:` in the spec",
        .events.join(", ")
    )]
    NotAnAggregateEvent {
        /// The aggregate.
        aggregate: String,
        /// The topic appended.
        topic: String,
        /// The topics the aggregate declares.
        events: Vec<String>,
    },
    /// A payload appended to a stream names another stream at the aggregate's id pointer.
    #[error(
        "a `{topic}` payload appended to stream `{stream}` has {} at `{pointer}`\nhelp: set `{pointer}` \
         to the stream's id, or append to the stream the payload belongs to",
        .found.as_ref().map_or_else(|| "no id".to_owned(), |f| format!("id `{f}`"))
    )]
    StreamIdMismatch {
        /// The stream (`aggregate/id`).
        stream: String,
        /// The payload's topic.
        topic: String,
        /// The aggregate's id pointer.
        pointer: String,
        /// The id the payload carries there (`None`: nothing, or not a string or integer).
        found: Option<String>,
    },
    /// A document `find` by a field the collection does not declare in an index.
    #[error(
        "collection `{collection}`: cannot find documents by `{field}`: it is not a declared index field \
         (declared: {})\nhelp: add an index on `{field}` to the `indexes` of the projector whose \
         `collection` is `{collection}`, or look the document up by its key",
        if .declared.is_empty() { "none".to_owned() } else { .declared.join(", ") }
    )]
    UndeclaredField {
        /// The collection searched.
        collection: String,
        /// The field asked for.
        field: String,
        /// The fields its declared indexes cover.
        declared: Vec<String>,
    },
    /// A document, key or collection name the document API refuses (or a stored document that
    /// does not decode into the type asked for).
    #[error("collection `{collection}`, key `{key}`: {reason}")]
    InvalidDocument {
        /// The collection.
        collection: String,
        /// The document's key (empty when the collection name itself is refused).
        key: String,
        /// What is wrong, with the fix.
        reason: String,
        /// The encoder's or decoder's error, when one caused it (`serde_json::Error`, a BSON
        /// error); reachable through `source()`.
        #[source]
        source: Option<Cause>,
    },
    /// A store transaction (document writes and publishes) was rolled back: nothing it wrote
    /// was stored.
    #[error("the transaction was rolled back, nothing it wrote is stored: {reason}")]
    TransactionAborted {
        /// Why (timed out, an earlier operation failed, dropped without commit).
        reason: String,
    },
    /// A write in the caller's own MongoDB transaction (`Producer::publish_in`,
    /// `Producer::append_in`) conflicted with a concurrent writer: another transaction took the
    /// topic's next offset, the stream's next version or the dedup key first, or the driver
    /// labelled the failure `TransientTransactionError`. The server has aborted the transaction:
    /// nothing of it is stored, the caller's own writes included.
    #[error(
        "{what}: the MongoDB transaction conflicted with a concurrent writer and was aborted; nothing it \
         wrote is stored ({source})\nhelp: run the whole transaction again on a fresh \
         `start_transaction()` (the driver error, `Error::mongo_error`, carries the \
         `TransientTransactionError` label, so `start_transaction().and_run(..)` retries it when the \
         callback returns it converted with `mongodb::error::Error::from`)"
    )]
    TransactionConflict {
        /// What was being written (`publish to `topic``, `append to stream `account/42``).
        what: String,
        /// The driver's error, labels included.
        source: Cause,
    },
    /// A write meant to join the caller's transaction was given a session that has none open:
    /// its steps would each commit on their own, so it is refused and nothing is written.
    #[error(
        "{what}: the MongoDB session has no transaction in progress ({state})\nhelp: call \
         `session.start_transaction()` first (on a session from the bus's client, \
         `bus.client().start_session()`), then commit it after the publish"
    )]
    NoTransaction {
        /// What was being written.
        what: String,
        /// The session's transaction state as the driver reports it.
        state: String,
    },
    /// A write meant to join the caller's transaction was given a producer whose bus is not
    /// MongoDB.
    #[error(
        "{what}: the producer's bus is not MongoDB\nhelp: in-session publishes need a producer on a \
         `MongoBus` (or an `AnyBus::Mongo`); on the embedded store use `producer.transaction()`"
    )]
    NotMongo {
        /// What was being written.
        what: String,
    },
    /// A document API operation on MongoDB failed (the driver's error, labels included, is the
    /// cause).
    #[error("MongoDB collection `{collection}`: {source}")]
    MongoDocuments {
        /// The collection.
        collection: String,
        /// The driver's error.
        source: Cause,
    },
    /// Another rebuild of the same projection moved its checkpoint under this one.
    #[error(
        "another rebuild of projector `{projector}` is running (its checkpoint is no longer at offset \
         {expected})\nhelp: let it finish, or stop it and run this rebuild again: it resumes from the \
         checkpoint"
    )]
    RebuildConflict {
        /// The projector rebuilt.
        projector: String,
        /// Where this rebuild left the checkpoint.
        expected: i64,
    },
    /// A rebuild on MongoDB would swap while live members of the projector's group write the
    /// collection.
    #[error(
        "projector `{projector}` is running (live members of group `{group}`: {}), and on MongoDB a \
         rebuild swaps only while no live projector writes the collection\nhelp: stop `prom run` / \
         `prom serve` for this projector, then run `prom rebuild` again: it resumes from its checkpoint \
         and swaps",
        .members.join(", ")
    )]
    RebuildFenced {
        /// The projector rebuilt.
        projector: String,
        /// Its consumer group.
        group: String,
        /// The live members holding it.
        members: Vec<String>,
    },
    /// The bus was shut down.
    #[error("the event bus is closed")]
    Closed,
}

#[cfg(feature = "mongo")]
impl Error {
    /// The MongoDB driver's error behind this one (a transaction conflict, a document API
    /// failure), with its labels: `e.mongo_error().is_some_and(|m|
    /// m.contains_label(mongodb::error::TRANSIENT_TRANSACTION_ERROR))`.
    pub fn mongo_error(&self) -> Option<&mongodb::error::Error> {
        match self {
            Error::TransactionConflict { source, .. } | Error::MongoDocuments { source, .. } => {
                source.inner().downcast_ref()
            }
            _ => None,
        }
    }

    /// Whether running the whole MongoDB transaction again may succeed
    /// ([`Error::TransactionConflict`], or a driver error labelled `TransientTransactionError`).
    pub fn is_transient_transaction_error(&self) -> bool {
        matches!(self, Error::TransactionConflict { .. })
            || self
                .mongo_error()
                .is_some_and(|e| e.contains_label(mongodb::error::TRANSIENT_TRANSACTION_ERROR))
    }
}

/// For callbacks of the driver's `start_transaction().and_run(..)`: a transaction conflict
/// becomes the driver's own error (its `TransientTransactionError` label makes `and_run` run the
/// callback again); any other error becomes a custom driver error carrying this one
/// (`get_custom::<prom_runtime::Error>()`), which `and_run` does not retry.
#[cfg(feature = "mongo")]
impl From<Error> for mongodb::error::Error {
    fn from(error: Error) -> mongodb::error::Error {
        match error.mongo_error() {
            Some(driver) if error.is_transient_transaction_error() => driver.clone(),
            _ => mongodb::error::Error::custom(error),
        }
    }
}

/// The runtime's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A store error the store itself found (no driver error behind it): `message` says what.
    pub fn store(path: impl Into<String>, message: impl std::fmt::Display) -> Error {
        Error::Store { path: path.into(), message: message.to_string(), source: None }
    }

    /// A store error caused by `cause` (a driver or OS error), which says what failed; kept as
    /// the `source()`.
    pub fn store_from(
        path: impl Into<String>,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        Error::Store { path: path.into(), message: cause.to_string(), source: Some(Cause::new(cause)) }
    }

    /// A store error: `message` says what failed (usually naming the cause too), `cause` is
    /// kept as the `source()`.
    pub fn store_caused(
        path: impl Into<String>,
        message: impl std::fmt::Display,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        Error::Store { path: path.into(), message: message.to_string(), source: Some(Cause::new(cause)) }
    }

    /// The store is unreachable for now: `message` says what failed, `cause` (the driver's
    /// error, when there is one) is kept as the `source()`.
    pub fn unavailable(
        path: impl Into<String>,
        message: impl std::fmt::Display,
        cause: Option<Cause>,
    ) -> Error {
        Error::Unavailable { path: path.into(), message: message.to_string(), source: cause }
    }

    /// A serialization error: `what` could not be written as JSON.
    pub fn serialize(what: impl Into<String>, source: serde_json::Error) -> Error {
        Error::Serialize { what: what.into(), source: JsonError(Arc::new(source)) }
    }

    /// An unusable runtime option: `what` it is, and the `reason` (with the fix).
    pub fn setting(what: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::InvalidSetting { what: what.into(), reason: reason.into() }
    }

    /// Unusable system facts: the `component`, and the `reason` (with the fix).
    pub fn system(component: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::InvalidSystem { component: component.into(), reason: reason.into() }
    }
}

/// A `with:` upcast hop whose function is not registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingUpcaster {
    /// Topic name.
    pub topic: String,
    /// The version the hop produces.
    pub version: u32,
    /// The function's path as the spec names it.
    pub function: String,
}

impl std::fmt::Display for MissingUpcaster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` v{} needs `{}`", self.topic, self.version, self.function)
    }
}

/// How a topic publishers cannot write derives from a declared one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Derived {
    /// A `<topic>.v<N>` copy written by dual-write.
    DualWrite,
    /// The `dlq.<topic>` dead-letter topic, written by consumers.
    DeadLetters,
}

/// Why a derived topic cannot be written, and what to write instead.
fn derived_text(derived: Derived, declared: &str) -> String {
    match derived {
        Derived::DualWrite => {
            format!("it is written by dual-write from `{declared}`; publish to `{declared}` instead")
        }
        Derived::DeadLetters => format!(
            "it holds dead letters of `{declared}` and is written by consumers, not publishers; \
             name a declared topic"
        ),
    }
}

/// "; did you mean `x`?" or nothing.
fn did_you_mean(hint: &Option<String>) -> String {
    hint.as_ref().map(|close| format!("; did you mean `{close}`?")).unwrap_or_default()
}

/// "\ndeclared <names>" or nothing.
fn declared_line(declared: &Option<String>) -> String {
    declared.as_ref().map(|names| format!("\ndeclared {names}")).unwrap_or_default()
}

/// "is at version N" / "does not exist".
fn actual_text(actual: Option<u64>) -> String {
    actual.map_or_else(|| "does not exist".to_owned(), |v| format!("is at version {v}"))
}

/// "v1, v2 and v3" (or "only v1").
fn version_list(latest: u32) -> String {
    match latest {
        0 => "no versions".to_owned(),
        1 => "only v1".to_owned(),
        _ => {
            let earlier: Vec<String> = (1..latest).map(|v| format!("v{v}")).collect();
            format!("{} and v{latest}", earlier.join(", "))
        }
    }
}

/// A `serde_json` error kept as the cause of [`Error::Serialize`]; shared, so [`Error`] stays
/// `Clone`, and compared by message, so it stays `PartialEq`.
#[derive(Debug, Clone)]
pub struct JsonError(Arc<serde_json::Error>);

impl JsonError {
    /// Keeps `error` as a cause.
    pub fn new(error: serde_json::Error) -> JsonError {
        JsonError(Arc::new(error))
    }

    /// The serde error.
    pub fn inner(&self) -> &serde_json::Error {
        &self.0
    }
}

impl PartialEq for JsonError {
    fn eq(&self, other: &JsonError) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.to_string() == other.0.to_string()
    }
}

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for JsonError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// Any error kept as a cause; shared, so [`Error`] stays `Clone` (one failed group commit is
/// reported to every publisher in it), and compared by message, so it stays `PartialEq`.
#[derive(Debug, Clone)]
pub struct Cause(Arc<dyn std::error::Error + Send + Sync>);

impl Cause {
    /// Keeps `error` as a cause.
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Cause {
        Cause(Arc::new(error))
    }

    /// The error.
    pub fn inner(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl PartialEq for Cause {
    fn eq(&self, other: &Cause) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.to_string() == other.0.to_string()
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}
