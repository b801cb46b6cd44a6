//! A YAML tree in which every node, key and scalar keeps its location.
//!
//! Serde-based YAML loaders drop locations below the first error and cannot report duplicate
//! keys or every unknown key at once, so specs are loaded into this tree first and read from it.

mod load;
mod scalar;

pub use load::load;

use crate::source::Span;

/// A YAML node and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The value.
    pub value: Value,
    /// Its location.
    pub span: Span,
}

/// A mapping key: always a scalar, kept as its text.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    /// The key's text (`1` for the integer key `1`).
    pub text: String,
    /// Its location.
    pub span: Span,
}

/// A resolved YAML value (YAML 1.2 core schema).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`, `~` or nothing.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer that fits in 64 bits.
    Int(i64),
    /// Any other number.
    Float(f64),
    /// A string.
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in document order, without duplicate keys.
    Map(Vec<(Key, Node)>),
}

impl Node {
    /// The YAML type name, for "expected X, found Y" messages.
    pub fn kind(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a sequence",
            Value::Map(_) => "a mapping",
        }
    }

    /// The entries of a mapping.
    pub fn as_map(&self) -> Option<&[(Key, Node)]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The text of a string scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value under `key`, when this is a mapping that has it.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?.iter().find(|(k, _)| k.text == key).map(|(_, v)| v)
    }

    /// The node at a JSON pointer (`/properties/pid`), if it exists.
    pub fn pointer(&self, pointer: &str) -> Option<&Node> {
        if pointer.is_empty() {
            return Some(self);
        }
        let mut node = self;
        for token in pointer.strip_prefix('/')?.split('/') {
            let token = token.replace("~1", "/").replace("~0", "~");
            node = match &node.value {
                Value::Map(_) => node.get(&token)?,
                Value::Seq(items) => items.get(token.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// The span of the deepest existing node along `pointer`, so errors about a missing child
    /// still land on its parent.
    pub fn nearest_span(&self, pointer: &str) -> &Span {
        let mut best = &self.span;
        let mut prefix = String::new();
        for token in pointer.split('/').skip(1) {
            prefix.push('/');
            prefix.push_str(token);
            match self.pointer(&prefix) {
                Some(node) => best = &node.span,
                None => break,
            }
        }
        best
    }

    /// The key span of the entry a pointer ends at (e.g. the `type:` key), else the value span.
    pub fn key_span(&self, pointer: &str) -> Option<&Span> {
        let (parent, last) = pointer.rsplit_once('/')?;
        let last = last.replace("~1", "/").replace("~0", "~");
        let entries = self.pointer(parent)?.as_map()?;
        entries.iter().find(|(k, _)| k.text == last).map(|(k, _)| &k.span)
    }

    /// Converts to JSON. Fails on values JSON cannot hold (NaN or infinite floats).
    pub fn to_json(&self) -> Result<serde_json::Value, &Span> {
        use serde_json::Value as J;
        Ok(match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map(J::Number).ok_or(&self.span)?,
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect::<Result<_, _>>()?),
            Value::Map(entries) => J::Object(
                entries.iter().map(|(k, v)| Ok((k.text.clone(), v.to_json()?))).collect::<Result<_, _>>()?,
            ),
        })
    }
}
