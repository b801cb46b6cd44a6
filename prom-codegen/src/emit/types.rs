//! Payload structs and string enums.

use super::{docs, ident, rt};
use crate::ir::{Ty, TypeDef, TypeKind, TypeSpace};
use proc_macro2::TokenStream;
use quote::quote;

/// The Rust type expression for `ty`.
pub fn ty(space: &TypeSpace, ty: &Ty) -> TokenStream {
    let rt = rt();
    match ty {
        Ty::Int => quote!(i64),
        Ty::Float => quote!(f64),
        Ty::Str => quote!(::std::string::String),
        Ty::Bool => quote!(bool),
        Ty::Timestamp => quote!(#rt::Timestamp),
        Ty::Json => quote!(#rt::__private::serde_json::Value),
        Ty::Vec(inner) => {
            let inner = self::ty(space, inner);
            quote!(::std::vec::Vec<#inner>)
        }
        Ty::Map(inner) => {
            let inner = self::ty(space, inner);
            quote!(::std::collections::BTreeMap<::std::string::String, #inner>)
        }
        Ty::Option(inner) => {
            let inner = self::ty(space, inner);
            quote!(::std::option::Option<#inner>)
        }
        Ty::Boxed(inner) => {
            let inner = self::ty(space, inner);
            quote!(::std::boxed::Box<#inner>)
        }
        Ty::Named(id) => {
            let name = space.get(*id).map_or("UnknownType", |d| d.name.as_str());
            let name = ident(name);
            quote!(#name)
        }
    }
}

/// A struct or enum definition; `fallback_doc` documents types whose schema has no description.
pub fn definition(space: &TypeSpace, def: &TypeDef, fallback_doc: &str) -> TokenStream {
    let rt = rt();
    let name = ident(&def.name);
    let doc = docs(Some(def.description.as_deref().unwrap_or(fallback_doc)));
    let serde_crate = quote!(#[serde(crate = "::prom_runtime::__private::serde")]);
    match &def.kind {
        TypeKind::Struct { fields, closed } => {
            let deny = closed.then(|| quote!(#[serde(deny_unknown_fields)]));
            let fields = fields.iter().map(|f| {
                let fallback = format!("`{}`", f.json_name);
                let doc = docs(Some(f.description.as_deref().unwrap_or(&fallback)));
                let field = ident(&f.ident);
                let ty = ty(space, &f.ty);
                let rename = (f.ident.trim_start_matches("r#") != f.json_name).then(|| {
                    let json = &f.json_name;
                    quote!(#[serde(rename = #json)])
                });
                let optional = matches!(f.ty, Ty::Option(_)).then(
                    || quote!(#[serde(default, skip_serializing_if = "::std::option::Option::is_none")]),
                );
                quote!(#doc #rename #optional pub #field: #ty,)
            });
            quote! {
                #doc
                #[derive(Debug, Clone, PartialEq, #rt::__private::serde::Serialize, #rt::__private::serde::Deserialize)]
                #serde_crate
                #deny
                pub struct #name {
                    #(#fields)*
                }
            }
        }
        TypeKind::Enum { variants } => {
            let variants = variants.iter().map(|v| {
                let variant = ident(&v.ident);
                let value = &v.value;
                let doc = format!(" `{value:?}`");
                quote!(#[doc = #doc] #[serde(rename = #value)] #variant,)
            });
            quote! {
                #doc
                #[derive(
                    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
                    #rt::__private::serde::Serialize, #rt::__private::serde::Deserialize
                )]
                #serde_crate
                pub enum #name {
                    #(#variants)*
                }
            }
        }
    }
}
