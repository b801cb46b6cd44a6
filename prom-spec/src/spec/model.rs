//! The typed spec: what users declare, every element with its location.

pub use crate::kinds::{CompatMode, FullDocument, LostResumePolicy, StartFrom};
use crate::source::{Located, SourceMap, Span};
use crate::yaml::Node;
use std::collections::BTreeMap;
use std::time::Duration;

/// A whole spec: every file of a spec directory, merged.
#[derive(Debug, Clone, Default)]
pub struct Spec {
    /// Topics by name.
    pub topics: BTreeMap<String, Topic>,
    /// Consumer groups by name.
    pub consumers: BTreeMap<String, Consumer>,
    /// Projectors by name.
    pub projectors: BTreeMap<String, Projector>,
    /// Changefeeds by name.
    pub changefeeds: BTreeMap<String, Changefeed>,
    /// Event-sourced aggregates by name.
    pub aggregates: BTreeMap<String, Aggregate>,
    /// Every file read, for rendering diagnostics.
    pub sources: SourceMap,
    /// The spec documents, in load order (the other sources are `$ref`'d schemas).
    pub documents: Vec<std::path::PathBuf>,
}

/// A topic and the versions of its payload schema.
#[derive(Debug, Clone)]
pub struct Topic {
    /// The topic's name (the mapping key).
    pub name: Located<String>,
    /// Human description, used for generated docs.
    pub description: Option<Located<String>>,
    /// JSON pointer to the partition/changelog key inside the payload.
    pub key: Option<Located<String>>,
    /// Number of partitions (default 1).
    pub partitions: Option<Located<u64>>,
    /// Custom header names (`x-...`).
    pub headers: Vec<Located<String>>,
    /// Compatibility mode enforced between versions (default `backward`).
    pub compat: Option<Located<CompatMode>>,
    /// Whether publishes are also written to `<topic>.v<latest>`.
    pub dual_write: Option<Located<bool>>,
    /// Payload versions in ascending order.
    pub versions: Vec<Version>,
    /// The `versions:` value, for "no versions" errors.
    pub versions_span: Span,
    /// Whether `versions` is missing or some version could not be read (numbering is then not
    /// checked, so one mistake does not cascade).
    pub versions_incomplete: bool,
}

impl Topic {
    /// The effective compatibility mode.
    pub fn compat_mode(&self) -> CompatMode {
        self.compat.as_ref().map_or(CompatMode::Backward, |c| c.value)
    }

    /// The latest version, if any is declared.
    pub fn latest(&self) -> Option<&Version> {
        self.versions.last()
    }

    /// Whether dual-write is on.
    pub fn dual_write(&self) -> bool {
        self.dual_write.as_ref().is_some_and(|d| d.value)
    }
}

/// One version of a topic's payload.
#[derive(Debug, Clone)]
pub struct Version {
    /// The version number (the mapping key).
    pub number: Located<u32>,
    /// The payload's JSON Schema.
    pub schema: Schema,
    /// How a payload of the previous version becomes this one.
    pub upcast: Option<Upcast>,
}

/// A JSON Schema, inline or loaded from a `$ref`'d file, with its YAML tree for locations.
#[derive(Debug, Clone)]
pub struct Schema {
    /// The schema as JSON.
    pub json: serde_json::Value,
    /// The located tree the JSON came from (in the spec or in the referenced file).
    pub node: Node,
    /// Where the schema is named in the spec (the `schema:` value).
    pub span: Span,
}

impl Schema {
    /// The best location for a JSON pointer into this schema.
    pub fn span_at(&self, pointer: &str) -> &Span {
        self.node.nearest_span(pointer)
    }
}

/// Steps turning a payload of version N-1 into version N.
#[derive(Debug, Clone)]
pub struct Upcast {
    /// The `upcast:` block.
    pub span: Span,
    /// The declarative steps (`rename`, `remove`, `set_default`), as written.
    pub steps: crate::upcast::Steps<Located<String>, Node>,
    /// `with: path::to::fn`: a user function for what declarative steps cannot say.
    pub with: Option<Located<String>>,
}

/// A consumer group.
#[derive(Debug, Clone)]
pub struct Consumer {
    /// The consumer's name.
    pub name: Located<String>,
    /// Topic it reads.
    pub topic: Located<String>,
    /// Group id (default: the consumer's name).
    pub group: Option<Located<String>>,
    /// Start position without a cursor (default earliest).
    pub from: Option<Located<StartFrom>>,
    /// Retry policy.
    pub retry: Option<Retry>,
    /// Whether exhausted events go to `dlq.<topic>`.
    pub dlq: Option<Located<bool>>,
    /// Whether group members share the topic's partitions.
    pub partitioned: Option<Located<bool>>,
    /// How long a member that stops heartbeating keeps its membership and partitions.
    pub member_ttl: Option<Located<Duration>>,
    /// Events fetched per batch.
    pub batch_size: Option<Located<u64>>,
    /// Events handed out but not yet acked, at most.
    pub max_in_flight: Option<Located<u64>>,
}

/// Retry with exponential backoff.
#[derive(Debug, Clone)]
pub struct Retry {
    /// Attempts in total, the first included (≥ 1).
    pub max_attempts: Located<u64>,
    /// Delay before the first retry.
    pub backoff: Option<Located<Duration>>,
    /// Upper bound on the delay.
    pub max_backoff: Option<Located<Duration>>,
}

/// How a projector writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProjectorKind {
    /// Upsert by key, tombstones delete, version guard.
    Changelog,
    /// A user handler in one transaction with the checkpoint.
    Transactional,
}

/// A projector from a topic into MongoDB.
#[derive(Debug, Clone)]
pub struct Projector {
    /// The projector's name.
    pub name: Located<String>,
    /// Changelog or transactional.
    pub kind: Located<ProjectorKind>,
    /// Topic it reads.
    pub topic: Located<String>,
    /// Target collection (required for changelog).
    pub collection: Option<Located<String>>,
    /// JSON pointer to the document key (default: the topic's key).
    pub key: Option<Located<String>>,
    /// JSON pointer to a monotonic version for the update guard.
    pub version: Option<Located<String>>,
    /// Indexes to create.
    pub indexes: Vec<Index>,
    /// Read API over the collection.
    pub snapshot_api: Option<SnapshotApi>,
    /// Handler path (transactional only).
    pub handler: Option<Located<String>>,
}

/// A MongoDB index.
#[derive(Debug, Clone)]
pub struct Index {
    /// Fields and directions (1 or -1), in order.
    pub keys: Vec<(Located<String>, Located<i64>)>,
    /// Unique index.
    pub unique: bool,
    /// Explicit name.
    pub name: Option<Located<String>>,
    /// The index entry.
    pub span: Span,
}

/// The HTTP read API of a projection.
#[derive(Debug, Clone)]
pub struct SnapshotApi {
    /// Mount path, e.g. `/processes`.
    pub path: Located<String>,
    /// Fields `GET /list` may filter on.
    pub filters: Vec<Located<String>>,
    /// `Cache-Control: max-age`.
    pub max_age: Option<Located<Duration>>,
    /// Largest page size.
    pub max_limit: Option<Located<u64>>,
}

/// A MongoDB change stream republished to a topic.
#[derive(Debug, Clone)]
pub struct Changefeed {
    /// The changefeed's name.
    pub name: Located<String>,
    /// Watched collection.
    pub collection: Located<String>,
    /// Database (default: the connection's).
    pub database: Option<Located<String>>,
    /// Topic the changes are published to.
    pub topic: Located<String>,
    /// `fullDocument` mode (default `updateLookup`).
    pub full_document: Option<Located<FullDocument>>,
    /// Operation types to forward (default: all).
    pub operations: Vec<Located<String>>,
    /// Policy when the resume token is gone (default `fail`).
    pub on_lost_resume: Option<Located<LostResumePolicy>>,
}

/// An event-sourced aggregate: streams of declared topics' events with gap-free versions.
#[derive(Debug, Clone)]
pub struct Aggregate {
    /// The aggregate's name (the mapping key).
    pub name: Located<String>,
    /// Human description, used for generated docs.
    pub description: Option<Located<String>>,
    /// JSON pointer to the stream id inside every event's payload.
    pub id: Located<String>,
    /// The declared topics whose events make up the streams, in spec order.
    pub events: Vec<Located<String>>,
    /// The `events:` value, for "no events" errors.
    pub events_span: Span,
    /// Snapshot policy.
    pub snapshot: Option<SnapshotPolicy>,
    /// Whether each stream event is chained to its predecessor by SHA-256.
    pub tamper_evident: Option<Located<bool>>,
}

impl Aggregate {
    /// Events between snapshots, if snapshots are declared.
    pub fn snapshot_every(&self) -> Option<u64> {
        self.snapshot.as_ref().map(|s| s.every.value)
    }

    /// Whether tamper evidence is on.
    pub fn tamper_evident(&self) -> bool {
        self.tamper_evident.as_ref().is_some_and(|t| t.value)
    }
}

/// `snapshot: { every: N }`.
#[derive(Debug, Clone)]
pub struct SnapshotPolicy {
    /// Events between snapshots (≥ 1).
    pub every: Located<u64>,
    /// The `snapshot:` block.
    pub span: Span,
}
