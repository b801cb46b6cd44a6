//! Where a schema declares integers, and bringing payload numbers there to one canonical form.
//!
//! JSON Schema counts `1.0` and `1e0` as integers, so they pass `type: integer`, but stored as
//! they came they would give one process two keys (`"1"` and `"1.0"`) and fail the generated
//! `i64` fields. A payload is valid either way, so publishing rewrites such numbers to the
//! integer (which never changes validity) and refuses integers the generated `i64` cannot hold
//! (instead of storing `18446744073709551616` as `1.8446744073709552e19`).
//!
//! The walk covers `properties`, `additionalProperties`, `items`, `allOf` and local `$ref`s; a
//! position reached only through `anyOf`/`oneOf` (where the alternative taken may be a
//! `number`) is left as it is.

use crate::payload::{integral, push_pointer};
use prom_spec::schema::{JsonType, Schema};
use serde_json::{Map, Number, Value};

/// `$ref` hops followed at most on one path (bounds recursive schemas).
const MAX_REFS: usize = 16;

/// Nesting followed at most.
const MAX_DEPTH: usize = 64;

/// Subschemas visited at most per schema: recursive `$ref`s could otherwise multiply the walk
/// (a tree node referring to the root from several properties); positions past the budget are
/// simply not canonicalised.
const MAX_NODES: usize = 4096;

/// The integer positions of a schema: a tree that mirrors the payload.
#[derive(Debug, Default)]
pub(super) struct Integers {
    /// The value here must be an integer (`type: integer`, without `number`).
    here: bool,
    properties: Vec<(String, Integers)>,
    /// For members not in `properties`.
    additional: Option<Box<Integers>>,
    items: Option<Box<Integers>>,
}

/// An integer-declared number outside what the generated `i64` holds.
#[derive(Debug)]
pub(super) struct OutOfRange {
    /// JSON pointer of the value.
    pub pointer: String,
    /// The value as parsed.
    pub value: Number,
}

impl Integers {
    /// The integer positions of `root`, or `None` when it declares no integer anywhere.
    pub fn of(root: &Value) -> Option<Integers> {
        let mut budget = MAX_NODES;
        let tree = Integers::compile(Schema::root(root), 0, 0, &mut budget);
        (!tree.is_empty()).then_some(tree)
    }

    fn is_empty(&self) -> bool {
        !self.here && self.properties.is_empty() && self.additional.is_none() && self.items.is_none()
    }

    fn compile(schema: Schema<'_>, depth: usize, refs: usize, budget: &mut usize) -> Integers {
        let mut tree = Integers::default();
        if schema.keywords().is_none() || depth > MAX_DEPTH || *budget == 0 {
            return tree;
        }
        *budget -= 1;
        // `type: integer` without `number` (a `number` alternative takes any value).
        let types = schema.types();
        tree.here = types.contains(JsonType::Integer) && !types.contains(JsonType::Number);
        for (name, sub) in schema.properties() {
            let child = Integers::compile(sub, depth + 1, refs, budget);
            if !child.is_empty() {
                tree.properties.push((name.to_owned(), child));
            }
        }
        // Boolean subschemas declare nothing.
        if let Some(sub) = schema.additional_properties().filter(|s| s.keywords().is_some()) {
            tree.additional = boxed(Integers::compile(sub, depth + 1, refs, budget));
        }
        if let Some(sub) = schema.items().filter(|s| s.keywords().is_some()) {
            tree.items = boxed(Integers::compile(sub, depth + 1, refs, budget));
        }
        let mut conjuncts = schema.all_of();
        if refs < MAX_REFS
            && let Some(target) = schema.ref_target()
        {
            conjuncts.push(target);
        }
        for sub in conjuncts {
            tree.merge(Integers::compile(sub, depth + 1, refs + 1, budget));
        }
        tree
    }

    /// Adds `other`'s positions (a value satisfying both schemas is constrained by both).
    fn merge(&mut self, other: Integers) {
        self.here |= other.here;
        for (name, child) in other.properties {
            match self.properties.iter_mut().find(|(n, _)| *n == name) {
                Some((_, mine)) => mine.merge(child),
                None => self.properties.push((name, child)),
            }
        }
        for (mine, theirs) in [(&mut self.additional, other.additional), (&mut self.items, other.items)] {
            match (mine.as_mut(), theirs) {
                (Some(mine), Some(theirs)) => mine.merge(*theirs),
                (None, Some(theirs)) => *mine = Some(theirs),
                _ => {}
            }
        }
    }

    /// Rewrites integral floats at integer positions of `value` to integers; fails on the first
    /// integer outside i64.
    pub fn canonicalise(&self, value: &mut Value, pointer: &mut String) -> Result<(), OutOfRange> {
        match value {
            Value::Number(n) if self.here => {
                let fits =
                    if n.is_f64() { integral(n.as_f64().unwrap_or(f64::NAN)) } else { Some(n.clone()) };
                match fits.filter(Number::is_i64) {
                    Some(canonical) => *n = canonical,
                    // Not integral at all: the schema validation reports it.
                    None if n.as_f64().is_some_and(|x| x.fract() != 0.0) => {}
                    None => return Err(OutOfRange { pointer: pointer.clone(), value: n.clone() }),
                }
            }
            Value::Object(members) => self.canonicalise_members(members, pointer)?,
            Value::Array(items) => {
                if let Some(tree) = &self.items {
                    for (i, item) in items.iter_mut().enumerate() {
                        let len = pointer.len();
                        push_pointer(pointer, &i.to_string());
                        tree.canonicalise(item, pointer)?;
                        pointer.truncate(len);
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn canonicalise_members(
        &self,
        members: &mut Map<String, Value>,
        pointer: &mut String,
    ) -> Result<(), OutOfRange> {
        for (name, member) in members.iter_mut() {
            let tree = match self.properties.iter().find(|(n, _)| n == name) {
                Some((_, tree)) => tree,
                None => match &self.additional {
                    Some(tree) => tree,
                    None => continue,
                },
            };
            let len = pointer.len();
            push_pointer(pointer, name);
            tree.canonicalise(member, pointer)?;
            pointer.truncate(len);
        }
        Ok(())
    }
}

fn boxed(tree: Integers) -> Option<Box<Integers>> {
    (!tree.is_empty()).then(|| Box::new(tree))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn canonical(schema: &Value, mut payload: Value) -> Result<Value, String> {
        let tree = Integers::of(schema).expect("integers");
        tree.canonicalise(&mut payload, &mut String::new())
            .map_err(|e| format!("{} {}", e.pointer, e.value))?;
        Ok(payload)
    }

    #[test]
    fn integral_floats_become_integers_only_where_integers_are_declared() {
        let schema = json!({
            "type": "object",
            "properties": {
                "pid": { "type": "integer" },
                "cpu": { "type": "number" },
                "list": { "type": "array", "items": { "$ref": "#/$defs/n" } },
                "both": { "allOf": [{ "type": "integer" }] }
            },
            "$defs": { "n": { "type": ["integer", "null"] } }
        });
        let out =
            canonical(&schema, json!({ "pid": 1.0, "cpu": 2.0, "list": [3e0, null, -0.0], "both": 4.0 }))
                .expect("in range");
        assert_eq!(out.to_string(), r#"{"pid":1,"cpu":2.0,"list":[3,null,0],"both":4}"#);
        assert_eq!(
            canonical(&schema, json!({ "pid": 1.8446744073709552e19 })),
            Err("/pid 1.8446744073709552e+19".into())
        );
        assert_eq!(
            canonical(&schema, json!({ "list": [1, u64::MAX] })),
            Err(format!("/list/1 {}", u64::MAX))
        );
        assert!(
            Integers::of(&json!({ "type": "object", "properties": { "a": { "type": "number" } } })).is_none()
        );
    }

    #[test]
    fn recursive_schemas_terminate() {
        let schema = json!({ "$ref": "#", "type": "object", "properties": { "n": { "type": "integer" } } });
        assert_eq!(canonical(&schema, json!({ "n": 2.0 })).expect("ok"), json!({ "n": 2 }));
        // Four properties each referring back to the root: 4^16 paths without the node budget.
        let tree = json!({
            "properties": {
                "n": { "type": "integer" },
                "a": { "$ref": "#" }, "b": { "$ref": "#" }, "c": { "$ref": "#" }, "d": { "$ref": "#" }
            }
        });
        assert_eq!(canonical(&tree, json!({ "a": { "n": 1.0 } })).expect("ok"), json!({ "a": { "n": 1 } }));
    }
}
