//! What JSON a Rust field type (de)serialises as, and whether that fits a property's schema.

use prom_spec::schema::{JsonType, Schema};
use serde_json::Value;
use syn::{GenericArgument, PathArguments, Type};

/// The JSON shape of a Rust type, as far as its syntax tells.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// Any Rust integer type.
    Integer,
    /// `f32` or `f64`.
    Number,
    /// `String`, `str`, `Cow<str>`, `char`.
    String,
    /// `bool`.
    Bool,
    /// A timestamp type that serialises as an RFC 3339 string.
    Timestamp,
    /// `Vec<T>`, sets, arrays and slices.
    Array(Box<Shape>),
    /// `HashMap<String, T>`, `BTreeMap<String, T>`.
    Map(Box<Shape>),
    /// `Option<T>`.
    Option(Box<Shape>),
    /// `serde_json::Value`: anything.
    Any,
    /// A user type (struct, enum, newtype): its shape is not visible here.
    Named(String),
    /// Something that cannot be a payload field (fn pointers, trait objects, ...).
    Unsupported,
}

/// Classifies a field type.
pub fn of(ty: &Type) -> Shape {
    match ty {
        Type::Paren(p) => of(&p.elem),
        Type::Group(g) => of(&g.elem),
        Type::Reference(r) => of(&r.elem),
        Type::Array(a) => Shape::Array(Box::new(of(&a.elem))),
        Type::Slice(s) => Shape::Array(Box::new(of(&s.elem))),
        Type::Path(p) if p.qself.is_none() => {
            let Some(last) = p.path.segments.last() else { return Shape::Unsupported };
            let args: Vec<&Type> = match &last.arguments {
                PathArguments::AngleBracketed(a) => a
                    .args
                    .iter()
                    .filter_map(|arg| match arg {
                        GenericArgument::Type(t) => Some(t),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            let name = last.ident.to_string();
            match (name.as_str(), args.as_slice()) {
                (
                    "i8" | "i16" | "i32" | "i64" | "i128" | "isize" | "u8" | "u16" | "u32" | "u64" | "u128"
                    | "usize" | "NonZeroU32" | "NonZeroU64" | "NonZeroI64",
                    [],
                ) => Shape::Integer,
                ("f32" | "f64", []) => Shape::Number,
                ("Cow", [inner]) => of(inner),
                ("String" | "str" | "char", []) => Shape::String,
                ("bool", []) => Shape::Bool,
                ("DateTime" | "Timestamp" | "OffsetDateTime" | "SystemTime", _) => Shape::Timestamp,
                ("Option", [inner]) => Shape::Option(Box::new(of(inner))),
                ("Box" | "Arc" | "Rc", [inner]) => of(inner),
                ("Vec" | "VecDeque" | "HashSet" | "BTreeSet" | "IndexSet" | "SmallVec", [inner, ..]) => {
                    Shape::Array(Box::new(of(inner)))
                }
                ("HashMap" | "BTreeMap" | "IndexMap", [_, value, ..]) => Shape::Map(Box::new(of(value))),
                ("Value", []) => Shape::Any,
                _ => Shape::Named(name),
            }
        }
        _ => Shape::Unsupported,
    }
}

/// The `T` of `Option<T>` (else the type itself), so errors about `T` point at it.
pub fn unwrap_option(ty: &Type) -> &Type {
    if let Type::Path(p) = ty
        && let Some(last) = p.path.segments.last()
        && last.ident == "Option"
        && let PathArguments::AngleBracketed(args) = &last.arguments
        && let Some(GenericArgument::Type(inner)) = args.args.first()
    {
        return inner;
    }
    ty
}

/// Whether `null` is a valid value under `schema` (a node of `root`): it says so, or it
/// constrains nothing (`true`, `{}`, a schema without `type`, `enum` or `const`).
pub fn allows_null(root: &Value, schema: &Value) -> bool {
    Schema::in_document(root, schema).allows_null()
}

/// A short name for a shape in messages.
pub fn describe(shape: &Shape) -> String {
    match shape {
        Shape::Integer => "an integer type".to_owned(),
        Shape::Number => "a float type".to_owned(),
        Shape::String => "a string type".to_owned(),
        Shape::Bool => "`bool`".to_owned(),
        Shape::Timestamp => "a timestamp".to_owned(),
        Shape::Array(_) => "a sequence".to_owned(),
        Shape::Map(_) => "a map".to_owned(),
        Shape::Option(inner) => format!("`Option` of {}", describe(inner)),
        Shape::Any => "`serde_json::Value`".to_owned(),
        Shape::Named(name) => format!("`{name}`"),
        Shape::Unsupported => "an unsupported type".to_owned(),
    }
}

/// Checks a (non-`Option`) shape against a schema (a node of `root`); `Err` says what the
/// schema wants instead.
pub fn fits(shape: &Shape, schema: &Value, root: &Value) -> Result<(), String> {
    fits_schema(shape, Schema::in_document(root, schema))
}

fn fits_schema(shape: &Shape, schema: Schema<'_>) -> Result<(), String> {
    let schema = schema.resolved();
    let types = schema.inferred_types().types;
    if types.is_empty() {
        return Ok(());
    }
    let wants = |t: JsonType| types.contains(&t);
    let expected = || {
        let rust = types.iter().map(|t| rust_for(*t, schema)).collect::<Vec<_>>().join(" or ");
        let names = types.iter().map(|t| t.name()).collect::<Vec<_>>().join(" or ");
        format!("the schema declares {names}: use {rust}")
    };
    let ok = match shape {
        Shape::Any | Shape::Named(_) => true,
        Shape::Integer => wants(JsonType::Integer),
        Shape::Number => wants(JsonType::Number),
        Shape::String | Shape::Timestamp => wants(JsonType::String),
        Shape::Bool => wants(JsonType::Boolean),
        Shape::Array(inner) if wants(JsonType::Array) => {
            return match schema.items() {
                Some(items) if items.keywords().is_some() => {
                    item_fits(inner, items).map_err(|e| format!("array items: {e}"))
                }
                _ => Ok(()),
            };
        }
        Shape::Map(value) if wants(JsonType::Object) => {
            return match schema.additional_properties() {
                Some(extra) if extra.keywords().is_some() => {
                    item_fits(value, extra).map_err(|e| format!("map values: {e}"))
                }
                _ => Ok(()),
            };
        }
        Shape::Array(_) | Shape::Map(_) | Shape::Option(_) | Shape::Unsupported => false,
    };
    if ok { Ok(()) } else { Err(expected()) }
}

/// Items and map values may be `Option` only where the schema allows null.
fn item_fits(shape: &Shape, schema: Schema<'_>) -> Result<(), String> {
    match shape {
        Shape::Option(inner) => {
            if schema.resolved().inferred_types().nullable {
                fits_schema(inner, schema)
            } else {
                Err("`Option` but the schema does not allow null".into())
            }
        }
        other => fits_schema(other, schema),
    }
}

fn rust_for(json_type: JsonType, schema: Schema<'_>) -> &'static str {
    match json_type {
        JsonType::Integer => "an integer type (`i64`, `u32`, ...)",
        JsonType::Number => "`f64` or `f32`",
        JsonType::String if schema.format() == Some("date-time") => "`prom_runtime::Timestamp` or `String`",
        JsonType::String => "`String`",
        JsonType::Boolean => "`bool`",
        JsonType::Array => "`Vec<_>`",
        JsonType::Object => "a struct or a map",
        JsonType::Null => "`serde_json::Value`",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shape(src: &str) -> Shape {
        of(&syn::parse_str::<Type>(src).expect("type"))
    }

    #[test]
    fn classifies_types() {
        assert_eq!(shape("u32"), Shape::Integer);
        assert_eq!(shape("std::string::String"), Shape::String);
        assert_eq!(shape("Option<Vec<f64>>"), Shape::Option(Box::new(Shape::Array(Box::new(Shape::Number)))));
        assert_eq!(shape("BTreeMap<String, bool>"), Shape::Map(Box::new(Shape::Bool)));
        assert_eq!(shape("Cow<'static, str>"), Shape::String);
        assert_eq!(shape("Address"), Shape::Named("Address".into()));
        assert_eq!(shape("fn()"), Shape::Unsupported);
    }

    #[test]
    fn checks_against_schemas() {
        let root = json!({});
        assert!(fits(&Shape::Integer, &json!({ "type": "integer" }), &root).is_ok());
        assert!(fits(&Shape::Number, &json!({ "type": "integer" }), &root).is_err());
        assert!(fits(&Shape::Integer, &json!({ "type": "number" }), &root).is_err());
        let tags = json!({ "type": "array", "items": { "type": "string" } });
        assert!(fits(&Shape::Array(Box::new(Shape::String)), &tags, &root).is_ok());
        assert!(fits(&Shape::Array(Box::new(Shape::Integer)), &tags, &root).is_err());
        assert!(fits(&Shape::Named("Addr".into()), &json!({ "type": "object" }), &root).is_ok());
        assert!(fits(&Shape::String, &json!({ "enum": ["a", "b"] }), &root).is_ok());
    }

    #[test]
    fn null_is_allowed_where_nothing_constrains_it() {
        let root = json!({});
        assert!(allows_null(&root, &json!(true)));
        assert!(allows_null(&root, &json!({})));
        assert!(allows_null(&root, &json!({ "type": ["string", "null"] })));
        assert!(allows_null(&root, &json!({ "enum": ["a", null] })));
        assert!(!allows_null(&root, &json!({ "type": "string" })));
        assert!(!allows_null(&root, &json!({ "enum": [1, 2] })));
        assert!(!allows_null(&root, &json!({ "properties": { "a": {} } })));
    }
}
