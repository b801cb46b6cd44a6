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

    /// A serialization error: `what` could not be written as JSON.
    pub fn serialize(what: impl Into<String>, source: serde_json::Error) -> Error {
        Error::Serialize { what: what.into(), source: JsonError(Arc::new(source)) }
    }
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
