//! Exact membership tests backed by the `jsonschema` validator: whether a concrete value is
//! valid under a subschema of a document, and whether a string matches an ECMA-262 regex.
//! These make enumerations exact and let the checker prove violations with witnesses.

use std::collections::HashMap;

use jsonschema::error::ValidationErrorKind;
use jsonschema::{Registry, ValidationError, Validator};
use serde_json::{Value, json};

use super::model::{Doc, Draft, MAX_DEPTH};

/// Cached validators for one document.
///
/// `$ref`s to other documents cannot be fetched, so the document is validated twice: with
/// every remote target read as `false` and as `true`. In a document without `not`/`oneOf`
/// validity is monotone in those targets, so when both readings agree the answer holds
/// for whatever the remote schemas are; otherwise the oracle declines to answer.
pub(super) struct Oracle<'a> {
    uri: String,
    draft: jsonschema::Draft,
    /// The document as written.
    root: &'a Value,
    /// Its `$id` without fragment: `$ref`s to it are local.
    base: Option<String>,
    has_remote: bool,
    monotone: bool,
    registries: [Option<Registry<'static>>; 2],
    registry_failed: [bool; 2],
    validators: HashMap<(usize, String), Option<Validator>>,
    patterns: HashMap<String, Option<Validator>>,
}

const REMOTE_DEF: &str = "__prom_compat_remote";

/// Whether any `$ref` leaves the document (what [`replace_remote_refs`] would redirect).
fn has_remote_refs(v: &Value, base: Option<&str>, depth: usize) -> bool {
    if depth > 2 * MAX_DEPTH + 8 {
        return false;
    }
    match v {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                let uri = r.split('#').next().unwrap_or("");
                if !uri.is_empty() && Some(uri) != base {
                    return true;
                }
            }
            map.iter().any(|(k, child)| {
                !matches!(k.as_str(), "enum" | "const" | "default" | "examples")
                    && has_remote_refs(child, base, depth + 1)
            })
        }
        Value::Array(items) => items.iter().any(|child| has_remote_refs(child, base, depth + 1)),
        _ => false,
    }
}

/// Redirects every remote `$ref` to a local definition holding `stand_in`.
fn replace_remote_refs(v: &mut Value, base: Option<&str>, depth: usize) -> bool {
    if depth > 2 * MAX_DEPTH + 8 {
        return false;
    }
    let mut found = false;
    match v {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                let uri = r.split('#').next().unwrap_or("");
                if !uri.is_empty() && Some(uri) != base {
                    map.insert("$ref".into(), Value::String(format!("#/$defs/{REMOTE_DEF}")));
                    found = true;
                }
            }
            for (k, child) in map.iter_mut() {
                if !matches!(k.as_str(), "enum" | "const" | "default" | "examples") {
                    found |= replace_remote_refs(child, base, depth + 1);
                }
            }
        }
        Value::Array(items) => {
            for child in items {
                found |= replace_remote_refs(child, base, depth + 1);
            }
        }
        _ => {}
    }
    found
}

fn encode_fragment(ptr: &str) -> String {
    let mut out = String::with_capacity(ptr.len());
    for b in ptr.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/!$&'()*+,;=:@".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The keyword that rejected a value, looking through single-branch `anyOf`/`oneOf` so the
/// finding names the real constraint.
fn leaf_keyword(e: &ValidationError<'_>) -> String {
    if let ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } = e.kind()
        && let [branch] = context.as_slice()
        && let Some(inner) = branch.first()
    {
        return leaf_keyword(inner);
    }
    e.kind().keyword().to_string()
}

impl<'a> Oracle<'a> {
    pub(super) fn new(doc: &Doc<'a>) -> Oracle<'a> {
        let uri = doc
            .root
            .get("$id")
            .and_then(Value::as_str)
            .map(|s| s.split('#').next().unwrap_or("").to_string())
            .filter(|s| s.contains(':'))
            .unwrap_or_else(|| "urn:prom-compat:document".to_string());
        let draft = match doc.draft {
            Draft::Draft4 => jsonschema::Draft::Draft4,
            Draft::Draft6 => jsonschema::Draft::Draft6,
            Draft::Draft7 => jsonschema::Draft::Draft7,
            Draft::Draft201909 => jsonschema::Draft::Draft201909,
            Draft::Draft202012 => jsonschema::Draft::Draft202012,
        };
        let base = doc
            .root
            .get("$id")
            .and_then(Value::as_str)
            .map(|s| s.split('#').next().unwrap_or("").to_string());
        let has_remote = has_remote_refs(doc.root, base.as_deref(), 0);
        let monotone = !doc.nodes.iter().any(|n| n.kw.not.is_some() || n.kw.one_of.is_some());
        Oracle {
            uri,
            draft,
            root: doc.root,
            base,
            has_remote,
            monotone,
            registries: [None, None],
            registry_failed: [false, false],
            validators: HashMap::new(),
            patterns: HashMap::new(),
        }
    }

    /// Document variant `0` (remote targets read as `false`) or `1` (read as `true`). Built
    /// only when a validator is needed: most comparisons never consult one.
    fn variant(&self, variant: usize) -> Value {
        let mut doc = self.root.clone();
        if self.has_remote {
            replace_remote_refs(&mut doc, self.base.as_deref(), 0);
            if let Value::Object(map) = &mut doc {
                let defs = map.entry("$defs").or_insert_with(|| json!({}));
                if let Value::Object(d) = defs {
                    d.insert(REMOTE_DEF.into(), Value::Bool(variant == 1));
                }
            }
        }
        doc
    }

    fn validator(&mut self, variant: usize, ptr: &str) -> Option<&Validator> {
        // Without remote refs both variants are the same document.
        let variant = if self.has_remote { variant } else { 0 };
        let key = (variant, ptr.to_string());
        if !self.validators.contains_key(&key) {
            let built = self.build(variant, ptr);
            self.validators.insert(key.clone(), built);
        }
        self.validators.get(&key).and_then(Option::as_ref)
    }

    fn build(&mut self, variant: usize, ptr: &str) -> Option<Validator> {
        if self.registries[variant].is_none() && !self.registry_failed[variant] {
            let resource = self.draft.create_resource(self.variant(variant));
            self.registries[variant] =
                Registry::new().add(&self.uri, resource).and_then(|b| b.prepare()).ok();
            self.registry_failed[variant] = self.registries[variant].is_none();
        }
        let registry = self.registries[variant].as_ref()?;
        let wrapper = json!({ "$ref": format!("{}#{}", self.uri, encode_fragment(ptr)) });
        jsonschema::options()
            .with_draft(self.draft)
            .with_registry(registry)
            .with_pattern_options(pattern_options())
            // Format assertion as the runtime validates (the draft's default: 2020-12 only
            // annotates): asserting here would make a writer `format` shrink the writer's values,
            // or a reader `not: {format}` admit them, where the runtime does neither.
            .build(&wrapper)
            .ok()
    }

    /// Exact verdict: `Some(None)` if valid, `Some(Some(keyword))` naming the first failing
    /// keyword, `None` if it cannot be decided (compilation failed, or the answer depends
    /// on a remote schema).
    pub(super) fn check(&mut self, ptr: &str, value: &Value) -> Option<Option<String>> {
        let first = {
            let v = self.validator(0, ptr)?;
            match v.iter_errors(value).next() {
                // A regex gave up (catastrophic backtracking): the verdict is unknown.
                Some(e) if unfinished(&e) => return None,
                e => e.map(|e| leaf_keyword(&e)),
            }
        };
        if self.has_remote {
            let upper_valid = validity(self.validator(1, ptr)?, value)?;
            if !self.monotone || upper_valid != first.is_none() {
                return None;
            }
        }
        Some(first)
    }

    /// Whether the document refers to other documents.
    pub(super) fn has_remote(&self) -> bool {
        self.has_remote
    }

    /// Validity with remote schemas read as `true`: an over-approximation, fit for
    /// enumerating what a writer may produce.
    pub(super) fn valid_upper(&mut self, ptr: &str, value: &Value) -> Option<bool> {
        validity(self.validator(1, ptr)?, value)
    }

    /// ECMA-262 `pattern` semantics (unanchored search).
    pub(super) fn matches(&mut self, pattern: &str, s: &str) -> Option<bool> {
        if !self.patterns.contains_key(pattern) {
            let built = jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .with_pattern_options(pattern_options())
                .build(&json!({ "pattern": pattern }))
                .ok();
            self.patterns.insert(pattern.to_string(), built);
        }
        let v = self.patterns.get(pattern).and_then(Option::as_ref)?;
        validity(v, &Value::String(s.to_string()))
    }
}

/// Backtracking steps one regex match may take before the oracle gives up on it. Real
/// patterns on the short candidate strings need far fewer; catastrophic ones (`^(a|a)*\1b`)
/// would otherwise cost fancy-regex's default of a million steps per candidate.
const REGEX_BACKTRACK_LIMIT: usize = 10_000;

fn pattern_options() -> jsonschema::PatternOptions<jsonschema::FancyRegex> {
    jsonschema::PatternOptions::fancy_regex().backtrack_limit(REGEX_BACKTRACK_LIMIT)
}

/// Whether an error means "the regex engine gave up", not "invalid".
fn unfinished(e: &ValidationError<'_>) -> bool {
    matches!(e.kind(), ValidationErrorKind::BacktrackLimitExceeded { .. })
}

/// Validity, or `None` when a regex gave up before deciding.
fn validity(validator: &Validator, value: &Value) -> Option<bool> {
    match validator.validate(value) {
        Ok(()) => Some(true),
        Err(e) if unfinished(&e) => None,
        Err(_) => Some(false),
    }
}
