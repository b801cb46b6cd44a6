//! Reading and writing `prom.lock`: YAML sorted by topic and version, one fingerprint a line,
//! so a diff shows exactly which versions were added or rewritten.

use super::{Fingerprint, Lock, LockedTopic, LockedVersion};
use crate::diag::{Code, Diagnostic};
use crate::source::Span;
use crate::yaml::{self, Node, Value};
use std::path::Path;
use std::sync::Arc;

/// The only lock format so far; a newer Prom reading an older lock keeps this number.
const FORMAT: i64 = 1;

/// Help for a lock file that is not what `prom-codegen build` writes.
const RESTORE: &str = "prom.lock is written by `prom-codegen build`: restore it from version control \
                       (`git checkout -- prom.lock`), or delete it and run `prom-codegen build` to lock \
                       the versions declared now";

/// A lock file that cannot be read, with every problem found in it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LockError {
    /// The problems, located in the lock file.
    pub diagnostics: Vec<Diagnostic>,
}

/// Parses the text of a lock file; problems are located in `file`.
pub fn parse(text: &str, file: &Arc<Path>) -> Result<Lock, LockError> {
    let (root, mut diagnostics) = yaml::load(text, file);
    let mut lock = Lock::default();
    if let Some(root) = root {
        read_root(&root, &mut lock, &mut diagnostics);
    } else if diagnostics.is_empty() {
        diagnostics.push(wrong(&Span::file_start(file), "the lock file is empty", "a mapping"));
    }
    if diagnostics.is_empty() {
        Ok(lock)
    } else {
        Err(LockError { diagnostics: diagnostics.into_iter().map(|d| d.with_help(RESTORE)).collect() })
    }
}

fn wrong(span: &Span, what: &str, expected: &str) -> Diagnostic {
    Diagnostic::error(Code::WrongType, span, format!("{what}: expected {expected}"))
}

fn read_root(root: &Node, lock: &mut Lock, out: &mut Vec<Diagnostic>) {
    let Some(entries) = root.as_map() else {
        out.push(wrong(&root.span, &format!("the lock file is {}", root.kind()), "a mapping"));
        return;
    };
    let mut format_seen = false;
    for (key, value) in entries {
        match key.text.as_str() {
            "format" => {
                format_seen = true;
                if value.value != Value::Int(FORMAT) {
                    out.push(Diagnostic::error(
                        Code::InvalidValue,
                        &value.span,
                        format!("lock format must be {FORMAT}; this Prom reads no other"),
                    ));
                }
            }
            "topics" => read_topics(value, lock, out),
            other => out.push(Diagnostic::error(
                Code::UnknownKey,
                &key.span,
                format!("unknown key `{other}` in the lock file (it has `format` and `topics`)"),
            )),
        }
    }
    if !format_seen {
        out.push(Diagnostic::error(Code::MissingKey, &root.span, "the lock file has no `format: 1`"));
    }
}

fn read_topics(node: &Node, lock: &mut Lock, out: &mut Vec<Diagnostic>) {
    if node.value == Value::Null {
        return;
    }
    let Some(entries) = node.as_map() else {
        out.push(wrong(&node.span, &format!("`topics` is {}", node.kind()), "a mapping of topic names"));
        return;
    };
    for (key, versions) in entries {
        let mut topic = LockedTopic { span: Some(key.span.clone()), versions: Default::default() };
        let Some(versions) = versions.as_map() else {
            out.push(wrong(
                &versions.span,
                &format!("topic `{}` is {}", key.text, versions.kind()),
                "a mapping of version numbers",
            ));
            continue;
        };
        for (number, entry) in versions {
            let Ok(parsed) = number.text.parse::<u32>() else {
                out.push(Diagnostic::error(
                    Code::InvalidValue,
                    &number.span,
                    format!("`{}` is not a version number", number.text),
                ));
                continue;
            };
            if let Some(fingerprint) = read_fingerprint(entry, out) {
                topic.versions.insert(parsed, LockedVersion { fingerprint, span: Some(number.span.clone()) });
            }
        }
        lock.topics.insert(key.text.clone(), topic);
    }
}

fn read_fingerprint(node: &Node, out: &mut Vec<Diagnostic>) -> Option<Fingerprint> {
    let Some(entries) = node.as_map() else {
        out.push(wrong(
            &node.span,
            &format!("a locked version is {}", node.kind()),
            "`schema:` and `upcast:`",
        ));
        return None;
    };
    let (mut schema, mut upcast) = (None, None);
    for (key, value) in entries {
        let slot = match key.text.as_str() {
            "schema" => &mut schema,
            "upcast" => &mut upcast,
            other => {
                out.push(Diagnostic::error(
                    Code::UnknownKey,
                    &key.span,
                    format!("unknown key `{other}` in a locked version (it has `schema` and `upcast`)"),
                ));
                continue;
            }
        };
        match value.as_str() {
            Some(text) if is_digest(text) => *slot = Some(text.to_owned()),
            _ => out.push(Diagnostic::error(
                Code::InvalidValue,
                &value.span,
                format!("`{}` must be `sha256:` and 64 lowercase hex digits", key.text),
            )),
        }
    }
    match schema {
        Some(schema) => Some(Fingerprint { schema, upcast }),
        None => {
            out.push(Diagnostic::error(Code::MissingKey, &node.span, "a locked version has no `schema:`"));
            None
        }
    }
}

fn is_digest(text: &str) -> bool {
    text.strip_prefix("sha256:")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// The lock as written to `prom.lock`: a header saying what it is, then topics and versions in
/// order.
pub fn render(lock: &Lock) -> String {
    let mut text = String::from(
        "# prom.lock: the fingerprint (SHA-256 of the canonical JSON) of every published schema\n\
         # version and its upcast. Written by `prom-codegen build`; commit it with the specs.\n\
         # Lint fails when a locked version is edited or removed: add version N+1 with an upcast.\n\
         # A deliberate rewrite: `prom-codegen lock --rewrite TOPIC@VERSION`.\n\
         format: 1\n",
    );
    if lock.topics.is_empty() {
        text.push_str("topics: {}\n");
        return text;
    }
    text.push_str("topics:\n");
    for (name, topic) in &lock.topics {
        // Quoted as JSON (valid YAML): a topic such as `1.5` or `null` stays a string key.
        text.push_str(&format!("  {}:\n", serde_json::Value::from(name.as_str())));
        for (number, version) in &topic.versions {
            text.push_str(&format!("    {number}:\n      schema: {}\n", version.fingerprint.schema));
            if let Some(upcast) = &version.fingerprint.upcast {
                text.push_str(&format!("      upcast: {upcast}\n"));
            }
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> Arc<Path> {
        Arc::from(Path::new("prom.lock"))
    }

    #[test]
    fn render_then_parse_round_trips() {
        let mut lock = Lock::default();
        let fingerprint = |c: char| Fingerprint {
            schema: format!("sha256:{}", c.to_string().repeat(64)),
            upcast: (c == 'b').then(|| format!("sha256:{}", "c".repeat(64))),
        };
        for (topic, number, c) in [("a.b", 1, 'a'), ("a.b", 2, 'b'), ("null", 1, 'd')] {
            lock.topics
                .entry(topic.to_owned())
                .or_default()
                .versions
                .insert(number, LockedVersion { fingerprint: fingerprint(c), span: None });
        }
        let text = render(&lock);
        let parsed = parse(&text, &file()).expect("a rendered lock parses");
        assert!(parsed.same_entries(&lock), "{text}");
        assert!(parsed.topics.contains_key("null"), "{text}");
    }

    #[test]
    fn a_damaged_lock_is_located() {
        let text = "format: 1\ntopics:\n  a.b:\n    1:\n      schema: sha256:nothex\n";
        let error = parse(text, &file()).expect_err("not a digest");
        let first = &error.diagnostics[0];
        assert_eq!((first.code, first.span.start.line, first.span.start.column), (Code::InvalidValue, 5, 15));
        assert!(first.help.as_deref().is_some_and(|h| h.contains("git checkout")), "{first:?}");
    }
}
