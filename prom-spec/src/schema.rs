//! One typed, read-only view of a JSON Schema (2020-12 vocabulary), available without the
//! `lint` feature so lint, code generation, the derive macro and the runtime read schemas the
//! same way.
//!
//! A [`Schema`] borrows a node of a schema document together with the document's root, so
//! local `$ref`s (`#/$defs/...`, any JSON pointer into the document) resolve through
//! [`Schema::resolved`]. Queries answer what the readers need: the declared [`Types`], the
//! properties and whether each is required, whether the object is open, items, enum/const,
//! bounds, combinators, formats, nullable-ness, descriptions and defaults, and what a JSON
//! pointer through `properties` leads to ([`Schema::field`]). Booleans are schemas too: `true`
//! allows anything, `false` nothing.

use serde_json::{Map, Value};

/// `$ref` hops followed at most, so reference cycles (`A → B → A`) end.
pub const MAX_REF_HOPS: usize = 32;

/// Keywords that only annotate: they never constrain a value.
pub const ANNOTATIONS: [&str; 8] =
    ["title", "description", "default", "examples", "$comment", "deprecated", "readOnly", "writeOnly"];

/// Keywords that identify a schema or its dialect (`$id`, anchors, `$schema`, ...): they never
/// constrain a value themselves, though `$id` and anchors change what a `$ref` names.
pub const IDENTIFIERS: [&str; 7] =
    ["$schema", "$id", "id", "$anchor", "$dynamicAnchor", "$recursiveAnchor", "$vocabulary"];

/// Keywords describing string content (`contentEncoding`, `contentMediaType`): annotations
/// from 2019-09 on, assertions a draft-07 validator may choose to enforce.
pub const CONTENT: [&str; 2] = ["contentEncoding", "contentMediaType"];

/// Whether `keyword` is in [`ANNOTATIONS`].
pub fn is_annotation(keyword: &str) -> bool {
    ANNOTATIONS.contains(&keyword)
}

/// Whether `keyword` never constrains a value in any dialect's required vocabulary: one of
/// [`ANNOTATIONS`], [`IDENTIFIERS`] or [`CONTENT`].
pub fn is_non_assertion(keyword: &str) -> bool {
    is_annotation(keyword) || IDENTIFIERS.contains(&keyword) || CONTENT.contains(&keyword)
}

/// A JSON Schema dialect a `$schema` URI names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dialect {
    /// Draft 4 (`exclusiveMinimum` is a boolean, `id` without `$`).
    Draft4,
    /// Draft 6.
    Draft6,
    /// Draft 7.
    Draft7,
    /// 2019-09.
    Draft201909,
    /// 2020-12, the default.
    Draft202012,
}

impl Dialect {
    /// The dialect an official meta-schema URI names (`http` or `https`, with or without the
    /// trailing `#`); `None` for any other URI.
    pub fn from_uri(uri: &str) -> Option<Dialect> {
        let uri = uri.strip_suffix('#').unwrap_or(uri);
        let path = uri.strip_prefix("https://").or_else(|| uri.strip_prefix("http://"))?;
        Some(match path {
            "json-schema.org/draft-04/schema" => Dialect::Draft4,
            "json-schema.org/draft-06/schema" => Dialect::Draft6,
            "json-schema.org/draft-07/schema" => Dialect::Draft7,
            "json-schema.org/draft/2019-09/schema" => Dialect::Draft201909,
            "json-schema.org/draft/2020-12/schema" => Dialect::Draft202012,
            _ => return None,
        })
    }
}

/// Why a `$schema` keyword names no dialect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialectError {
    /// `$schema` is not a string.
    NotAString,
    /// The URI is not an official meta-schema's.
    Unknown(String),
}

/// Why a `type` keyword is not a type name or a list of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeError {
    /// Neither a string nor an array.
    NotANameOrList,
    /// An array holding something other than strings.
    NotStrings,
    /// A name that is no JSON type.
    Unknown(String),
}

/// What a `$ref` text points to, read as RFC 3986 reference + JSON pointer or anchor fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// A JSON pointer into this document (decoded, each segment re-escaped canonically).
    Pointer(String),
    /// A plain-name fragment (`#name`): an `$anchor` (or `$id: "#name"`) of this document.
    Anchor(String),
    /// Another document (it cannot be fetched).
    Remote(String),
}

/// Why a `$ref` text cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReferenceError {
    /// The fragment has a `%` not followed by two hex digits (or decodes to no UTF-8).
    PercentEscape,
}

impl Reference {
    /// Reads `reference`; a URI part other than empty or `base` (the document's `$id`) is
    /// remote.
    pub fn parse(reference: &str, base: Option<&str>) -> Result<Reference, ReferenceError> {
        let (uri, fragment) = reference.split_once('#').unwrap_or((reference, ""));
        if !uri.is_empty() && Some(uri) != base {
            return Ok(Reference::Remote(reference.to_owned()));
        }
        let fragment = percent_decode(fragment).ok_or(ReferenceError::PercentEscape)?;
        if fragment.is_empty() || fragment.starts_with('/') {
            let mut canonical = String::with_capacity(fragment.len());
            for segment in fragment.split('/').skip(1) {
                canonical.push('/');
                push_pointer_segment(&mut canonical, &unescape_pointer_segment(segment));
            }
            Ok(Reference::Pointer(canonical))
        } else {
            Ok(Reference::Anchor(fragment))
        }
    }
}

/// Appends `segment` to a JSON pointer, escaped (`~` → `~0`, `/` → `~1`).
pub fn push_pointer_segment(pointer: &mut String, segment: &str) {
    if !segment.contains(['~', '/']) {
        pointer.push_str(segment);
        return;
    }
    for c in segment.chars() {
        match c {
            '~' => pointer.push_str("~0"),
            '/' => pointer.push_str("~1"),
            c => pointer.push(c),
        }
    }
}

/// One JSON-pointer segment escaped (`~` → `~0`, `/` → `~1`).
pub fn escape_pointer_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    push_pointer_segment(&mut out, segment);
    out
}

/// One JSON-pointer segment unescaped (`~1` → `/`, then `~0` → `~`).
pub fn unescape_pointer_segment(segment: &str) -> String {
    segment.replace("~1", "/").replace("~0", "~")
}

/// `s` with `%XX` escapes decoded; `None` when one is malformed or the result is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_owned());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A JSON Schema node, with the document it belongs to (for `$ref`s).
#[derive(Debug, Clone, Copy)]
pub struct Schema<'a> {
    root: &'a Value,
    node: &'a Value,
}

/// A JSON type a schema can declare in `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JsonType {
    /// `"array"`.
    Array,
    /// `"boolean"`.
    Boolean,
    /// `"integer"`.
    Integer,
    /// `"null"`.
    Null,
    /// `"number"`.
    Number,
    /// `"object"`.
    Object,
    /// `"string"`.
    String,
}

impl JsonType {
    /// The type named `name` in a schema's `type`.
    pub fn parse(name: &str) -> Option<JsonType> {
        Some(match name {
            "array" => JsonType::Array,
            "boolean" => JsonType::Boolean,
            "integer" => JsonType::Integer,
            "null" => JsonType::Null,
            "number" => JsonType::Number,
            "object" => JsonType::Object,
            "string" => JsonType::String,
            _ => return None,
        })
    }

    /// The type's name as a schema writes it.
    pub fn name(self) -> &'static str {
        match self {
            JsonType::Array => "array",
            JsonType::Boolean => "boolean",
            JsonType::Integer => "integer",
            JsonType::Null => "null",
            JsonType::Number => "number",
            JsonType::Object => "object",
            JsonType::String => "string",
        }
    }
}

/// The non-null types a schema's `type` keyword lists (in the order written, unknown names
/// left out) and whether it lists `null`. No `type` keyword: no types, not nullable.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Types {
    /// The non-null types.
    pub types: Vec<JsonType>,
    /// Whether `null` is listed.
    pub nullable: bool,
}

impl Types {
    /// Whether no non-null type is declared (the keyword is absent or lists only `null`).
    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }

    /// Whether `ty` is declared.
    pub fn contains(&self, ty: JsonType) -> bool {
        self.types.contains(&ty)
    }

    /// The declared types sorted and without repeats (`[integer, number]` in either order
    /// reads the same).
    pub fn normalized(&self) -> Vec<JsonType> {
        let mut types = self.types.clone();
        types.sort_unstable();
        types.dedup();
        types
    }
}

/// Why a JSON pointer through `properties` does not resolve.
#[derive(Debug, PartialEq)]
pub enum FieldError {
    /// Not a JSON pointer (must be empty or start with `/`).
    Syntax,
    /// `segment` is not a property at that level; `known` lists the ones that are.
    Missing {
        /// The segment that failed.
        segment: String,
        /// Property names at that level.
        known: Vec<String>,
    },
}

/// What a JSON pointer through `properties` leads to.
#[derive(Debug, Clone, Copy)]
pub struct Field<'a> {
    /// The property's schema, `$ref`s followed.
    pub schema: Schema<'a>,
    /// Whether every step to it is required (the field is always present).
    pub required: bool,
}

impl<'a> Schema<'a> {
    /// The whole document `root` as a schema.
    pub fn root(root: &'a Value) -> Schema<'a> {
        Schema { root, node: root }
    }

    /// `node`, a schema inside `root` (its `$ref`s resolve against `root`).
    pub fn in_document(root: &'a Value, node: &'a Value) -> Schema<'a> {
        Schema { root, node }
    }

    /// Another node of the same document.
    fn at(&self, node: &'a Value) -> Schema<'a> {
        Schema { root: self.root, node }
    }

    /// The schema's JSON.
    pub fn json(&self) -> &'a Value {
        self.node
    }

    /// The document the schema belongs to.
    pub fn document(&self) -> &'a Value {
        self.root
    }

    /// `Some(b)` for a boolean schema (`true` allows anything, `false` nothing).
    pub fn as_bool(&self) -> Option<bool> {
        self.node.as_bool()
    }

    /// The schema's keywords (`None` for a boolean schema or a value that is no schema).
    pub fn keywords(&self) -> Option<&'a Map<String, Value>> {
        self.node.as_object()
    }

    /// The raw value of `keyword`.
    pub fn get(&self, keyword: &str) -> Option<&'a Value> {
        self.node.get(keyword)
    }

    /// Whether `keyword` is present.
    pub fn has(&self, keyword: &str) -> bool {
        self.get(keyword).is_some()
    }

    /// The `$ref` text.
    pub fn reference(&self) -> Option<&'a str> {
        self.get("$ref").and_then(Value::as_str)
    }

    /// The target of a local `$ref` (`#` followed by a JSON pointer, percent-escapes
    /// decoded, or `#name` naming an `$anchor`), one hop.
    pub fn ref_target(&self) -> Option<Schema<'a>> {
        let reference = self.reference()?;
        // The common case (`#/$defs/x`, nothing to decode) without allocating.
        if let Some(pointer) = reference.strip_prefix('#')
            && (pointer.is_empty() || pointer.starts_with('/'))
            && !pointer.contains('%')
        {
            return self.root.pointer(pointer).map(|node| self.at(node));
        }
        let base = self.root.get("$id").and_then(Value::as_str).map(|id| id.split('#').next().unwrap_or(""));
        match Reference::parse(reference, base.filter(|b| !b.is_empty())).ok()? {
            Reference::Pointer(pointer) => self.root.pointer(&pointer).map(|node| self.at(node)),
            Reference::Anchor(name) => find_anchor(self.root, &name, 0).map(|node| self.at(node)),
            Reference::Remote(_) => None,
        }
    }

    /// The dialect `$schema` names: `None` without `$schema`.
    pub fn dialect(&self) -> Option<Result<Dialect, DialectError>> {
        let uri = self.get("$schema")?;
        Some(match uri.as_str() {
            None => Err(DialectError::NotAString),
            Some(uri) => Dialect::from_uri(uri).ok_or_else(|| DialectError::Unknown(uri.to_owned())),
        })
    }

    /// The `type` keyword read strictly: `None` when absent, an error when it is not a type
    /// name or an array of type names.
    pub fn declared_types(&self) -> Option<Result<Types, TypeError>> {
        let names: Vec<&str> = match self.get("type")? {
            Value::String(name) => vec![name.as_str()],
            Value::Array(names) => match names.iter().map(Value::as_str).collect::<Option<Vec<_>>>() {
                Some(names) => names,
                None => return Some(Err(TypeError::NotStrings)),
            },
            _ => return Some(Err(TypeError::NotANameOrList)),
        };
        let mut types = Types::default();
        for name in names {
            match JsonType::parse(name) {
                Some(JsonType::Null) => types.nullable = true,
                Some(ty) => types.types.push(ty),
                None => return Some(Err(TypeError::Unknown(name.to_owned()))),
            }
        }
        Some(Ok(types))
    }

    /// The schema with local `$ref`s followed (at most [`MAX_REF_HOPS`], so cycles end);
    /// a `$ref` that does not resolve locally stays as it is.
    pub fn resolved(&self) -> Schema<'a> {
        let mut schema = *self;
        for _ in 0..MAX_REF_HOPS {
            let Some(target) = schema.ref_target() else { break };
            schema = target;
        }
        schema
    }

    /// The declared `type`s.
    pub fn types(&self) -> Types {
        let names: Vec<&str> = match self.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let parsed: Vec<JsonType> = names.into_iter().filter_map(JsonType::parse).collect();
        let nullable = parsed.contains(&JsonType::Null);
        Types { types: parsed.into_iter().filter(|t| *t != JsonType::Null).collect(), nullable }
    }

    /// The types a value may have as far as the schema's own keywords tell: `type`, else
    /// `object` when it declares `properties`, else `string` when its `enum`/`const` holds only
    /// strings. Empty: any type.
    pub fn inferred_types(&self) -> Types {
        if self.has("type") {
            return self.types();
        }
        if self.has("properties") {
            return Types { types: vec![JsonType::Object], nullable: false };
        }
        match self.get("enum").or(self.get("const")) {
            Some(v) if v.is_string() || v.as_array().is_some_and(|a| a.iter().all(Value::is_string)) => {
                Types { types: vec![JsonType::String], nullable: false }
            }
            _ => Types::default(),
        }
    }

    /// Whether `null` is valid here as far as the schema's own keywords tell (`$ref`s
    /// followed): `true`, a type list naming `null`, an `enum`/`const` holding it, or nothing
    /// that constrains the type (`{}`, a schema without `type`, `enum` or `const`).
    pub fn allows_null(&self) -> bool {
        let schema = self.resolved();
        if schema.keywords().is_none() {
            return schema.as_bool() == Some(true);
        }
        let types = schema.inferred_types();
        if types.nullable {
            return true;
        }
        match (schema.enum_values(), schema.const_value()) {
            (Some(values), _) => values.contains(&Value::Null),
            (_, Some(value)) => value.is_null(),
            _ => types.is_empty(),
        }
    }

    /// `properties`, in declaration order.
    pub fn properties(&self) -> impl Iterator<Item = (&'a str, Schema<'a>)> + 'a {
        let this = *self;
        self.get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(move |(name, node)| (name.as_str(), this.at(node)))
    }

    /// Whether the schema declares `properties` (even none).
    pub fn has_properties(&self) -> bool {
        self.has("properties")
    }

    /// The property `name`.
    pub fn property(&self, name: &str) -> Option<Schema<'a>> {
        self.get("properties").and_then(|p| p.get(name)).map(|node| self.at(node))
    }

    /// The declared property names, in order.
    pub fn property_names(&self) -> Vec<&'a str> {
        self.properties().map(|(name, _)| name).collect()
    }

    /// The names `required` lists.
    pub fn required(&self) -> Vec<&'a str> {
        self.get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }

    /// Whether `required` lists `name`.
    pub fn is_required(&self, name: &str) -> bool {
        self.get("required")
            .and_then(Value::as_array)
            .is_some_and(|r| r.iter().any(|n| n.as_str() == Some(name)))
    }

    /// `additionalProperties`.
    pub fn additional_properties(&self) -> Option<Schema<'a>> {
        self.get("additionalProperties").map(|node| self.at(node))
    }

    /// `patternProperties`: (pattern, schema) pairs.
    pub fn pattern_properties(&self) -> impl Iterator<Item = (&'a str, Schema<'a>)> + 'a {
        let this = *self;
        self.get("patternProperties")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(move |(pattern, node)| (pattern.as_str(), this.at(node)))
    }

    /// Whether the object is closed: `additionalProperties: false` (members beyond
    /// `properties` and `patternProperties` are invalid).
    pub fn is_closed(&self) -> bool {
        self.get("additionalProperties") == Some(&Value::Bool(false))
    }

    /// `items` (the schema of every item after `prefixItems`).
    pub fn items(&self) -> Option<Schema<'a>> {
        self.get("items").map(|node| self.at(node))
    }

    /// `prefixItems`, in order.
    pub fn prefix_items(&self) -> Vec<Schema<'a>> {
        self.array_of("prefixItems")
    }

    /// `enum`.
    pub fn enum_values(&self) -> Option<&'a [Value]> {
        self.get("enum").and_then(Value::as_array).map(Vec::as_slice)
    }

    /// `const`.
    pub fn const_value(&self) -> Option<&'a Value> {
        self.get("const")
    }

    /// The values of an `enum` of strings only (at least one).
    pub fn string_enum(&self) -> Option<Vec<&'a str>> {
        let values = self.enum_values()?;
        let strings: Vec<&str> = values.iter().filter_map(Value::as_str).collect();
        (strings.len() == values.len() && !strings.is_empty()).then_some(strings)
    }

    /// A numeric keyword (`minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum`,
    /// `multipleOf`, `minLength`, `maxItems`, ...), as a float.
    pub fn number(&self, keyword: &str) -> Option<f64> {
        self.get(keyword).and_then(Value::as_f64)
    }

    /// A count keyword (`minLength`, `maxLength`, `minItems`, `maxItems`, `minProperties`,
    /// `maxProperties`, ...) when it is a non-negative integer.
    pub fn count(&self, keyword: &str) -> Option<u64> {
        self.get(keyword).and_then(Value::as_u64)
    }

    /// `pattern`.
    pub fn pattern(&self) -> Option<&'a str> {
        self.get("pattern").and_then(Value::as_str)
    }

    /// `format`.
    pub fn format(&self) -> Option<&'a str> {
        self.get("format").and_then(Value::as_str)
    }

    /// `uniqueItems: true`.
    pub fn unique_items(&self) -> bool {
        self.get("uniqueItems") == Some(&Value::Bool(true))
    }

    /// `allOf`.
    pub fn all_of(&self) -> Vec<Schema<'a>> {
        self.array_of("allOf")
    }

    /// `anyOf`.
    pub fn any_of(&self) -> Vec<Schema<'a>> {
        self.array_of("anyOf")
    }

    /// `oneOf`.
    pub fn one_of(&self) -> Vec<Schema<'a>> {
        self.array_of("oneOf")
    }

    /// `not`.
    pub fn not(&self) -> Option<Schema<'a>> {
        self.get("not").map(|node| self.at(node))
    }

    /// `description`.
    pub fn description(&self) -> Option<&'a str> {
        self.get("description").and_then(Value::as_str)
    }

    /// `title`.
    pub fn title(&self) -> Option<&'a str> {
        self.get("title").and_then(Value::as_str)
    }

    /// `default`.
    pub fn default_value(&self) -> Option<&'a Value> {
        self.get("default")
    }

    /// What the JSON `pointer` names through nested `properties` (`$ref`s followed at every
    /// step), and whether it is always present. The empty pointer is the schema itself.
    pub fn field(&self, pointer: &str) -> Result<Field<'a>, FieldError> {
        if pointer.is_empty() {
            return Ok(Field { schema: *self, required: true });
        }
        let rest = pointer.strip_prefix('/').ok_or(FieldError::Syntax)?;
        let mut schema = self.resolved();
        let mut required = true;
        for raw in rest.split('/') {
            let segment = unescape_pointer_segment(raw);
            let Some(next) = schema.property(&segment) else {
                let known = schema.property_names().into_iter().map(str::to_owned).collect();
                return Err(FieldError::Missing { segment, known });
            };
            required &= schema.is_required(&segment);
            schema = next.resolved();
        }
        Ok(Field { schema, required })
    }

    fn array_of(&self, keyword: &str) -> Vec<Schema<'a>> {
        self.get(keyword)
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|n| self.at(n)).collect())
            .unwrap_or_default()
    }
}

/// The schema in `root` whose `$anchor`/`$dynamicAnchor` (or `$id`/`id` written `#name`) is
/// `name`: the first in document order, data keywords (`enum`, `const`, ...) not searched.
fn find_anchor<'a>(node: &'a Value, name: &str, depth: usize) -> Option<&'a Value> {
    if depth > MAX_ANCHOR_DEPTH {
        return None;
    }
    match node {
        Value::Object(map) => {
            let names = ["$anchor", "$dynamicAnchor", "$id", "id"].into_iter().filter_map(|key| {
                let value = map.get(key)?.as_str()?;
                if key.ends_with("nchor") { Some(value) } else { value.strip_prefix('#') }
            });
            if names.into_iter().any(|anchor| anchor == name) {
                return Some(node);
            }
            map.iter()
                .filter(|(key, _)| !DATA_KEYWORDS.contains(&key.as_str()))
                .find_map(|(_, child)| find_anchor(child, name, depth + 1))
        }
        Value::Array(items) => items.iter().find_map(|child| find_anchor(child, name, depth + 1)),
        _ => None,
    }
}

/// Nesting searched at most for an anchor.
const MAX_ANCHOR_DEPTH: usize = 128;

/// Keywords whose values are instances, not schemas (no anchors inside).
pub const DATA_KEYWORDS: [&str; 4] = ["enum", "const", "default", "examples"];

/// What kind of JSON value `value` is, for messages ("a string", "null", ...).
pub fn value_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refs_resolve_through_the_document_and_cycles_end() {
        let doc = json!({
            "type": "object", "required": ["a"],
            "properties": { "a": { "$ref": "#/$defs/A" }, "b": { "type": "string" }, "loop": { "$ref": "#/$defs/L1" } },
            "$defs": {
                "A": { "type": "object", "required": ["id"], "properties": { "id": { "type": "integer" } } },
                "L1": { "$ref": "#/$defs/L2" }, "L2": { "$ref": "#/$defs/L1" }
            }
        });
        let root = Schema::root(&doc);
        let a = root.property("a").expect("a");
        assert_eq!(a.reference(), Some("#/$defs/A"));
        assert_eq!(a.resolved().types().types, vec![JsonType::Object]);
        assert!(a.resolved().is_required("id"));
        // A reference cycle stops after the bounded number of hops, on one of its members.
        let looped = root.property("loop").expect("loop").resolved();
        assert!(looped.reference().is_some_and(|r| r.starts_with("#/$defs/L")));
        // A reference that does not resolve stays as written.
        let dangling = json!({ "$ref": "#/$defs/missing" });
        assert_eq!(Schema::root(&dangling).resolved().json(), &dangling);
    }

    #[test]
    fn pointers_follow_properties_and_required() {
        let doc = json!({
            "type": "object", "required": ["a"],
            "properties": { "a": { "$ref": "#/$defs/A" }, "b": { "type": "string" }, "c/d": { "type": "boolean" } },
            "$defs": { "A": { "type": "object", "required": ["id"], "properties": { "id": { "type": "integer" } } } }
        });
        let root = Schema::root(&doc);
        let id = root.field("/a/id").expect("resolves");
        assert!(id.required);
        assert_eq!(id.schema.types().types, vec![JsonType::Integer]);
        assert!(!root.field("/b").expect("resolves").required);
        assert!(root.field("/c~1d").is_ok());
        assert!(root.field("").expect("root").required);
        assert_eq!(root.field("a").err(), Some(FieldError::Syntax));
        assert_eq!(
            root.field("/a/nope").err(),
            Some(FieldError::Missing { segment: "nope".into(), known: vec!["id".into()] })
        );
    }

    #[test]
    fn types_nullability_and_inference() {
        let t = json!({ "type": ["string", "null", "bogus"] });
        let types = Schema::root(&t).types();
        assert_eq!((types.types.as_slice(), types.nullable), ([JsonType::String].as_slice(), true));
        let pair = json!({ "type": ["number", "integer", "number"] });
        assert_eq!(Schema::root(&pair).types().normalized(), vec![JsonType::Integer, JsonType::Number]);
        let obj = json!({ "properties": {} });
        assert_eq!(Schema::root(&obj).inferred_types().types, vec![JsonType::Object]);
        let strings = json!({ "enum": ["a", "b"] });
        assert_eq!(Schema::root(&strings).inferred_types().types, vec![JsonType::String]);
        assert_eq!(Schema::root(&strings).string_enum(), Some(vec!["a", "b"]));
        let mixed = json!({ "enum": ["a", 1] });
        assert!(Schema::root(&mixed).inferred_types().is_empty());
        assert_eq!(Schema::root(&mixed).string_enum(), None);
    }

    #[test]
    fn booleans_are_schemas() {
        let t = json!(true);
        let f = json!(false);
        assert_eq!(Schema::root(&t).as_bool(), Some(true));
        assert!(Schema::root(&t).allows_null());
        assert!(!Schema::root(&f).allows_null());
        let closed = json!({ "type": "object", "additionalProperties": false });
        let closed = Schema::root(&closed);
        assert!(closed.is_closed());
        assert_eq!(closed.additional_properties().and_then(|s| s.as_bool()), Some(false));
        let open = json!({ "type": "object", "additionalProperties": true });
        assert!(!Schema::root(&open).is_closed());
        assert!(Schema::root(&json!({ "type": "object" })).additional_properties().is_none());
    }

    #[test]
    fn null_is_allowed_where_nothing_constrains_it() {
        for (schema, allows) in [
            (json!({}), true),
            (json!({ "type": ["string", "null"] }), true),
            (json!({ "enum": ["a", null] }), true),
            (json!({ "const": null }), true),
            (json!({ "type": "string" }), false),
            (json!({ "enum": [1, 2] }), false),
            (json!({ "properties": { "a": {} } }), false),
        ] {
            assert_eq!(Schema::root(&schema).allows_null(), allows, "{schema}");
        }
        // Through a reference.
        let doc =
            json!({ "$defs": { "N": { "type": "null" } }, "properties": { "n": { "$ref": "#/$defs/N" } } });
        assert!(Schema::root(&doc).property("n").expect("n").allows_null());
    }

    #[test]
    fn combinators_constraints_and_annotations() {
        let doc = json!({
            "description": "d", "title": "t", "default": 3,
            "allOf": [{ "minimum": 1 }], "anyOf": [true, { "type": "string" }], "oneOf": [false],
            "not": { "const": 2 }, "minimum": 1, "exclusiveMaximum": 10.5, "multipleOf": 0.5,
            "minLength": 2, "pattern": "^a", "format": "date-time", "uniqueItems": true,
            "prefixItems": [{ "type": "string" }, { "type": "number" }], "items": false,
            "patternProperties": { "^x-": { "type": "string" } }
        });
        let s = Schema::root(&doc);
        assert_eq!((s.description(), s.title(), s.default_value()), (Some("d"), Some("t"), Some(&json!(3))));
        assert_eq!(s.all_of().len(), 1);
        assert_eq!(s.any_of()[0].as_bool(), Some(true));
        assert_eq!(s.one_of()[0].as_bool(), Some(false));
        assert_eq!(s.not().and_then(|n| n.const_value()), Some(&json!(2)));
        assert_eq!((s.number("minimum"), s.number("exclusiveMaximum")), (Some(1.0), Some(10.5)));
        assert_eq!((s.number("multipleOf"), s.count("minLength")), (Some(0.5), Some(2)));
        assert_eq!((s.pattern(), s.format(), s.unique_items()), (Some("^a"), Some("date-time"), true));
        assert_eq!(s.prefix_items().len(), 2);
        assert_eq!(s.items().and_then(|i| i.as_bool()), Some(false));
        let patterns: Vec<&str> = s.pattern_properties().map(|(p, _)| p).collect();
        assert_eq!(patterns, vec!["^x-"]);
    }

    #[test]
    fn type_keywords_read_strictly() {
        let read = |t: Value| Schema::root(&json!({ "type": t })).declared_types();
        assert_eq!(
            read(json!("integer")),
            Some(Ok(Types { types: vec![JsonType::Integer], nullable: false }))
        );
        assert_eq!(
            read(json!(["string", "null"])),
            Some(Ok(Types { types: vec![JsonType::String], nullable: true }))
        );
        assert_eq!(read(json!([])), Some(Ok(Types::default())));
        assert_eq!(read(json!(["string", 1])), Some(Err(TypeError::NotStrings)));
        assert_eq!(read(json!(3)), Some(Err(TypeError::NotANameOrList)));
        assert_eq!(read(json!("bogus")), Some(Err(TypeError::Unknown("bogus".into()))));
        assert_eq!(Schema::root(&json!({})).declared_types(), None);
    }

    #[test]
    fn dialects_are_the_official_meta_schemas() {
        for (uri, dialect) in [
            ("https://json-schema.org/draft/2020-12/schema", Some(Dialect::Draft202012)),
            ("http://json-schema.org/draft/2020-12/schema#", Some(Dialect::Draft202012)),
            ("http://json-schema.org/draft-07/schema#", Some(Dialect::Draft7)),
            ("https://json-schema.org/draft/2019-09/schema", Some(Dialect::Draft201909)),
            ("http://json-schema.org/draft-06/schema", Some(Dialect::Draft6)),
            ("http://json-schema.org/draft-04/schema#", Some(Dialect::Draft4)),
            ("http://example.com/draft-07/schema", None),
        ] {
            assert_eq!(Dialect::from_uri(uri), dialect, "{uri}");
        }
        assert_eq!(Schema::root(&json!({ "$schema": 7 })).dialect(), Some(Err(DialectError::NotAString)));
        assert_eq!(Schema::root(&json!({})).dialect(), None);
    }

    #[test]
    fn references_decode_and_resolve_anchors() {
        assert_eq!(Reference::parse("#/$defs/a~1b", None), Ok(Reference::Pointer("/$defs/a~1b".into())));
        assert_eq!(Reference::parse("#/$defs/a%25b", None), Ok(Reference::Pointer("/$defs/a%b".into())));
        assert_eq!(Reference::parse("#", None), Ok(Reference::Pointer(String::new())));
        assert_eq!(Reference::parse("#node", None), Ok(Reference::Anchor("node".into())));
        assert_eq!(Reference::parse("other.json#/a", None), Ok(Reference::Remote("other.json#/a".into())));
        assert_eq!(Reference::parse("me.json#/a", Some("me.json")), Ok(Reference::Pointer("/a".into())));
        assert_eq!(Reference::parse("#/a%2", None), Err(ReferenceError::PercentEscape));
        let doc = json!({
            "properties": {
                "a": { "$ref": "#node" }, "b": { "$ref": "#/$defs/with%20space" }, "c": { "$ref": "#missing" },
                "d": { "$ref": "other.json" }
            },
            "$defs": {
                "N": { "$anchor": "node", "type": "integer" },
                "with space": { "type": "string" },
                "data": { "const": { "$anchor": "missing" } }
            }
        });
        let root = Schema::root(&doc);
        let target = |name: &str| root.property(name).and_then(|p| p.ref_target()).map(|t| t.types().types);
        assert_eq!(target("a"), Some(vec![JsonType::Integer]));
        assert_eq!(target("b"), Some(vec![JsonType::String]));
        // Anchors inside data keywords are not schemas; remote documents are not fetched.
        assert_eq!(target("c"), None);
        assert_eq!(target("d"), None);
    }

    #[test]
    fn keyword_lists_and_pointer_segments() {
        assert!(is_annotation("description") && !is_annotation("$id"));
        assert!(is_non_assertion("$id") && is_non_assertion("contentMediaType") && !is_non_assertion("type"));
        assert_eq!(escape_pointer_segment("a/b~c"), "a~1b~0c");
        assert_eq!(unescape_pointer_segment("a~1b~0c"), "a/b~c");
        assert_eq!(unescape_pointer_segment("~01"), "~1");
    }
}
