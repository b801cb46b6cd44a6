//! The error returned for input that is not a usable JSON Schema.

use std::fmt;

/// Input that is not a JSON Schema the checker can read (wrong keyword types, unknown type
/// names, dangling local `$ref`s, excessive nesting).
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaError {
    /// JSON pointer to the offending location ("" = root).
    pub path: String,
    /// Human-readable explanation.
    pub message: String,
}

impl SchemaError {
    pub(super) fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        SchemaError { path: path.into(), message: message.into() }
    }
}

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "invalid schema at root: {}", self.message)
        } else {
            write!(f, "invalid schema at {}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for SchemaError {}
