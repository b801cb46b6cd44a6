//! `consumers`, `projectors` and `changefeeds`: one constant per declared component, so the
//! names a service passes to `Wiring::only` are checked by rustc.

use super::{ident, rt};
use crate::ir::{ComponentName, Model};
use proc_macro2::TokenStream;
use quote::quote;

/// The three modules of component names.
pub fn modules(model: &Model) -> TokenStream {
    let components = &model.components;
    let consumers = module("consumers", "consumer", &components.consumers);
    let projectors = module("projectors", "projector", &components.projectors);
    let changefeeds = module("changefeeds", "changefeed", &components.changefeeds);
    quote!(#consumers #projectors #changefeeds)
}

fn module(module: &str, kind: &str, names: &[ComponentName]) -> TokenStream {
    let rt = rt();
    let module_doc =
        format!(" The names of every declared {kind}, for `Wiring::only` (run a subset of the pipeline).");
    let constructor = ident(kind);
    let module = ident(module);
    let constants = names.iter().map(|component| {
        let constant = ident(&component.constant);
        let name = &component.name;
        let doc = format!(" The {kind} `{name}`.");
        quote! {
            #[doc = #doc]
            pub const #constant: #rt::pipeline::Component = #rt::pipeline::Component::#constructor(#name);
        }
    });
    quote! {
        #[doc = #module_doc]
        #[allow(dead_code)]
        pub mod #module {
            #(#constants)*
        }
    }
}
