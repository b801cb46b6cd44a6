//! The keys each section of the spec format accepts. The parser rejects anything else, and a
//! test holds the spec format's JSON Schema (`format.rs`, `format.schema.json`) to these lists.

use crate::upcast;

/// Top-level sections.
pub const SPEC: &[&str] = &["topics", "consumers", "projectors", "changefeeds", "aggregates"];
/// Keys of a topic.
pub const TOPIC: &[&str] =
    &["description", "key", "partitions", "headers", "compat", "dual_write", "versions"];
/// Keys of a version.
pub const VERSION: &[&str] = &["description", "schema", "upcast"];
/// Keys of an upcast block.
pub const UPCAST: &[&str] = &[upcast::RENAME, upcast::REMOVE, upcast::SET_DEFAULT, upcast::WITH_KEY];
/// Keys of a consumer.
pub const CONSUMER: &[&str] = &[
    "description",
    "topic",
    "group",
    "from",
    "retry",
    "dlq",
    "partitioned",
    "member_ttl",
    "batch_size",
    "max_in_flight",
];
/// Keys of a retry policy.
pub const RETRY: &[&str] = &["max_attempts", "backoff", "max_backoff"];
/// Keys of a projector.
pub const PROJECTOR: &[&str] =
    &["description", "kind", "topic", "collection", "key", "version", "indexes", "snapshot_api", "handler"];
/// Keys of an index.
pub const INDEX: &[&str] = &["keys", "unique", "name"];
/// Keys of a snapshot API.
pub const SNAPSHOT_API: &[&str] = &["path", "filters", "max_age", "max_limit"];
/// Keys of a changefeed.
pub const CHANGEFEED: &[&str] =
    &["description", "collection", "database", "topic", "full_document", "operations", "on_lost_resume"];
/// Keys of an aggregate.
pub const AGGREGATE: &[&str] = &["description", "id", "events", "snapshot", "tamper_evident"];
/// Keys of an aggregate's snapshot policy.
pub const SNAPSHOT: &[&str] = &["every"];
