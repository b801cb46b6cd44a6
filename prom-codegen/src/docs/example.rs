//! An example payload generated from a schema: deterministic, and checked against the schema
//! (with format assertions on) before it is shown.

use serde_json::{Map, Number, Value, json};

/// Optional properties and array items are filled in to this depth, required ones always.
const OPTIONAL_DEPTH: usize = 4;
/// A required chain deeper than this has no finite example (a schema that requires itself).
const MAX_DEPTH: usize = 64;
/// Values generated for one example at most: combinators and wide schemas can multiply work.
const MAX_VALUES: usize = 20_000;

/// The example of `schema`, or why none could be made that validates.
pub fn example(schema: &Value) -> Result<Value, String> {
    let mut state = State::default();
    let value = generate(schema, schema, 0, &mut state);
    if state.values > MAX_VALUES {
        return Err(format!(
            "no example: the schema needs more than {MAX_VALUES} generated values; add `examples: [...]` to it"
        ));
    }
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(schema)
        .map_err(|error| format!("the schema cannot be compiled: {error}"))?;
    let errors: Vec<String> =
        validator.iter_errors(&value).take(3).map(|e| format!("{} at `{}`", e, e.instance_path())).collect();
    if errors.is_empty() {
        Ok(value)
    } else {
        Err(format!(
            "no example: the generator cannot satisfy this schema ({}); add `examples: [...]` to it",
            errors.join("; ")
        ))
    }
}

/// Resolves a local `$ref` (`#/...`) inside `root`.
fn resolve<'a>(root: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    root.pointer(pointer)
}

/// What generation has seen: the `$ref`s being expanded and the work done.
#[derive(Default)]
struct State {
    refs: Vec<String>,
    values: usize,
}

fn generate(schema: &Value, root: &Value, depth: usize, state: &mut State) -> Value {
    let Value::Object(map) = schema else { return Value::Null };
    state.values += 1;
    if depth > MAX_DEPTH || state.values > MAX_VALUES {
        return Value::Null;
    }
    if let Some(value) = map.get("const") {
        return value.clone();
    }
    if let Some(Value::Array(examples)) = map.get("examples")
        && let Some(first) = examples.first()
    {
        return first.clone();
    }
    if let Some(value) = map.get("default") {
        return value.clone();
    }
    if let Some(Value::Array(values)) = map.get("enum") {
        // The first non-null value reads best.
        if let Some(value) = values.iter().find(|v| !v.is_null()).or(values.first()) {
            return value.clone();
        }
    }
    if let Some(Value::String(reference)) = map.get("$ref") {
        // Re-entering a `$ref` here means it requires itself: no finite example exists.
        if state.refs.contains(reference) {
            return Value::Null;
        }
        let Some(target) = resolve(root, reference) else { return Value::Null };
        state.refs.push(reference.clone());
        let value = generate(target, root, depth + 1, state);
        state.refs.pop();
        return value;
    }
    for combinator in ["oneOf", "anyOf"] {
        if let Some(Value::Array(branches)) = map.get(combinator)
            && let Some(first) = branches.iter().find(|b| !is_null_schema(b)).or(branches.first())
        {
            return generate(first, root, depth + 1, state);
        }
    }
    if let Some(Value::Array(branches)) = map.get("allOf") {
        // One schema with every branch's keywords (local `$ref`s followed): properties merged,
        // required names united, the first word kept for any other keyword. Validation below
        // has the last word on whether that was enough.
        let mut merged = map.clone();
        merged.remove("allOf");
        for branch in branches {
            let branch = match branch.get("$ref").and_then(Value::as_str) {
                Some(reference) if !state.refs.iter().any(|r| r == reference) => {
                    resolve(root, reference).unwrap_or(branch)
                }
                _ => branch,
            };
            let Value::Object(keywords) = branch else { continue };
            for (key, value) in keywords {
                match (key.as_str(), merged.get_mut(key), value) {
                    ("properties", Some(Value::Object(into)), Value::Object(from)) => {
                        for (name, schema) in from {
                            into.entry(name.clone()).or_insert_with(|| schema.clone());
                        }
                    }
                    ("required", Some(Value::Array(into)), Value::Array(from)) => {
                        for name in from {
                            if !into.contains(name) {
                                into.push(name.clone());
                            }
                        }
                    }
                    (_, None, _) => {
                        merged.insert(key.clone(), value.clone());
                    }
                    _ => {}
                }
            }
        }
        return generate(&Value::Object(merged), root, depth + 1, state);
    }
    match type_of(map).as_deref() {
        Some("object") => object(map, root, depth, state),
        Some("array") => array(map, root, depth, state),
        Some("string") => string(map),
        Some("integer") => integer(map),
        Some("number") => number(map),
        Some("boolean") => Value::Bool(true),
        Some("null") => Value::Null,
        _ => Value::Null,
    }
}

fn is_null_schema(schema: &Value) -> bool {
    schema.get("type").and_then(Value::as_str) == Some("null")
}

/// The type to generate: the first non-null one; inferred from keywords when absent.
fn type_of(map: &Map<String, Value>) -> Option<String> {
    match map.get("type") {
        Some(Value::String(t)) => Some(t.clone()),
        Some(Value::Array(types)) => {
            let names: Vec<&str> = types.iter().filter_map(Value::as_str).collect();
            names.iter().find(|t| **t != "null").or(names.first()).map(|t| (*t).to_owned())
        }
        _ if map.contains_key("properties") || map.contains_key("required") => Some("object".to_owned()),
        _ if map.contains_key("items") || map.contains_key("prefixItems") => Some("array".to_owned()),
        _ if map.contains_key("minLength") || map.contains_key("pattern") || map.contains_key("format") => {
            Some("string".to_owned())
        }
        _ if map.contains_key("minimum") || map.contains_key("maximum") => Some("number".to_owned()),
        _ => None,
    }
}

/// Whether generating `schema` would re-enter a `$ref` already being generated.
fn recursive(schema: &Value, refs: &[String]) -> bool {
    let reference = schema.get("$ref").and_then(Value::as_str);
    let items = schema.get("items").and_then(|i| i.get("$ref")).and_then(Value::as_str);
    [reference, items].into_iter().flatten().any(|r| refs.iter().any(|seen| seen == r))
}

fn object(map: &Map<String, Value>, root: &Value, depth: usize, state: &mut State) -> Value {
    let required: Vec<&str> = map
        .get("required")
        .and_then(Value::as_array)
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut out = Map::new();
    if let Some(Value::Object(properties)) = map.get("properties") {
        for (name, property) in properties {
            let needed = required.contains(&name.as_str());
            if needed || (depth < OPTIONAL_DEPTH && !recursive(property, &state.refs)) {
                out.insert(name.clone(), generate(property, root, depth + 1, state));
            }
        }
    }
    // Required names without a `properties` entry accept anything the other keywords allow.
    for name in required {
        if !out.contains_key(name) {
            let value = match map.get("additionalProperties") {
                Some(schema @ Value::Object(_)) => generate(schema, root, depth + 1, state),
                _ => Value::from("value"),
            };
            out.insert(name.to_owned(), value);
        }
    }
    Value::Object(out)
}

fn array(map: &Map<String, Value>, root: &Value, depth: usize, state: &mut State) -> Value {
    let min = map.get("minItems").and_then(Value::as_u64).unwrap_or(0) as usize;
    let max = map.get("maxItems").and_then(Value::as_u64).map_or(usize::MAX, |m| m as usize);
    let mut out = Vec::new();
    if let Some(Value::Array(prefix)) = map.get("prefixItems") {
        for item in prefix {
            out.push(generate(item, root, depth + 1, state));
        }
    }
    let items = map.get("items").filter(|i| i.is_object());
    let wanted = if depth < OPTIONAL_DEPTH && items.is_some_and(|i| !recursive(i, &state.refs)) {
        min.max(1)
    } else {
        min
    };
    let wanted = wanted.min(max).min(16);
    if let Some(items) = items {
        while out.len() < wanted {
            let mut value = generate(items, root, depth + 1, state);
            // Distinct items where they must be unique: numbers and strings are varied.
            if !out.is_empty() {
                vary(&mut value, out.len());
            }
            out.push(value);
        }
    }
    Value::Array(out)
}

fn vary(value: &mut Value, index: usize) {
    match value {
        Value::String(s) => s.push_str(&format!("-{index}")),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                *value = json!(i.saturating_add(index as i64));
            }
        }
        _ => {}
    }
}

fn string(map: &Map<String, Value>) -> Value {
    let format = map.get("format").and_then(Value::as_str).unwrap_or_default();
    let base = match format {
        "date-time" => "2026-01-31T12:00:00Z",
        "date" => "2026-01-31",
        "time" => "12:00:00Z",
        "duration" => "PT1M",
        "email" | "idn-email" => "user@example.com",
        "hostname" | "idn-hostname" => "example.com",
        "ipv4" => "192.0.2.1",
        "ipv6" => "2001:db8::1",
        "uri" | "iri" | "uri-reference" | "iri-reference" | "url" => "https://example.com/",
        "uuid" => "0193a5c0-7b1e-7cde-8f00-000000000001",
        "json-pointer" => "/a/b",
        "regex" => "^[a-z]+$",
        _ => "string",
    };
    let mut text = base.to_owned();
    let min = map.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
    let max = map.get("maxLength").and_then(Value::as_u64).map(|m| m as usize);
    while text.chars().count() < min.min(4096) {
        text.push('x');
    }
    if let Some(max) = max
        && text.chars().count() > max
    {
        text = text.chars().take(max).collect();
    }
    Value::String(text)
}

/// A number within the bounds: the inclusive or exclusive minimum, else 1 capped by the maximum.
fn bounded(map: &Map<String, Value>, step: f64) -> f64 {
    let get = |key: &str| map.get(key).and_then(Value::as_f64);
    let low = get("minimum").or_else(|| get("exclusiveMinimum").map(|m| m + step));
    let high = get("maximum").or_else(|| get("exclusiveMaximum").map(|m| m - step));
    let mut value = low.unwrap_or(1.0);
    if let Some(high) = high
        && value > high
    {
        value = high;
    }
    if let Some(multiple) = get("multipleOf").filter(|m| *m > 0.0) {
        value = (value / multiple).ceil() * multiple;
    }
    value
}

fn integer(map: &Map<String, Value>) -> Value {
    let value = bounded(map, 1.0).ceil();
    if value.abs() < 9.0e15 { json!(value as i64) } else { Value::Number(Number::from(0)) }
}

fn number(map: &Map<String, Value>) -> Value {
    let value = bounded(map, 0.5);
    Number::from_f64(value).map_or(Value::Null, Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_follow_the_schema() {
        let schema = json!({
            "type": "object", "required": ["id", "n", "at", "kind", "tags", "root"],
            "additionalProperties": false,
            "properties": {
                "id": { "type": "string", "minLength": 10, "maxLength": 12 },
                "n": { "type": "integer", "exclusiveMinimum": 5, "maximum": 9 },
                "at": { "type": "string", "format": "date-time" },
                "kind": { "enum": [null, "a"] },
                "tags": { "type": "array", "items": { "type": "string" }, "minItems": 2, "uniqueItems": true },
                "maybe": { "type": ["null", "number"], "minimum": 0.25 },
                "root": { "$ref": "#/$defs/node" }
            },
            "$defs": { "node": { "type": "object", "required": ["label"],
                "properties": { "label": { "type": "string" }, "children": { "type": "array", "items": { "$ref": "#/$defs/node" } } } } }
        });
        let value = example(&schema).expect("valid example");
        assert_eq!(value["id"], "stringxxxx");
        assert_eq!(value["n"], 6);
        assert_eq!(value["at"], "2026-01-31T12:00:00Z");
        assert_eq!(value["kind"], "a");
        assert_eq!(value["tags"], json!(["string", "string-1"]));
        assert_eq!(value["maybe"], 0.25);
        assert_eq!(value["root"]["label"], "string");
        assert_eq!(example(&schema), example(&schema));
    }

    #[test]
    fn an_unsatisfiable_schema_says_so() {
        let error =
            example(&json!({ "type": "string", "pattern": "^[0-9]+$" })).expect_err("pattern not met");
        assert!(error.contains("examples"), "{error}");
        assert_eq!(
            example(&json!({ "type": "string", "pattern": "^[0-9]+$", "examples": ["42"] })),
            Ok(json!("42"))
        );
        // A schema that requires itself twice has no finite instance: said at once, no blow-up.
        let selfish = json!({ "$ref": "#/$defs/n", "$defs": { "n": { "type": "object", "required": ["a", "b"],
            "properties": { "a": { "$ref": "#/$defs/n" }, "b": { "$ref": "#/$defs/n" } } } } });
        assert!(example(&selfish).is_err());
        // Nested allOf merges into one schema: linear, not 2^16 leaves.
        let mut wide = json!({ "type": "string" });
        for _ in 0..16 {
            wide = json!({ "allOf": [wide.clone(), wide] });
        }
        assert_eq!(example(&wide), Ok(json!("string")));
        // 16^8 required array items: the work budget ends it.
        let mut deep = json!({ "type": "integer" });
        for _ in 0..8 {
            deep = json!({ "type": "array", "minItems": 16, "items": deep });
        }
        assert!(example(&deep).expect_err("too much work").contains("more than"));
        assert_eq!(example(&json!({ "allOf": [{ "type": "integer" }, { "minimum": 3 }] })), Ok(json!(3)));
    }
}
