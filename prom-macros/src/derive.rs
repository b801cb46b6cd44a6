//! `#[derive(Event)]`: checks a struct against its topic version and implements the trait.
//!
//! Like thiserror's fallback, the impl is emitted even when checks fail, so the user sees the
//! precise errors and not a cascade of "trait `Event` is not implemented".

use crate::errors::Errors;
use crate::field_attr;
use crate::serde_attrs::{self, apply_rename_all};
use crate::shape::{self, Shape};
use crate::slot::{self, Slot};
use crate::specs::{self, Specs};
use proc_macro2::TokenStream;
use prom_spec::schema::Schema;
use prom_spec::spec::{Topic, Version};
use prom_spec::suggest::did_you_mean;
use quote::quote;
use serde_json::Value;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, LitInt, LitStr};

/// `#[prom(topic = "...", version = N)]`.
struct PromAttr {
    topic: Option<LitStr>,
    version: Option<LitInt>,
}

pub fn expand(input: &DeriveInput) -> TokenStream {
    let mut errors = Errors::default();
    let attr = prom_attr(input, &mut errors);
    let name = &input.ident;
    let (topic_name, version_number) = (
        attr.topic.as_ref().map(LitStr::value).unwrap_or_default(),
        attr.version.as_ref().and_then(|v| v.base10_parse::<u32>().ok()).unwrap_or(0),
    );
    let mut schema_text = String::from("{}");
    let mut tracking = TokenStream::new();
    if let (Some(topic_lit), Some(version_lit)) = (&attr.topic, &attr.version) {
        match specs::load(None) {
            Err(message) => errors.push(topic_lit.span(), message),
            Ok(specs) => {
                tracking = specs.tracking();
                if let Some((topic, version)) = resolve(&specs, topic_lit, version_lit, &mut errors) {
                    schema_text = version.schema.json.to_string();
                    check_struct(input, &specs, topic, version, &mut errors);
                }
            }
        }
    }
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let errors = errors.into_tokens();
    quote! {
        #errors
        #tracking
        impl #impl_generics ::prom_runtime::Event for #name #ty_generics #where_clause {
            const TOPIC: &'static str = #topic_name;
            const VERSION: u32 = #version_number;
            const SCHEMA: &'static str = #schema_text;
        }
    }
}

fn prom_attr(input: &DeriveInput, errors: &mut Errors) -> PromAttr {
    let mut out = PromAttr { topic: None, version: None };
    let attrs: Vec<_> = input.attrs.iter().filter(|a| a.path().is_ident("prom")).collect();
    if attrs.is_empty() {
        errors.push(
            input.ident.span(),
            "missing `#[prom(topic = \"...\", version = N)]`: say which topic version this struct is",
        );
    }
    let mut malformed = false;
    for attr in attrs {
        let result = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("topic") {
                out.topic = Some(meta.value()?.parse()?);
            } else if meta.path.is_ident("version") {
                out.version = Some(meta.value()?.parse()?);
            } else {
                return Err(
                    meta.error("unknown `prom` attribute; expected `topic = \"...\"` or `version = N`")
                );
            }
            Ok(())
        });
        if let Err(error) = result {
            malformed = true;
            errors.extend(error);
        }
    }
    // A malformed attribute already has its own error; "missing key" would only repeat it.
    if malformed || !errors.is_empty() {
        return out;
    }
    if out.topic.is_none() {
        errors.push(input.ident.span(), "missing `topic = \"...\"` in `#[prom(...)]`");
    }
    if out.version.is_none() {
        errors.push(input.ident.span(), "missing `version = N` in `#[prom(...)]`");
    }
    out
}

/// Finds the topic and version, reporting naming, unknown-topic and unknown-version errors.
fn resolve<'s>(
    specs: &'s Specs,
    topic_lit: &LitStr,
    version_lit: &LitInt,
    errors: &mut Errors,
) -> Option<(&'s Topic, &'s Version)> {
    let topic = crate::topic::find(specs, topic_lit, errors)?;
    let Ok(number) = version_lit.base10_parse::<u32>() else {
        errors.push(version_lit.span(), "version must be a positive integer");
        return None;
    };
    let declared: Vec<String> = topic.versions.iter().map(|v| v.number.value.to_string()).collect();
    match topic.versions.iter().find(|v| v.number.value == number) {
        Some(version) => Some((topic, version)),
        None => {
            errors.push(
                version_lit.span(),
                format!(
                    "topic `{}` ({}) has no version {number}; declared versions: {}",
                    topic.name.value,
                    specs.at(&topic.name.span),
                    declared.join(", ")
                ),
            );
            None
        }
    }
}

/// What every field check needs: the version, its root schema and where to point messages.
struct Target<'a> {
    specs: &'a Specs,
    version: &'a Version,
    /// "`topic` vN", for messages.
    what: String,
}

impl Target<'_> {
    /// `file:line:col` of a JSON pointer into the version's schema (its nearest node).
    fn at(&self, pointer: &str) -> String {
        self.specs.at(self.version.schema.span_at(pointer))
    }

    fn root(&self) -> &Value {
        &self.version.schema.json
    }
}

/// Compares the struct's fields with the version's root schema; every mismatch is reported.
pub(crate) fn check_struct(
    input: &DeriveInput,
    specs: &Specs,
    topic: &Topic,
    version: &Version,
    errors: &mut Errors,
) {
    let Data::Struct(data) = &input.data else {
        errors.push(input.ident.span(), "`#[derive(Event)]` supports structs with named fields");
        return;
    };
    let Fields::Named(named) = &data.fields else {
        errors.push(input.ident.span(), "`#[derive(Event)]` supports structs with named fields");
        return;
    };
    let container = match serde_attrs::container(&input.attrs) {
        Ok(c) => c,
        Err(error) => {
            errors.extend(error);
            return;
        }
    };
    let target = Target { specs, version, what: format!("`{}` v{}", topic.name.value, version.number.value) };
    let root = target.root();
    let required = Schema::root(root).required();

    let mut seen = Vec::new();
    let mut flattened = false;
    for field in &named.named {
        let Some(ident) = &field.ident else { continue };
        let (attrs, extra) = match (serde_attrs::field(&field.attrs), field_attr::extra(&field.attrs)) {
            (Ok(attrs), Ok(extra)) => (attrs, extra),
            (Err(error), _) | (_, Err(error)) => {
                errors.extend(error);
                continue;
            }
        };
        if attrs.skip {
            continue;
        }
        if attrs.flatten {
            flattened = true;
            continue;
        }
        let rust_name = ident.to_string();
        let rust_name = rust_name.trim_start_matches("r#");
        let json_name = match (&attrs.rename, &container.rename_all) {
            (Some(rename), _) => rename.clone(),
            (None, Some(rule)) => apply_rename_all(rule, rust_name).unwrap_or_else(|| rust_name.to_owned()),
            (None, None) => rust_name.to_owned(),
        };
        seen.push(json_name.clone());
        let property = Property {
            field,
            json_name: &json_name,
            required: required.contains(&json_name.as_str()),
            has_default: attrs.default || container.default,
            skips_none: attrs.skip_serializing_if,
        };
        match (slot::of(root, &json_name), extra) {
            (Slot::Declared { pointer, .. }, Some(marker)) => errors.push(
                marker,
                format!(
                    "field `{json_name}` is marked `#[prom(extra)]`, but {} declares `{json_name}` ({}): remove `#[prom(extra)]`",
                    target.what,
                    target.at(&pointer)
                ),
            ),
            (Slot::Declared { schema, pointer } | Slot::Pattern { schema, pointer }, _) => {
                check_value(&target, &property, schema, &pointer, errors);
            }
            (Slot::Additional { schema, pointer }, Some(_)) => {
                check_value(&target, &property, schema, pointer, errors);
            }
            (Slot::Additional { .. }, None) => undeclared(&target, &property, ident, errors),
            (Slot::Closed, Some(marker)) => errors.push(
                marker,
                format!(
                    "field `{json_name}` is marked `#[prom(extra)]`, but {} is closed ({}): it accepts no extra properties; declare `{json_name}` in the schema, or remove the field",
                    target.what,
                    target.at("/additionalProperties")
                ),
            ),
            (Slot::Closed, None) => {
                let hint = did_you_mean(&json_name, declared(root));
                errors.push(
                    ident.span(),
                    format!(
                        "field `{json_name}` is not in {}, whose schema is closed ({}){}",
                        target.what,
                        target.at("/additionalProperties"),
                        if hint.is_empty() { String::new() } else { format!("; {hint}") }
                    ),
                );
            }
        }
    }
    if !flattened {
        for name in required.iter().filter(|r| !seen.iter().any(|s| s == *r)) {
            let pointer = format!("/properties/{}", slot::escape(name));
            errors.push(
                input.ident.span(),
                format!("missing field `{name}`, required by {} ({})", target.what, target.at(&pointer)),
            );
        }
    }
}

/// One struct field as the payload sees it.
struct Property<'a> {
    field: &'a syn::Field,
    /// The name the payload carries (after serde renames).
    json_name: &'a str,
    /// Listed in the schema's `required`.
    required: bool,
    /// `#[serde(default)]` on the field or the struct.
    has_default: bool,
    /// `skip_serializing_if`/`skip_serializing`: `None` is not written as null.
    skips_none: bool,
}

/// The names `properties` declares, in spec order.
fn declared(root: &Value) -> Vec<&str> {
    Schema::root(root).property_names()
}

/// A field an open schema does not declare: most likely a typo, unless marked as an extra.
fn undeclared(target: &Target<'_>, property: &Property<'_>, ident: &syn::Ident, errors: &mut Errors) {
    let json_name = property.json_name;
    let names = declared(target.root());
    let hint = did_you_mean(json_name, names.iter().copied());
    let instead = if !hint.is_empty() {
        hint
    } else if names.is_empty() {
        "it declares no properties".to_owned()
    } else {
        format!("declared: {}", names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", "))
    };
    errors.push(
        ident.span(),
        format!(
            "field `{json_name}` is not declared by {} ({}); {instead} \
             (if `{json_name}` is an intended extra property, mark the field `#[prom(extra)]`)",
            target.what,
            target.at("/properties")
        ),
    );
}

/// Checks a field against the schema of its property: `Option` and defaults against
/// `required` and null, then the type.
fn check_value(
    target: &Target<'_>,
    property: &Property<'_>,
    schema: &Value,
    pointer: &str,
    errors: &mut Errors,
) {
    let Property { field, json_name, .. } = property;
    let (root, what) = (target.root(), &target.what);
    let shape = shape::of(&field.ty);
    let inner = match (&shape, property.required) {
        (Shape::Option(inner), true) => {
            if !shape::allows_null(root, schema) {
                errors.push(
                    field.ty.span(),
                    format!(
                        "field `{json_name}` is `Option`, but {what} requires `{json_name}` ({}): remove the `Option`",
                        target.at(pointer)
                    ),
                );
            }
            inner.as_ref().clone()
        }
        (Shape::Option(inner), false) => {
            if !shape::allows_null(root, schema) && !property.skips_none {
                errors.push(
                    field.ty.span(),
                    format!(
                        "field `{json_name}` is `Option`, but {what} does not allow null for `{json_name}` ({}): \
                         `None` would be written as null; add `#[serde(skip_serializing_if = \"Option::is_none\")]`",
                        target.at(pointer)
                    ),
                );
            }
            inner.as_ref().clone()
        }
        (other, false) if !property.has_default => {
            errors.push(
                field.ty.span(),
                format!(
                    "field `{json_name}` is optional in {what} ({}): make it `Option<_>` or add `#[serde(default)]`",
                    target.at(pointer)
                ),
            );
            other.clone()
        }
        (other, _) => other.clone(),
    };
    if let Err(expected) = shape::fits(&inner, schema, root) {
        errors.push(
            shape::unwrap_option(&field.ty).span(),
            format!(
                "field `{json_name}` is {}, but {what} disagrees ({}): {expected}",
                shape::describe(&inner),
                target.at(pointer)
            ),
        );
    }
}
