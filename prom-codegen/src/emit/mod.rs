//! Code emission: IR → tokens (for macros) or syntax trees → formatted Rust source.

mod aggregate;
mod components;
mod header;
mod syntax;
mod system;
mod topic;
mod types;
mod upcast;
mod wire;

use crate::ir::Model;
use proc_macro2::{Ident, Span, TokenStream};
use quote::quote;
use syntax::Piece;

pub use header::Origin;

/// The path generated code uses to reach the runtime.
pub(crate) fn rt() -> TokenStream {
    quote!(::prom_runtime)
}

/// An identifier from a name the IR already made valid (`r#type` becomes a raw identifier).
pub(crate) fn ident(name: &str) -> Ident {
    match name.strip_prefix("r#") {
        Some(raw) => Ident::new_raw(raw, Span::call_site()),
        None => Ident::new(name, Span::call_site()),
    }
}

/// Every item generated for a model, as tokens (what `include_specs!` expands to).
pub fn tokens(model: &Model) -> TokenStream {
    let mut out = TokenStream::new();
    for part in 0..parts(model) {
        part_code(model, part).to_tokens(&mut out);
    }
    out
}

/// The number of independently formattable parts: the topic and component names, one module
/// per topic, one per aggregate, and the wiring.
fn parts(model: &Model) -> usize {
    model.topics.len() + model.aggregates.len() + 2
}

/// The code of one part (see [`parts`]).
fn part_code(model: &Model, part: usize) -> Piece<'_> {
    if part == 0 {
        let names = model.topics.iter().map(|t| {
            let constant = ident(&t.constant);
            let name = &t.name;
            let doc = format!(" `{name}`");
            quote!(#[doc = #doc] pub const #constant: &str = #name;)
        });
        let components = components::modules(model);
        return Piece::Tokens(quote! {
            /// The names of every declared topic.
            #[allow(dead_code)]
            pub mod topics {
                #(#names)*
            }
            #components
        });
    }
    if let Some(topic) = model.topics.get(part - 1) {
        return topic::module(topic);
    }
    match model.aggregates.get(part - 1 - model.topics.len()) {
        Some(aggregate) => Piece::Tokens(aggregate::module(aggregate)),
        None => Piece::Tokens(wire::items(model)),
    }
}

/// Formatted source with the `@generated` header (what `prom-codegen build` writes).
///
/// Parts are built, parsed and printed on every core, and the texts joined in order
/// (byte-identical to formatting one big file).
pub fn source(model: &Model, inputs: &[String], origin: &Origin) -> Result<String, syn::Error> {
    let parts: Vec<usize> = (0..parts(model)).collect();
    let texts = prom_spec::par::map(&parts, |part| -> Result<String, String> {
        let mut items = Vec::new();
        part_code(model, *part).into_items(&mut items).map_err(|e| e.to_string())?;
        let file = syn::File { shebang: None, frontmatter: None, attrs: Vec::new(), items };
        Ok(prettyplease::unparse(&file))
    });
    let parts_len: usize =
        texts.iter().map(|t| t.as_ref().map_or(0, |t| t.as_ref().map_or(0, String::len))).sum();
    let mut text = String::with_capacity(parts_len + 4096);
    text.push_str(&header::header(origin, inputs));
    for part in texts {
        let part = part.unwrap_or_else(|panicked| Err(format!("formatting panicked: {}", panicked.0)));
        text.push_str(&part.map_err(|e| syn::Error::new(Span::call_site(), e))?);
    }
    Ok(text)
}
