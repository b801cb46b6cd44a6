//! Following JSON pointers (`/a/b`) through a schema's `properties`.

use serde_json::Value;

/// Why a pointer does not resolve.
#[derive(Debug, PartialEq)]
pub enum FieldError {
    /// Not a JSON pointer (must be empty or start with `/`).
    Syntax,
    /// `segment` is not a property at that level; `known` lists the ones that are.
    Missing {
        /// The segment that failed.
        segment: String,
        /// Property names at that level.
        known: Vec<String>,
    },
}

/// A resolved field: its schema and whether every step to it is required.
pub struct Field<'a> {
    /// The property's schema.
    pub schema: &'a Value,
    /// Whether the field is always present.
    pub required: bool,
}

/// Resolves `pointer` through nested `properties` (following local `$ref`s).
pub fn resolve<'a>(root: &'a Value, pointer: &str) -> Result<Field<'a>, FieldError> {
    if pointer.is_empty() {
        return Ok(Field { schema: root, required: true });
    }
    let rest = pointer.strip_prefix('/').ok_or(FieldError::Syntax)?;
    let mut schema = deref(root, root);
    let mut required = true;
    for raw in rest.split('/') {
        let segment = raw.replace("~1", "/").replace("~0", "~");
        let props = schema.get("properties").and_then(Value::as_object);
        let Some(next) = props.and_then(|p| p.get(&segment)) else {
            let known = props.map(|p| p.keys().cloned().collect()).unwrap_or_default();
            return Err(FieldError::Missing { segment, known });
        };
        required &= schema
            .get("required")
            .and_then(Value::as_array)
            .is_some_and(|r| r.iter().any(|n| n.as_str() == Some(segment.as_str())));
        schema = deref(root, next);
    }
    Ok(Field { schema, required })
}

/// Follows local `$ref`s (a bounded number of hops, so cycles end).
pub fn deref<'a>(root: &'a Value, mut schema: &'a Value) -> &'a Value {
    for _ in 0..32 {
        let Some(r) = schema.get("$ref").and_then(Value::as_str) else { break };
        let Some(target) = r.strip_prefix('#').and_then(|p| root.pointer(p)) else { break };
        schema = target;
    }
    schema
}

/// The top-level property names of an object schema.
pub fn property_names(schema: &Value) -> Vec<&str> {
    schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn resolves_nested_and_refs() {
        let s = json!({
            "type": "object", "required": ["a"],
            "properties": { "a": { "$ref": "#/$defs/A" }, "b": { "type": "string" } },
            "$defs": { "A": { "type": "object", "required": ["id"], "properties": { "id": { "type": "integer" } } } }
        });
        let f = resolve(&s, "/a/id").expect("resolves");
        assert!(f.required);
        assert_eq!(f.schema["type"], "integer");
        assert!(!resolve(&s, "/b").expect("resolves").required);
        assert!(matches!(resolve(&s, "a"), Err(FieldError::Syntax)));
        match resolve(&s, "/c") {
            Err(FieldError::Missing { segment, known }) => {
                assert_eq!(segment, "c");
                assert_eq!(known, vec!["a".to_owned(), "b".to_owned()]);
            }
            _ => panic!("expected missing"),
        }
    }
}
