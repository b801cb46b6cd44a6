//! Payload structs and string enums, built as syntax trees (they are most of the output).

use super::ident;
use super::syntax::{self, docs, generic_type, list_attr, path, path_type};
use crate::ir::{Ty, TypeDef, TypeKind, TypeSpace};
use quote::quote;

/// The Rust type for `ty`.
pub fn ty(space: &TypeSpace, ty: &Ty) -> syn::Type {
    match ty {
        Ty::Int => path_type(path(false, &["i64"])),
        Ty::Float => path_type(path(false, &["f64"])),
        Ty::Str => string(),
        Ty::Bool => path_type(path(false, &["bool"])),
        Ty::Timestamp => path_type(path(true, &["prom_runtime", "Timestamp"])),
        Ty::Json => path_type(path(true, &["prom_runtime", "__private", "serde_json", "Value"])),
        Ty::Vec(inner) => generic_type(&["std", "vec", "Vec"], vec![self::ty(space, inner)]),
        Ty::Map(inner) => {
            generic_type(&["std", "collections", "BTreeMap"], vec![string(), self::ty(space, inner)])
        }
        Ty::Option(inner) => generic_type(&["std", "option", "Option"], vec![self::ty(space, inner)]),
        Ty::Boxed(inner) => generic_type(&["std", "boxed", "Box"], vec![self::ty(space, inner)]),
        Ty::Named(id) => {
            let name = space.get(*id).map_or("UnknownType", |d| d.name.as_str());
            path_type(syn::Path::from(ident(name)))
        }
    }
}

fn string() -> syn::Type {
    path_type(path(true, &["std", "string", "String"]))
}

/// A struct or enum definition; `fallback_doc` documents types whose schema has no description.
pub fn definition(space: &TypeSpace, def: &TypeDef, fallback_doc: &str) -> syn::Item {
    let name = ident(&def.name);
    let mut attrs: Vec<syn::Attribute> = docs(def.description.as_deref().unwrap_or(fallback_doc)).collect();
    let serde = quote!(::prom_runtime::__private::serde);
    let serde_crate = list_attr("serde", quote!(crate = "::prom_runtime::__private::serde"));
    match &def.kind {
        TypeKind::Struct { fields, closed } => {
            attrs.push(list_attr(
                "derive",
                quote!(Debug, Clone, PartialEq, #serde::Serialize, #serde::Deserialize),
            ));
            attrs.push(serde_crate);
            if *closed {
                attrs.push(list_attr("serde", quote!(deny_unknown_fields)));
            }
            let fields = fields.iter().map(|f| {
                let fallback;
                let text = match &f.description {
                    Some(text) => text.as_str(),
                    None => {
                        fallback = format!("`{}`", f.json_name);
                        &fallback
                    }
                };
                let mut attrs: Vec<syn::Attribute> = docs(text).collect();
                if f.ident.trim_start_matches("r#") != f.json_name {
                    let json = &f.json_name;
                    attrs.push(list_attr("serde", quote!(rename = #json)));
                }
                if matches!(f.ty, Ty::Option(_)) {
                    attrs.push(list_attr(
                        "serde",
                        quote!(default, skip_serializing_if = "::std::option::Option::is_none"),
                    ));
                }
                syntax::field(attrs, ident(&f.ident), ty(space, &f.ty))
            });
            syntax::structure(attrs, name, fields.collect())
        }
        TypeKind::Enum { variants } => {
            attrs.push(list_attr(
                "derive",
                quote!(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, #serde::Serialize, #serde::Deserialize),
            ));
            attrs.push(serde_crate);
            let variants = variants.iter().map(|v| {
                let value = &v.value;
                let attrs =
                    vec![syntax::doc(&format!(" `{value:?}`")), list_attr("serde", quote!(rename = #value))];
                (attrs, ident(&v.ident))
            });
            syntax::enumeration(attrs, name, variants)
        }
    }
}
