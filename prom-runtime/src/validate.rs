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
use prom_spec::schema::{self, Dialect, JsonType, Schema, Types};
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

/// Keywords the fast path decides (besides annotations, [`schema::ANNOTATIONS`]).
const SUBSET: [&str; 17] = [
    "type",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "enum",
    "const",
    "properties",
    "required",
    "additionalProperties",
    "minProperties",
    "maxProperties",
    "items",
    "minItems",
    "maxItems",
];

/// Numeric bounds, and the orderings of `payload.cmp(limit)` each lets pass.
const BOUNDS: [(&str, &[Ordering]); 4] = [
    ("minimum", &[Ordering::Greater, Ordering::Equal]),
    ("maximum", &[Ordering::Less, Ordering::Equal]),
    ("exclusiveMinimum", &[Ordering::Greater]),
    ("exclusiveMaximum", &[Ordering::Less]),
];

/// Keywords that constrain objects.
const OBJECT_KEYWORDS: [&str; 5] =
    ["properties", "required", "additionalProperties", "minProperties", "maxProperties"];

/// Keywords that constrain arrays.
const ARRAY_KEYWORDS: [&str; 3] = ["items", "minItems", "maxItems"];

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
        let schema = Schema::root(schema);
        // Drafts 6 to 2020-12 give the subset the semantics below; draft-04 spells
        // `exclusiveMinimum` as a boolean, so it (and any unknown dialect) is left to the
        // general validator.
        match schema.dialect() {
            None
            | Some(Ok(Dialect::Draft6 | Dialect::Draft7 | Dialect::Draft201909 | Dialect::Draft202012)) => {}
            Some(_) => return None,
        }
        Shape::compile(schema, 0, true)
    }

    fn compile(schema: Schema<'_>, depth: usize, root: bool) -> Option<Shape> {
        if depth > MAX_DEPTH {
            return None;
        }
        if let Some(allows) = schema.as_bool() {
            // `false` accepts nothing: nothing to prove, so no shape.
            return allows.then(Shape::any);
        }
        let keywords = schema.keywords()?;
        let in_subset = |k: &str| schema::is_annotation(k) || SUBSET.contains(&k) || (root && k == "$schema");
        if !keywords.keys().all(|k| in_subset(k)) {
            return None;
        }
        let mut shape = Shape::any();
        if let Some(types) = schema.declared_types() {
            shape.types = type_bits(&types.ok()?);
        }
        for (keyword, allowed) in BOUNDS {
            if let Some(limit) = schema.get(keyword) {
                shape.bounds.push(Bound::new(limit.as_number()?, allowed)?);
            }
        }
        shape.min_length = count(schema, "minLength")?.unwrap_or(0);
        shape.max_length = count(schema, "maxLength")?;
        shape.choices = match (schema.get("enum"), schema.const_value()) {
            // Both must hold; rare enough to leave to the validator.
            (Some(_), Some(_)) => return None,
            (Some(_), None) => Some(schema.enum_values()?.to_vec()),
            (None, Some(value)) => Some(vec![value.clone()]),
            (None, None) => None,
        };
        if OBJECT_KEYWORDS.iter().any(|k| schema.has(k)) {
            shape.object = Some(Box::new(ObjectShape::compile(schema, depth)?));
        }
        if ARRAY_KEYWORDS.iter().any(|k| schema.has(k)) {
            let items = match schema.items() {
                None => None,
                // The array form is tuple validation (drafts before 2020-12): not in the subset.
                Some(items) if items.json().is_array() => return None,
                Some(items) => Some(Shape::compile(items, depth + 1, false)?),
            };
            let min_items = count(schema, "minItems")?.unwrap_or(0);
            let max_items = count(schema, "maxItems")?;
            shape.array = Some(Box::new(ArrayShape { items, min_items, max_items }));
        }
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
    fn compile(schema: Schema<'_>, depth: usize) -> Option<ObjectShape> {
        if schema.has_properties() && schema.get("properties").is_some_and(|p| !p.is_object()) {
            return None;
        }
        let mut properties = Vec::new();
        for (name, property) in schema.properties() {
            properties.push((name.to_owned(), Shape::compile(property, depth + 1, false)?));
        }
        let additional = match schema.additional_properties() {
            None => true,
            Some(other) => other.as_bool()?,
        };
        let mut required_bits = 0_u64;
        let mut required_other = Vec::new();
        if let Some(required) = schema.get("required") {
            let names = schema.required();
            // Anything but an array of strings is not in the subset.
            if required.as_array()?.len() != names.len() {
                return None;
            }
            for name in names {
                match properties.iter().position(|(p, _)| p == name) {
                    Some(i) if i < 64 => required_bits |= 1 << i,
                    _ => required_other.push(name.to_owned()),
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
            min_properties: count(schema, "minProperties")?.unwrap_or(0),
            max_properties: count(schema, "maxProperties")?,
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

/// The type bits of a `type` keyword.
fn type_bits(types: &Types) -> u8 {
    let bits = types.types.iter().fold(0, |all, ty| {
        all | match ty {
            JsonType::Null => NULL,
            JsonType::Boolean => BOOLEAN,
            JsonType::Integer => INTEGER,
            JsonType::Number => NUMBER,
            JsonType::String => STRING,
            JsonType::Array => ARRAY,
            JsonType::Object => OBJECT,
        }
    });
    if types.nullable { bits | NULL } else { bits }
}

/// A count keyword (`minLength`, `maxItems`, ...): `Some(None)` when absent, `None` when its
/// value is not a non-negative integer.
fn count(schema: Schema<'_>, keyword: &str) -> Option<Option<usize>> {
    match schema.get(keyword) {
        None => Some(None),
        Some(value) => value.as_u64().and_then(|n| usize::try_from(n).ok()).map(Some),
    }
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
