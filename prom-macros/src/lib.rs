//! Compile-time contracts for Prom: `cargo build` catches every disagreement between user code
//! and the specs, with the error on the user's own token and the spec's file:line:col in the
//! message. Re-exported by `prom-runtime`; use it from there.
#![deny(missing_docs)]

mod derive;
mod errors;
mod field_attr;
#[cfg(test)]
mod generated_fit;
mod include;
mod serde_attrs;
mod shape;
mod slot;
mod specs;
mod topic;

use proc_macro::TokenStream;

/// Implements `prom_runtime::Event` for a struct after checking it against its topic version:
/// `#[derive(Event)] #[prom(topic = "heartbeat.received", version = 2)]`.
#[proc_macro_derive(Event, attributes(prom))]
pub fn derive_event(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    derive::expand(&input).into()
}

/// The typed handle of a declared topic: `topic!("heartbeat.received")` is
/// `crate::prom::heartbeat_received::TOPIC` (the module set by `include_specs!`; change the
/// `crate::prom` prefix with `[package.metadata.prom] module = "..."`).
#[proc_macro]
pub fn topic(input: TokenStream) -> TokenStream {
    let literal = syn::parse_macro_input!(input as syn::LitStr);
    topic::expand(&literal).into()
}

/// Generates the same items as `prom-codegen build` at compile time: `include_specs!("specs")`.
/// Lint errors in the specs become compile errors.
#[proc_macro]
pub fn include_specs(input: TokenStream) -> TokenStream {
    let literal = if input.is_empty() { None } else { Some(syn::parse_macro_input!(input as syn::LitStr)) };
    include::expand(literal.as_ref()).into()
}
