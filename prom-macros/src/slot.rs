//! Where a JSON property name lands in an object schema: `properties`, `patternProperties`, or
//! `additionalProperties` (open, constrained, or closed).

use prom_spec::schema::Schema;
use serde_json::Value;

/// The schema that governs one property name of an object.
#[derive(Debug, PartialEq)]
pub enum Slot<'a> {
    /// Declared under `properties`; `pointer` is `/properties/<name>`.
    Declared { schema: &'a Value, pointer: String },
    /// Matched by a `patternProperties` regex; counts as declared.
    Pattern { schema: &'a Value, pointer: String },
    /// Not declared, and `additionalProperties` allows it: `schema` is `true` when absent.
    Additional { schema: &'a Value, pointer: &'static str },
    /// Not declared, and `additionalProperties: false` rejects it.
    Closed,
}

/// `true`: what an absent `additionalProperties` means.
static ANY: Value = Value::Bool(true);

/// Finds the slot of `name` in the object schema `object`.
pub fn of<'a>(object: &'a Value, name: &str) -> Slot<'a> {
    let object = Schema::root(object);
    if let Some(schema) = object.property(name) {
        return Slot::Declared { schema: schema.json(), pointer: format!("/properties/{}", escape(name)) };
    }
    if let Some((pattern, schema)) = object.pattern_properties().find(|(pattern, _)| matches(pattern, name)) {
        return Slot::Pattern {
            schema: schema.json(),
            pointer: format!("/patternProperties/{}", escape(pattern)),
        };
    }
    if object.is_closed() {
        return Slot::Closed;
    }
    match object.additional_properties() {
        Some(schema) => Slot::Additional { schema: schema.json(), pointer: "/additionalProperties" },
        None => Slot::Additional { schema: &ANY, pointer: "" },
    }
}

/// Whether the ECMA-262 regex `pattern` finds a match in `name`, as JSON Schema evaluates
/// `patternProperties` (unanchored). A regex the validator cannot compile matches nothing; lint
/// reports it in the spec.
fn matches(pattern: &str, name: &str) -> bool {
    let schema = serde_json::json!({ "type": "string", "pattern": pattern });
    jsonschema::validator_for(&schema).is_ok_and(|v| v.is_valid(&Value::String(name.to_owned())))
}

/// A JSON pointer segment for `name` (RFC 6901).
pub fn escape(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_the_governing_schema() {
        let open = json!({
            "properties": { "a": { "type": "string" } },
            "patternProperties": { "^x-": { "type": "integer" } }
        });
        assert!(matches!(of(&open, "a"), Slot::Declared { pointer, .. } if pointer == "/properties/a"));
        assert!(matches!(of(&open, "x-n"), Slot::Pattern { schema, .. } if schema["type"] == "integer"));
        assert_eq!(of(&open, "b"), Slot::Additional { schema: &ANY, pointer: "" });
        let typed = json!({ "additionalProperties": { "type": "number" } });
        assert!(matches!(of(&typed, "b"), Slot::Additional { pointer: "/additionalProperties", .. }));
        let closed = json!({ "additionalProperties": false, "patternProperties": { "^x-": {} } });
        assert_eq!(of(&closed, "b"), Slot::Closed);
        assert!(matches!(of(&closed, "x-y"), Slot::Pattern { .. }));
    }

    #[test]
    fn a_broken_regex_matches_nothing() {
        let schema = json!({ "patternProperties": { "(": {} }, "additionalProperties": false });
        assert_eq!(of(&schema, "("), Slot::Closed);
    }
}
