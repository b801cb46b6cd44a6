//! `spec::system()`: the facts the runtime needs, as Rust literals, so a generated program
//! carries no spec text and lints nothing at startup.

use super::{ident, rt};
use crate::ir::facts::{ChangefeedFacts, ConsumerFacts, IndexFacts, ProjectorFacts, ProjectorKindFacts};
use crate::ir::{Aggregate, Model, Topic, Upcast};
use proc_macro2::TokenStream;
use prom_spec::spec::FullDocument;
use quote::{format_ident, quote};
use std::time::Duration;

/// `pub fn system() -> prom_runtime::system::System`, for inside `pub mod spec`.
pub fn function(model: &Model) -> TokenStream {
    let rt = rt();
    let topics = model.topics.iter().map(topic);
    let consumers = model.facts.consumers.iter().map(consumer);
    let projectors = model.facts.projectors.iter().map(projector);
    let changefeeds = model.facts.changefeeds.iter().map(changefeed);
    let aggregates = model.aggregates.iter().map(aggregate);
    quote! {
        /// What the spec declares, as the runtime takes it: schemas, upcasts (with what lint
        /// proved about them), consumers with their retry policies, projectors, changefeeds,
        /// aggregates.
        pub fn system() -> #rt::system::System {
            #rt::system::System {
                topics: ::std::vec::Vec::from([#(#topics),*]),
                consumers: ::std::vec::Vec::from([#(#consumers),*]),
                projectors: ::std::vec::Vec::from([#(#projectors),*]),
                changefeeds: ::std::vec::Vec::from([#(#changefeeds),*]),
                aggregates: ::std::vec::Vec::from([#(#aggregates),*]),
            }
        }
    }
}

fn topic(topic: &Topic) -> TokenStream {
    let rt = rt();
    let module = ident(&topic.module);
    let name = &topic.name;
    let key = option(topic.key.as_deref().map(string));
    let partitions = u32::try_from(topic.partitions).unwrap_or(u32::MAX);
    let headers = topic.headers.iter().map(|(_, header)| string(header));
    let dual_write = topic.dual_write;
    let compat = format_ident!("{}", topic.compat.split('_').map(capitalized).collect::<String>());
    let versions = topic.versions.iter().map(|v| {
        let number = v.number;
        let schema = format_ident!("V{}", v.number);
        let upcast = option(v.upcast.as_ref().map(upcast));
        let proven = v.upcast_proven;
        quote! {
            #rt::system::Version {
                number: #number,
                schema: ::std::string::String::from(super::#module::schemas::#schema),
                upcast: #upcast,
                upcast_proven: #proven,
            }
        }
    });
    quote! {
        #rt::system::Topic {
            name: ::std::string::String::from(#name),
            key: #key,
            partitions: #partitions,
            headers: ::std::vec::Vec::from([#(#headers),*]),
            dual_write: #dual_write,
            compat: #rt::system::CompatMode::#compat,
            versions: ::std::vec::Vec::from([#(#versions),*]),
        }
    }
}

fn upcast(upcast: &Upcast) -> TokenStream {
    let rt = rt();
    match upcast {
        Upcast::With(path) => {
            let path = string(path);
            quote!(#rt::system::Upcast::With(#path))
        }
        Upcast::Steps(prom_spec::upcast::Steps { rename, remove, set_default }) => {
            let rename = rename.iter().map(|(a, b)| pair(string(a), string(b)));
            let remove = remove.iter().map(|f| string(f));
            let set_default = set_default.iter().map(|(f, v)| pair(string(f), string(&v.to_string())));
            quote! {
                #rt::system::Upcast::Steps {
                    rename: ::std::vec::Vec::from([#(#rename),*]),
                    remove: ::std::vec::Vec::from([#(#remove),*]),
                    set_default: ::std::vec::Vec::from([#(#set_default),*]),
                }
            }
        }
    }
}

fn consumer(c: &ConsumerFacts) -> TokenStream {
    let rt = rt();
    let (name, topic, group) = (string(&c.name), string(&c.topic), string(&c.group));
    let start = if c.from_latest { quote!(Latest) } else { quote!(Earliest) };
    // Unset durations take the runtime's defaults, so the literal names no default of its own.
    let retry = match &c.retry {
        None => quote!(#rt::retry::RetryPolicy::default()),
        Some((max_attempts, backoff, max_backoff)) => {
            let max_attempts = u32::try_from(*max_attempts).unwrap_or(u32::MAX).max(1);
            match (backoff, max_backoff) {
                (Some(backoff), Some(max_backoff)) => {
                    let (backoff, max_backoff) = (duration(*backoff), duration(*max_backoff));
                    quote!(#rt::retry::RetryPolicy { max_attempts: #max_attempts, backoff: #backoff, max_backoff: #max_backoff })
                }
                _ => {
                    let backoff = backoff.map_or_else(|| quote!(default.backoff), duration);
                    let max_backoff =
                        max_backoff.map_or_else(|| quote!(default.max_backoff.max(backoff)), duration);
                    quote! {{
                        let default = #rt::retry::RetryPolicy::default();
                        let backoff = #backoff;
                        #rt::retry::RetryPolicy { max_attempts: #max_attempts, backoff, max_backoff: #max_backoff }
                    }}
                }
            }
        }
    };
    let (dlq, partitioned) = (c.dlq, c.partitioned);
    let member_ttl = option(c.member_ttl.map(duration));
    let count = |n: Option<u64>| {
        option(n.map(|n| usize::try_from(n).unwrap_or(usize::MAX).max(1)).map(|n| quote!(#n)))
    };
    let (batch_size, max_in_flight) = (count(c.batch_size), count(c.max_in_flight));
    quote! {
        #rt::system::Consumer {
            name: #name,
            topic: #topic,
            group: #group,
            start: #rt::system::StartFrom::#start,
            retry: #retry,
            dlq: #dlq,
            partitioned: #partitioned,
            member_ttl: #member_ttl,
            batch_size: #batch_size,
            max_in_flight: #max_in_flight,
        }
    }
}

/// A `system::Index` literal.
fn index(index: &IndexFacts) -> TokenStream {
    let rt = rt();
    let unique = index.unique;
    let keys = index.keys.iter().map(|(field, direction)| pair(string(field), quote!(#direction)));
    let name = option(index.name.as_deref().map(string));
    quote!(#rt::system::Index { keys: ::std::vec::Vec::from([#(#keys),*]), unique: #unique, name: #name })
}

fn projector(p: &ProjectorFacts) -> TokenStream {
    let rt = rt();
    let (name, topic) = (string(&p.name), string(&p.topic));
    let kind = match &p.kind {
        ProjectorKindFacts::Transactional { handler, collection, indexes } => {
            let handler = string(handler);
            let collection = option(collection.as_ref().map(|c| string(c)));
            let indexes = indexes.iter().map(index);
            quote! {
                #rt::system::ProjectorKind::Transactional {
                    handler: #handler,
                    collection: #collection,
                    indexes: ::std::vec::Vec::from([#(#indexes),*]),
                }
            }
        }
        ProjectorKindFacts::Changelog { collection, key, version, indexes, snapshot_api } => {
            let (collection, key) = (string(collection), string(key));
            let version = option(version.as_ref().map(|v| string(v)));
            let indexes = indexes.iter().map(index);
            let snapshot_api = option(snapshot_api.as_ref().map(|api| {
                let path = string(&api.path);
                let filters = api.filters.iter().map(|f| string(f));
                let max_age = option(api.max_age.map(duration));
                let max_limit = option(api.max_limit.map(|m| quote!(#m)));
                quote! {
                    #rt::system::SnapshotApi {
                        path: #path,
                        filters: ::std::vec::Vec::from([#(#filters),*]),
                        max_age: #max_age,
                        max_limit: #max_limit,
                    }
                }
            }));
            quote! {
                #rt::system::ProjectorKind::Changelog(#rt::system::Changelog {
                    collection: #collection,
                    key: #key,
                    version: #version,
                    indexes: ::std::vec::Vec::from([#(#indexes),*]),
                    snapshot_api: #snapshot_api,
                })
            }
        }
    };
    quote!(#rt::system::Projector { name: #name, topic: #topic, kind: #kind })
}

fn changefeed(f: &ChangefeedFacts) -> TokenStream {
    let rt = rt();
    let (name, collection, topic) = (string(&f.name), string(&f.collection), string(&f.topic));
    let database = option(f.database.as_ref().map(|d| string(d)));
    let full_document = match f.full_document {
        FullDocument::Default => quote!(Default),
        FullDocument::UpdateLookup => quote!(UpdateLookup),
        FullDocument::WhenAvailable => quote!(WhenAvailable),
        FullDocument::Required => quote!(Required),
    };
    let operations = f.operations.iter().map(|o| string(o));
    let on_lost_resume = if f.restart_from_now { quote!(RestartFromNow) } else { quote!(Fail) };
    quote! {
        #rt::system::Changefeed {
            name: #name,
            collection: #collection,
            database: #database,
            topic: #topic,
            full_document: #rt::system::FullDocument::#full_document,
            operations: ::std::vec::Vec::from([#(#operations),*]),
            on_lost_resume: #rt::system::LostResumePolicy::#on_lost_resume,
        }
    }
}

fn aggregate(a: &Aggregate) -> TokenStream {
    let rt = rt();
    let (name, id) = (string(&a.name), string(&a.id));
    let description = option(a.description.as_deref().map(string));
    let events = a.events.iter().map(|e| string(&e.topic));
    // Lint bounds `every`; a larger value than u32 holds is clamped, never wrapped.
    let snapshot_every = option(a.snapshot_every.map(|every| {
        let every = u32::try_from(every).unwrap_or(u32::MAX);
        quote!(#every)
    }));
    let tamper_evident = a.tamper_evident;
    quote! {
        #rt::system::Aggregate {
            name: #name,
            description: #description,
            id: #id,
            events: ::std::vec::Vec::from([#(#events),*]),
            snapshot_every: #snapshot_every,
            tamper_evident: #tamper_evident,
        }
    }
}

fn string(text: &str) -> TokenStream {
    quote!(::std::string::String::from(#text))
}

fn pair(a: TokenStream, b: TokenStream) -> TokenStream {
    quote!((#a, #b))
}

fn option(value: Option<TokenStream>) -> TokenStream {
    match value {
        Some(value) => quote!(::std::option::Option::Some(#value)),
        None => quote!(::std::option::Option::None),
    }
}

fn duration(d: Duration) -> TokenStream {
    let (secs, nanos) = (d.as_secs(), d.subsec_nanos());
    quote!(::std::time::Duration::new(#secs, #nanos))
}

fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
}
