//! JSON Schema 2020-12 payloads as AsyncAPI Schema objects (a superset of draft-07).
//!
//! The AsyncAPI parser accepts `schemaFormat: application/schema+json;version=draft-2020-12`
//! but does not check such payloads at all (any schema passes), so the document carries the
//! AsyncAPI form, which the validator does check. The keywords 2020-12 renamed are mapped back
//! (`$defs` → `definitions`, `prefixItems` + `items` → `items` + `additionalItems`,
//! `dependentRequired`/`dependentSchemas` → `dependencies`); keywords draft-07 lacks
//! (`unevaluated*`, `minContains`, ...) stay as written, which AsyncAPI tools ignore.
//! Local `$ref`s are rebased onto the schema's place in the document
//! (`#/$defs/x` → `#/components/schemas/<id>/definitions/x`).

use serde_json::{Map, Value};

/// Keywords whose value is one schema.
const ONE: &[&str] = &[
    "additionalProperties",
    "additionalItems",
    "items",
    "contains",
    "not",
    "if",
    "then",
    "else",
    "propertyNames",
    "unevaluatedItems",
    "unevaluatedProperties",
    "contentSchema",
];
/// Keywords whose value is a list of schemas.
const LIST: &[&str] = &["allOf", "anyOf", "oneOf", "prefixItems"];
/// Keywords whose value maps names to schemas.
const MAP: &[&str] = &["properties", "patternProperties", "$defs", "definitions", "dependentSchemas"];

/// `schema` (a payload schema of the spec) in AsyncAPI Schema form, placed at
/// `#/components/schemas/<id>`.
pub fn convert(schema: &Value, id: &str) -> Value {
    let legacy = schema
        .get("$schema")
        .and_then(Value::as_str)
        .is_some_and(|s| s.contains("draft-04") || s.contains("draft-06") || s.contains("draft-07"));
    convert_node(schema, &format!("#/components/schemas/{id}"), legacy)
}

fn convert_node(schema: &Value, base: &str, legacy: bool) -> Value {
    let Value::Object(object) = schema else { return schema.clone() };
    let mut out = Map::new();
    for (key, value) in object {
        let converted = match key.as_str() {
            // The document fixes the dialect; an id would rebase every reference.
            "$schema" | "$id" => continue,
            "$ref" => match value.as_str() {
                Some(reference) => Value::from(rebase(reference, base, legacy)),
                None => value.clone(),
            },
            k if ONE.contains(&k) => convert_node(value, base, legacy),
            k if LIST.contains(&k) || (k == "items" && value.is_array()) => match value {
                Value::Array(items) => {
                    Value::Array(items.iter().map(|s| convert_node(s, base, legacy)).collect())
                }
                other => other.clone(),
            },
            k if MAP.contains(&k) => match value {
                Value::Object(entries) => Value::Object(
                    entries.iter().map(|(n, s)| (n.clone(), convert_node(s, base, legacy))).collect(),
                ),
                other => other.clone(),
            },
            _ => value.clone(),
        };
        out.insert(key.clone(), converted);
    }
    if legacy {
        return Value::Object(out);
    }
    // 2020-12 → draft-07 renames.
    if let Some(defs) = out.remove("$defs") {
        merge_into(&mut out, "definitions", defs);
    }
    if let Some(prefix) = out.remove("prefixItems") {
        if let Some(rest) = out.remove("items") {
            out.insert("additionalItems".to_owned(), rest);
        }
        out.insert("items".to_owned(), prefix);
    }
    for dependent in ["dependentRequired", "dependentSchemas"] {
        if let Some(value) = out.remove(dependent) {
            merge_into(&mut out, "dependencies", value);
        }
    }
    Value::Object(out)
}

/// Adds the entries of `value` (an object) under `key`, keeping entries already there.
fn merge_into(out: &mut Map<String, Value>, key: &str, value: Value) {
    let Value::Object(entries) = value else {
        out.insert(key.to_owned(), value);
        return;
    };
    let slot = out.entry(key.to_owned()).or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(existing) = slot {
        for (name, schema) in entries {
            existing.entry(name).or_insert(schema);
        }
    }
}

/// A local reference (`#...`) rebased onto `base`, with 2020-12 segment names mapped; other
/// references are kept.
fn rebase(reference: &str, base: &str, legacy: bool) -> String {
    let Some(pointer) = reference.strip_prefix('#') else { return reference.to_owned() };
    if !pointer.is_empty() && !pointer.starts_with('/') {
        // An anchor (`#name`) has no place in the document: kept as written.
        return reference.to_owned();
    }
    let mapped: Vec<&str> = pointer
        .split('/')
        .map(|segment| match segment {
            "$defs" if !legacy => "definitions",
            "prefixItems" if !legacy => "items",
            other => other,
        })
        .collect();
    format!("{base}{}", mapped.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renamed_keywords_and_references_are_mapped() {
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {
                "customer": { "$ref": "#/$defs/customer" },
                "pair": { "type": "array", "prefixItems": [{ "type": "string" }], "items": false },
                "self": { "$ref": "#" }
            },
            "dependentRequired": { "a": ["b"] },
            "$defs": { "customer": { "type": "object" } }
        });
        assert_eq!(
            convert(&schema, "t.v1"),
            json!({
                "type": "object",
                "properties": {
                    "customer": { "$ref": "#/components/schemas/t.v1/definitions/customer" },
                    "pair": { "type": "array", "items": [{ "type": "string" }], "additionalItems": false },
                    "self": { "$ref": "#/components/schemas/t.v1" }
                },
                "definitions": { "customer": { "type": "object" } },
                "dependencies": { "a": ["b"] }
            })
        );
    }

    #[test]
    fn draft_07_schemas_keep_their_tuple_items() {
        let schema = json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": { "pair": { "items": [{ "type": "string" }], "additionalItems": false } },
            "definitions": { "x": {} }
        });
        let converted = convert(&schema, "t.v1");
        assert_eq!(converted["properties"]["pair"]["items"], json!([{ "type": "string" }]));
        assert!(converted.get("$schema").is_none());
    }
}
