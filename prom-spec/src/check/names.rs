//! Naming rules for topics, headers and pipeline elements.

use crate::diag::{Code, Diagnostic};
use crate::source::Located;
use crate::spec::Spec;
use std::collections::HashMap;

pub use crate::headers::RESERVED_HEADERS;

/// Whether `name` matches `^[a-z0-9]+(\.[a-z0-9]+)*(\.v\d+)?$`.
pub fn is_topic_name(name: &str) -> bool {
    name.split('.')
        .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
}

/// Whether `name` matches `^x-[a-z0-9-]+$`.
pub fn is_header_name(name: &str) -> bool {
    name.strip_prefix("x-").is_some_and(|rest| {
        !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    })
}

/// Whether `name` is lowercase kebab- or snake-case (`hb-analyzers`).
pub fn is_entity_name(name: &str) -> bool {
    name.split(['-', '_'])
        .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
}

/// The closest valid topic name, to suggest in help.
pub fn normalize_topic_name(name: &str) -> String {
    let mapped: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '.' }).collect();
    mapped.split('.').filter(|p| !p.is_empty()).collect::<Vec<_>>().join(".")
}

/// Checks every name in the spec.
pub fn check(spec: &Spec, out: &mut Vec<Diagnostic>) {
    for topic in spec.topics.values() {
        if !is_topic_name(&topic.name) {
            out.push(topic_name_error(&topic.name));
        }
        let mut seen: HashMap<&str, &Located<String>> = HashMap::new();
        for header in &topic.headers {
            // Reserved first: `traceparent` breaks the name pattern too, but "reserved" is the
            // reason that tells the author what to do.
            if RESERVED_HEADERS.contains(&header.as_str()) {
                out.push(
                    Diagnostic::error(
                        Code::HeaderName,
                        &header.span,
                        format!("header `{}` is reserved", header.value),
                    )
                    .with_help("the runtime stamps this header itself; pick another name"),
                );
            } else if !is_header_name(header) {
                out.push(
                    Diagnostic::error(
                        Code::HeaderName,
                        &header.span,
                        format!("header name `{}` is invalid", header.value),
                    )
                    .with_label("must match ^x-[a-z0-9-]+$")
                    .with_help("custom headers are lowercase and start with `x-`, e.g. `x-source`"),
                );
            }
            if let Some(first) = seen.insert(header.as_str(), header) {
                out.push(
                    Diagnostic::error(
                        Code::DuplicateDefinition,
                        &header.span,
                        format!("header `{}` is listed twice", header.value),
                    )
                    .with_label(format!("first listed at {}", first.span)),
                );
            }
        }
    }
    let entities = spec
        .consumers
        .values()
        .map(|c| ("consumer", &c.name))
        .chain(spec.projectors.values().map(|p| ("projector", &p.name)))
        .chain(spec.changefeeds.values().map(|c| ("changefeed", &c.name)));
    for (what, name) in entities {
        if !is_entity_name(name) {
            out.push(
                Diagnostic::error(
                    Code::EntityName,
                    &name.span,
                    format!("{what} name `{}` is invalid", name.value),
                )
                .with_label("must be lowercase words joined by `-` or `_`")
                .with_help(format!("e.g. `{}`", normalize_topic_name(name).replace('.', "-"))),
            );
        }
    }
}

/// The diagnostic for an invalid topic name (shared with the macros).
pub fn topic_name_error(name: &Located<String>) -> Diagnostic {
    let suggestion = normalize_topic_name(name);
    let help = if suggestion.is_empty() {
        "use lowercase letters and digits in dot-separated words, e.g. `heartbeat.received`".to_owned()
    } else {
        format!("use lowercase letters and digits in dot-separated words: `{suggestion}`")
    };
    Diagnostic::error(Code::TopicName, &name.span, format!("topic name `{}` is invalid", name.value))
        .with_label(r"must match ^[a-z0-9]+(\.[a-z0-9]+)*(\.v\d+)?$")
        .with_help(help)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_topic_name("heartbeat.received"));
        assert!(is_topic_name("heartbeat.received.v2"));
        assert!(!is_topic_name("Heartbeat.received"));
        assert!(!is_topic_name("heartbeat..received"));
        assert!(!is_topic_name("heartbeat-received"));
        assert!(!is_topic_name(""));
        assert!(is_header_name("x-source"));
        assert!(!is_header_name("x-"));
        assert!(!is_header_name("source"));
        assert!(!is_header_name("x-Source"));
        assert!(is_entity_name("hb-analyzers"));
        assert!(!is_entity_name("HB"));
        assert_eq!(normalize_topic_name("Heartbeat_Received"), "heartbeat.received");
    }
}
