//! `topic!("...")` and the topic lookup the derive shares.

use crate::errors::Errors;
use crate::specs::{self, Specs};
use proc_macro2::TokenStream;
use prom_spec::check::{derived_topics, is_topic_name, topic_name_error};
use prom_spec::source::Located;
use prom_spec::spec::Topic;
use prom_spec::suggest::did_you_mean;
use quote::quote;
use syn::LitStr;

/// The declared topic a literal names, or an error on the literal.
pub fn find<'s>(specs: &'s Specs, literal: &LitStr, errors: &mut Errors) -> Option<&'s Topic> {
    let name = literal.value();
    if !is_topic_name(&name) {
        let file = std::sync::Arc::from(std::path::Path::new("<code>"));
        let at = prom_spec::source::Span::file_start(&file);
        let diagnostic = topic_name_error(&Located::new(name, at));
        let help = diagnostic.help.unwrap_or_default();
        errors.push(
            literal.span(),
            format!("{}: {}; {help}", diagnostic.message, diagnostic.label.unwrap_or_default()),
        );
        return None;
    }
    if let Some(summary) = specs.error_summary() {
        errors.push(literal.span(), summary);
        return None;
    }
    if let Some(topic) = specs.linted.spec.topics.get(&name) {
        return Some(topic);
    }
    let spec = &specs.linted.spec;
    let message = if derived_topics(spec).contains(&name) {
        format!(
            "`{name}` is derived by the runtime (a dead-letter or dual-write topic), not declared with a schema"
        )
    } else {
        let hint = did_you_mean(&name, spec.topics.keys().map(String::as_str));
        let hint = if hint.is_empty() {
            format!("declared topics: {}", spec.topics.keys().cloned().collect::<Vec<_>>().join(", "))
        } else {
            hint
        };
        format!("unknown topic `{name}` (not declared in `{}`); {hint}", specs.shown)
    };
    errors.push(literal.span(), message);
    None
}

pub fn expand(literal: &LitStr) -> TokenStream {
    let mut errors = Errors::default();
    let specs = match specs::load(None) {
        Ok(specs) => specs,
        Err(message) => {
            errors.push(literal.span(), message);
            return errors.into_tokens();
        }
    };
    let tracking = specs.tracking();
    let Some(topic) = find(&specs, literal, &mut errors) else {
        let errors = errors.into_tokens();
        return quote!({ #tracking #errors loop {} });
    };
    let model = prom_codegen::ir::lower(&specs.linted.spec);
    let module = model.topics.iter().find(|t| t.name == topic.name.value).map(|t| t.module.clone());
    let path = format!("{}::{}::TOPIC", specs.module, module.unwrap_or_default());
    match syn::parse_str::<syn::Path>(&path) {
        Ok(path) => {
            let path = respan(path, literal.span());
            quote!({ #tracking #path })
        }
        Err(_) => {
            errors.push(
                literal.span(),
                format!("`[package.metadata.prom] module = \"{}\"` is not a Rust path", specs.module),
            );
            let errors = errors.into_tokens();
            quote!({ #errors loop {} })
        }
    }
}

/// Points the generated path at the user's literal, so "unresolved path" lands there.
fn respan(path: syn::Path, span: proc_macro2::Span) -> TokenStream {
    let tokens: TokenStream = quote!(#path);
    tokens
        .into_iter()
        .map(|mut tt| {
            tt.set_span(span);
            tt
        })
        .collect()
}
