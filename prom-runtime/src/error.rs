//! The runtime's error type: every message says what failed, where, and how to fix it.

use uuid::Uuid;

/// A runtime error.
///
/// Errors are `Clone` because one failed group commit must be reported to every publisher whose
/// events were in the batch.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The on-disk store failed (I/O, corruption, lock timeout).
    #[error("store `{path}`: {message}")]
    Store {
        /// The store's path (or `memory`).
        path: String,
        /// What the store reported.
        message: String,
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
    /// The spec or an option is unusable at run time.
    #[error("{0}")]
    Config(String),
    /// A spec given as YAML text or paths has lint errors (`Pipeline::from_yaml`,
    /// `Pipeline::from_paths`, `Registry::from_yaml`).
    #[error("the spec has errors; fix them (`prom-codegen lint` reports the same):\n{diagnostics}")]
    Spec {
        /// Every diagnostic, rendered as `prom-codegen lint` does (file:line:col, help).
        diagnostics: String,
    },
    /// The bus was shut down.
    #[error("the event bus is closed")]
    Closed,
}

/// The runtime's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A store error from anything printable.
    pub fn store(path: impl Into<String>, message: impl std::fmt::Display) -> Error {
        Error::Store { path: path.into(), message: message.to_string() }
    }
}
