//! A JSON Schema flattened into rows: one per location a payload can have, by JSON pointer.

use serde::Serialize;
use serde_json::{Map, Value};

/// One row of a schema table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    /// Where in the payload (RFC 6901; `*` stands for any array index or map key), or where in
    /// the schema for `$defs` entries (`#/$defs/name/...`).
    pub pointer: String,
    /// `string`, `integer | null`, `array`, `ref #/$defs/x`, ...
    pub kind: String,
    /// Whether the parent object requires it.
    pub required: bool,
    /// Constraints in JSON-Schema words (`minimum: 1`, `enum: "a", "b"`, `closed`).
    pub constraints: String,
    /// `description` (or `title`).
    pub description: String,
}

/// Escapes one pointer segment (RFC 6901: `~` → `~0`, `/` → `~1`).
fn segment(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

/// A table stops after this many rows (with a row that says so): nested combinators can
/// multiply rows, and a page is for reading.
pub const MAX_ROWS: usize = 2_000;

/// Rows of `schema`: the payload first, then each `$defs`/`definitions` entry.
pub fn rows(schema: &Value) -> Vec<Row> {
    let mut out = Vec::new();
    walk(schema, "", true, &mut out, 0);
    for defs in ["$defs", "definitions"] {
        if let Some(Value::Object(map)) = schema.get(defs) {
            for (name, def) in map {
                walk(def, &format!("#/{defs}/{}", segment(name)), true, &mut out, 0);
            }
        }
    }
    if out.len() > MAX_ROWS {
        out.truncate(MAX_ROWS);
        out.push(Row {
            pointer: "…".to_owned(),
            kind: String::new(),
            required: false,
            constraints: format!("more than {MAX_ROWS} rows: the rest is in the schema below"),
            description: String::new(),
        });
    }
    out
}

/// Deeper than this, a schema's rows stop (with a row that says so): a table is for reading.
const MAX_DEPTH: usize = 32;

fn walk(schema: &Value, pointer: &str, required: bool, out: &mut Vec<Row>, depth: usize) {
    if out.len() > MAX_ROWS {
        return;
    }
    let shown = if pointer.is_empty() { "/".to_owned() } else { pointer.to_owned() };
    let Value::Object(map) = schema else {
        let kind = match schema {
            Value::Bool(true) => "any",
            Value::Bool(false) => "nothing (always invalid)",
            _ => "invalid schema",
        };
        out.push(Row {
            pointer: shown,
            kind: kind.to_owned(),
            required,
            constraints: String::new(),
            description: String::new(),
        });
        return;
    };
    if depth > MAX_DEPTH {
        out.push(Row {
            pointer: shown,
            kind: "…".to_owned(),
            required,
            constraints: format!("nested deeper than {MAX_DEPTH} levels: see the schema"),
            description: String::new(),
        });
        return;
    }
    let description = map
        .get("description")
        .or_else(|| map.get("title"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    out.push(Row { pointer: shown, kind: kind(map), required, constraints: constraints(map), description });
    if let Some(Value::Object(properties)) = map.get("properties") {
        let required_names: Vec<&str> = map
            .get("required")
            .and_then(Value::as_array)
            .map(|names| names.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for (name, property) in properties {
            let child = format!("{pointer}/{}", segment(name));
            walk(property, &child, required_names.contains(&name.as_str()), out, depth + 1);
        }
    }
    if let Some(additional @ Value::Object(_)) = map.get("additionalProperties") {
        walk(additional, &format!("{pointer}/*"), false, out, depth + 1);
    }
    match map.get("items") {
        Some(items @ Value::Object(_)) => walk(items, &format!("{pointer}/*"), false, out, depth + 1),
        Some(Value::Array(tuple)) => {
            for (i, item) in tuple.iter().enumerate() {
                walk(item, &format!("{pointer}/{i}"), false, out, depth + 1);
            }
        }
        _ => {}
    }
    if let Some(Value::Array(tuple)) = map.get("prefixItems") {
        for (i, item) in tuple.iter().enumerate() {
            walk(item, &format!("{pointer}/{i}"), false, out, depth + 1);
        }
    }
    for combinator in ["allOf", "anyOf", "oneOf"] {
        if let Some(Value::Array(branches)) = map.get(combinator) {
            for (i, branch) in branches.iter().enumerate() {
                let before = out.len();
                walk(branch, pointer, required, out, depth + 1);
                if let Some(row) = out.get_mut(before) {
                    let note = format!("{combinator}[{i}]");
                    row.constraints = if row.constraints.is_empty() {
                        note
                    } else {
                        format!("{note}; {}", row.constraints)
                    };
                }
            }
        }
    }
}

fn kind(map: &Map<String, Value>) -> String {
    if let Some(Value::String(reference)) = map.get("$ref") {
        return format!("ref {reference}");
    }
    match map.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(types)) => types.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" | "),
        _ if map.contains_key("const") => "const".to_owned(),
        _ if map.contains_key("enum") => "enum".to_owned(),
        _ if map.contains_key("properties") => "object".to_owned(),
        _ if map.contains_key("items") => "array".to_owned(),
        _ => {
            let combinator = ["oneOf", "anyOf", "allOf"].into_iter().find(|c| map.contains_key(*c));
            combinator.map_or_else(|| "any".to_owned(), str::to_owned)
        }
    }
}

fn compact(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

fn constraints(map: &Map<String, Value>) -> String {
    let mut parts = Vec::new();
    if let Some(value) = map.get("const") {
        parts.push(format!("const: {}", compact(value)));
    }
    if let Some(Value::Array(values)) = map.get("enum") {
        parts.push(format!("enum: {}", values.iter().map(compact).collect::<Vec<_>>().join(", ")));
    }
    for key in [
        "format",
        "pattern",
        "minLength",
        "maxLength",
        "minimum",
        "exclusiveMinimum",
        "maximum",
        "exclusiveMaximum",
        "multipleOf",
        "minItems",
        "maxItems",
        "uniqueItems",
        "minProperties",
        "maxProperties",
        "contentEncoding",
        "contentMediaType",
    ] {
        if let Some(value) = map.get(key) {
            let shown = match value {
                Value::String(s) => s.clone(),
                other => compact(other),
            };
            parts.push(format!("{key}: {shown}"));
        }
    }
    if map.get("additionalProperties") == Some(&Value::Bool(false)) {
        parts.push("closed (no other properties)".to_owned());
    }
    if let Some(value) = map.get("default") {
        parts.push(format!("default: {}", compact(value)));
    }
    if map.get("deprecated") == Some(&Value::Bool(true)) {
        parts.push("deprecated".to_owned());
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_objects_arrays_and_refs_are_flattened() {
        let schema = json!({
            "type": "object", "additionalProperties": false, "required": ["a", "l"],
            "properties": {
                "a": { "type": "integer", "minimum": 1, "description": "An a." },
                "l": { "type": "array", "items": { "type": "object", "required": ["x/y"],
                        "properties": { "x/y": { "type": ["string", "null"], "enum": ["p", null] } } } },
                "r": { "$ref": "#/$defs/n" }
            },
            "$defs": { "n": { "type": "object", "properties": { "next": { "$ref": "#/$defs/n" } } } }
        });
        let rows = rows(&schema);
        let summary: Vec<(&str, &str, bool, &str)> = rows
            .iter()
            .map(|r| (r.pointer.as_str(), r.kind.as_str(), r.required, r.constraints.as_str()))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("/", "object", true, "closed (no other properties)"),
                ("/a", "integer", true, "minimum: 1"),
                ("/l", "array", true, ""),
                ("/l/*", "object", false, ""),
                ("/l/*/x~1y", "string | null", true, "enum: \"p\", null"),
                ("/r", "ref #/$defs/n", false, ""),
                ("#/$defs/n", "object", true, ""),
                ("#/$defs/n/next", "ref #/$defs/n", false, ""),
            ]
        );
        assert_eq!(rows[1].description, "An a.");
    }

    #[test]
    fn multiplying_combinators_stop_at_the_row_limit() {
        let mut schema = json!({ "type": "string" });
        for _ in 0..16 {
            schema = json!({ "allOf": [schema.clone(), schema] });
        }
        let rows = rows(&schema);
        assert_eq!(rows.len(), MAX_ROWS + 1);
        assert!(rows[MAX_ROWS].constraints.contains("more than"));
    }
}
