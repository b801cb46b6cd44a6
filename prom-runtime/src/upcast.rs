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

/// Declarative steps, applied in this order: rename, remove, then defaults where absent.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Steps {
    /// `(old, new)` field names.
    pub rename: Vec<(String, String)>,
    /// Fields to drop.
    pub remove: Vec<String>,
    /// Fields to add when absent, with their values.
    pub set_default: Vec<(String, Value)>,
}

impl Steps {
    /// Applies the steps to an object payload.
    pub fn apply(&self, mut payload: Value) -> Result<Value, String> {
        let Some(object) = payload.as_object_mut() else {
            return Err(format!("declarative steps need an object payload, found {}", kind(&payload)));
        };
        for (old, new) in &self.rename {
            if let Some(value) = object.remove(old) {
                object.insert(new.clone(), value);
            }
        }
        for field in &self.remove {
            object.remove(field);
        }
        for (field, value) in &self.set_default {
            if !object.contains_key(field) {
                object.insert(field.clone(), value.clone());
            }
        }
        Ok(payload)
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn steps_run_rename_then_remove_then_defaults() {
        let steps = Steps {
            rename: vec![("a".into(), "b".into())],
            remove: vec!["b".into(), "c".into()],
            set_default: vec![("b".into(), json!(0)), ("d".into(), json!("x"))],
        };
        let out = steps.apply(json!({ "a": 1, "c": 2, "d": "kept" })).expect("object");
        // `a` was renamed to `b`, then removed, then defaulted; `d` was present and is kept.
        assert_eq!(out, json!({ "b": 0, "d": "kept" }));
        assert!(steps.apply(json!([1])).expect_err("array").contains("an array"));
    }
}
