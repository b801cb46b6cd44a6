//! Helpers called by generated code (not a stable API for hand-written code).

use crate::typed::UpcastError;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Converts between two generated types of the same data (e.g. a v1 and a v2 nested struct).
pub fn convert<A: Serialize, B: DeserializeOwned>(value: A) -> Result<B, UpcastError> {
    Ok(serde_json::from_value(serde_json::to_value(value)?)?)
}

/// Decodes a default value written in the spec.
pub fn from_json<T: DeserializeOwned>(text: &str) -> Result<T, UpcastError> {
    Ok(serde_json::from_str(text)?)
}
