//! Rust types for JSON Schemas: an arena of named types with structural de-duplication.

use super::names::{self, Scope};
use prom_spec::schema::{JsonType, Schema};
use serde_json::Value;
use std::collections::BTreeMap;

/// Index of a named type in the [`TypeSpace`].
pub type TypeId = usize;

/// A Rust type expression.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ty {
    /// `i64`.
    Int,
    /// `f64`.
    Float,
    /// `String`.
    Str,
    /// `bool`.
    Bool,
    /// An RFC 3339 timestamp (`format: date-time`).
    Timestamp,
    /// Anything the schema does not pin down (`serde_json::Value`).
    Json,
    /// `Vec<T>`.
    Vec(Box<Ty>),
    /// `BTreeMap<String, T>` (an object with only `additionalProperties`).
    Map(Box<Ty>),
    /// `Option<T>`.
    Option(Box<Ty>),
    /// `Box<T>`, breaking a recursive type.
    Boxed(Box<Ty>),
    /// A generated struct or enum.
    Named(TypeId),
}

/// A struct field.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The property name in JSON.
    pub json_name: String,
    /// The Rust field name (may be `r#type`).
    pub ident: String,
    /// The field's type, `Option` when the property is optional or nullable.
    pub ty: Ty,
    /// Whether the property is required.
    pub required: bool,
    /// The property's description.
    pub description: Option<String>,
}

/// A unit variant of a string enum.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    /// Rust variant name.
    pub ident: String,
    /// The JSON string.
    pub value: String,
}

/// What a named type is.
#[derive(Debug, Clone, PartialEq)]
pub enum TypeKind {
    /// A struct with named fields.
    Struct {
        /// Fields in declaration order.
        fields: Vec<Field>,
        /// `additionalProperties: false`.
        closed: bool,
    },
    /// A string enum.
    Enum {
        /// Variants in declaration order.
        variants: Vec<Variant>,
    },
}

/// A generated named type.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeDef {
    /// Rust type name, unique in its module.
    pub name: String,
    /// The schema's description.
    pub description: Option<String>,
    /// Struct or enum.
    pub kind: TypeKind,
}

/// The named types of one topic module.
#[derive(Debug, Default)]
pub struct TypeSpace {
    defs: Vec<TypeDef>,
    by_shape: BTreeMap<String, TypeId>,
    scope: Scope,
    resolving: Vec<(String, TypeId)>,
}

/// Where a schema sits, for resolving its local `$ref`s.
struct Ctx<'a> {
    root: &'a Value,
}

impl<'a> Ctx<'a> {
    /// `node` (a part of the version's schema) in the typed view.
    fn schema<'n>(&self, node: &'n Value) -> Schema<'n>
    where
        'a: 'n,
    {
        Schema::in_document(self.root, node)
    }
}

impl TypeSpace {
    /// The named types in creation order.
    pub fn defs(&self) -> &[TypeDef] {
        &self.defs
    }

    /// A named type.
    pub fn get(&self, id: TypeId) -> Option<&TypeDef> {
        self.defs.get(id)
    }

    /// Reserves a name in this module (for items that are not types, like `Latest`).
    pub fn reserve(&mut self, name: &str) {
        self.scope.claim(name.to_owned());
    }

    /// Adds a version's root struct (never shared with another version) named `name`.
    pub fn add_root(&mut self, name: &str, schema: &Value) -> TypeId {
        let ctx = Ctx { root: schema };
        let id = self.reserve_slot(name);
        // Nested types are named after their property path without the version: a type that
        // versions share (by shape) must not read `V1…` inside `V2`.
        let def = self.struct_def(&ctx, schema, "");
        self.defs[id] = TypeDef { name: self.defs[id].name.clone(), ..def };
        id
    }

    fn reserve_slot(&mut self, name: &str) -> TypeId {
        let name = self.scope.claim(names::type_name(name));
        self.defs.push(TypeDef {
            name,
            description: None,
            kind: TypeKind::Struct { fields: Vec::new(), closed: false },
        });
        self.defs.len() - 1
    }

    fn ty(&mut self, ctx: &Ctx<'_>, schema: &Value, hint: &str) -> Ty {
        let view = ctx.schema(schema);
        if let Some(reference) = view.reference() {
            return self.reference(ctx, view, reference, hint);
        }
        let types = view.types();
        let inner = match types.normalized().as_slice() {
            [] if view.has_properties() => self.named(ctx, schema, hint),
            [] => const_or_enum_ty(view).unwrap_or(Ty::Json),
            [one] => self.single(ctx, view, *one, hint),
            // `[integer, number]` is just a number.
            [JsonType::Integer, JsonType::Number] => Ty::Float,
            _ => Ty::Json,
        };
        if types.nullable { Ty::Option(Box::new(inner)) } else { inner }
    }

    fn single(&mut self, ctx: &Ctx<'_>, schema: Schema<'_>, ty: JsonType, hint: &str) -> Ty {
        match ty {
            JsonType::Integer => Ty::Int,
            JsonType::Number => Ty::Float,
            JsonType::Boolean => Ty::Bool,
            JsonType::String if schema.format() == Some("date-time") => Ty::Timestamp,
            JsonType::String if schema.string_enum().is_some() => self.named(ctx, schema.json(), hint),
            JsonType::String => Ty::Str,
            JsonType::Array => match schema.items() {
                Some(items) if items.keywords().is_some() => {
                    Ty::Vec(Box::new(self.ty(ctx, items.json(), &format!("{hint}_item"))))
                }
                _ => Ty::Vec(Box::new(Ty::Json)),
            },
            JsonType::Object if schema.has_properties() => self.named(ctx, schema.json(), hint),
            JsonType::Object => match schema.additional_properties() {
                Some(extra) if extra.keywords().is_some() => {
                    Ty::Map(Box::new(self.ty(ctx, extra.json(), &format!("{hint}_value"))))
                }
                _ => Ty::Map(Box::new(Ty::Json)),
            },
            JsonType::Null => Ty::Json,
        }
    }

    fn reference(&mut self, ctx: &Ctx<'_>, schema: Schema<'_>, reference: &str, hint: &str) -> Ty {
        let Some(target) = schema.ref_target() else {
            return Ty::Json;
        };
        let (target_view, target) = (target, target.json());
        if let Some((_, id)) = self.resolving.iter().find(|(r, _)| r == reference) {
            return Ty::Boxed(Box::new(Ty::Named(*id)));
        }
        let name = reference.rsplit('/').next().filter(|n| !n.is_empty()).unwrap_or(hint).to_owned();
        let is_named = target_view.has_properties() || target_view.string_enum().is_some();
        if !is_named {
            return self.ty(ctx, target, &name);
        }
        // Reserve first, so a self-reference inside resolves to this type.
        let shape = shape_key(target);
        if let Some(id) = self.by_shape.get(&shape) {
            return Ty::Named(*id);
        }
        let id = self.reserve_slot(&name);
        self.resolving.push((reference.to_owned(), id));
        let def = self.def_for(ctx, target, &name);
        self.resolving.pop();
        self.defs[id] = TypeDef { name: self.defs[id].name.clone(), ..def };
        self.by_shape.insert(shape, id);
        Ty::Named(id)
    }

    fn named(&mut self, ctx: &Ctx<'_>, schema: &Value, hint: &str) -> Ty {
        let shape = shape_key(schema);
        if let Some(id) = self.by_shape.get(&shape) {
            return Ty::Named(*id);
        }
        let id = self.reserve_slot(hint);
        let def = self.def_for(ctx, schema, hint);
        self.defs[id] = TypeDef { name: self.defs[id].name.clone(), ..def };
        self.by_shape.insert(shape, id);
        Ty::Named(id)
    }

    fn def_for(&mut self, ctx: &Ctx<'_>, schema: &Value, hint: &str) -> TypeDef {
        match ctx.schema(schema).string_enum() {
            Some(values) => {
                let mut scope = Scope::default();
                let variants = values
                    .into_iter()
                    .map(|value| {
                        let base =
                            if value.is_empty() { "Empty".to_owned() } else { names::type_name(value) };
                        Variant { ident: scope.claim(base), value: value.to_owned() }
                    })
                    .collect();
                TypeDef {
                    name: String::new(),
                    description: description(ctx.schema(schema)),
                    kind: TypeKind::Enum { variants },
                }
            }
            None => self.struct_def(ctx, schema, hint),
        }
    }

    fn struct_def(&mut self, ctx: &Ctx<'_>, schema: &Value, hint: &str) -> TypeDef {
        let view = ctx.schema(schema);
        let required = view.required();
        let mut scope = Scope::default();
        let mut fields = Vec::new();
        for (json_name, prop) in view.properties() {
            let is_required = required.contains(&json_name);
            let prop_hint = match hint {
                "" => names::root_property_hint(json_name),
                _ => format!("{hint}_{json_name}"),
            };
            let ty = self.ty(ctx, prop.json(), &prop_hint);
            let ty = match ty {
                Ty::Option(_) => ty,
                other if !is_required => Ty::Option(Box::new(other)),
                other => other,
            };
            fields.push(Field {
                json_name: json_name.to_owned(),
                ident: scope.claim(names::field(json_name)),
                ty,
                required: is_required,
                description: description(prop),
            });
        }
        let closed = view.is_closed();
        TypeDef {
            name: String::new(),
            description: description(view),
            kind: TypeKind::Struct { fields, closed },
        }
    }
}

fn const_or_enum_ty(schema: Schema<'_>) -> Option<Ty> {
    let values: Vec<&Value> = match (schema.const_value(), schema.enum_values()) {
        (Some(c), _) => vec![c],
        (None, Some(values)) => values.iter().collect(),
        _ => return None,
    };
    let first = values.first()?;
    let same = |pred: fn(&Value) -> bool| values.iter().all(|v| pred(v));
    Some(match first {
        Value::String(_) if same(Value::is_string) => Ty::Str,
        Value::Bool(_) if same(Value::is_boolean) => Ty::Bool,
        Value::Number(_) if same(|v| v.is_i64()) => Ty::Int,
        Value::Number(_) if same(Value::is_number) => Ty::Float,
        _ => Ty::Json,
    })
}

fn description(schema: Schema<'_>) -> Option<String> {
    schema.description().map(str::to_owned)
}

/// Two schemas with the same key generate the same Rust type.
fn shape_key(schema: &Value) -> String {
    schema.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn maps_schema_types() {
        let mut space = TypeSpace::default();
        let schema = json!({
            "type": "object",
            "required": ["id", "status"],
            "properties": {
                "id": { "type": "integer" },
                "status": { "type": "string", "enum": ["running", "in-progress"] },
                "seen": { "type": "string", "format": "date-time" },
                "tags": { "type": "array", "items": { "type": "string" } },
                "where": { "type": "object", "properties": { "host": { "type": "string" } } },
                "note": { "type": ["string", "null"] },
                "type": { "type": "number" }
            }
        });
        let id = space.add_root("V1", &schema);
        let TypeKind::Struct { fields, .. } = &space.defs()[id].kind else { panic!("struct") };
        let tys: Vec<(&str, &Ty)> = fields.iter().map(|f| (f.ident.as_str(), &f.ty)).collect();
        assert_eq!(tys[0], ("id", &Ty::Int));
        assert!(matches!(tys[1], ("status", Ty::Named(_))));
        assert_eq!(tys[2], ("seen", &Ty::Option(Box::new(Ty::Timestamp))));
        assert_eq!(tys[3], ("tags", &Ty::Option(Box::new(Ty::Vec(Box::new(Ty::Str))))));
        assert!(matches!(tys[4], ("r#where", Ty::Option(_))));
        assert_eq!(tys[5], ("note", &Ty::Option(Box::new(Ty::Str))));
        assert_eq!(tys[6], ("r#type", &Ty::Option(Box::new(Ty::Float))));
        let names: Vec<&str> = space.defs().iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, vec!["V1", "Status", "Where"]);
    }

    #[test]
    fn identical_shapes_share_a_type_and_recursion_is_boxed() {
        let mut space = TypeSpace::default();
        let addr = json!({ "type": "object", "properties": { "zip": { "type": "string" } } });
        let v1 = json!({ "type": "object", "properties": { "address": addr } });
        let v2 = json!({ "type": "object", "properties": { "address": addr, "x": { "type": "integer" } } });
        space.add_root("V1", &v1);
        space.add_root("V2", &v2);
        assert_eq!(space.defs().len(), 3);
        let tree = json!({
            "type": "object",
            "properties": { "root": { "$ref": "#/$defs/node" } },
            "$defs": { "node": { "type": "object", "properties": { "child": { "$ref": "#/$defs/node" } } } }
        });
        let mut space = TypeSpace::default();
        space.add_root("T", &tree);
        let TypeKind::Struct { fields, .. } = &space.defs()[1].kind else { panic!("struct") };
        assert_eq!(fields[0].ty, Ty::Option(Box::new(Ty::Boxed(Box::new(Ty::Named(1))))));
    }
}
