//! The finished facts a running system needs — topics with their schemas and upcasts,
//! consumers with their retry policies, projectors, changefeeds — as plain owned values.
//! Generated code builds a [`System`] from Rust literals (no spec text, no lint at startup);
//! the `prom` CLI converts a linted spec with [`System::from_spec`] (feature `specs`).
//! Everything a successful lint proves is taken as given here.

#[cfg(feature = "specs")]
mod from_spec;
#[cfg(feature = "specs")]
mod lint;

#[cfg(feature = "specs")]
pub use lint::{lint_paths, lint_yaml};

use crate::retry::RetryPolicy;
pub use prom_spec::kinds::{CompatMode, FullDocument, LostResumePolicy, StartFrom};
use std::time::Duration;

/// A whole declared system.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct System {
    /// Topics, by name.
    pub topics: Vec<Topic>,
    /// Consumer groups, by name.
    pub consumers: Vec<Consumer>,
    /// MongoDB projectors, by name.
    pub projectors: Vec<Projector>,
    /// MongoDB changefeeds, by name.
    pub changefeeds: Vec<Changefeed>,
    /// Event-sourced aggregates, by name.
    pub aggregates: Vec<Aggregate>,
}

impl System {
    /// The declared topic `name`.
    pub fn topic(&self, name: &str) -> Option<&Topic> {
        self.topics.iter().find(|t| t.name == name)
    }

    /// The declared consumer `name`.
    pub fn consumer(&self, name: &str) -> Option<&Consumer> {
        self.consumers.iter().find(|c| c.name == name)
    }

    /// The declared projector `name`.
    pub fn projector(&self, name: &str) -> Option<&Projector> {
        self.projectors.iter().find(|p| p.name == name)
    }

    /// The declared changefeed `name`.
    pub fn changefeed(&self, name: &str) -> Option<&Changefeed> {
        self.changefeeds.iter().find(|c| c.name == name)
    }

    /// The declared aggregate `name`.
    pub fn aggregate(&self, name: &str) -> Option<&Aggregate> {
        self.aggregates.iter().find(|a| a.name == name)
    }
}

/// A topic and its payload versions.
#[derive(Debug, Clone, PartialEq)]
pub struct Topic {
    /// The topic's name.
    pub name: String,
    /// JSON pointer to the partition/changelog key inside the payload.
    pub key: Option<String>,
    /// Partition count (≥ 1).
    pub partitions: u32,
    /// Declared custom header names.
    pub headers: Vec<String>,
    /// Whether publishes also go to `<name>.v<latest>`.
    pub dual_write: bool,
    /// The compatibility mode lint enforced between versions.
    pub compat: CompatMode,
    /// Versions 1..=N, in order.
    pub versions: Vec<Version>,
}

/// One payload version of a topic.
#[derive(Debug, Clone, PartialEq)]
pub struct Version {
    /// The version number (its position, counting from 1).
    pub number: u32,
    /// The payload's JSON Schema as JSON text (`$ref`s already inlined).
    pub schema: String,
    /// How a payload of the previous version becomes this one (`None` for version 1 and for
    /// versions that read the previous payload as it is).
    pub upcast: Option<Upcast>,
    /// Lint proved the upcast into this version turns any valid payload of the previous
    /// version into a valid one, so its result needs no validation.
    pub upcast_proven: bool,
}

/// How a payload of version N-1 becomes version N.
#[derive(Debug, Clone, PartialEq)]
pub enum Upcast {
    /// Declarative steps, applied in order.
    Steps {
        /// `rename: { old: new }`.
        rename: Vec<(String, String)>,
        /// `remove: [field]`.
        remove: Vec<String>,
        /// `set_default: { field: value }` with each value as JSON text.
        set_default: Vec<(String, String)>,
    },
    /// `with: path::to::fn`: a user function, registered with `Registry::with_upcaster`.
    With(String),
}

/// A consumer group.
#[derive(Debug, Clone, PartialEq)]
pub struct Consumer {
    /// The consumer's name.
    pub name: String,
    /// The topic it reads (declared, `<topic>.v<N>` or `dlq.<topic>`).
    pub topic: String,
    /// Its group id.
    pub group: String,
    /// Where it starts without a cursor.
    pub start: StartFrom,
    /// How failing handlers are retried.
    pub retry: RetryPolicy,
    /// Whether exhausted events go to `dlq.<topic>`.
    pub dlq: bool,
    /// Whether group members share the topic's partitions.
    pub partitioned: bool,
    /// How long a silent member keeps its partitions (`None`: the runtime's default).
    pub member_ttl: Option<Duration>,
    /// Events fetched per batch (`None`: the runtime's default).
    pub batch_size: Option<usize>,
    /// Events handed out but not yet acked, at most (`None`: the runtime's default).
    pub max_in_flight: Option<usize>,
}

/// A projector from a topic into MongoDB.
#[derive(Debug, Clone, PartialEq)]
pub struct Projector {
    /// The projector's name.
    pub name: String,
    /// The topic it reads.
    pub topic: String,
    /// How it writes, with what that kind needs.
    pub kind: ProjectorKind,
}

/// How a projector writes.
#[derive(Debug, Clone, PartialEq)]
pub enum ProjectorKind {
    /// Upsert by key, tombstones delete, version guard.
    Changelog(Changelog),
    /// A user handler in one transaction with the checkpoint.
    Transactional {
        /// The handler's Rust path.
        handler: String,
        /// Its main collection (`collection:`), whose declared `indexes` fields the handler may
        /// `find` by.
        collection: Option<String>,
        /// Indexes created on `collection` at start.
        indexes: Vec<Index>,
    },
}

/// What a changelog projector writes where.
#[derive(Debug, Clone, PartialEq)]
pub struct Changelog {
    /// Target collection.
    pub collection: String,
    /// JSON pointer to the document key (the projector's, else the topic's).
    pub key: String,
    /// JSON pointer to a monotonic version for the update guard.
    pub version: Option<String>,
    /// Indexes created at start.
    pub indexes: Vec<Index>,
    /// The HTTP read API over the collection.
    pub snapshot_api: Option<SnapshotApi>,
}

/// A MongoDB index.
#[derive(Debug, Clone, PartialEq)]
pub struct Index {
    /// Fields and directions (1 or -1), in order.
    pub keys: Vec<(String, i64)>,
    /// Unique index.
    pub unique: bool,
    /// Explicit name.
    pub name: Option<String>,
}

/// The HTTP read API of a projection.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotApi {
    /// Mount path, e.g. `/processes`.
    pub path: String,
    /// Fields `GET /list` may filter on.
    pub filters: Vec<String>,
    /// `Cache-Control: max-age` (`None`: zero).
    pub max_age: Option<Duration>,
    /// Largest page size (`None`: the runtime's default).
    pub max_limit: Option<u64>,
}

/// A MongoDB change stream republished to a topic.
#[derive(Debug, Clone, PartialEq)]
pub struct Changefeed {
    /// The changefeed's name.
    pub name: String,
    /// Watched collection.
    pub collection: String,
    /// Database (`None`: the connection's).
    pub database: Option<String>,
    /// Topic the changes are published to.
    pub topic: String,
    /// `fullDocument` mode.
    pub full_document: FullDocument,
    /// Operation types to forward (empty: every CRUD operation).
    pub operations: Vec<String>,
    /// Policy when the resume token is gone.
    pub on_lost_resume: LostResumePolicy,
}

/// The operation types a changefeed republishes when the spec lists none.
pub const DEFAULT_OPERATIONS: [&str; 4] = ["insert", "update", "replace", "delete"];

impl Changefeed {
    /// The operations it republishes: the declared ones, or [`DEFAULT_OPERATIONS`].
    pub fn operations_or_default(&self) -> Vec<String> {
        if self.operations.is_empty() {
            DEFAULT_OPERATIONS.iter().map(|op| op.to_string()).collect()
        } else {
            self.operations.clone()
        }
    }
}

/// An event-sourced aggregate: streams of its topics' events with gap-free versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aggregate {
    /// The aggregate's name.
    pub name: String,
    /// Human description.
    pub description: Option<String>,
    /// JSON pointer to the stream id in every event's payload (a string or an integer).
    pub id: String,
    /// The topics whose events make up its streams, in spec order.
    pub events: Vec<String>,
    /// Events between snapshots (`None`: no snapshots).
    pub snapshot_every: Option<u32>,
    /// Whether each stream event is chained to its predecessor by SHA-256.
    pub tamper_evident: bool,
}
