//! One module per aggregate: the event enum (one variant per event topic, carrying its
//! `Latest` type), the state trait (one method per event, so a state that misses an event does
//! not compile), and `STREAM`, the typed load/append/handle.

use super::{ident, rt};
use crate::ir::Aggregate;
use proc_macro2::{Literal, TokenStream};
use quote::quote;

/// The `pub mod <aggregate> { ... }` item.
pub fn module(aggregate: &Aggregate) -> TokenStream {
    let rt = rt();
    let module = ident(&aggregate.module);
    let (name, id) = (&aggregate.name, &aggregate.id);
    let description = aggregate.description.iter().map(|d| {
        let lines = d.lines().map(|line| format!(" {line}"));
        quote!(#(#[doc = #lines])* #[doc = ""])
    });
    let topics = aggregate.events.iter().map(|e| format!("`{}`", e.topic)).collect::<Vec<_>>().join(", ");
    let module_doc = [format!(" Aggregate `{name}`: one stream per `{id}`, of the events {topics}.")];
    let snapshot_every = match aggregate.snapshot_every.map(Literal::u64_unsuffixed) {
        Some(every) => quote!(::std::option::Option::Some(#every)),
        None => quote!(::std::option::Option::None),
    };
    let tamper_evident = aggregate.tamper_evident;

    let variants = aggregate.events.iter().map(|e| {
        let (variant, topic_module) = (ident(&e.variant), ident(&e.topic_module));
        let doc = format!(" Event `{}`.", e.topic);
        quote!(#[doc = #doc] #variant(super::#topic_module::Latest),)
    });
    let froms = aggregate.events.iter().map(|e| {
        let (variant, topic_module) = (ident(&e.variant), ident(&e.topic_module));
        quote! {
            impl ::std::convert::From<super::#topic_module::Latest> for Event {
                fn from(event: super::#topic_module::Latest) -> Self {
                    Event::#variant(event)
                }
            }
        }
    });
    let topic_arms = aggregate.events.iter().map(|e| {
        let (variant, topic_module) = (ident(&e.variant), ident(&e.topic_module));
        quote!(Event::#variant(_) => super::#topic_module::NAME,)
    });
    let payload_arms = aggregate.events.iter().map(|e| {
        let variant = ident(&e.variant);
        quote!(Event::#variant(event) => #rt::__private::serde_json::to_value(event),)
    });
    let decode_arms = aggregate.events.iter().map(|e| {
        let (variant, topic_module) = (ident(&e.variant), ident(&e.topic_module));
        quote! {
            super::#topic_module::NAME => registry
                .decode_typed::<super::#topic_module::AnyVersion>(record)
                .map(|(event, _)| Event::#variant(event)),
        }
    });
    let help = format!("`{name}` streams hold only {topics} events");
    let methods = aggregate.events.iter().map(|e| {
        let (method, topic_module) = (ident(&e.method), ident(&e.topic_module));
        let doc = format!(" Folds a `{}` event into the state.", e.topic);
        quote!(#[doc = #doc] fn #method(&mut self, event: &super::#topic_module::Latest);)
    });
    let fold_arms = aggregate.events.iter().map(|e| {
        let (variant, method) = (ident(&e.variant), ident(&e.method));
        quote!(Event::#variant(event) => state.#method(event),)
    });
    let (state_bounds, snapshot_version, with_snapshots, snapshot_doc) = match aggregate
        .snapshot_every
        .map(Literal::u64_unsuffixed)
    {
        Some(every) => (
            quote! {
                ::std::default::Default
                    + #rt::__private::serde::Serialize
                    + #rt::__private::serde::de::DeserializeOwned
                    + ::std::marker::Send
                    + ::std::marker::Sync
                    + 'static
            },
            quote! {
                /// Part of the snapshot fingerprint (with the type's name): bump it when the
                /// state's meaning changes while stored snapshots still decode, so they are
                /// discarded and streams folded again from their first event.
                const SNAPSHOT_VERSION: u32 = 1;
            },
            quote! {
                .with_snapshots(#rt::aggregate::Snapshots::new(
                    #every,
                    #rt::aggregate::fingerprint::<S>(S::SNAPSHOT_VERSION),
                ))
            },
            vec![
                format!(" A snapshot is written every {every} events: the state as JSON, hence the serde"),
                " bounds; loads use it while its fingerprint (type name, `SNAPSHOT_VERSION`) matches."
                    .to_owned(),
            ],
        ),
        None => (
            quote!(::std::default::Default + ::std::marker::Send + ::std::marker::Sync + 'static),
            TokenStream::new(),
            TokenStream::new(),
            vec![" The spec declares no snapshots: loads fold every event.".to_owned()],
        ),
    };
    let state_doc = [
        format!(" The state of a `{name}` stream, folded from `Default` over its events in order."),
        " One method per event: a state that misses an event the spec adds does not compile.".to_owned(),
    ];

    quote! {
        #(#description)*
        #(#[doc = #module_doc])*
        #[allow(clippy::all, dead_code)]
        pub mod #module {
            /// The aggregate's name.
            pub const NAME: &str = #name;
            /// JSON pointer to the stream id in every event's payload.
            pub const ID: &str = #id;
            /// Events between snapshots, if the spec declares snapshots.
            pub const SNAPSHOT_EVERY: ::std::option::Option<u64> = #snapshot_every;
            /// Whether each stream is a hash chain (`prom verify` checks it).
            pub const TAMPER_EVIDENT: bool = #tamper_evident;

            /// An event of a stream: one variant per event topic, at its latest version.
            #[derive(Debug, Clone, PartialEq)]
            pub enum Event {
                #(#variants)*
            }

            #(#froms)*

            #(#[doc = #state_doc])*
            #[doc = ""]
            #(#[doc = #snapshot_doc])*
            pub trait State: #state_bounds {
                #snapshot_version
                #(#methods)*
            }

            /// The aggregate, for the runtime's generic [`::prom_runtime::aggregate::Stream`].
            #[derive(Debug, Clone, Copy, PartialEq, Eq)]
            pub struct Aggregate;

            impl #rt::aggregate::Aggregate for Aggregate {
                const NAME: &'static str = NAME;
                const ID: &'static str = ID;
                type Event = Event;
            }

            impl #rt::aggregate::AggregateEvent for Event {
                fn topic(&self) -> &'static str {
                    match self {
                        #(#topic_arms)*
                    }
                }

                fn to_payload(&self) -> ::std::result::Result<#rt::__private::serde_json::Value, #rt::Error> {
                    let payload = match self {
                        #(#payload_arms)*
                    };
                    payload.map_err(|source| #rt::Error::serialize(::std::format!("a `{}` event", #rt::aggregate::AggregateEvent::topic(self)), source))
                }

                fn from_record(
                    registry: &#rt::Registry,
                    record: #rt::EventRecord,
                ) -> ::std::result::Result<Self, #rt::Error> {
                    match record.topic.as_str() {
                        #(#decode_arms)*
                        _ => ::std::result::Result::Err(#rt::Error::TopicMismatch {
                            reads: record.topic.clone(),
                            wants: ::std::string::String::from(NAME),
                            help: ::std::string::String::from(#help),
                        }),
                    }
                }
            }

            /// Applies one event to a state through its `on_*` method.
            pub fn fold<S: State>(state: &mut S, event: &Event) {
                match event {
                    #(#fold_arms)*
                }
            }

            /// The typed stream operations; see [`STREAM`].
            #[derive(Debug, Clone, Copy)]
            pub struct Streams;

            /// Load, append and handle streams of this aggregate.
            pub const STREAM: Streams = Streams;

            impl Streams {
                /// The runtime's stream operations for state `S` (snapshots as the spec
                /// declares, the default conflict retries; change them with `with_retry`).
                pub fn of<S: State>(&self) -> #rt::aggregate::Stream<Aggregate, S> {
                    #rt::aggregate::Stream::new(fold::<S>) #with_snapshots
                }

                /// The state of stream `id` and its version (0: no such stream), from the
                /// latest usable snapshot plus the events after it.
                pub async fn load<S: State, B: #rt::bus::EventBus>(
                    &self,
                    producer: &#rt::Producer<B>,
                    id: &str,
                ) -> ::std::result::Result<#rt::aggregate::Loaded<S>, #rt::aggregate::StreamError> {
                    self.of::<S>().load(producer, id).await
                }

                /// Appends `events` to stream `id` if its version is `expected`, atomically and
                /// validated; otherwise `StreamError::Conflict`, storing nothing. (Writes no
                /// snapshot: it has no state type; `of::<S>().append` does.)
                pub async fn append<B: #rt::bus::EventBus>(
                    &self,
                    producer: &#rt::Producer<B>,
                    id: &str,
                    expected: #rt::stream::ExpectedVersion,
                    events: ::std::vec::Vec<Event>,
                ) -> ::std::result::Result<#rt::stream::Appended, #rt::aggregate::StreamError> {
                    #rt::aggregate::append_events::<Aggregate, B>(producer, id, expected, &events).await
                }

                /// Appends `events` to stream `id` inside an open store transaction `tx`
                /// (`producer.transaction()` on the embedded store,
                /// `producer.in_session(&mut session)` on MongoDB) if its version is
                /// `expected`, checked in that transaction; stored when it commits.
                pub async fn append_in<T: #rt::outbox::Outbox>(
                    &self,
                    tx: &mut T,
                    id: &str,
                    expected: #rt::stream::ExpectedVersion,
                    events: ::std::vec::Vec<Event>,
                ) -> ::std::result::Result<#rt::stream::Appended, #rt::aggregate::StreamError> {
                    #rt::aggregate::append_events_in::<Aggregate, T>(tx, id, expected, &events).await
                }

                /// Load → `decide` → append expecting the loaded version, retried on
                /// conflicts (bounded, jittered); `decide`'s error is passed through.
                pub async fn handle<S, B, F, E>(
                    &self,
                    producer: &#rt::Producer<B>,
                    id: &str,
                    decide: F,
                ) -> ::std::result::Result<#rt::aggregate::Handled, #rt::aggregate::HandleError<E>>
                where
                    S: State,
                    B: #rt::bus::EventBus,
                    F: ::std::ops::FnMut(&S) -> ::std::result::Result<::std::vec::Vec<Event>, E>,
                {
                    self.of::<S>().handle(producer, id, decide).await
                }

                /// A given/when/then test of a command against the fold of `events`.
                pub fn given<S: State>(
                    &self,
                    events: impl ::std::iter::IntoIterator<Item = Event>,
                ) -> #rt::aggregate::testing::Given<Aggregate, S> {
                    self.of::<S>().given(events)
                }
            }
        }
    }
}
