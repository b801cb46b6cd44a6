//! One module per topic: constants, schemas, payload types, the version enum, upcasters,
//! event impls and the typed topic handle.

use super::syntax::{self, Piece};
use super::{ident, rt, types, upcast};
use crate::ir::{Topic, Version};
use proc_macro2::{Literal, TokenStream};
use quote::{ToTokens, format_ident, quote};

/// The `pub mod <topic> { ... }` item.
pub fn module(topic: &Topic) -> Piece<'_> {
    let name = &topic.name;
    let mut attrs: Vec<syn::Attribute> =
        topic.description.as_deref().map(syntax::docs).into_iter().flatten().collect();
    attrs.push(syntax::doc(&format!(" Topic `{name}`.")));
    attrs.push(syntax::list_attr("allow", quote!(clippy::all, dead_code)));
    let module = |content| Piece::Module { attrs, name: ident(&topic.module), content };
    let Some(latest) = topic.versions.last() else { return module(Vec::new()) };
    let definitions = topic.types.defs().iter().enumerate().map(|(id, d)| {
        let fallback = match topic.versions.iter().find(|v| v.root == id) {
            Some(v) => format!("Version {} of the `{name}` payload.", v.number),
            None => format!("`{}` in the `{name}` payload.", d.name),
        };
        Piece::Item(Box::new(types::definition(&topic.types, d, &fallback)))
    });
    let mut content = vec![Piece::Tokens(constants(topic, latest)), schemas(topic)];
    content.extend(definitions);
    // Everything about versions but the upcasters is the same in every topic with the same
    // versions: formatting parses it once.
    let key = topic.versions.iter().map(|v| format!("{}:{};", v.number, root_name(topic, v))).collect();
    content.push(Piece::Shared { key, tokens: Box::new(move || versions(topic, latest)) });
    content.extend(upcast_module(topic).map(Piece::Tokens));
    content.push(Piece::Shared {
        key: "handle".to_owned(),
        tokens: Box::new(|| {
            let rt = rt();
            quote! {
                /// The typed handle: publishes take [`Latest`], subscribers receive it.
                pub const TOPIC: #rt::Topic<AnyVersion> = #rt::Topic::new();
            }
        }),
    });
    module(content)
}

/// The topic's name, latest version, partitioning, dual-write target and header names.
fn constants(topic: &Topic, latest: &Version) -> TokenStream {
    let name = &topic.name;
    let latest_number = Literal::u32_unsuffixed(latest.number);
    // Lint bounds `partitions` (P401); a larger value reaching here is refused loudly, never clamped.
    let partitions = match u32::try_from(topic.partitions) {
        Ok(n) if u64::from(n) <= prom_spec::spec::limits::PARTITIONS => {
            Literal::u32_unsuffixed(n).into_token_stream()
        }
        _ => {
            let message = format!(
                "topic `{name}` declares {} partitions; at most {} are allowed",
                topic.partitions,
                prom_spec::spec::limits::PARTITIONS
            );
            quote!(::core::compile_error!(#message))
        }
    };
    let key = match &topic.key {
        Some(k) => quote!(::std::option::Option::Some(#k)),
        None => quote!(::std::option::Option::None),
    };
    let dual_write = topic.dual_write.then(|| {
        let target = format!("{name}.v{}", latest.number);
        quote! {
            /// Publishes are also written, in the same batch, to this topic.
            pub const DUAL_WRITE_TOPIC: &str = #target;
        }
    });
    let headers = topic.headers.iter().map(|(constant, header)| {
        let constant = ident(constant);
        let doc = format!(" `{header}`");
        quote!(#[doc = #doc] pub const #constant: &str = #header;)
    });
    quote! {
        /// The topic's name.
        pub const NAME: &str = #name;
        /// The newest payload version; readers always see it.
        pub const LATEST_VERSION: u32 = #latest_number;
        /// Number of partitions.
        pub const PARTITIONS: u32 = #partitions;
        /// JSON pointer to the partition key in the payload.
        pub const KEY: ::std::option::Option<&str> = #key;
        #dual_write

        /// Custom header names.
        pub mod headers {
            #(#headers)*
        }
    }
}

/// `pub mod schemas`: each version's JSON Schema as a constant.
fn schemas(topic: &Topic) -> Piece<'_> {
    let schemas = topic.versions.iter().map(|v| {
        let doc = syntax::doc(&format!(" The JSON Schema of version {}.", v.number));
        let schema = syntax::lit_source(&raw_string_source(&v.schema), &v.schema);
        let name = format_ident!("V{}", v.number);
        Piece::Item(Box::new(syntax::constant(vec![doc], name, syntax::str_ref(), syntax::lit_expr(schema))))
    });
    Piece::Module {
        attrs: vec![syntax::doc(
            " The JSON Schema of each version, used to validate on publish and after upcasting.",
        )],
        name: ident("schemas"),
        content: schemas.collect(),
    }
}

/// `Latest`, `AnyVersion` with its impls, and the `Event` impls: a function of the version
/// numbers and root type names alone.
fn versions(topic: &Topic, latest: &Version) -> TokenStream {
    let rt = rt();
    let latest_ty = root(topic, latest);
    let events = topic.versions.iter().map(|v| {
        let ty = root(topic, v);
        let number = Literal::u32_unsuffixed(v.number);
        let schema = format_ident!("V{}", v.number);
        quote! {
            impl #rt::Event for #ty {
                const TOPIC: &'static str = NAME;
                const VERSION: u32 = #number;
                const SCHEMA: &'static str = schemas::#schema;
            }
        }
    });
    let variants = topic.versions.iter().map(|v| {
        let variant = format_ident!("V{}", v.number);
        let ty = root(topic, v);
        let doc = format!(" A version {} payload.", v.number);
        quote!(#[doc = #doc] #variant(#ty),)
    });
    let decode_arms = topic.versions.iter().map(|v| {
        let variant = format_ident!("V{}", v.number);
        let number = Literal::u32_unsuffixed(v.number);
        let ty = root(topic, v);
        quote!(#number => <#ty as #rt::__private::serde::Deserialize>::deserialize(payload).map(AnyVersion::#variant),)
    });
    let version_arms = topic.versions.iter().map(|v| {
        let variant = format_ident!("V{}", v.number);
        let number = Literal::u32_unsuffixed(v.number);
        quote!(AnyVersion::#variant(_) => #number,)
    });
    let chain_arms = topic.versions.windows(2).map(|pair| {
        let (from, to) = (format_ident!("V{}", pair[0].number), format_ident!("V{}", pair[1].number));
        let hop = format_ident!("v{}_to_v{}", pair[0].number, pair[1].number);
        quote!(AnyVersion::#from(v) => AnyVersion::#to(upcast::#hop(v)?),)
    });
    let latest_variant = format_ident!("V{}", latest.number);
    let into_latest = if topic.versions.len() == 1 {
        quote!(match self { AnyVersion::#latest_variant(latest) => ::std::result::Result::Ok(latest) })
    } else {
        quote! {
            let mut current = self;
            loop {
                current = match current {
                    #(#chain_arms)*
                    AnyVersion::#latest_variant(latest) => return ::std::result::Result::Ok(latest),
                };
            }
        }
    };
    quote! {
        /// The payload type readers see.
        pub type Latest = #latest_ty;

        /// A payload of any declared version.
        #[derive(Debug, Clone, PartialEq)]
        pub enum AnyVersion {
            #(#variants)*
        }

        impl AnyVersion {
            /// Decodes a stored payload of `version`, reading the JSON in place (no copy).
            pub fn decode(
                version: u32,
                payload: &#rt::__private::serde_json::Value,
            ) -> ::std::result::Result<Self, #rt::DecodeError> {
                let decoded = match version {
                    #(#decode_arms)*
                    other => return ::std::result::Result::Err(#rt::DecodeError::UnknownVersion { topic: NAME, version: other }),
                };
                decoded.map_err(|source| #rt::DecodeError::Payload { topic: NAME, version, source })
            }

            /// The version of this payload.
            pub fn version(&self) -> u32 {
                match self {
                    #(#version_arms)*
                }
            }

            /// Walks the upcast chain to the latest version.
            pub fn into_latest(self) -> ::std::result::Result<Latest, #rt::UpcastError> {
                #into_latest
            }
        }

        impl #rt::Versioned for AnyVersion {
            type Latest = Latest;
            const TOPIC: &'static str = NAME;
            const LATEST_VERSION: u32 = LATEST_VERSION;

            fn decode(
                version: u32,
                payload: &#rt::__private::serde_json::Value,
            ) -> ::std::result::Result<Self, #rt::DecodeError> {
                AnyVersion::decode(version, payload)
            }

            fn version(&self) -> u32 {
                AnyVersion::version(self)
            }

            fn into_latest(self) -> ::std::result::Result<Latest, #rt::UpcastError> {
                AnyVersion::into_latest(self)
            }
        }

        #(#events)*
    }
}

/// `pub mod upcast`: one function per version hop (none for a single version).
fn upcast_module(topic: &Topic) -> Option<TokenStream> {
    let hops: Vec<TokenStream> =
        topic.versions.windows(2).map(|pair| upcast::hop(topic, &pair[0], &pair[1])).collect();
    (!hops.is_empty()).then(|| {
        quote! {
            /// Upcasters, one per version hop.
            pub mod upcast {
                use super::*;
                #(#hops)*
            }
        }
    })
}

fn root(topic: &Topic, version: &Version) -> TokenStream {
    let name = ident(root_name(topic, version));
    quote!(#name)
}

fn root_name<'a>(topic: &'a Topic, version: &Version) -> &'a str {
    topic.types.get(version.root).map_or("UnknownType", |d| d.name.as_str())
}

/// The source of a raw string literal holding `text`, with enough `#`s to enclose it.
fn raw_string_source(text: &str) -> String {
    let mut hashes = String::from("#");
    while text.contains(&format!("\"{hashes}")) {
        hashes.push('#');
    }
    format!("r{hashes}\"{text}\"{hashes}")
}
