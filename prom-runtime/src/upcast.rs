//! Upcasting: bringing a stored payload of any version to the latest one, hop by hop.

use serde_json::Value;
use std::sync::Arc;

/// A user function for a `with:` hop, registered by the path the spec names.
pub type UpcastFn = Arc<dyn Fn(Value) -> Result<Value, String> + Send + Sync>;

/// How a payload of version N-1 becomes version N.
#[derive(Debug, Clone, PartialEq)]
pub enum Hop {
    /// No `upcast` block: the change is compatible, the payload is kept as is.
    Identity,
    /// Declarative steps.
    Steps(Steps),
    /// A registered function (`with: path::to::fn`).
    With(String),
}

/// Declarative steps (rename, remove, then defaults where absent): the spec crate's one
/// definition, applied to stored payloads by [`Steps::apply`].
pub use prom_spec::upcast::{NotAnObject, Steps};
