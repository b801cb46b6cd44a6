//! `spec::system()` and `wire()`: the whole declared pipeline, started with one call plus the
//! user's handlers (one typed method per consumer, so a misspelt consumer does not compile).

use super::{ident, rt};
use crate::ir::{Model, Upcast};
use proc_macro2::TokenStream;
use quote::{format_ident, quote};

/// `pub mod spec { system() }`, `wire()` and `Wiring`.
pub fn items(model: &Model) -> TokenStream {
    let rt = rt();
    let system = super::system::function(model);
    let upcasters = model.topics.iter().flat_map(|topic| {
        let module = ident(&topic.module);
        topic.versions.windows(2).filter_map(move |pair| match &pair[1].upcast {
            Some(Upcast::With(path)) => {
                let json = format_ident!("json_v{}_to_v{}", pair[0].number, pair[1].number);
                let module = module.clone();
                Some(quote!(.with_upcaster(#path, #module::upcast::#json)))
            }
            _ => None,
        })
    });
    let methods = model.consumers.iter().map(|c| {
        let method = ident(&c.method);
        let (name, topic) = (&c.name, &c.topic);
        let doc = format!(
            " Sets the handler of consumer `{name}` on `{topic}` ({}). An error is retried; \
             return `HandlerError::permanent` to dead-letter the event at once.",
            c.summary
        );
        match &c.topic_module {
            Some(module) => {
                let module = ident(module);
                quote! {
                    #[doc = #doc]
                    pub fn #method<F, Fut, E>(self, handler: F) -> ::std::result::Result<Self, #rt::Error>
                    where
                        F: Fn(#module::Latest, #rt::Context) -> Fut + Send + Sync + 'static,
                        Fut: ::std::future::Future<Output = ::std::result::Result<(), E>> + Send + 'static,
                        E: ::std::fmt::Display + 'static,
                    {
                        ::std::result::Result::Ok(Wiring { pipeline: self.pipeline.handle_latest(#name, #module::TOPIC, handler)? })
                    }
                }
            }
            // Dead-letter and dual-write topics carry runtime envelopes: hand over the record.
            None => quote! {
                #[doc = #doc]
                pub fn #method<F, Fut, E>(self, handler: F) -> ::std::result::Result<Self, #rt::Error>
                where
                    F: Fn(#rt::EventRecord) -> Fut + Send + Sync + 'static,
                    Fut: ::std::future::Future<Output = ::std::result::Result<(), E>> + Send + 'static,
                    E: ::std::fmt::Display + 'static,
                {
                    ::std::result::Result::Ok(Wiring { pipeline: self.pipeline.handle(#name, handler)? })
                }
            },
        }
    });
    let transactional = model.transactional.iter().map(|p| {
        let name = &p.name;
        // Lint checked the path's syntax; the fallback only keeps a bad spec from panicking.
        let handler: syn::Path =
            syn::parse_str(&p.handler).unwrap_or_else(|_| syn::parse_quote!(missing_handler_fn));
        let wrapped = match &p.topic_module {
            Some(module) => {
                let module = ident(module);
                quote!(#rt::project::typed_tx::<#module::AnyVersion, _, _>(#handler))
            }
            // Dead-letter and dual-write topics carry runtime envelopes: hand over the record.
            None => quote!(#rt::project::AnyTxHandler::Documents(::std::sync::Arc::new(#handler))),
        };
        quote! {
            let pipeline = pipeline.handle_tx(#name, #wrapped)?;
        }
    });
    quote! {
        /// The spec this code was generated from, as finished facts: the runtime needs no
        /// spec files and lints nothing at startup.
        #[allow(dead_code)]
        pub mod spec {
            #system
        }

        /// Registers everything the spec declares with the runtime — schemas, upcasters
        /// (`with:` functions included), every consumer with its retry, DLQ and partitioning,
        /// and the projectors and changefeeds (transactional handlers included), which run
        /// when `bus` is MongoDB — over `bus`. Give each consumer its handler, then `run`.
        #[allow(dead_code)]
        pub fn wire<B: #rt::bus::EventBus>(bus: B) -> ::std::result::Result<Wiring<B>, #rt::Error> {
            let pipeline = #rt::Pipeline::new(bus, spec::system(), |registry| {
                registry #(#upcasters)*
            })?;
            #(#transactional)*
            ::std::result::Result::Ok(Wiring { pipeline })
        }

        /// The declared pipeline: one method per consumer sets its handler; `run` starts them all.
        #[allow(dead_code)]
        pub struct Wiring<B: #rt::bus::EventBus> {
            pipeline: #rt::Pipeline<B>,
        }

        #[allow(dead_code)]
        impl<B: #rt::bus::EventBus> Wiring<B> {
            #(#methods)*

            /// Runs only the named components (`consumers::NAME`, `projectors::NAME`,
            /// `changefeeds::NAME`): the others are not started and need no handler. An
            /// undeclared name is an error; a selected consumer still needs its handler.
            pub fn only<I>(self, components: I) -> ::std::result::Result<Self, #rt::Error>
            where
                I: ::std::iter::IntoIterator,
                I::Item: ::std::convert::Into<#rt::pipeline::Component>,
            {
                ::std::result::Result::Ok(Wiring { pipeline: self.pipeline.only(components)? })
            }

            /// Publishes through the pipeline (validated, stamped, partitioned, dual-written).
            pub fn producer(&self) -> &#rt::Producer<B> {
                self.pipeline.producer()
            }

            /// Runs every declared consumer (and, on MongoDB, every projector and changefeed)
            /// until `shutdown` completes or one fails; fails at once if a consumer has no
            /// handler.
            pub async fn run(
                self,
                shutdown: impl ::std::future::Future<Output = ()> + Send + 'static,
            ) -> ::std::result::Result<(), #rt::Error> {
                self.pipeline.run(shutdown).await
            }
        }
    }
}
