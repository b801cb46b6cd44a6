//! Payload validation against a version's JSON Schema, compiled once.

use crate::error::{Error, Result};
use serde_json::Value;

/// Violations reported per payload at most (the first few say what is wrong).
const MAX_REPORTED: usize = 8;

/// A compiled JSON Schema.
pub struct CompiledSchema {
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for CompiledSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CompiledSchema")
    }
}

impl CompiledSchema {
    /// Compiles `schema` (draft from `$schema`, 2020-12 by default).
    pub fn compile(schema: &Value) -> Result<CompiledSchema, String> {
        jsonschema::validator_for(schema)
            .map(|validator| CompiledSchema { validator })
            .map_err(|e| e.to_string())
    }

    /// Whether `payload` satisfies the schema.
    pub fn is_valid(&self, payload: &Value) -> bool {
        self.validator.is_valid(payload)
    }

    /// Checks `payload`; the error lists each violation with the JSON pointer of the value.
    pub fn check(&self, topic: &str, version: u32, payload: &Value) -> Result<()> {
        // The fast boolean check first: collecting errors costs more and is rarely needed.
        if self.validator.is_valid(payload) {
            return Ok(());
        }
        let errors = self
            .validator
            .iter_errors(payload)
            .take(MAX_REPORTED)
            .map(|e| {
                let at = e.instance_path().to_string();
                let at = if at.is_empty() { "the payload root".to_string() } else { format!("`{at}`") };
                format!("  at {at}: {e}")
            })
            .collect();
        Err(Error::Invalid { topic: topic.to_string(), version, errors })
    }
}
