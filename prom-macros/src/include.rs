//! `include_specs!("specs")`: the generated module, at compile time.

use crate::errors::Errors;
use crate::specs;
use proc_macro2::{Span, TokenStream};
use quote::quote;

pub fn expand(literal: Option<&syn::LitStr>) -> TokenStream {
    let span = literal.map_or_else(Span::call_site, syn::LitStr::span);
    let mut errors = Errors::default();
    let specs = match specs::load(literal.map(syn::LitStr::value).as_deref()) {
        Ok(specs) => specs,
        Err(message) => {
            errors.push(span, message);
            return errors.into_tokens();
        }
    };
    let tracking = specs.tracking();
    if specs.linted.has_errors() {
        // rustc cannot point into YAML, so each error carries its file:line:col and help.
        for d in specs.linted.diagnostics.iter().filter(|d| d.severity == prom_spec::diag::Severity::Error) {
            let help = d.help.as_deref().map(|h| format!(" (help: {h})")).unwrap_or_default();
            errors.push(span, format!("{}: error[{}]: {}{help}", specs.at(&d.span), d.code.id(), d.message));
        }
        let errors = errors.into_tokens();
        return quote!(#tracking #errors);
    }
    let model = prom_codegen::ir::lower(&specs.linted.spec);
    let items = prom_codegen::emit::tokens(&model);
    quote!(#tracking #items)
}
