//! Prom's runtime: the typed surface generated code targets, the event bus and its stores.
#![deny(missing_docs)]

pub mod aggregate;
pub mod bus;
#[cfg(feature = "mongo")]
pub mod changefeed;
#[cfg(feature = "cli")]
pub mod cli;
pub mod codegen;
pub mod consumer;
mod context;
pub mod dlq;
pub mod documents;
pub mod error;
#[cfg(feature = "serve")]
pub mod gateway;
mod handler_error;
pub mod metrics;
pub mod outage;
pub mod outbox;
pub mod partition;
pub mod payload;
pub mod pipeline;
pub mod project;
pub mod publish;
pub mod record;
pub mod registry;
pub mod retry;
pub mod runner;
#[cfg(feature = "serve")]
pub mod server;
#[cfg(feature = "serve")]
pub mod snapshot;
pub mod stream;
pub mod system;
#[cfg(all(feature = "serve", feature = "specs"))]
pub mod testing;
pub mod timestamp;
pub mod timetravel;
pub mod trace;
mod typed;
pub mod upcast;
pub mod validate;

pub use bus::{AnyBus, EventBus, GroupId, MemoryBus, SqliteBus, TopicPosition};
pub use context::Context;
pub use error::{Cause, Derived, Error, JsonError, MissingUpcaster, Result};
pub use handler_error::{HandlerError, Permanence};
pub use pipeline::Pipeline;
/// Compile-time checks against the specs: `#[derive(Event)]`, `topic!`, `include_specs!`.
#[cfg(feature = "macros")]
pub use prom_macros::{Event, include_specs, topic};
pub use publish::{Producer, PublishOptions};
pub use record::{EventRecord, Headers, NewEvent, Receipt};
pub use registry::Registry;
pub use timestamp::Timestamp;
pub use typed::{DecodeError, Event, Topic, UpcastError, Versioned};

/// Re-exports for generated code, so user crates need no direct serde dependency (timestamps
/// are [`Timestamp`], so they need no chrono either).
#[doc(hidden)]
pub mod __private {
    pub use serde;
    pub use serde_json;
}
