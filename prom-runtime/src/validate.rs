//! Payload validation against a version's JSON Schema, compiled once.
//!
//! Most payload schemas are flat records: typed properties, `required`, a closed or open
//! object, numeric and length bounds. For those, [`Shape`] proves a payload valid in one walk
//! over it, several times faster than the general validator (whose per-keyword dispatch
//! dominates on payloads this small). The shape is only ever used to *accept*: whenever it
//! cannot prove a payload valid (the payload is invalid, or it holds something the shape
//! cannot decide exactly, such as `1.0` for an integer or a bound it cannot compare without
//! rounding), the `jsonschema` validator decides. Schemas using any keyword outside the subset
//! get no shape at all. So the shape can make valid payloads cheaper, never change an outcome.

mod integers;

use crate::error::{Error, Result};
use integers::Integers;
use serde_json::{Map, Number, Value};
use std::cmp::Ordering;
use std::collections::HashMap;

/// Violations reported per payload at most (the first few say what is wrong).
const MAX_REPORTED: usize = 8;

/// A compiled JSON Schema.
pub struct CompiledSchema {
    validator: jsonschema::Validator,
    /// The fast acceptance check, when the schema stays inside its subset.
    shape: Option<Shape>,
    /// Where the schema declares integers, when it declares any.
    integers: Option<Integers>,
}

impl std::fmt::Debug for CompiledSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CompiledSchema")
    }
}

impl CompiledSchema {
    /// Compiles `schema` (draft from `$schema`, 2020-12 by default).
    pub fn compile(schema: &Value) -> Result<CompiledSchema, String> {
        let validator = jsonschema::validator_for(schema).map_err(|e| e.to_string())?;
        Ok(CompiledSchema { validator, shape: Shape::root(schema), integers: Integers::of(schema) })
    }

    /// Whether `payload` satisfies the schema.
    pub fn is_valid(&self, payload: &Value) -> bool {
        self.shape.as_ref().is_some_and(|shape| shape.accepts(payload)) || self.validator.is_valid(payload)
    }

    /// Checks `payload`; the error lists each violation with the JSON pointer of the value.
    pub fn check(&self, topic: &str, version: u32, payload: &Value) -> Result<()> {
        // The fast boolean checks first: collecting errors costs more and is rarely needed.
        if self.is_valid(payload) {
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

    /// Checks `payload` for publishing and brings it to its canonical form: a number the schema
    /// declares integer but that was written as a float (`1.0`, `1e0`, `-0`) becomes the
    /// integer, so one value has one stored text, key and partition; an integer outside i64
    /// (the generated field type) is refused with its JSON pointer, value and the range.
    ///
    /// A payload the fast path accepts is already canonical (it accepts integers only as
    /// i64), so the rewrite walk runs only on payloads the general validator had to decide.
    pub fn check_canonical(&self, topic: &str, version: u32, payload: &mut Value) -> Result<()> {
        if self.shape.as_ref().is_some_and(|shape| shape.accepts(payload)) {
            return Ok(());
        }
        let Some(integers) = &self.integers else { return self.check(topic, version, payload) };
        // Out-of-range integers first: the general validator accepts them, and their error is
        // the one that says what to do.
        integers.canonicalise(payload, &mut String::new()).map_err(|e| {
            let at = if e.pointer.is_empty() {
                "the payload root".to_string()
            } else {
                format!("`{}`", e.pointer)
            };
            Error::Invalid {
                topic: topic.to_string(),
                version,
                errors: vec![format!(
                    "  at {at}: {} is outside the integers the schema's `type: integer` can hold here \
                     ({}..={}, i64 in the generated code); send a value in that range, or declare the \
                     field `type: number` (or a string) if it must be larger",
                    e.value,
                    i64::MIN,
                    i64::MAX
                )],
            }
        })?;
        self.check(topic, version, payload)
    }

    /// Whether the fast acceptance check covers this schema (for tests and benchmarks).
    pub fn has_fast_path(&self) -> bool {
        self.shape.is_some()
    }
}

/// Drafts whose semantics for the subset below are the ones [`Shape`] implements (draft-04
/// spells `exclusiveMinimum` as a boolean, so it is left to the general validator).
const DRAFTS: [&str; 8] = [
    "https://json-schema.org/draft/2020-12/schema",
    "https://json-schema.org/draft/2020-12/schema#",
    "https://json-schema.org/draft/2019-09/schema",
    "https://json-schema.org/draft/2019-09/schema#",
    "http://json-schema.org/draft-07/schema",
    "http://json-schema.org/draft-07/schema#",
    "http://json-schema.org/draft-06/schema",
    "http://json-schema.org/draft-06/schema#",
];

/// Keywords that never constrain a payload.
const ANNOTATIONS: [&str; 8] =
    ["description", "title", "$comment", "examples", "default", "deprecated", "readOnly", "writeOnly"];

/// Nesting beyond this is left to the general validator (bounds the compile recursion).
const MAX_DEPTH: usize = 32;

/// Objects with more properties than this look names up in a hash map instead of a list.
const LINEAR_LOOKUP: usize = 16;

// JSON types as bits. `INTEGER` is a number written as an integer (serde_json holds it as
// i64/u64); a float with no fraction is an integer to JSON Schema too, but the shape does not
// try to decide that and leaves it to the general validator.
const NULL: u8 = 1;
const BOOLEAN: u8 = 2;
const INTEGER: u8 = 4;
const NUMBER: u8 = 8;
const STRING: u8 = 16;
const ARRAY: u8 = 32;
const OBJECT: u8 = 64;
const ANY: u8 = 127;

/// Integers up to 2^53 in magnitude convert to f64 without rounding.
const EXACT_IN_F64: u64 = 1 << 53;

/// A numeric bound: the payload must compare to the limit as one of `allowed`.
#[derive(Debug)]
struct Bound {
    /// The limit, when it is an integer.
    int: Option<i128>,
    /// The limit as an f64, when that is exact.
    float: Option<f64>,
    /// Orderings of `payload.cmp(limit)` that pass (`>=` is `[Greater, Equal]`).
    allowed: &'static [Ordering],
}

impl Bound {
    fn new(limit: &Number, allowed: &'static [Ordering]) -> Option<Bound> {
        let int = limit.as_i64().map(i128::from).or_else(|| limit.as_u64().map(i128::from));
        let float = match int {
            #[allow(clippy::cast_precision_loss)] // exact below 2^53, which the guard checks
            Some(i) => (i.unsigned_abs() <= u128::from(EXACT_IN_F64)).then_some(i as f64),
            None => Some(limit.as_f64()?),
        };
        Some(Bound { int, float, allowed })
    }

    /// Whether `n` passes; `false` also when it cannot be compared without rounding (an
    /// integer beyond 2^53 against a fractional limit, or a float against a huge integer).
    fn admits(&self, n: &Number) -> bool {
        #[allow(clippy::cast_precision_loss)] // exact below 2^53, which the guards check
        let order = if let Some(i) = n.as_i64() {
            match self.int {
                Some(limit) => Some(i128::from(i).cmp(&limit)),
                None if i.unsigned_abs() <= EXACT_IN_F64 => {
                    self.float.and_then(|l| (i as f64).partial_cmp(&l))
                }
                None => None,
            }
        } else if let Some(u) = n.as_u64() {
            match self.int {
                Some(limit) => Some(i128::from(u).cmp(&limit)),
                None if u <= EXACT_IN_F64 => self.float.and_then(|l| (u as f64).partial_cmp(&l)),
                None => None,
            }
        } else {
            n.as_f64().zip(self.float).and_then(|(x, l)| x.partial_cmp(&l))
        };
        order.is_some_and(|o| self.allowed.contains(&o))
    }
}

/// A (sub)schema inside the subset: a conjunction of independent constraints.
#[derive(Debug)]
struct Shape {
    types: u8,
    bounds: Vec<Bound>,
    min_length: usize,
    max_length: Option<usize>,
    /// `enum` / `const`: the payload must equal one of these (serde_json equality, which is
    /// stricter than JSON Schema's for numbers such as `1` vs `1.0`; stricter only falls back).
    choices: Option<Vec<Value>>,
    object: Option<Box<ObjectShape>>,
    array: Option<Box<ArrayShape>>,
}

#[derive(Debug)]
struct ObjectShape {
    properties: Vec<(String, Shape)>,
    /// Name → position in `properties`, for large objects.
    index: Option<HashMap<String, usize>>,
    /// A bit per required property among the first 64.
    required_bits: u64,
    /// Required names not covered by `required_bits`.
    required_other: Vec<String>,
    /// `additionalProperties` (only `true`, absent, or `false` are in the subset).
    additional: bool,
    min_properties: usize,
    max_properties: Option<usize>,
}

#[derive(Debug)]
struct ArrayShape {
    items: Option<Shape>,
    min_items: usize,
    max_items: Option<usize>,
}

impl Shape {
    /// The shape of a root schema, or `None` when it uses anything outside the subset.
    fn root(schema: &Value) -> Option<Shape> {
        if let Some(draft) = schema.get("$schema") {
            let draft = draft.as_str()?;
            if !DRAFTS.contains(&draft) {
                return None;
            }
        }
        Shape::compile(schema, 0, true)
    }

    fn compile(schema: &Value, depth: usize, root: bool) -> Option<Shape> {
        if depth > MAX_DEPTH {
            return None;
        }
        let keywords = match schema {
            Value::Bool(true) => return Some(Shape::any()),
            Value::Object(keywords) => keywords,
            _ => return None,
        };
        let mut shape = Shape::any();
        let mut object: Option<ObjectShape> = None;
        let mut array: Option<ArrayShape> = None;
        for (keyword, value) in keywords {
            match keyword.as_str() {
                k if ANNOTATIONS.contains(&k) => {}
                "$schema" if root => {}
                "type" => shape.types = types(value)?,
                "minimum" => shape.bounds.push(bound(value, &[Ordering::Greater, Ordering::Equal])?),
                "maximum" => shape.bounds.push(bound(value, &[Ordering::Less, Ordering::Equal])?),
                "exclusiveMinimum" => shape.bounds.push(bound(value, &[Ordering::Greater])?),
                "exclusiveMaximum" => shape.bounds.push(bound(value, &[Ordering::Less])?),
                "minLength" => shape.min_length = count(value)?,
                "maxLength" => shape.max_length = Some(count(value)?),
                "enum" => shape.choices = Some(value.as_array()?.clone()),
                "const" => shape.choices = Some(vec![value.clone()]),
                "properties" | "required" | "additionalProperties" | "minProperties" | "maxProperties" => {}
                "items" | "minItems" | "maxItems" => {}
                _ => return None,
            }
        }
        // `enum` and `const` together: both must hold; rare enough to leave to the validator.
        if keywords.contains_key("enum") && keywords.contains_key("const") {
            return None;
        }
        if ["properties", "required", "additionalProperties", "minProperties", "maxProperties"]
            .iter()
            .any(|k| keywords.contains_key(*k))
        {
            object = Some(ObjectShape::compile(keywords, depth)?);
        }
        if ["items", "minItems", "maxItems"].iter().any(|k| keywords.contains_key(*k)) {
            let items = match keywords.get("items") {
                None => None,
                // The array form is tuple validation (drafts before 2020-12): not in the subset.
                Some(items) if items.is_array() => return None,
                Some(items) => Some(Shape::compile(items, depth + 1, false)?),
            };
            let min_items = keywords.get("minItems").map(count).unwrap_or(Some(0))?;
            let max_items = limit(keywords, "maxItems")?;
            array = Some(ArrayShape { items, min_items, max_items });
        }
        shape.object = object.map(Box::new);
        shape.array = array.map(Box::new);
        Some(shape)
    }

    fn any() -> Shape {
        Shape {
            types: ANY,
            bounds: Vec::new(),
            min_length: 0,
            max_length: None,
            choices: None,
            object: None,
            array: None,
        }
    }

    /// Whether `value` is certainly valid under this shape (`false`: invalid, or not sure).
    /// Inlined into the object walk, so leaf properties cost no call; containers go out of line.
    #[inline]
    fn accepts(&self, value: &Value) -> bool {
        let kind = match value {
            Value::Null => NULL,
            Value::Bool(_) => BOOLEAN,
            Value::Number(n) if n.is_i64() => INTEGER | NUMBER,
            // A float, or an integer beyond i64 (which the generated i64 fields cannot hold):
            // only a `number` position accepts it here; the rest is decided slowly.
            Value::Number(_) => NUMBER,
            Value::String(_) => STRING,
            Value::Array(_) => ARRAY,
            Value::Object(_) => OBJECT,
        };
        if self.types & kind == 0 {
            return false;
        }
        if let Some(choices) = &self.choices
            && !choices.contains(value)
        {
            return false;
        }
        match value {
            Value::Number(n) => self.bounds.iter().all(|b| b.admits(n)),
            Value::String(s) => {
                // JSON Schema counts code points; the byte length settles most cases without
                // counting them (a string has at least len/4 and at most len code points).
                (self.min_length == 0
                    || s.len().div_ceil(4) >= self.min_length
                    || s.chars().count() >= self.min_length)
                    && self.max_length.is_none_or(|max| s.len() <= max || s.chars().count() <= max)
            }
            Value::Object(map) => self.object.as_ref().is_none_or(|o| o.accepts(map)),
            Value::Array(items) => self.array.as_ref().is_none_or(|a| a.accepts(items)),
            _ => true,
        }
    }
}

impl ObjectShape {
    fn compile(keywords: &Map<String, Value>, depth: usize) -> Option<ObjectShape> {
        let mut properties = Vec::new();
        if let Some(declared) = keywords.get("properties") {
            for (name, schema) in declared.as_object()? {
                properties.push((name.clone(), Shape::compile(schema, depth + 1, false)?));
            }
        }
        let additional = match keywords.get("additionalProperties") {
            None => true,
            Some(Value::Bool(b)) => *b,
            // A schema for the other properties: not in the subset.
            Some(_) => return None,
        };
        let mut required_bits = 0_u64;
        let mut required_other = Vec::new();
        if let Some(required) = keywords.get("required") {
            for name in required.as_array()? {
                let name = name.as_str()?;
                match properties.iter().position(|(p, _)| p == name) {
                    Some(i) if i < 64 => required_bits |= 1 << i,
                    _ => required_other.push(name.to_string()),
                }
            }
        }
        let index = (properties.len() > LINEAR_LOOKUP)
            .then(|| properties.iter().enumerate().map(|(i, (name, _))| (name.clone(), i)).collect());
        Some(ObjectShape {
            properties,
            index,
            required_bits,
            required_other,
            additional,
            min_properties: keywords.get("minProperties").map(count).unwrap_or(Some(0))?,
            max_properties: limit(keywords, "maxProperties")?,
        })
    }

    /// Where `name` is declared. Payloads usually list fields in the schema's order (structs
    /// serialize in declaration order), so the slot after the previous match is tried first.
    fn position(&self, name: &str, hint: usize) -> Option<usize> {
        if let Some((declared, _)) = self.properties.get(hint)
            && same(declared.as_bytes(), name.as_bytes())
        {
            return Some(hint);
        }
        match &self.index {
            Some(index) => index.get(name).copied(),
            None => self.properties.iter().position(|(p, _)| same(p.as_bytes(), name.as_bytes())),
        }
    }

    #[inline(never)]
    fn accepts(&self, map: &Map<String, Value>) -> bool {
        if map.len() < self.min_properties || self.max_properties.is_some_and(|max| map.len() > max) {
            return false;
        }
        let mut seen = 0_u64;
        let mut hint = 0;
        for (name, value) in map {
            match self.position(name, hint) {
                Some(i) => {
                    if !self.properties[i].1.accepts(value) {
                        return false;
                    }
                    if i < 64 {
                        seen |= 1 << i;
                    }
                    hint = i + 1;
                }
                None if self.additional => {}
                None => return false,
            }
        }
        seen & self.required_bits == self.required_bits
            && self.required_other.iter().all(|name| map.contains_key(name))
    }
}

impl ArrayShape {
    #[inline(never)]
    fn accepts(&self, items: &[Value]) -> bool {
        items.len() >= self.min_items
            && self.max_items.is_none_or(|max| items.len() <= max)
            && self.items.as_ref().is_none_or(|shape| items.iter().all(|item| shape.accepts(item)))
    }
}

/// Byte equality without a `memcmp` call for the short names fields usually have.
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && if a.len() <= 16 { a.iter().zip(b).all(|(x, y)| x == y) } else { a == b }
}

fn types(value: &Value) -> Option<u8> {
    let one = |name: &Value| -> Option<u8> {
        Some(match name.as_str()? {
            "null" => NULL,
            "boolean" => BOOLEAN,
            "integer" => INTEGER,
            "number" => NUMBER,
            "string" => STRING,
            "array" => ARRAY,
            "object" => OBJECT,
            _ => return None,
        })
    };
    match value {
        Value::Array(names) => names.iter().try_fold(0, |all, name| Some(all | one(name)?)),
        name => one(name),
    }
}

fn bound(value: &Value, allowed: &'static [Ordering]) -> Option<Bound> {
    Bound::new(value.as_number()?, allowed)
}

/// An optional upper limit: `Some(None)` when absent, `None` when not a count.
fn limit(keywords: &Map<String, Value>, keyword: &str) -> Option<Option<usize>> {
    match keywords.get(keyword) {
        None => Some(None),
        Some(value) => count(value).map(Some),
    }
}

/// A non-negative integer keyword value (`minLength`, `maxItems`, ...).
fn count(value: &Value) -> Option<usize> {
    value.as_u64().and_then(|n| usize::try_from(n).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn heartbeat() -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["pid", "name", "host", "cpu_pct", "mem_mib", "region"],
            "properties": {
                "pid": { "type": "integer", "minimum": 1 },
                "name": { "type": "string" },
                "host": { "type": "string" },
                "cpu_pct": { "type": "number", "minimum": 0 },
                "mem_mib": { "type": "number", "minimum": 0 },
                "region": { "type": "string" },
                "sid": { "type": "string" },
                "tags": { "type": "array", "items": { "type": "string" } }
            }
        })
    }

    #[test]
    fn flat_records_get_the_fast_path_and_keep_every_outcome() {
        let schema = CompiledSchema::compile(&heartbeat()).expect("compiles");
        assert!(schema.has_fast_path());
        let shape = schema.shape.as_ref().expect("shape");
        let ok = json!({ "pid": 1, "name": "a", "host": "h", "cpu_pct": 0, "mem_mib": 1.5, "region": "r" });
        assert!(shape.accepts(&ok));
        assert!(schema.check("t", 1, &ok).is_ok());
        let cases = [
            json!({ "pid": 0, "name": "a", "host": "h", "cpu_pct": 0, "mem_mib": 1.5, "region": "r" }),
            json!({ "pid": 1, "name": "a", "host": "h", "cpu_pct": 0, "mem_mib": 1.5 }),
            json!({ "pid": 1, "name": "a", "host": "h", "cpu_pct": 0, "mem_mib": 1.5, "region": "r", "x": 1 }),
            json!({ "pid": 1, "name": "a", "host": "h", "cpu_pct": -0.5, "mem_mib": 1.5, "region": "r" }),
            json!({ "pid": 1, "name": "a", "host": "h", "cpu_pct": 0, "mem_mib": 1, "region": "r", "tags": [1] }),
            json!([1]),
        ];
        for payload in cases {
            assert!(!shape.accepts(&payload), "{payload}");
            assert!(schema.check("t", 1, &payload).is_err(), "{payload}");
        }
        // Not decided by the shape, but valid: the general validator still accepts it.
        let float_pid =
            json!({ "pid": 2.0, "name": "a", "host": "h", "cpu_pct": 0, "mem_mib": 1.5, "region": "r" });
        assert!(!shape.accepts(&float_pid));
        assert!(schema.check("t", 1, &float_pid).is_ok());
    }

    #[test]
    fn keywords_outside_the_subset_leave_the_schema_to_the_validator() {
        for schema in [
            json!({ "type": "object", "patternProperties": { "^x": { "type": "string" } } }),
            json!({ "type": "object", "additionalProperties": { "type": "string" } }),
            json!({ "properties": { "a": { "$ref": "#/$defs/a" } }, "$defs": { "a": {} } }),
            json!({ "properties": { "a": { "format": "date-time" } } }),
            json!({ "$schema": "http://json-schema.org/draft-07/schema#", "items": [{ "type": "string" }] }),
            json!({ "$schema": "http://json-schema.org/draft-04/schema#", "minimum": 1 }),
            json!({ "properties": { "a": { "type": "string", "$schema": "x" } } }),
            json!({ "$schema": "http://json-schema.org/draft-04/schema#", "exclusiveMinimum": true, "minimum": 1 }),
        ] {
            let compiled = CompiledSchema::compile(&schema).expect("compiles");
            assert!(!compiled.has_fast_path(), "{schema}");
        }
    }

    #[test]
    fn bounds_are_compared_exactly_or_not_at_all() {
        let big = json!({ "minimum": 9_007_199_254_740_993_u64 });
        let shape = Shape::root(&big).expect("shape");
        assert!(shape.accepts(&json!(9_007_199_254_740_993_u64)));
        assert!(!shape.accepts(&json!(9_007_199_254_740_992_u64)));
        // 2^53 + 1 against a float cannot be compared without rounding: not decided here.
        assert!(!shape.accepts(&json!(9.1e15)));
        let half = Shape::root(&json!({ "exclusiveMaximum": 0.5 })).expect("shape");
        assert!(half.accepts(&json!(0)) && !half.accepts(&json!(1)) && !half.accepts(&json!(0.5)));
        assert!(half.accepts(&json!("not a number")), "bounds only constrain numbers");
    }

    /// A schema from the subset (and, now and then, a keyword outside it).
    fn schema_strategy() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(json!({})),
            Just(json!(true)),
            prop::sample::select(vec!["null", "boolean", "integer", "number", "string", "array", "object"])
                .prop_map(|t| json!({ "type": t })),
            (-3_i64..3).prop_map(|n| json!({ "minimum": n })),
            prop::sample::select(vec![-0.5, 0.0, 0.5, 1.0, 2.5])
                .prop_map(|n| json!({ "type": "number", "exclusiveMaximum": n })),
            (-3_i64..3).prop_map(|n| json!({ "exclusiveMinimum": n, "maximum": n + 2 })),
            (0_u64..4).prop_map(|n| json!({ "type": "string", "maxLength": n, "minLength": n / 2 })),
            Just(json!({ "enum": [1, "a", null, [1], { "k": 1 }] })),
            Just(json!({ "const": 1.0 })),
            Just(json!({ "type": ["integer", "string"], "maximum": 2 })),
            Just(json!({ "pattern": "^a" })),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                (
                    prop::collection::btree_map(
                        prop::sample::select(vec!["a", "b", "c"]),
                        inner.clone(),
                        0..3
                    ),
                    prop::collection::vec(prop::sample::select(vec!["a", "b", "d"]), 0..3),
                    prop::option::of(any::<bool>()),
                    prop::option::of(0_u64..3),
                )
                    .prop_map(|(props, required, additional, max)| {
                        let mut s = json!({ "type": "object", "properties": props });
                        let mut required = required;
                        required.dedup();
                        s["required"] = json!(required);
                        if let Some(a) = additional {
                            s["additionalProperties"] = json!(a);
                        }
                        if let Some(m) = max {
                            s["maxProperties"] = json!(m);
                        }
                        s
                    }),
                (inner, 0_u64..3).prop_map(|(items, min)| json!({ "items": items, "minItems": min })),
            ]
        })
    }

    fn payload_strategy() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-4_i64..4).prop_map(|n| json!(n)),
            prop::sample::select(vec![-0.5, 0.0, 0.5, 1.0, 2.5, 9.1e15]).prop_map(|n| json!(n)),
            Just(json!(u64::MAX)),
            "[aé]{0,4}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(prop::sample::select(vec!["a", "b", "c", "d"]), inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
            ]
        })
    }

    proptest! {
        /// Soundness: whatever the shape accepts, the general validator accepts too.
        #[test]
        fn the_shape_accepts_only_valid_payloads(schema in schema_strategy(), payloads in prop::collection::vec(payload_strategy(), 1..8)) {
            let validator = jsonschema::validator_for(&schema).expect("valid schema");
            if let Some(shape) = Shape::root(&schema) {
                for payload in &payloads {
                    if shape.accepts(payload) {
                        prop_assert!(validator.is_valid(payload), "schema {} accepted {}", schema, payload);
                    }
                }
            }
        }
    }
}
