//! Parsed, validated view of one schema document, with local `$ref` resolution.
//!
//! Every subschema becomes a [`Node`] in an arena so that recursive schemas are plain cycles
//! of ids and the comparison can key its coinductive assumptions on them.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::decimal::Dec;
use super::error::SchemaError;
use crate::schema::{self, JsonType, Reference, ReferenceError, Schema, TypeError};

/// Index of a node in [`Doc::nodes`].
pub(super) type NodeId = usize;

/// Deepest subschema nesting accepted; beyond it the input is rejected instead of risking the stack.
pub(super) const MAX_DEPTH: usize = 128;

/// Set of JSON value kinds; numbers split into integers and non-integers so that
/// `integer ⊂ number` is plain set inclusion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct Kinds(pub u8);

impl Kinds {
    pub(super) const NONE: Kinds = Kinds(0);
    pub(super) const NULL: Kinds = Kinds(1);
    pub(super) const BOOL: Kinds = Kinds(2);
    pub(super) const OBJ: Kinds = Kinds(4);
    pub(super) const ARR: Kinds = Kinds(8);
    pub(super) const STR: Kinds = Kinds(16);
    pub(super) const INT: Kinds = Kinds(32);
    pub(super) const FRAC: Kinds = Kinds(64);
    pub(super) const NUM: Kinds = Kinds(32 | 64);
    pub(super) const ALL: Kinds = Kinds(127);
    /// Units the reader's `anyOf`/`oneOf` splits a writer into (numbers stay together).
    pub(super) const UNITS: [Kinds; 6] =
        [Kinds::NULL, Kinds::BOOL, Kinds::OBJ, Kinds::ARR, Kinds::STR, Kinds::NUM];

    pub(super) fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub(super) fn has(self, o: Kinds) -> bool {
        self.0 & o.0 != 0
    }
    pub(super) fn and(self, o: Kinds) -> Kinds {
        Kinds(self.0 & o.0)
    }
    pub(super) fn or(self, o: Kinds) -> Kinds {
        Kinds(self.0 | o.0)
    }
    pub(super) fn minus(self, o: Kinds) -> Kinds {
        Kinds(self.0 & !o.0)
    }

    pub(super) fn of_value(v: &Value) -> Kinds {
        match v {
            Value::Null => Kinds::NULL,
            Value::Bool(_) => Kinds::BOOL,
            Value::Object(_) => Kinds::OBJ,
            Value::Array(_) => Kinds::ARR,
            Value::String(_) => Kinds::STR,
            Value::Number(n) => match Dec::from_number(n) {
                Some(d) if d.is_integer() => Kinds::INT,
                Some(_) => Kinds::FRAC,
                None => Kinds::NUM,
            },
        }
    }

    /// Human list of type names, e.g. `string, integer`.
    pub(super) fn describe(self) -> String {
        if self.is_empty() {
            return "nothing".into();
        }
        let mut names = Vec::new();
        for (k, n) in [
            (Kinds::NULL, "null"),
            (Kinds::BOOL, "boolean"),
            (Kinds::OBJ, "object"),
            (Kinds::ARR, "array"),
            (Kinds::STR, "string"),
        ] {
            if self.has(k) {
                names.push(n);
            }
        }
        if self.has(Kinds::INT) && self.has(Kinds::FRAC) {
            names.push("number");
        } else if self.has(Kinds::INT) {
            names.push("integer");
        } else if self.has(Kinds::FRAC) {
            names.push("non-integer number");
        }
        names.join(", ")
    }
}

impl From<JsonType> for Kinds {
    fn from(ty: JsonType) -> Kinds {
        match ty {
            JsonType::Null => Kinds::NULL,
            JsonType::Boolean => Kinds::BOOL,
            JsonType::Object => Kinds::OBJ,
            JsonType::Array => Kinds::ARR,
            JsonType::String => Kinds::STR,
            JsonType::Integer => Kinds::INT,
            JsonType::Number => Kinds::NUM,
        }
    }
}

/// The kinds `node`'s `type` keyword allows (all without one), read by
/// [`Schema::declared_types`].
fn declared_kinds(node: Schema<'_>) -> Result<Kinds, TypeError> {
    let Some(types) = node.declared_types() else { return Ok(Kinds::ALL) };
    let types = types?;
    let kinds = types.types.iter().fold(Kinds::NONE, |all, ty| all.or(Kinds::from(*ty)));
    Ok(if types.nullable { kinds.or(Kinds::NULL) } else { kinds })
}

/// A numeric bound; `keyword` names its source for messages and rule choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Bound {
    pub value: Dec,
    pub exclusive: bool,
    pub keyword: &'static str,
}

impl Bound {
    pub(super) fn tighter_lower(a: Option<Bound>, b: Option<Bound>) -> Option<Bound> {
        match (a, b) {
            (Some(x), Some(y)) => {
                Some(if y.value > x.value || (y.value == x.value && y.exclusive && !x.exclusive) {
                    y
                } else {
                    x
                })
            }
            (x, None) => x,
            (None, y) => y,
        }
    }

    pub(super) fn tighter_upper(a: Option<Bound>, b: Option<Bound>) -> Option<Bound> {
        match (a, b) {
            (Some(x), Some(y)) => {
                Some(if y.value < x.value || (y.value == x.value && y.exclusive && !x.exclusive) {
                    y
                } else {
                    x
                })
            }
            (x, None) => x,
            (None, y) => y,
        }
    }
}

/// Where a `$ref` leads.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum RefTarget {
    Local(NodeId),
    /// Another document; kept verbatim because it cannot be fetched.
    Remote(String),
}

/// Dialect, which decides `$ref` sibling semantics and the exact validator's draft: the one
/// reading of `$schema` ([`crate::schema::Dialect`]).
pub(super) use crate::schema::Dialect as Draft;

/// The keywords of one subschema, validated and decoded.
#[derive(Debug, Clone)]
pub(super) struct Keywords {
    pub boolean: Option<bool>,
    pub kinds: Kinds,
    pub values: Option<Vec<Value>>,
    /// Canonical keys of `values`, when there are enough for a linear scan to hurt.
    pub value_keys: Option<HashSet<String>>,
    pub has_const: bool,
    pub lower: Option<Bound>,
    pub upper: Option<Bound>,
    pub multiple_of: Option<Dec>,
    pub min_length: Option<u64>,
    pub max_length: Option<u64>,
    pub pattern: Option<String>,
    pub format: Option<String>,
    pub prefix_items: Vec<NodeId>,
    pub items: Option<NodeId>,
    pub min_items: Option<u64>,
    pub max_items: Option<u64>,
    pub unique_items: bool,
    pub contains: Option<NodeId>,
    pub min_contains: Option<u64>,
    pub max_contains: Option<u64>,
    pub properties: Vec<(String, NodeId)>,
    pub pattern_properties: Vec<(String, NodeId)>,
    pub additional_properties: Option<NodeId>,
    pub required: Vec<String>,
    pub min_properties: Option<u64>,
    pub max_properties: Option<u64>,
    pub property_names: Option<NodeId>,
    pub dependent_required: Option<Value>,
    pub all_of: Vec<NodeId>,
    pub any_of: Option<Vec<NodeId>>,
    pub one_of: Option<Vec<NodeId>>,
    pub not: Option<NodeId>,
    pub reference: Option<RefTarget>,
    pub unknown: Vec<(String, Value)>,
}

impl Default for Keywords {
    fn default() -> Self {
        Keywords {
            boolean: None,
            kinds: Kinds::ALL,
            values: None,
            value_keys: None,
            has_const: false,
            lower: None,
            upper: None,
            multiple_of: None,
            min_length: None,
            max_length: None,
            pattern: None,
            format: None,
            prefix_items: Vec::new(),
            items: None,
            min_items: None,
            max_items: None,
            unique_items: false,
            contains: None,
            min_contains: None,
            max_contains: None,
            properties: Vec::new(),
            pattern_properties: Vec::new(),
            additional_properties: None,
            required: Vec::new(),
            min_properties: None,
            max_properties: None,
            property_names: None,
            dependent_required: None,
            all_of: Vec::new(),
            any_of: None,
            one_of: None,
            not: None,
            reference: None,
            unknown: Vec::new(),
        }
    }
}

impl Keywords {
    pub(super) fn property(&self, name: &str) -> Option<NodeId> {
        self.properties.iter().find(|(n, _)| n == name).map(|(_, id)| *id)
    }
}

/// One subschema.
#[derive(Debug, Clone)]
pub(super) struct Node {
    /// JSON pointer of this subschema inside its document.
    pub ptr: String,
    pub kw: Keywords,
}

/// A parsed schema document (borrowing the JSON it was parsed from).
#[derive(Debug, Clone)]
pub(super) struct Doc<'a> {
    pub root: &'a Value,
    pub nodes: Vec<Node>,
    pub draft: Draft,
}

/// Whether `keyword` is an annotation or identifier (never constrains instances): the shared
/// keyword lists of [`crate::schema`].
pub(super) fn is_annotation(keyword: &str) -> bool {
    schema::is_non_assertion(keyword)
}

/// Escapes one JSON-pointer segment.
pub(super) fn escape(seg: &str) -> String {
    schema::escape_pointer_segment(seg)
}

fn json_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

struct Parser<'a> {
    root: &'a Value,
    nodes: Vec<Node>,
    /// Nodes by pointer, for `$ref` targets; built when the first `$ref` is resolved (the tree
    /// walk itself never meets a pointer twice).
    by_ptr: Option<HashMap<String, NodeId>>,
    anchors: HashMap<String, String>,
    pending: Vec<(NodeId, String, String)>,
    legacy_refs: bool,
    base: Option<String>,
    saw_boolean_exclusive: bool,
    saw_array_items: bool,
}

impl<'a> Doc<'a> {
    /// Parses and validates a whole document, resolving every local `$ref`.
    pub(super) fn parse(root: &'a Value) -> Result<Doc<'a>, SchemaError> {
        if !matches!(root, Value::Object(_) | Value::Bool(_)) {
            return Err(SchemaError::new(
                "",
                format!("a schema must be an object or a boolean, found {}", json_type_name(root)),
            ));
        }
        if json_depth_exceeds(root, 2 * MAX_DEPTH + 8) {
            return Err(SchemaError::new("", format!("schema nesting exceeds {MAX_DEPTH} levels")));
        }
        // An unknown or malformed `$schema` leaves the dialect to be inferred below.
        let declared = Schema::root(root).dialect().and_then(Result::ok);
        let base = root
            .get("$id")
            .and_then(Value::as_str)
            .map(|s| s.split('#').next().unwrap_or("").to_string())
            .filter(|s| !s.is_empty());
        let mut p = Parser {
            root,
            nodes: Vec::new(),
            by_ptr: None,
            anchors: HashMap::new(),
            pending: Vec::new(),
            legacy_refs: matches!(declared, Some(Draft::Draft4 | Draft::Draft6 | Draft::Draft7)),
            base,
            saw_boolean_exclusive: false,
            saw_array_items: false,
        };
        p.collect_anchors(root, &mut String::new(), 0);
        p.parse_at(root, String::new(), 0)?;
        while let Some((id, ptr, reference)) = p.pending.pop() {
            let target = p.resolve(&reference, &ptr)?;
            if let Some(node) = p.nodes.get_mut(id) {
                node.kw.reference = Some(target);
            }
        }
        let draft = declared.unwrap_or(if p.saw_boolean_exclusive {
            Draft::Draft4
        } else if p.saw_array_items {
            Draft::Draft7
        } else {
            Draft::Draft202012
        });
        Ok(Doc { root, nodes: p.nodes, draft })
    }

    pub(super) fn node(&self, id: NodeId) -> &Node {
        // Ids only come from this arena, and `parse` always creates the root node 0, so the
        // fallback (root) is reachable only through a logic slip and cannot index out of range.
        self.nodes.get(id).unwrap_or(&self.nodes[0])
    }

    pub(super) fn kw(&self, id: NodeId) -> &Keywords {
        &self.node(id).kw
    }

    /// The raw JSON of a node.
    pub(super) fn raw(&self, id: NodeId) -> Option<&Value> {
        self.root.pointer(&self.node(id).ptr)
    }

    /// Accepts everything (`true`, `{}`, annotations only, or trivially so via combinators).
    pub(super) fn is_true(&self, id: NodeId) -> bool {
        self.truth(id, 0, &mut 0) == Some(true)
    }

    /// Accepts nothing (`false`, no admissible type, empty enum, or trivially so via
    /// combinators and `$ref`).
    pub(super) fn is_false(&self, id: NodeId) -> bool {
        self.truth(id, 0, &mut 0) == Some(false)
    }

    /// `Some(true)`: accepts everything; `Some(false)`: accepts nothing; `None`: neither is
    /// evident. Depth-bounded so reference cycles terminate.
    fn truth(&self, id: NodeId, depth: usize, visits: &mut usize) -> Option<bool> {
        *visits += 1;
        if depth > 16 || *visits > 256 {
            return None;
        }
        let kw = self.kw(id);
        if let Some(b) = kw.boolean {
            return Some(b);
        }
        if kw.kinds.is_empty() || kw.values.as_ref().is_some_and(|v| v.is_empty()) {
            return Some(false);
        }
        let mut sub = |c: NodeId| self.truth(c, depth + 1, visits);
        let target = match &kw.reference {
            Some(RefTarget::Local(t)) => Some(*t),
            _ => None,
        };
        if target.is_some_and(|t| sub(t) == Some(false))
            || kw.all_of.iter().any(|c| sub(*c) == Some(false))
            || kw.any_of.as_ref().is_some_and(|l| l.iter().all(|c| sub(*c) == Some(false)))
            || kw.one_of.as_ref().is_some_and(|l| l.iter().all(|c| sub(*c) == Some(false)))
            || kw.not.is_some_and(|c| sub(c) == Some(true))
        {
            return Some(false);
        }
        if base_unconstrained(kw)
            && target.is_none_or(|t| sub(t) == Some(true))
            && matches!(kw.reference, None | Some(RefTarget::Local(_)))
            && kw.all_of.iter().all(|c| sub(*c) == Some(true))
            && kw.any_of.as_ref().is_none_or(|l| l.iter().any(|c| sub(*c) == Some(true)))
            && kw.one_of.as_ref().is_none_or(|l| l.len() == 1 && sub(l[0]) == Some(true))
            && kw.not.is_none_or(|c| sub(c) == Some(false))
        {
            return Some(true);
        }
        None
    }
}

/// No constraint outside the combinators (`allOf`/`anyOf`/`oneOf`/`not`/`$ref`).
fn base_unconstrained(kw: &Keywords) -> bool {
    kw.kinds == Kinds::ALL && kw.values.is_none() && no_base_constraints_but_type_and_values(kw)
}

/// Whether `v` is certainly valid under a node that constrains only `type` and `enum`/`const`
/// (the common string enum). `false` means "ask the validator", not "invalid". Limited to
/// strings, booleans and null, whose equality has no numeric subtleties.
pub(super) fn plainly_accepts(kw: &Keywords, v: &Value) -> bool {
    matches!(v, Value::String(_) | Value::Bool(_) | Value::Null)
        && kw.boolean.is_none()
        && kw.reference.is_none()
        && kw.all_of.is_empty()
        && kw.any_of.is_none()
        && kw.one_of.is_none()
        && kw.not.is_none()
        && no_base_constraints_but_type_and_values(kw)
        && kw.kinds.has(Kinds::of_value(v))
        && kw.values.as_ref().is_none_or(|values| match &kw.value_keys {
            Some(keys) => keys.contains(&canonical_key(v)),
            None => values.contains(v),
        })
}

/// No non-combinator constraint besides `type` and `enum`/`const`.
fn no_base_constraints_but_type_and_values(kw: &Keywords) -> bool {
    kw.lower.is_none()
        && kw.upper.is_none()
        && kw.multiple_of.is_none()
        && kw.min_length.is_none()
        && kw.max_length.is_none()
        && kw.pattern.is_none()
        && kw.format.is_none()
        && kw.prefix_items.is_empty()
        && kw.items.is_none()
        && kw.min_items.is_none()
        && kw.max_items.is_none()
        && !kw.unique_items
        && kw.contains.is_none()
        && kw.properties.is_empty()
        && kw.pattern_properties.is_empty()
        && kw.additional_properties.is_none()
        && kw.required.is_empty()
        && kw.min_properties.is_none()
        && kw.max_properties.is_none()
        && kw.property_names.is_none()
        && kw.dependent_required.is_none()
        && kw.unknown.is_empty()
}

impl Parser<'_> {
    /// Records `$anchor`s and `#name` ids; `ptr` is the current pointer, restored on return
    /// (one buffer for the whole walk: most schemas have no anchors at all).
    fn collect_anchors(&mut self, v: &Value, ptr: &mut String, depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        let len = ptr.len();
        match v {
            Value::Object(map) => {
                // In this order: `$anchor`, `$dynamicAnchor`, `$id`, `id` (the first one wins).
                let anchor = |key: &str| match (key, map.get(key)) {
                    ("$anchor" | "$dynamicAnchor", Some(Value::String(a))) => Some(a.as_str()),
                    ("$id" | "id", Some(Value::String(id))) => {
                        id.strip_prefix('#').filter(|a| !a.is_empty() && !a.starts_with('/'))
                    }
                    _ => None,
                };
                // Most objects have none of these keys: check that first, without hashing.
                if map.keys().any(|k| matches!(k.as_str(), "$anchor" | "$dynamicAnchor" | "$id" | "id")) {
                    for a in ["$anchor", "$dynamicAnchor", "$id", "id"].into_iter().filter_map(anchor) {
                        self.anchors.entry(a.to_owned()).or_insert_with(|| ptr.clone());
                    }
                }
                for (k, child) in map {
                    // Data-carrying keywords hold instances, not schemas; scalars hold no anchors.
                    let data = schema::DATA_KEYWORDS.contains(&k.as_str());
                    if data || !(child.is_object() || child.is_array()) {
                        continue;
                    }
                    ptr.push('/');
                    schema::push_pointer_segment(ptr, k);
                    self.collect_anchors(child, ptr, depth + 1);
                    ptr.truncate(len);
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    if !child.is_object() && !child.is_array() {
                        continue;
                    }
                    ptr.push('/');
                    ptr.push_str(&i.to_string());
                    self.collect_anchors(child, ptr, depth + 1);
                    ptr.truncate(len);
                }
            }
            _ => {}
        }
    }

    fn resolve(&mut self, reference: &str, at: &str) -> Result<RefTarget, SchemaError> {
        let target_ptr = match Reference::parse(reference, self.base.as_deref()) {
            Ok(Reference::Remote(remote)) => return Ok(RefTarget::Remote(remote)),
            Err(ReferenceError::PercentEscape) => {
                return Err(SchemaError::new(
                    at,
                    format!("`$ref` {reference:?} has a malformed percent-escape"),
                ));
            }
            Ok(Reference::Pointer(pointer)) => {
                if self.root.pointer(&pointer).is_none() {
                    return Err(SchemaError::new(
                        at,
                        format!("`$ref` {reference:?} points to nothing in this document"),
                    ));
                }
                pointer
            }
            Ok(Reference::Anchor(name)) => self.anchors.get(&name).cloned().ok_or_else(|| {
                SchemaError::new(at, format!("`$ref` {reference:?} names an anchor that does not exist"))
            })?,
        };
        let nodes = &self.nodes;
        let by_ptr = self
            .by_ptr
            .get_or_insert_with(|| nodes.iter().enumerate().map(|(id, n)| (n.ptr.clone(), id)).collect());
        if let Some(id) = by_ptr.get(&target_ptr) {
            return Ok(RefTarget::Local(*id));
        }
        let target = self
            .root
            .pointer(&target_ptr)
            .ok_or_else(|| SchemaError::new(at, format!("`$ref` {reference:?} cannot be followed")))?;
        let depth = target_ptr.matches('/').count();
        Ok(RefTarget::Local(self.parse_at(target, target_ptr, depth)?))
    }

    fn parse_at(&mut self, v: &Value, ptr: String, depth: usize) -> Result<NodeId, SchemaError> {
        if let Some(id) = self.by_ptr.as_ref().and_then(|by_ptr| by_ptr.get(&ptr)) {
            return Ok(*id);
        }
        if depth > MAX_DEPTH {
            return Err(SchemaError::new(ptr, format!("schema nesting exceeds {MAX_DEPTH} levels")));
        }
        let id = self.nodes.len();
        self.nodes.push(Node { ptr: ptr.clone(), kw: Keywords::default() });
        if let Some(by_ptr) = &mut self.by_ptr {
            by_ptr.insert(ptr.clone(), id);
        }
        let kw = match v {
            Value::Bool(b) => Keywords {
                boolean: Some(*b),
                kinds: if *b { Kinds::ALL } else { Kinds::NONE },
                ..Keywords::default()
            },
            Value::Object(map) => self.parse_object(v, map, id, &ptr, depth)?,
            other => {
                return Err(SchemaError::new(
                    ptr,
                    format!("expected a schema (object or boolean), found {}", json_type_name(other)),
                ));
            }
        };
        if let Some(node) = self.nodes.get_mut(id) {
            node.kw = kw;
        }
        Ok(id)
    }

    fn child(&mut self, v: &Value, ptr: &str, key: &str, depth: usize) -> Result<NodeId, SchemaError> {
        self.parse_at(v, format!("{ptr}/{}", escape(key)), depth + 1)
    }

    fn schema_list(
        &mut self,
        v: &Value,
        ptr: &str,
        key: &str,
        depth: usize,
    ) -> Result<Vec<NodeId>, SchemaError> {
        let at = format!("{ptr}/{}", escape(key));
        let Value::Array(items) = v else {
            return Err(SchemaError::new(at, format!("`{key}` must be an array of schemas")));
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            out.push(self.parse_at(item, format!("{at}/{i}"), depth + 2)?);
        }
        Ok(out)
    }

    fn schema_map(
        &mut self,
        v: &Value,
        ptr: &str,
        key: &str,
        depth: usize,
    ) -> Result<Vec<(String, NodeId)>, SchemaError> {
        let at = format!("{ptr}/{}", escape(key));
        let Value::Object(map) = v else {
            return Err(SchemaError::new(at, format!("`{key}` must be an object of schemas")));
        };
        let mut out = Vec::with_capacity(map.len());
        for (name, item) in map {
            out.push((name.clone(), self.parse_at(item, format!("{at}/{}", escape(name)), depth + 2)?));
        }
        Ok(out)
    }

    fn parse_object(
        &mut self,
        node: &Value,
        map: &Map<String, Value>,
        id: NodeId,
        ptr: &str,
        depth: usize,
    ) -> Result<Keywords, SchemaError> {
        let mut kw = Keywords::default();
        let at = |k: &str| format!("{ptr}/{}", escape(k));
        let number = |k: &str, v: &Value| -> Result<Dec, SchemaError> {
            match v {
                Value::Number(n) => Dec::from_number(n)
                    .ok_or_else(|| SchemaError::new(at(k), format!("`{k}` is not a representable number"))),
                _ => Err(SchemaError::new(at(k), format!("`{k}` must be a number"))),
            }
        };
        let count = |k: &str, v: &Value| -> Result<u64, SchemaError> {
            let err = || SchemaError::new(at(k), format!("`{k}` must be a non-negative integer"));
            match v {
                Value::Number(n) => {
                    if let Some(u) = n.as_u64() {
                        return Ok(u);
                    }
                    match n.as_f64() {
                        Some(f) if f >= 0.0 && f.fract() == 0.0 && f < 1.8e19 => Ok(f as u64),
                        _ => Err(err()),
                    }
                }
                _ => Err(err()),
            }
        };
        let string = |k: &str, v: &Value| -> Result<String, SchemaError> {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| SchemaError::new(at(k), format!("`{k}` must be a string")))
        };
        let string_list = |k: &str, v: &Value| -> Result<Vec<String>, SchemaError> {
            let err = || SchemaError::new(at(k), format!("`{k}` must be an array of strings"));
            let arr = v.as_array().ok_or_else(err)?;
            arr.iter().map(|s| s.as_str().map(str::to_string).ok_or_else(err)).collect()
        };
        // draft-04 boolean exclusives modify the sibling minimum/maximum.
        let mut bool_excl_min = false;
        let mut bool_excl_max = false;
        let mut minimum = None;
        let mut maximum = None;
        let mut dep_required: Map<String, Value> = Map::new();
        for (key, v) in map {
            let k = key.as_str();
            if is_annotation(k) {
                if matches!(k, "$id" | "$anchor" | "$schema") && !v.is_string() {
                    return Err(SchemaError::new(at(k), format!("`{k}` must be a string")));
                }
                continue;
            }
            match k {
                "type" => {
                    let types = declared_kinds(Schema::in_document(self.root, node)).map_err(|e| {
                        SchemaError::new(
                            at(k),
                            match e {
                                TypeError::NotANameOrList => {
                                    "`type` must be a type name or an array of type names".to_owned()
                                }
                                TypeError::NotStrings => "`type` must be an array of strings".to_owned(),
                                TypeError::Unknown(n) => format!("unknown type name {n:?}"),
                            },
                        )
                    })?;
                    kw.kinds = kw.kinds.and(types);
                }
                "enum" => {
                    let arr =
                        v.as_array().ok_or_else(|| SchemaError::new(at(k), "`enum` must be an array"))?;
                    kw.values = Some(intersect_values(kw.values.take(), arr.clone()));
                }
                "const" => {
                    kw.has_const = true;
                    kw.values = Some(intersect_values(kw.values.take(), vec![v.clone()]));
                }
                "minimum" => minimum = Some(number(k, v)?),
                "maximum" => maximum = Some(number(k, v)?),
                "exclusiveMinimum" => match v {
                    Value::Bool(b) => {
                        self.saw_boolean_exclusive = true;
                        bool_excl_min = *b;
                    }
                    _ => {
                        let value = number(k, v)?;
                        kw.lower = Bound::tighter_lower(
                            kw.lower,
                            Some(Bound { value, exclusive: true, keyword: "exclusiveMinimum" }),
                        );
                    }
                },
                "exclusiveMaximum" => match v {
                    Value::Bool(b) => {
                        self.saw_boolean_exclusive = true;
                        bool_excl_max = *b;
                    }
                    _ => {
                        let value = number(k, v)?;
                        kw.upper = Bound::tighter_upper(
                            kw.upper,
                            Some(Bound { value, exclusive: true, keyword: "exclusiveMaximum" }),
                        );
                    }
                },
                "multipleOf" => {
                    let m = number(k, v)?;
                    if !m.is_positive() {
                        return Err(SchemaError::new(at(k), "`multipleOf` must be greater than 0"));
                    }
                    kw.multiple_of = Some(m);
                }
                "minLength" => kw.min_length = Some(count(k, v)?),
                "maxLength" => kw.max_length = Some(count(k, v)?),
                "minItems" => kw.min_items = Some(count(k, v)?),
                "maxItems" => kw.max_items = Some(count(k, v)?),
                "minProperties" => kw.min_properties = Some(count(k, v)?),
                "maxProperties" => kw.max_properties = Some(count(k, v)?),
                "minContains" => kw.min_contains = Some(count(k, v)?),
                "maxContains" => kw.max_contains = Some(count(k, v)?),
                "pattern" => kw.pattern = Some(string(k, v)?),
                "format" => kw.format = Some(string(k, v)?),
                "uniqueItems" => {
                    kw.unique_items = v
                        .as_bool()
                        .ok_or_else(|| SchemaError::new(at(k), "`uniqueItems` must be a boolean"))?;
                }
                "required" => {
                    for r in string_list(k, v)? {
                        if !kw.required.contains(&r) {
                            kw.required.push(r);
                        }
                    }
                }
                "items" if v.is_array() => {
                    self.saw_array_items = true;
                    if map.contains_key("prefixItems") {
                        return Err(SchemaError::new(
                            at(k),
                            "`items` must be a schema when `prefixItems` is present",
                        ));
                    }
                    kw.prefix_items = self.schema_list(v, ptr, k, depth)?;
                }
                "items" => kw.items = Some(self.child(v, ptr, k, depth)?),
                "prefixItems" => kw.prefix_items = self.schema_list(v, ptr, k, depth)?,
                "additionalItems" => {
                    let id = self.child(v, ptr, k, depth)?;
                    if map.get("items").is_some_and(Value::is_array) {
                        kw.items = Some(id);
                    }
                }
                "contains" => kw.contains = Some(self.child(v, ptr, k, depth)?),
                "properties" => kw.properties = self.schema_map(v, ptr, k, depth)?,
                "patternProperties" => kw.pattern_properties = self.schema_map(v, ptr, k, depth)?,
                "additionalProperties" => kw.additional_properties = Some(self.child(v, ptr, k, depth)?),
                "propertyNames" => kw.property_names = Some(self.child(v, ptr, k, depth)?),
                "$defs" | "definitions" => {
                    self.schema_map(v, ptr, k, depth)?;
                }
                "dependentRequired" => {
                    let obj = v
                        .as_object()
                        .ok_or_else(|| SchemaError::new(at(k), "`dependentRequired` must be an object"))?;
                    for (name, deps) in obj {
                        string_list(k, deps)?;
                        dep_required.insert(name.clone(), deps.clone());
                    }
                }
                "dependencies" if v.as_object().is_some_and(|o| o.values().all(Value::is_array)) => {
                    for (name, deps) in v.as_object().into_iter().flatten() {
                        string_list(k, deps)?;
                        dep_required.insert(name.clone(), deps.clone());
                    }
                }
                "allOf" | "anyOf" | "oneOf" => {
                    let list = self.schema_list(v, ptr, k, depth)?;
                    if list.is_empty() {
                        return Err(SchemaError::new(at(k), format!("`{k}` must not be empty")));
                    }
                    match k {
                        "allOf" => kw.all_of = list,
                        "anyOf" => kw.any_of = Some(list),
                        _ => kw.one_of = Some(list),
                    }
                }
                "not" => kw.not = Some(self.child(v, ptr, k, depth)?),
                "$ref" => {
                    let reference = string(k, v)?;
                    self.pending.push((id, at(k), reference));
                }
                _ => kw.unknown.push((key.clone(), v.clone())),
            }
        }
        if let Some(value) = minimum {
            let b = Bound {
                value,
                exclusive: bool_excl_min,
                keyword: if bool_excl_min { "exclusiveMinimum" } else { "minimum" },
            };
            kw.lower = Bound::tighter_lower(kw.lower, Some(b));
        }
        if let Some(value) = maximum {
            let b = Bound {
                value,
                exclusive: bool_excl_max,
                keyword: if bool_excl_max { "exclusiveMaximum" } else { "maximum" },
            };
            kw.upper = Bound::tighter_upper(kw.upper, Some(b));
        }
        if !dep_required.is_empty() {
            kw.dependent_required = Some(Value::Object(dep_required));
        }
        if self.legacy_refs && map.contains_key("$ref") {
            // Before 2019-09 `$ref` overrides its siblings entirely.
            kw = Keywords::default();
        }
        kw.value_keys = kw.values.as_ref().filter(|v| v.len() > SCAN_VALUES).map(|v| value_keys(v));
        Ok(kw)
    }
}

/// Whether the JSON nesting exceeds `limit`, measured without recursion so that hostile
/// input cannot exhaust the stack before the parser's own depth check runs.
fn json_depth_exceeds(root: &Value, limit: usize) -> bool {
    let mut stack = vec![(root, 0usize)];
    while let Some((v, d)) = stack.pop() {
        if d > limit {
            return true;
        }
        match v {
            Value::Array(a) => stack.extend(a.iter().map(|c| (c, d + 1))),
            Value::Object(m) => stack.extend(m.values().map(|c| (c, d + 1))),
            _ => {}
        }
    }
    false
}

/// JSON equality with numbers compared by value (`1` equals `1.0`).
pub(super) fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (Dec::from_number(x), Dec::from_number(y)) {
            (Some(p), Some(q)) => p == q,
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Value lists up to this long are scanned; longer ones are hashed (a 40k-value enum compared
/// value by value by scanning would take minutes).
const SCAN_VALUES: usize = 16;

/// Values present in both lists (`None` = unrestricted).
pub(super) fn intersect_values(a: Option<Vec<Value>>, b: Vec<Value>) -> Vec<Value> {
    match a {
        None => b,
        Some(a) if a.len() * b.len() <= SCAN_VALUES * SCAN_VALUES => {
            a.into_iter().filter(|v| b.iter().any(|w| json_eq(v, w))).collect()
        }
        Some(a) => {
            let keys = value_keys(&b);
            a.into_iter().filter(|v| keys.contains(&canonical_key(v))).collect()
        }
    }
}

/// The canonical keys of `values`.
pub(super) fn value_keys(values: &[Value]) -> HashSet<String> {
    values.iter().map(canonical_key).collect()
}

/// A string equal for two values exactly when [`json_eq`] holds: numbers by exact decimal
/// value (`1.0` = `1`), objects with sorted keys.
pub(super) fn canonical_key(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Number(n) => match Dec::from_number(n) {
            Some(d) => out.push_str(&format!("{d:?}")),
            None => out.push_str(&n.to_string()),
        },
        Value::Array(items) => {
            out.push('[');
            for item in items {
                write_canonical(item, out);
                out.push(',');
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (k, item) in entries {
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(item, out);
                out.push(',');
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Whether a raw schema fragment mentions `$ref` (or `$dynamicRef`/`$recursiveRef`) anywhere:
/// then textual equality is not semantic equality.
pub(super) fn mentions_ref(v: &Value) -> bool {
    match v {
        Value::Object(m) => m
            .iter()
            .any(|(k, v)| matches!(k.as_str(), "$ref" | "$dynamicRef" | "$recursiveRef") || mentions_ref(v)),
        Value::Array(a) => a.iter().any(mentions_ref),
        _ => false,
    }
}
