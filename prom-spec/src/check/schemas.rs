//! Payload schemas must be valid JSON Schemas with an object root.

use crate::diag::{Code, Diagnostic};
use crate::spec::{Schema, Topic};
use serde_json::Value;
use std::collections::BTreeSet;

/// The payload schemas that passed every schema rule; later rules skip the others, so one
/// broken schema does not cascade into compatibility or pointer errors.
#[derive(Debug, Default)]
pub struct Usable(BTreeSet<(String, u32)>);

impl Usable {
    /// Whether `topic` version `version` has a valid schema.
    pub fn contains(&self, topic: &str, version: u32) -> bool {
        self.0.contains(&(topic.to_owned(), version))
    }

    /// Records which versions of `topic` are usable (`usable[i]` for `topic.versions[i]`).
    pub fn insert_topic(&mut self, topic: &Topic, usable: &[bool]) {
        let usable_versions = topic.versions.iter().zip(usable).filter(|(_, ok)| **ok);
        self.0.extend(usable_versions.map(|(v, _)| (topic.name.value.clone(), v.number.value)));
    }
}

/// Checks each of a topic's version schemas; returns which are usable, in version order.
pub fn check_topic(topic: &Topic, out: &mut Vec<Diagnostic>) -> Vec<bool> {
    topic
        .versions
        .iter()
        .map(|version| {
            let before = out.len();
            check_schema(&version.schema, out);
            out.len() == before
        })
        .collect()
}

fn check_schema(schema: &Schema, out: &mut Vec<Diagnostic>) {
    let json = &schema.json;
    let meta = match meta_validator(json) {
        Ok(meta) => meta,
        Err(uri) => {
            out.push(
                Diagnostic::error(
                    Code::InvalidSchema,
                    schema.span_at("/$schema"),
                    format!("unknown `$schema` `{uri}`"),
                )
                .with_help("use draft 2020-12 (the default), 2019-09, 7, 6 or 4"),
            );
            return;
        }
    };
    let before = out.len();
    // Collecting errors costs far more than a yes/no answer, and most schemas are valid. (Not
    // `iter_errors(..).take(0)`: building the iterator already does the work.)
    let errors = if meta.is_valid(json) { None } else { Some(meta.iter_errors(json)) };
    for error in errors.into_iter().flatten() {
        let pointer = error.instance_path().as_str().to_owned();
        let span = schema.span_at(&pointer);
        let location = if pointer.is_empty() { "the schema root".to_owned() } else { format!("`{pointer}`") };
        out.push(
            Diagnostic::error(
                Code::InvalidSchema,
                span,
                // The validator quotes the offending value, which may be a whole file.
                format!("invalid JSON Schema at {location}: {}", crate::diag::cap(error.to_string(), 200)),
            )
            .with_help(help_for(json.pointer(&pointer))),
        );
    }
    if out.len() > before {
        return;
    }
    for pointer in external_refs(json) {
        out.push(
            Diagnostic::error(
                Code::InvalidSchema,
                schema.span_at(&pointer),
                "`$ref` inside a schema must be local (`#/$defs/...`)",
            )
            .with_help(
                "reference whole files at `schema: { $ref: file.json }`; move shared parts into `$defs`",
            ),
        );
    }
    if out.len() > before {
        return;
    }
    // The meta-schema does not check regexes or that local refs resolve; compiling does (and
    // is only needed when the schema has one of those).
    if needs_compile(json)
        && let Err(error) = jsonschema::options().build(json)
    {
        let pointer = error.schema_path().as_str().to_owned();
        out.push(
            Diagnostic::error(
                Code::InvalidSchema,
                schema.span_at(&pointer),
                format!("invalid JSON Schema: {}", crate::diag::cap(error.to_string(), 200)),
            )
            .with_help("fix the keyword so the schema compiles (regexes use ECMA-262 syntax)"),
        );
        return;
    }
    let is_object = match json.get("type") {
        Some(Value::String(t)) => t == "object",
        Some(Value::Array(ts)) => ts.len() == 1 && ts[0] == "object",
        _ => false,
    };
    if !is_object {
        let span = schema.node.key_span("/type").unwrap_or(&schema.span);
        out.push(
            Diagnostic::error(
                Code::SchemaRootNotObject,
                span,
                "a payload schema's root must be `type: object`",
            )
            .with_help(
                "event payloads are JSON objects; add `type: object` and describe fields under `properties`",
            ),
        );
    }
}

fn meta_validator(json: &Value) -> Result<jsonschema::meta::MetaValidator<'static>, String> {
    let uri = match json.get("$schema") {
        None => return Ok(jsonschema::draft202012::meta::validator()),
        Some(Value::String(uri)) => uri.trim_end_matches('#'),
        Some(other) => return Err(other.to_string()),
    };
    let uri = uri.replace("https://", "http://");
    Ok(match uri.as_str() {
        "http://json-schema.org/draft-04/schema" => jsonschema::draft4::meta::validator(),
        "http://json-schema.org/draft-06/schema" => jsonschema::draft6::meta::validator(),
        "http://json-schema.org/draft-07/schema" => jsonschema::draft7::meta::validator(),
        "http://json-schema.org/draft/2019-09/schema" => jsonschema::draft201909::meta::validator(),
        "http://json-schema.org/draft/2020-12/schema" => jsonschema::draft202012::meta::validator(),
        _ => return Err(uri),
    })
}

/// Pointers of `$ref`s that leave the document.
fn external_refs(json: &Value) -> Vec<String> {
    let mut found = Vec::new();
    collect_external_refs(json, &mut String::new(), &mut found);
    found
}

/// Walks `json` at pointer `at` (restored on return): pointers are only built for what is found.
fn collect_external_refs(json: &Value, at: &mut String, found: &mut Vec<String>) {
    let len = at.len();
    match json {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) if !r.starts_with('#') => {
                        found.push(format!("{at}/{}", escape(k)));
                    }
                    // `const`, `enum`, `default` and `examples` hold data, not schemas.
                    ("const" | "enum" | "default" | "examples", _) => {}
                    (_, Value::Object(_) | Value::Array(_)) => {
                        at.push('/');
                        at.push_str(&escape(k));
                        collect_external_refs(v, at, found);
                        at.truncate(len);
                    }
                    _ => {}
                }
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                if v.is_object() || v.is_array() {
                    at.push('/');
                    at.push_str(&i.to_string());
                    collect_external_refs(v, at, found);
                    at.truncate(len);
                }
            }
        }
        _ => {}
    }
}

/// Escapes one JSON-pointer segment.
fn escape(segment: &str) -> std::borrow::Cow<'_, str> {
    if segment.contains(['~', '/']) {
        segment.replace('~', "~0").replace('/', "~1").into()
    } else {
        segment.into()
    }
}

fn help_for(value: Option<&Value>) -> String {
    const TYPES: &[&str] = &["string", "integer", "number", "boolean", "object", "array", "null"];
    if let Some(Value::String(s)) = value {
        let hint = crate::suggest::did_you_mean(s, TYPES.iter().copied());
        if !hint.is_empty() {
            return hint;
        }
    }
    "check the keyword's allowed values in JSON Schema draft 2020-12".to_owned()
}

/// Whether a schema holds anything the meta-schema cannot vouch for: regexes or references.
fn needs_compile(json: &Value) -> bool {
    match json {
        Value::Object(map) => map.iter().any(|(k, v)| {
            matches!(k.as_str(), "pattern" | "patternProperties" | "$ref" | "$dynamicRef") || needs_compile(v)
        }),
        Value::Array(items) => items.iter().any(needs_compile),
        _ => false,
    }
}
