//! Rust identifiers for spec names: valid, idiomatic, collision-free and deterministic.

use heck::{ToShoutySnakeCase, ToSnakeCase, ToUpperCamelCase};
use std::collections::BTreeSet;

/// Rust keywords that need `r#` (or a suffix where raw identifiers are not allowed).
const KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern", "false",
    "fn", "for", "gen", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref",
    "return", "self", "Self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use", "where",
    "while", "abstract", "become", "box", "do", "final", "macro", "override", "priv", "typeof", "unsized",
    "virtual", "yield", "try", "union",
];

/// Keywords that cannot be raw identifiers either.
const NOT_RAW: &[&str] = &["crate", "self", "Self", "super", "_"];

/// Whether `s` is a Rust keyword.
pub fn is_keyword(s: &str) -> bool {
    KEYWORDS.contains(&s)
}

fn clean(raw: &str) -> String {
    // Non-identifier characters become word breaks so heck splits on them.
    raw.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}

fn fix_start(ident: String, fallback: &str) -> String {
    match ident.chars().next() {
        None => fallback.to_owned(),
        Some(c) if c.is_ascii_digit() => format!("_{ident}"),
        Some(_) => ident,
    }
}

/// `mem_mb` → `mem_mb`, `processId` → `process_id`, `type` → `r#type`.
pub fn field(raw: &str) -> String {
    let ident = fix_start(clean(raw).to_snake_case(), "field");
    if NOT_RAW.contains(&ident.as_str()) {
        format!("{ident}_")
    } else if is_keyword(&ident) {
        format!("r#{ident}")
    } else {
        ident
    }
}

/// `heartbeat.received` → `heartbeat_received` (a module name).
pub fn module(raw: &str) -> String {
    let ident = fix_start(clean(raw).to_snake_case(), "topic");
    if is_keyword(&ident) { format!("{ident}_") } else { ident }
}

/// `address` → `Address`, `in-progress` → `InProgress`.
pub fn type_name(raw: &str) -> String {
    let ident = fix_start(clean(raw).to_upper_camel_case(), "Type");
    if is_keyword(&ident) { format!("{ident}_") } else { ident }
}

/// The name hint for a type nested directly in a version's root struct: the property name,
/// unless its type name would read as a version (`v2` → `V2`), which gets `_value` (`V2Value`).
pub fn root_property_hint(json_name: &str) -> String {
    let name = type_name(json_name);
    let looks_like_version =
        name.strip_prefix('V').is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    if looks_like_version { format!("{json_name}_value") } else { json_name.to_owned() }
}

/// `x-source` → `X_SOURCE`.
pub fn constant(raw: &str) -> String {
    fix_start(clean(raw).to_shouty_snake_case(), "CONST")
}

/// Makes names unique within one scope by appending `2`, `3`, ... to later duplicates.
#[derive(Debug, Default)]
pub struct Scope {
    taken: BTreeSet<String>,
}

impl Scope {
    /// Reserves `name`, or the first free `name2`, `name3`, ...
    pub fn claim(&mut self, name: String) -> String {
        if self.taken.insert(name.clone()) {
            return name;
        }
        let base = name.trim_start_matches("r#").to_owned();
        (2..)
            .map(|i| format!("{base}{i}"))
            .find(|candidate| self.taken.insert(candidate.clone()))
            .unwrap_or(base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        assert_eq!(field("processId"), "process_id");
        assert_eq!(field("type"), "r#type");
        assert_eq!(field("self"), "self_");
        assert_eq!(field("2fa"), "_2fa");
        assert_eq!(field("x-source"), "x_source");
        assert_eq!(field(""), "field");
        assert_eq!(module("heartbeat.received"), "heartbeat_received");
        assert_eq!(type_name("in-progress"), "InProgress");
        assert_eq!(type_name("self"), "Self_");
        assert_eq!(constant("x-source"), "X_SOURCE");
        assert_eq!(root_property_hint("status"), "status");
        assert_eq!(root_property_hint("v2"), "v2_value");
        assert_eq!(root_property_hint("v"), "v");
        let mut scope = Scope::default();
        assert_eq!(scope.claim("a".into()), "a");
        assert_eq!(scope.claim("a".into()), "a2");
        assert_eq!(scope.claim("a".into()), "a3");
    }
}
