//! Prom's runtime: the typed surface generated code targets, the event bus and its stores.
#![deny(missing_docs)]

pub mod codegen;
mod typed;

pub use typed::{DecodeError, Event, Timestamp, Topic, UpcastError, Versioned};

/// Re-exports for generated code, so user crates need no direct serde or chrono dependency.
#[doc(hidden)]
pub mod __private {
    pub use chrono;
    pub use serde;
    pub use serde_json;
}
