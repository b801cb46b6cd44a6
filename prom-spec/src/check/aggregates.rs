//! Aggregates: names, their event topics and the id pointer every event must carry.

use super::schemas::Usable;
use crate::diag::{Code, Diagnostic};
use crate::schema::{FieldError, Schema};
use crate::source::Located;
use crate::spec::{Aggregate, Spec, Topic};
use crate::suggest::did_you_mean;
use std::collections::HashMap;

/// Whether `name` matches `^[a-z][a-z0-9_]*$` (a Rust module name in generated code).
pub fn is_aggregate_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Checks every aggregate.
pub fn check(spec: &Spec, usable: &Usable, out: &mut Vec<Diagnostic>) {
    // Which aggregate claimed each topic first (aggregates are checked in name order).
    let mut owners: HashMap<&str, (&Located<String>, &Located<String>)> = HashMap::new();
    for aggregate in spec.aggregates.values() {
        check_name(&aggregate.name, out);
        // Without an `events:` key (P005 already), its span is the name's.
        if aggregate.events.is_empty() && aggregate.events_span != aggregate.name.span {
            out.push(
                Diagnostic::error(
                    Code::AggregateEvents,
                    &aggregate.events_span,
                    format!("aggregate `{}` lists no events", aggregate.name.value),
                )
                .with_help(
                    "list the topics whose events make up its streams, e.g. `events: [account.opened]`",
                ),
            );
        }
        let id_ok = check_pointer_syntax(aggregate, out);
        let mut listed: HashMap<&str, &Located<String>> = HashMap::new();
        for event in &aggregate.events {
            if let Some(first) = listed.insert(event.value.as_str(), event) {
                out.push(
                    Diagnostic::error(
                        Code::AggregateEvents,
                        &event.span,
                        format!("`{}` is listed twice in aggregate `{}`", event.value, aggregate.name.value),
                    )
                    .with_label(format!("first listed at {}", first.span))
                    .with_help("remove the repeat"),
                );
                continue;
            }
            let Some(topic) = spec.topics.get(&event.value) else {
                let hint = did_you_mean(&event.value, spec.topics.keys().map(String::as_str));
                out.push(
                    Diagnostic::error(
                        Code::AggregateUnknownEvent,
                        &event.span,
                        format!("aggregate `{}` lists unknown topic `{}`", aggregate.name.value, event.value),
                    )
                    .with_help(if hint.is_empty() {
                        "declare the topic under `topics:` (derived `<topic>.vN` and `dlq.<topic>` topics cannot be events)".to_owned()
                    } else {
                        hint
                    }),
                );
                continue;
            };
            match owners.get(event.value.as_str()) {
                Some((owner, at)) => out.push(
                    Diagnostic::error(
                        Code::AggregateSharedEvent,
                        &event.span,
                        format!(
                            "topic `{}` is already an event of aggregate `{}`",
                            event.value, owner.value
                        ),
                    )
                    .with_label(format!("listed by `{}` at {}", owner.value, at.span))
                    .with_help("a topic belongs to one aggregate: its events carry that aggregate's id; declare a separate topic"),
                ),
                None => {
                    owners.insert(&event.value, (&aggregate.name, event));
                }
            }
            if id_ok {
                check_id(aggregate, topic, event, usable, out);
            }
        }
    }
}

fn check_name(name: &Located<String>, out: &mut Vec<Diagnostic>) {
    if is_aggregate_name(name) {
        return;
    }
    let suggestion: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
        .collect::<String>()
        .trim_matches('_')
        .to_owned();
    out.push(
        Diagnostic::error(
            Code::AggregateName,
            &name.span,
            format!("aggregate name `{}` is invalid", name.value),
        )
        .with_label("must match ^[a-z][a-z0-9_]*$")
        .with_help(if suggestion.is_empty() || !is_aggregate_name(&suggestion) {
            "use lowercase snake_case starting with a letter, e.g. `account`".to_owned()
        } else {
            format!("use lowercase snake_case: `{suggestion}`")
        }),
    );
}

/// Whether the id is a JSON pointer to a field (reported when not).
fn check_pointer_syntax(aggregate: &Aggregate, out: &mut Vec<Diagnostic>) -> bool {
    let id = &aggregate.id;
    if id.value.starts_with('/') && id.value.len() > 1 {
        return true;
    }
    out.push(
        Diagnostic::error(
            Code::AggregateId,
            &id.span,
            format!("`id: {}` is not a JSON pointer to a payload field", id.value),
        )
        .with_help(format!("write `/{}`", id.value.trim_start_matches('/').replace('.', "/"))),
    );
    false
}

/// The id must be a required string or integer in `topic`'s latest schema.
fn check_id(
    aggregate: &Aggregate,
    topic: &Topic,
    event: &Located<String>,
    usable: &Usable,
    out: &mut Vec<Diagnostic>,
) {
    let Some(latest) = topic.latest().filter(|v| usable.contains(&topic.name.value, v.number.value)) else {
        return;
    };
    let (id, v, name) = (&aggregate.id.value, latest.number.value, &topic.name.value);
    let error = |message: String, help: String| {
        Diagnostic::error(Code::AggregateId, &event.span, message)
            .with_label(format!("aggregate `{}` reads its stream id at `{id}`", aggregate.name.value))
            .with_help(help)
    };
    match Schema::root(&latest.schema.json).field(id) {
        Ok(field) => {
            let types = types(field.schema.json());
            if !field.required {
                out.push(error(
                    format!(
                        "`{id}` is optional in `{name}` v{v}, but every event of a stream carries its id"
                    ),
                    format!("add it to `required` in `{name}` v{v}"),
                ));
            } else if types.is_empty() || types.iter().any(|t| *t != "string" && *t != "integer") {
                let found = if types.is_empty() {
                    "no `type`".to_owned()
                } else {
                    format!("type {}", types.join(", "))
                };
                out.push(error(
                    format!("`{id}` in `{name}` v{v} has {found}; a stream id is a string or an integer"),
                    format!("declare `type: string` or `type: integer` for `{id}`"),
                ));
            }
        }
        Err(FieldError::Syntax) => {}
        Err(FieldError::Missing { segment, known }) => {
            let hint = did_you_mean(&segment, known.iter().map(String::as_str));
            out.push(error(
                format!("`{id}` is not a field of `{name}` v{v}: no property `{segment}`"),
                if hint.is_empty() {
                    format!("add `{segment}` (required, a string or integer) to `{name}`, or point `id` at a field every event has")
                } else {
                    hint
                },
            ));
        }
    }
}

/// The `type` keyword's names (empty when absent).
fn types(schema: &serde_json::Value) -> Vec<&str> {
    match schema.get("type") {
        Some(serde_json::Value::String(t)) => vec![t.as_str()],
        Some(serde_json::Value::Array(ts)) => ts.iter().filter_map(serde_json::Value::as_str).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn aggregate_names() {
        assert!(super::is_aggregate_name("account"));
        assert!(super::is_aggregate_name("bank_account2"));
        assert!(!super::is_aggregate_name("Account"));
        assert!(!super::is_aggregate_name("2fa"));
        assert!(!super::is_aggregate_name("bank-account"));
        assert!(!super::is_aggregate_name(""));
    }
}
