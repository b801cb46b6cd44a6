//! Declarative upcast steps (`rename`, `remove`, `set_default`): the one definition of what
//! they are and what they do to a payload, available without the `lint` feature.
//!
//! The runtime applies [`Steps`] to stored JSON objects, lint runs the same [`Steps::run`] over
//! a schema's properties to prove the output valid, and code generation runs it over the source
//! struct's fields to learn where each target field comes from. Each reader supplies a
//! [`Fields`] implementation; the order and meaning of the steps live only in [`Steps::run`].

use serde_json::{Map, Value};
use std::fmt;

/// The spec key of renames.
pub const RENAME: &str = "rename";
/// The spec key of removals.
pub const REMOVE: &str = "remove";
/// The spec key of defaults.
pub const SET_DEFAULT: &str = "set_default";
/// The spec keys of the declarative steps, in the order they apply.
pub const STEP_KEYS: [&str; 3] = [RENAME, REMOVE, SET_DEFAULT];

/// The spec key naming a user function instead of declarative steps.
pub const WITH_KEY: &str = "with";

/// Declarative steps turning a payload of version N-1 into version N, applied in this order:
/// every rename, then every removal, then every default where the field is absent.
///
/// `N` is how a field name is held (`String`, or a located name in the spec model) and `V` a
/// default value (`serde_json::Value`, or the YAML node it was written as).
#[derive(Debug, Clone, PartialEq)]
pub struct Steps<N = String, V = Value> {
    /// `rename: { old: new }`: the value under `old` moves to `new` (replacing what was there).
    pub rename: Vec<(N, N)>,
    /// `remove: [field]`: the field is dropped.
    pub remove: Vec<N>,
    /// `set_default: { field: value }`: the field gets `value` when it is absent.
    pub set_default: Vec<(N, V)>,
}

impl<N, V> Default for Steps<N, V> {
    fn default() -> Self {
        Steps { rename: Vec::new(), remove: Vec::new(), set_default: Vec::new() }
    }
}

/// What [`Steps::run`] acts on: a payload, or a symbolic stand-in for every payload of a
/// version (a schema's properties, a struct's fields).
pub trait Fields<V> {
    /// What a field holds (a JSON value, a property schema, where a value comes from).
    type Item;
    /// Removes `name`, returning what it held.
    fn take(&mut self, name: &str) -> Option<Self::Item>;
    /// Sets `name` to `item`, replacing what it held.
    fn put(&mut self, name: &str, item: Self::Item);
    /// Makes `name` hold its current value when present and `default` when absent.
    fn fill(&mut self, name: &str, default: &V);
}

impl<N: AsRef<str>, V> Steps<N, V> {
    /// Whether there is no step at all.
    pub fn is_empty(&self) -> bool {
        self.rename.is_empty() && self.remove.is_empty() && self.set_default.is_empty()
    }

    /// Runs the steps over `fields`: the meaning of an upcast, defined once.
    pub fn run<F: Fields<V>>(&self, fields: &mut F) {
        for (old, new) in &self.rename {
            if let Some(item) = fields.take(old.as_ref()) {
                fields.put(new.as_ref(), item);
            }
        }
        for field in &self.remove {
            fields.take(field.as_ref());
        }
        for (field, default) in &self.set_default {
            fields.fill(field.as_ref(), default);
        }
    }

    /// The same steps with names and defaults converted (e.g. located spec values to plain
    /// ones); a default `value` cannot convert is left out.
    pub fn map<'s, N2, V2>(
        &'s self,
        name: impl Fn(&'s N) -> N2,
        value: impl Fn(&'s V) -> Option<V2>,
    ) -> Steps<N2, V2> {
        Steps {
            rename: self.rename.iter().map(|(old, new)| (name(old), name(new))).collect(),
            remove: self.remove.iter().map(&name).collect(),
            set_default: self.set_default.iter().filter_map(|(f, v)| Some((name(f), value(v)?))).collect(),
        }
    }
}

impl<N: AsRef<str>> Steps<N, Value> {
    /// Applies the steps to a stored payload, which must be a JSON object.
    pub fn apply(&self, mut payload: Value) -> Result<Value, NotAnObject> {
        let Some(object) = payload.as_object_mut() else {
            return Err(NotAnObject(crate::schema::value_kind(&payload)));
        };
        self.run(object);
        Ok(payload)
    }
}

/// A concrete payload: steps move, drop and add its members.
impl Fields<Value> for Map<String, Value> {
    type Item = Value;

    fn take(&mut self, name: &str) -> Option<Value> {
        self.remove(name)
    }

    fn put(&mut self, name: &str, item: Value) {
        self.insert(name.to_owned(), item);
    }

    fn fill(&mut self, name: &str, default: &Value) {
        if !self.contains_key(name) {
            self.insert(name.to_owned(), default.clone());
        }
    }
}

/// Declarative steps were given a payload that is not a JSON object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotAnObject(
    /// What the payload was instead ("an array", "null", ...).
    pub &'static str,
);

impl fmt::Display for NotAnObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "declarative steps need an object payload, found {}", self.0)
    }
}

impl std::error::Error for NotAnObject {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn steps(rename: &[(&str, &str)], remove: &[&str], set_default: &[(&str, Value)]) -> Steps {
        Steps {
            rename: rename.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect(),
            remove: remove.iter().map(|f| (*f).to_owned()).collect(),
            set_default: set_default.iter().map(|(f, v)| ((*f).to_owned(), v.clone())).collect(),
        }
    }

    #[test]
    fn steps_run_rename_then_remove_then_defaults() {
        let steps = steps(&[("a", "b")], &["b", "c"], &[("b", json!(0)), ("d", json!("x"))]);
        let out = steps.apply(json!({ "a": 1, "c": 2, "d": "kept" })).expect("object");
        // `a` was renamed to `b`, then removed, then defaulted; `d` was present and is kept.
        assert_eq!(out, json!({ "b": 0, "d": "kept" }));
        let error = steps.apply(json!([1])).expect_err("array");
        assert_eq!(error, NotAnObject("an array"));
        assert!(error.to_string().contains("an array"));
    }

    #[test]
    fn renames_chain_and_replace() {
        // Renames apply one after another: `a → b, b → c` carries `a`'s value to `c`.
        let chained = steps(&[("a", "b"), ("b", "c")], &[], &[]);
        assert_eq!(chained.apply(json!({ "a": 1, "b": 2 })).expect("object"), json!({ "c": 1 }));
        // A rename of an absent field does nothing; a rename onto a present one replaces it.
        let onto = steps(&[("x", "y"), ("a", "b")], &[], &[]);
        assert_eq!(onto.apply(json!({ "a": 1, "b": 2 })).expect("object"), json!({ "b": 1 }));
    }

    /// A symbolic reader: which source field each output field comes from.
    #[derive(Default)]
    struct Origins(Vec<(String, String)>);

    impl Fields<Value> for Origins {
        type Item = String;
        fn take(&mut self, name: &str) -> Option<String> {
            let i = self.0.iter().position(|(n, _)| n == name)?;
            Some(self.0.remove(i).1)
        }
        fn put(&mut self, name: &str, item: String) {
            self.take(name);
            self.0.push((name.to_owned(), item));
        }
        fn fill(&mut self, name: &str, default: &Value) {
            if !self.0.iter().any(|(n, _)| n == name) {
                self.0.push((name.to_owned(), format!("default {default}")));
            }
        }
    }

    #[test]
    fn symbolic_readers_see_the_same_order() {
        let steps = steps(&[("a", "b")], &["c"], &[("c", json!(1))]);
        let mut origins = Origins(vec![("a".into(), "a".into()), ("c".into(), "c".into())]);
        steps.run(&mut origins);
        assert_eq!(
            origins.0,
            vec![("b".to_owned(), "a".to_owned()), ("c".to_owned(), "default 1".to_owned())]
        );
        assert!(!steps.is_empty() && Steps::<String>::default().is_empty());
    }
}
