//! Typed upcasters: one function per hop `vN → vN+1`, from declarative steps or a user function.

use super::{ident, rt};
use crate::ir::{Field, Topic, Ty, TypeKind, TypeSpace, Upcast, Version};
use proc_macro2::{Literal, TokenStream};
use prom_spec::upcast::{Fields, Steps};
use quote::{format_ident, quote};
use serde_json::Value;

/// `fn vN_to_vM(v: VN) -> Result<VM, UpcastError>` for the hop into `to`.
pub fn hop(topic: &Topic, from: &Version, to: &Version) -> TokenStream {
    let rt = rt();
    let name = format_ident!("v{}_to_v{}", from.number, to.number);
    let from_ty = root_name(&topic.types, from);
    let to_ty = root_name(&topic.types, to);
    let doc = format!(" Upcasts a v{} payload to v{}.", from.number, to.number);
    let body = match &to.upcast {
        Some(Upcast::With(path)) => {
            let path: syn::Path =
                syn::parse_str(path).unwrap_or_else(|_| syn::parse_quote!(missing_upcast_fn));
            quote!(#path(v))
        }
        Some(Upcast::Steps(steps)) => fields(topic, from, to, steps),
        None => fields(topic, from, to, &Steps::default()),
    };
    let json = matches!(to.upcast, Some(Upcast::With(_))).then(|| {
        let json_name = format_ident!("json_v{}_to_v{}", from.number, to.number);
        let doc = format!(" [`{name}`] over JSON, for the runtime's registry.");
        quote! {
            #[doc = #doc]
            pub fn #json_name(
                payload: #rt::__private::serde_json::Value,
            ) -> ::std::result::Result<#rt::__private::serde_json::Value, #rt::UpcastError> {
                let from: #from_ty = #rt::__private::serde_json::from_value(payload)?;
                ::std::result::Result::Ok(#rt::__private::serde_json::to_value(#name(from)?)?)
            }
        }
    });
    quote! {
        #[doc = #doc]
        pub fn #name(v: #from_ty) -> ::std::result::Result<#to_ty, #rt::UpcastError> {
            #body
        }
        #json
    }
}

fn root_name(space: &TypeSpace, version: &Version) -> TokenStream {
    let name = space.get(version.root).map_or("UnknownType", |d| d.name.as_str());
    let name = ident(name);
    quote!(#name)
}

fn root_fields<'a>(space: &'a TypeSpace, version: &Version) -> &'a [Field] {
    match space.get(version.root).map(|d| &d.kind) {
        Some(TypeKind::Struct { fields, .. }) => fields,
        _ => &[],
    }
}

/// Where a field of the upcast's output comes from: a source field, a default, or both (the
/// source field's value when present, else the default).
struct Origin<'a> {
    source: Option<&'a Field>,
    default: Option<&'a Value>,
}

/// The source struct's fields, symbolically: [`Steps::run`] over them tells each output field's
/// [`Origin`], with the same meaning the runtime applies to stored JSON.
struct Origins<'a>(Vec<(String, Origin<'a>)>);

impl<'a> Origins<'a> {
    fn position(&self, name: &str) -> Option<usize> {
        self.0.iter().position(|(n, _)| n == name)
    }

    fn get(&self, name: &str) -> Option<&Origin<'a>> {
        self.position(name).map(|i| &self.0[i].1)
    }
}

impl<'a> Fields<&'a Value> for Origins<'a> {
    type Item = Origin<'a>;

    fn take(&mut self, name: &str) -> Option<Origin<'a>> {
        self.position(name).map(|i| self.0.remove(i).1)
    }

    fn put(&mut self, name: &str, item: Origin<'a>) {
        self.take(name);
        self.0.push((name.to_owned(), item));
    }

    fn fill(&mut self, name: &str, default: &&'a Value) {
        match self.position(name) {
            Some(i) => self.0[i].1.default = Some(*default),
            None => self.0.push((name.to_owned(), Origin { source: None, default: Some(*default) })),
        }
    }
}

/// Builds the target struct field by field.
fn fields(topic: &Topic, from: &Version, to: &Version, steps: &Steps) -> TokenStream {
    let rt = rt();
    let space = &topic.types;
    let mut origins = Origins(
        root_fields(space, from)
            .iter()
            .map(|f| (f.json_name.clone(), Origin { source: Some(f), default: None }))
            .collect(),
    );
    steps.map(String::clone, Some).run(&mut origins);
    let to_ty = root_name(space, to);
    let inits = root_fields(space, to).iter().map(|target| {
        let field = ident(&target.ident);
        let origin = origins.get(&target.json_name);
        let (source_field, default) = origin.map_or((None, None), |o| (o.source, o.default));
        let value = match (source_field, default) {
            (Some(src), None) => convert(&src.ident, &src.ty, &target.ty, &target.json_name),
            (Some(src), Some(default)) => with_default(space, src, &target.ty, default, &target.json_name),
            (None, Some(default)) => literal(space, &target.ty, default),
            (None, None) if matches!(target.ty, Ty::Option(_)) => quote!(::std::option::Option::None),
            (None, None) => {
                let message = format!("no value for required field `{}`", target.json_name);
                quote!(return ::std::result::Result::Err(#rt::UpcastError::new(#message)))
            }
        };
        quote!(#field: #value,)
    });
    quote!(::std::result::Result::Ok(#to_ty { #(#inits)* }))
}

/// Converts `v.<field>` from one field type to another.
fn convert(field: &str, from: &Ty, to: &Ty, json_name: &str) -> TokenStream {
    let rt = rt();
    let f = ident(field);
    let value = quote!(v.#f);
    if from == to {
        return value;
    }
    match (from, to) {
        (_, Ty::Option(inner)) if **inner == *from => quote!(::std::option::Option::Some(#value)),
        (Ty::Int, Ty::Float) => quote!(#value as f64),
        (Ty::Option(a), Ty::Option(b)) if **a == Ty::Int && **b == Ty::Float => {
            quote!(#value.map(|x| x as f64))
        }
        (Ty::Option(inner), _) if **inner == *to => {
            let message = format!("field `{json_name}` is absent");
            quote!(#value.ok_or_else(|| #rt::UpcastError::new(#message))?)
        }
        // Different generated types of the same data: convert through JSON.
        _ => quote!(#rt::codegen::convert(#value)?),
    }
}

/// A source field that may be absent, filled with `default` when it is.
fn with_default(space: &TypeSpace, src: &Field, to: &Ty, default: &Value, json_name: &str) -> TokenStream {
    let f = ident(&src.ident);
    match (&src.ty, to) {
        (Ty::Option(inner), Ty::Option(target)) if inner == target => {
            let lit = literal(space, to, default);
            quote!(v.#f.or(#lit))
        }
        (Ty::Option(inner), target) if **inner == *target => {
            let lit = literal(space, target, default);
            quote!(v.#f.unwrap_or_else(|| #lit))
        }
        _ => convert(&src.ident, &src.ty, to, json_name),
    }
}

/// A Rust expression of type `ty` for a JSON default value.
fn literal(space: &TypeSpace, ty: &Ty, value: &Value) -> TokenStream {
    match (ty, value) {
        (Ty::Option(_), Value::Null) => quote!(::std::option::Option::None),
        (Ty::Option(inner), v) => {
            let inner = literal(space, inner, v);
            quote!(::std::option::Option::Some(#inner))
        }
        (Ty::Str, Value::String(s)) => quote!(::std::string::String::from(#s)),
        (Ty::Int, Value::Number(n)) if n.is_i64() => {
            let lit = Literal::i64_suffixed(n.as_i64().unwrap_or_default());
            quote!(#lit)
        }
        (Ty::Float, Value::Number(n)) => {
            let lit = Literal::f64_suffixed(n.as_f64().unwrap_or_default());
            quote!(#lit)
        }
        (Ty::Bool, Value::Bool(b)) => quote!(#b),
        (Ty::Vec(inner), Value::Array(items)) => {
            let items = items.iter().map(|item| literal(space, inner, item));
            quote!(::std::vec![#(#items),*])
        }
        (Ty::Named(id), Value::String(s)) => match space.get(*id) {
            Some(def) => match &def.kind {
                TypeKind::Enum { variants } => match variants.iter().find(|v| v.value == *s) {
                    Some(variant) => {
                        let (ty, variant) = (ident(&def.name), ident(&variant.ident));
                        quote!(#ty::#variant)
                    }
                    None => from_json(value),
                },
                TypeKind::Struct { .. } => from_json(value),
            },
            None => from_json(value),
        },
        _ => from_json(value),
    }
}

/// Decodes a default from its JSON text (arrays, objects, timestamps).
fn from_json(value: &Value) -> TokenStream {
    let rt = rt();
    let text = value.to_string();
    quote!(#rt::codegen::from_json(#text)?)
}
