//! P202's help when a version declares a property its open predecessor did not
//! (`property-added-open-model`): the two fixes as the YAML to write, each offered only when
//! re-checking with it applied shows that it resolves the finding.

use crate::compat::{self, PairMode, Report, Rule, Violation};
use crate::spec::Version;
use serde_json::{Value, json};

/// Findings per topic whose fixes are verified (each costs up to two schema comparisons);
/// later ones keep the general help.
pub(super) const MAX_VERIFIED: usize = 8;

/// The hop a finding was made on.
pub(super) struct Hop<'a> {
    /// The version before `old`, when `old` reads it without an upcast (closing `old` must not
    /// break that hop).
    pub before: Option<&'a Version>,
    pub old: &'a Version,
    pub new: &'a Version,
    /// `new` directly follows `old` (an upcast on `new` then converts `old` payloads).
    pub adjacent: bool,
    pub mode: PairMode,
    /// What comparing `old` with `new` found.
    pub report: &'a Report,
}

/// Whether `violation` is a property added to an open schema (what [`help`] explains).
pub(super) fn applies(violation: &Violation) -> bool {
    violation.rule == Rule::PropertyAddedOpenModel
}

/// The help for `violation`, or `None` when it is not a property added to an open schema or
/// neither fix can be verified.
pub(super) fn help(hop: &Hop<'_>, violation: &Violation) -> Option<String> {
    if !applies(violation) {
        return None;
    }
    let (parent, name) = split(&violation.path)?;
    let (o, n) = (hop.old.number.value, hop.new.number.value);
    let close = close_fix(hop, violation, parent).map(|(location, entry)| {
        format!(
            "close version {o} so its payloads never carry {} (only if no stored v{o} payload has undeclared properties) — {location} add\n  {entry}",
            quoted(&name)
        )
    });
    let upcast = upcast_fix(hop, parent, &name).map(|(location, value)| {
        format!(
            "give version {n} an upcast that sets it — {location} add\n  upcast:\n    set_default: {{ {}: {value} }}",
            yaml_key(&name)
        )
    });
    match (close, upcast) {
        (Some(close), Some(upcast)) => Some(format!("either {close}\nor {upcast}")),
        (Some(one), None) | (None, Some(one)) => Some(one),
        (None, None) => None,
    }
}

/// Splits `/…/properties/<name>` into the parent object's pointer and the unescaped name.
fn split(path: &str) -> Option<(&str, String)> {
    let (rest, name) = path.rsplit_once('/')?;
    let parent = rest.strip_suffix("/properties")?;
    Some((parent, name.replace("~1", "/").replace("~0", "~")))
}

/// Where to write `additionalProperties: false` in the old version, and the entry as that file
/// spells it, if closing its object at `parent` clears the finding without breaking anything the
/// hops checked before.
fn close_fix(hop: &Hop<'_>, violation: &Violation, parent: &str) -> Option<(String, &'static str)> {
    let old = &hop.old.schema;
    let object = old.json.pointer(parent)?.as_object()?;
    if !matches!(object.get("additionalProperties"), None | Some(Value::Bool(true))) {
        return None;
    }
    let mut closed = old.json.clone();
    closed.pointer_mut(parent)?.as_object_mut()?.insert("additionalProperties".into(), Value::Bool(false));
    let mut budget = compat::WITNESS_BUDGET;
    let after = compat::check_on_worker(&closed, &hop.new.schema.json, hop.mode, &mut budget).ok()?;
    let was = |v: &Violation| hop.report.violations.iter().any(|b| b.rule == v.rule && b.path == v.path);
    let same = |v: &Violation| v.rule == violation.rule && v.path == violation.path;
    if after.violations.iter().any(|v| same(v) || !was(v)) {
        return None;
    }
    if let Some(before) = hop.before {
        // Stored payloads of the version before are read as `old` payloads: closing `old` must
        // not reject them (what P208 requires whatever the mode).
        let mode = if hop.mode == PairMode::Backward { PairMode::Backward } else { PairMode::Full };
        let now = compat::check_on_worker(&before.schema.json, &old.json, mode, &mut budget).ok()?;
        let then = compat::check_on_worker(&before.schema.json, &closed, mode, &mut budget).ok()?;
        if then.violations.len() > now.violations.len() {
            return None;
        }
    }
    let node_file = &old.span_at(parent).file;
    let line = old.span_at(parent).start.line;
    if *node_file == old.span.file {
        let under = format!("versions.{}.schema{}", hop.old.number.value, dotted(parent));
        Some((
            format!("in {} under {under} (line {line})", node_file.display()),
            "additionalProperties: false",
        ))
    } else {
        // A `$ref`'d schema file: name the object by its place in that file.
        let at = if parent.is_empty() {
            "its root object".to_owned()
        } else {
            format!("the object at `{parent}`")
        };
        let json = node_file.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
        let entry = if json { "\"additionalProperties\": false," } else { "additionalProperties: false" };
        Some((format!("in {} ({at}, line {line})", node_file.display()), entry))
    }
}

/// Where to write the upcast and the default it sets, when `name` is a top-level property of
/// a version directly following the old one (`set_default` names top-level fields only).
fn upcast_fix(hop: &Hop<'_>, parent: &str, name: &str) -> Option<(String, String)> {
    if !hop.adjacent || !parent.is_empty() || hop.new.upcast.is_some() {
        return None;
    }
    let root = &hop.new.schema.json;
    let schema = root.get("properties")?.get(name)?;
    let value = match default_for(root, schema) {
        Some(value) => yaml_value(&value),
        None => format!("<a value valid under versions.{}.schema.properties.{}>", hop.new.number.value, name),
    };
    let span = &hop.new.number.span;
    let location = format!(
        "in {} under versions.{} (line {})",
        span.file.display(),
        hop.new.number.value,
        span.start.line
    );
    Some((location, value))
}

/// The first of the schema's own values (`const`, `enum`, `default`) and the type's zero
/// values that the schema accepts.
fn default_for(root: &Value, schema: &Value) -> Option<Value> {
    let mut candidates: Vec<Value> = Vec::new();
    candidates.extend(schema.get("const").cloned());
    candidates.extend(schema.get("enum").and_then(Value::as_array).and_then(|e| e.first().cloned()));
    candidates.extend(schema.get("default").cloned());
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if types.contains(&"null") {
        candidates.push(Value::Null);
    }
    // Bounds the zero value may miss: the smallest value they allow.
    candidates.extend(schema.get("minimum").filter(|m| m.is_number()).cloned());
    match schema.get("exclusiveMinimum") {
        Some(Value::Number(n)) if n.is_i64() => {
            candidates.extend(n.as_i64().and_then(|i| i.checked_add(1)).map(Value::from))
        }
        Some(Value::Number(n)) => candidates.extend(n.as_f64().map(|f| json!(f.floor() + 1.0))),
        _ => {}
    }
    if let Some(length) = schema.get("minLength").and_then(Value::as_u64).filter(|l| *l <= 64) {
        candidates.push(json!("x".repeat(usize::try_from(length).unwrap_or(0))));
    }
    for t in &types {
        candidates.push(match *t {
            "string" => json!(""),
            "integer" | "number" => json!(0),
            "boolean" => json!(false),
            "array" => json!([]),
            "object" => json!({}),
            _ => continue,
        });
    }
    // The property schema may use `#/$defs/...`: validate with the root's definitions in scope.
    let mut wrapper = schema.clone();
    if let Value::Object(map) = &mut wrapper {
        for defs in ["$defs", "definitions"] {
            if let Some(d) = root.get(defs) {
                map.entry(defs).or_insert_with(|| d.clone());
            }
        }
    }
    let validator = jsonschema::validator_for(&wrapper).ok()?;
    candidates.into_iter().find(|c| validator.is_valid(c))
}

/// A JSON pointer as the YAML path after `schema` (`.properties.a`).
fn dotted(pointer: &str) -> String {
    pointer
        .split('/')
        .skip(1)
        .map(|s| format!(".{}", yaml_key(&s.replace("~1", "/").replace("~0", "~"))))
        .collect()
}

/// A name as a YAML flow-mapping key: bare when that reads back as the same string.
fn yaml_key(name: &str) -> String {
    let bare = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !matches!(name, "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n");
    if bare { name.to_owned() } else { Value::String(name.to_owned()).to_string() }
}

/// `name` in backticks, JSON-quoted when it holds anything unusual.
fn quoted(name: &str) -> String {
    format!("`{}`", yaml_key(name))
}

/// A JSON value written as a YAML flow value (JSON is YAML).
fn yaml_value(value: &Value) -> String {
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_property_pointers() {
        assert_eq!(split("/properties/note"), Some(("", "note".to_owned())));
        assert_eq!(split("/properties/a/properties/b~1c"), Some(("/properties/a", "b/c".to_owned())));
        assert_eq!(split("/items"), None);
    }

    #[test]
    fn defaults_fit_the_schema() {
        let root = json!({});
        assert_eq!(default_for(&root, &json!({ "type": "string" })), Some(json!("")));
        assert_eq!(default_for(&root, &json!({ "type": "integer" })), Some(json!(0)));
        assert_eq!(default_for(&root, &json!({ "type": "boolean" })), Some(json!(false)));
        assert_eq!(default_for(&root, &json!({ "type": "array" })), Some(json!([])));
        assert_eq!(default_for(&root, &json!({ "type": ["string", "null"] })), Some(json!(null)));
        assert_eq!(default_for(&root, &json!({ "type": "string", "enum": ["a", "b"] })), Some(json!("a")));
        assert_eq!(default_for(&root, &json!({ "type": "integer", "minimum": 3 })), Some(json!(3)));
        assert_eq!(default_for(&root, &json!({ "type": "integer", "exclusiveMinimum": 3 })), Some(json!(4)));
        assert_eq!(default_for(&root, &json!({ "type": "string", "minLength": 2 })), Some(json!("xx")));
        assert_eq!(default_for(&root, &json!({ "type": "integer", "multipleOf": 7, "minimum": 1 })), None);
        assert_eq!(default_for(&root, &json!({ "type": "object" })), Some(json!({})));
        assert_eq!(default_for(&root, &json!({ "type": "object", "required": ["x"] })), None);
    }

    #[test]
    fn keys_are_quoted_when_needed() {
        assert_eq!(yaml_key("note"), "note");
        assert_eq!(yaml_key("x-retries"), "x-retries");
        assert_eq!(yaml_key("a b"), "\"a b\"");
        assert_eq!(yaml_key("yes"), "\"yes\"");
        assert_eq!(yaml_key("line\nbreak"), "\"line\\nbreak\"");
        assert_eq!(dotted("/properties/a"), ".properties.a");
    }
}
