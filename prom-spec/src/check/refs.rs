//! Cross-references: topics named by pipelines, key pointers, derived topic names, projector kinds.

use super::schemas::Usable;
use crate::diag::{Code, Diagnostic};
use crate::schema::{FieldError, Schema};
use crate::source::{Located, Span};
use crate::spec::{ProjectorKind, Spec, Topic};
use crate::suggest::did_you_mean;
use std::collections::BTreeSet;

/// Topic names the runtime derives from declarations: `dlq.<t>` and `<t>.v<N>`.
pub fn derived_topics(spec: &Spec) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for consumer in spec.consumers.values() {
        if consumer.dlq.as_ref().is_some_and(|d| d.value) {
            out.insert(format!("dlq.{}", consumer.topic.value));
        }
    }
    for topic in spec.topics.values().filter(|t| t.dual_write()) {
        for version in &topic.versions {
            out.insert(format!("{}.v{}", topic.name.value, version.number.value));
        }
    }
    out
}

/// Checks every reference between spec elements.
pub fn check(spec: &Spec, usable: &Usable, out: &mut Vec<Diagnostic>) {
    let derived = derived_topics(spec);
    check_derived_collisions(spec, out);
    let known = || spec.topics.keys().chain(derived.iter()).map(String::as_str);
    let topic_ref = |name: &Located<String>, who: String, out: &mut Vec<Diagnostic>| -> Option<&Topic> {
        if let Some(topic) = spec.topics.get(&name.value) {
            return Some(topic);
        }
        if !derived.contains(&name.value) {
            let hint = did_you_mean(&name.value, known());
            out.push(
                Diagnostic::error(
                    Code::UnknownTopic,
                    &name.span,
                    format!("{who} names unknown topic `{}`", name.value),
                )
                .with_help(if hint.is_empty() {
                    "declare the topic under `topics:`".to_owned()
                } else {
                    hint
                }),
            );
        }
        None
    };

    for topic in spec.topics.values() {
        if let Some(key) = &topic.key {
            check_pointer(topic, key, "key", usable, out);
        }
    }
    for consumer in spec.consumers.values() {
        topic_ref(&consumer.topic, format!("consumer `{}`", consumer.name.value), out);
        if let Some(retry) = &consumer.retry
            && let (Some(min), Some(max)) = (&retry.backoff, &retry.max_backoff)
            && max.value < min.value
        {
            out.push(
                Diagnostic::error(Code::OutOfRange, &max.span, "`max_backoff` is shorter than `backoff`")
                    .with_help("make `max_backoff` at least as long as `backoff`"),
            );
        }
    }
    for changefeed in spec.changefeeds.values() {
        topic_ref(&changefeed.topic, format!("changefeed `{}`", changefeed.name.value), out);
    }
    for projector in spec.projectors.values() {
        let topic = topic_ref(&projector.topic, format!("projector `{}`", projector.name.value), out);
        check_projector_kind(projector, topic, out);
        let Some(topic) = topic else { continue };
        if let Some(key) = &projector.key {
            check_pointer(topic, key, "key", usable, out);
        }
        if let Some(version) = &projector.version {
            check_pointer(topic, version, "version", usable, out);
        }
        // A transactional projector's documents are what its handler writes, not payloads: its
        // index fields name document fields, which no schema describes.
        let payload_indexes =
            if projector.kind.value == ProjectorKind::Changelog { &projector.indexes[..] } else { &[] };
        let fields = projector
            .snapshot_api
            .iter()
            .flat_map(|api| api.filters.iter().map(|f| (f, "snapshot filter")))
            .chain(payload_indexes.iter().flat_map(|i| i.keys.iter().map(|(f, _)| (f, "index field"))));
        for (field, what) in fields {
            let pointer = format!("/{}", field.value.replace('~', "~0").replace('/', "~1").replace('.', "/"));
            check_field(topic, field, &pointer, what, usable, out);
        }
    }
}

fn check_derived_collisions(spec: &Spec, out: &mut Vec<Diagnostic>) {
    for topic in spec.topics.values().filter(|t| t.dual_write()) {
        let Some(latest) = topic.latest() else { continue };
        let name = format!("{}.v{}", topic.name.value, latest.number.value);
        if let Some(other) = spec.topics.get(&name) {
            let at = topic.dual_write.as_ref().map_or(&topic.name.span, |d| &d.span);
            out.push(
                Diagnostic::error(
                    Code::DualWriteCollision,
                    at,
                    format!("dual-write target `{name}` is also a declared topic"),
                )
                .with_label(format!("`{name}` declared at {}", other.name.span))
                .with_help(format!("rename or remove the declared `{name}`, or turn `dual_write` off")),
            );
        }
    }
    for consumer in spec.consumers.values().filter(|c| c.dlq.as_ref().is_some_and(|d| d.value)) {
        let name = format!("dlq.{}", consumer.topic.value);
        if let Some(other) = spec.topics.get(&name) {
            out.push(
                Diagnostic::error(
                    Code::ReservedName,
                    &other.name.span,
                    format!("topic `{name}` is reserved for dead letters"),
                )
                .with_label(format!("consumer `{}` dead-letters into it", consumer.name.value))
                .with_help("the runtime creates dead-letter topics itself; rename this topic"),
            );
        }
    }
}

fn check_projector_kind(
    projector: &crate::spec::Projector,
    topic: Option<&Topic>,
    out: &mut Vec<Diagnostic>,
) {
    let name = &projector.name;
    let mismatch = |span: &Span, message: String, help: &str| {
        Diagnostic::error(Code::ProjectorKindMismatch, span, message).with_help(help.to_owned())
    };
    match projector.kind.value {
        ProjectorKind::Changelog => {
            if projector.collection.is_none() {
                out.push(mismatch(
                    &name.span,
                    format!("changelog projector `{}` needs a `collection`", name.value),
                    "add `collection: <name>`",
                ));
            }
            if projector.key.is_none() && topic.is_some_and(|t| t.key.is_none()) {
                out.push(mismatch(
                    &name.span,
                    format!(
                        "changelog projector `{}` needs a `key` (and its topic declares none)",
                        name.value
                    ),
                    "add `key: /field` naming the document key in the payload",
                ));
            }
            if let Some(handler) = &projector.handler {
                out.push(mismatch(
                    &handler.span,
                    "`handler` applies only to `kind: transactional` projectors".to_owned(),
                    "remove `handler`, or use `kind: transactional`",
                ));
            }
        }
        ProjectorKind::Transactional => {
            if projector.handler.is_none() {
                out.push(mismatch(
                    &name.span,
                    format!("transactional projector `{}` needs a `handler`", name.value),
                    "add `handler: crate::projectors::my_handler`",
                ));
            }
            if let (None, Some(index)) = (&projector.collection, projector.indexes.first()) {
                let at = index.keys.first().map_or(&name.span, |(field, _)| &field.span);
                out.push(mismatch(
                    at,
                    format!(
                        "transactional projector `{}` declares `indexes` but no `collection` to create them on",
                        name.value
                    ),
                    "add `collection: NAME` (the collection its handler `find`s in), or remove `indexes`",
                ));
            }
            if let Some(api) = &projector.snapshot_api {
                out.push(mismatch(
                    &api.path.span,
                    "`snapshot_api` applies only to `kind: changelog` projectors".to_owned(),
                    "serve the collection from a changelog projector",
                ));
            }
        }
    }
}

/// Checks that a JSON pointer names a field of the topic's latest schema.
fn check_pointer(
    topic: &Topic,
    pointer: &Located<String>,
    what: &str,
    usable: &Usable,
    out: &mut Vec<Diagnostic>,
) {
    if !pointer.value.starts_with('/') {
        out.push(
            Diagnostic::error(
                Code::KeyPointer,
                &pointer.span,
                format!("`{what}: {}` is not a JSON pointer", pointer.value),
            )
            .with_help(format!("write `/{}`", pointer.value.replace('.', "/"))),
        );
        return;
    }
    check_field(topic, pointer, &pointer.value, what, usable, out);
}

fn check_field(
    topic: &Topic,
    at: &Located<String>,
    pointer: &str,
    what: &str,
    usable: &Usable,
    out: &mut Vec<Diagnostic>,
) {
    let Some(latest) = topic.latest().filter(|v| usable.contains(&topic.name.value, v.number.value)) else {
        return;
    };
    let code = if what == "key" || what == "version" { Code::KeyPointer } else { Code::UnknownField };
    let v = latest.number.value;
    match Schema::root(&latest.schema.json).field(pointer) {
        Ok(field) if !field.required && what == "key" => out.push(
            Diagnostic::warning(
                code,
                &at.span,
                format!("{what} `{pointer}` is optional in `{}` v{v}", topic.name.value),
            )
            .with_help("add it to `required`: events without a key all land in one partition"),
        ),
        Ok(_) => {}
        Err(FieldError::Syntax) => {}
        Err(FieldError::Missing { segment, known }) => {
            let hint = did_you_mean(&segment, known.iter().map(String::as_str));
            out.push(
                Diagnostic::error(
                    code,
                    &at.span,
                    format!(
                        "{what} `{}` is not a field of `{}` v{v}: no property `{segment}`",
                        at.value, topic.name.value
                    ),
                )
                .with_help(if hint.is_empty() {
                    format!("known properties: {}", known.join(", "))
                } else {
                    hint
                }),
            );
        }
    }
}
