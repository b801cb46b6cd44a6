//! Typed reads from the located YAML tree; every problem becomes a diagnostic, never a panic.

use crate::diag::{Code, Diagnostic};
use crate::source::{Located, SourceMap};
use crate::suggest::did_you_mean;
use crate::yaml::{Key, Node, Value};
use std::time::Duration;

/// Collects diagnostics and source files while the spec is read.
#[derive(Default)]
pub struct Reader {
    /// Everything found so far.
    pub diagnostics: Vec<Diagnostic>,
    /// Every file read so far.
    pub sources: SourceMap,
    /// When set, files are read from here instead of the file system (embedded specs).
    pub memory: Option<std::sync::Arc<Memory>>,
    /// The canonical spec directory; `$ref`s must not leave it.
    pub root: Option<std::path::PathBuf>,
}

/// Every file of an embedded spec, by normalized path.
pub type Memory = std::collections::HashMap<std::path::PathBuf, std::sync::Arc<str>>;

/// A mapping whose keys were checked against the allowed set.
pub struct Map<'n> {
    /// The mapping node.
    pub node: &'n Node,
    entries: &'n [(Key, Node)],
    what: &'static str,
}

impl<'n> Map<'n> {
    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries.iter().find(|(k, _)| k.text == key).map(|(_, v)| v)
    }

    /// The entries in document order.
    pub fn entries(&self) -> &'n [(Key, Node)] {
        self.entries
    }
}

/// A value type that is one of a fixed set of spellings.
pub trait Keyword: Copy + 'static {
    /// Every spelling and its value.
    const ALL: &'static [(&'static str, Self)];
}

impl Reader {
    /// Records a diagnostic.
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    fn wrong_type(&mut self, node: &Node, expected: &str, context: &str) {
        self.push(
            Diagnostic::error(
                Code::WrongType,
                &node.span,
                format!("`{context}` must be {expected}, found {}", node.kind()),
            )
            .with_label(format!("expected {expected}")),
        );
    }

    /// Reads a mapping and reports every key outside `allowed`, with a suggestion.
    pub fn map<'n>(&mut self, node: &'n Node, allowed: &[&str], what: &'static str) -> Option<Map<'n>> {
        let Value::Map(entries) = &node.value else {
            if node.value != Value::Null {
                self.wrong_type(node, "a mapping", what);
            }
            return None;
        };
        for (key, _) in entries {
            if !allowed.contains(&key.text.as_str()) {
                let hint = did_you_mean(&key.text, allowed.iter().copied());
                let help = if hint.is_empty() {
                    format!("allowed keys in `{what}`: {}", allowed.join(", "))
                } else {
                    hint
                };
                self.push(
                    Diagnostic::error(
                        Code::UnknownKey,
                        &key.span,
                        format!("unknown key `{}` in `{what}`", key.text),
                    )
                    .with_help(help),
                );
            }
        }
        Some(Map { node, entries, what })
    }

    /// Reads a mapping with free-form keys (names, field names); null counts as empty.
    pub fn map_any<'n>(&mut self, node: &'n Node, what: &'static str) -> Option<Map<'n>> {
        match &node.value {
            Value::Map(entries) => Some(Map { node, entries, what }),
            Value::Null => None,
            _ => {
                self.wrong_type(node, "a mapping", what);
                None
            }
        }
    }

    /// Reports a missing required key on `map`.
    pub fn missing(&mut self, map: &Map<'_>, key: &str, help: &str) {
        self.push(
            Diagnostic::error(
                Code::MissingKey,
                &map.node.span,
                format!("`{}` is missing required key `{key}`", map.what),
            )
            .with_help(help.to_owned()),
        );
    }

    /// A string value.
    pub fn string(&mut self, node: &Node, context: &str) -> Option<Located<String>> {
        match &node.value {
            Value::Str(s) => Some(Located::new(s.clone(), node.span.clone())),
            _ => {
                self.wrong_type(node, "a string", context);
                None
            }
        }
    }

    /// A string under `key`, if present.
    pub fn opt_string(&mut self, map: &Map<'_>, key: &str) -> Option<Located<String>> {
        map.get(key).and_then(|n| self.string(n, key))
    }

    /// A required string under `key`.
    pub fn req_string(&mut self, map: &Map<'_>, key: &str, help: &str) -> Option<Located<String>> {
        match map.get(key) {
            Some(n) => self.string(n, key),
            None => {
                self.missing(map, key, help);
                None
            }
        }
    }

    /// A boolean under `key`.
    pub fn opt_bool(&mut self, map: &Map<'_>, key: &str) -> Option<Located<bool>> {
        let node = map.get(key)?;
        match node.value {
            Value::Bool(b) => Some(Located::new(b, node.span.clone())),
            _ => {
                self.wrong_type(node, "`true` or `false`", key);
                None
            }
        }
    }

    /// An integer under `key`, at least `min`.
    pub fn opt_int(&mut self, map: &Map<'_>, key: &str, min: i64, max: i64) -> Option<Located<i64>> {
        let node = map.get(key)?;
        self.int(node, key, min, max)
    }

    /// An integer node within `min..=max`.
    pub fn int(&mut self, node: &Node, context: &str, min: i64, max: i64) -> Option<Located<i64>> {
        match node.value {
            Value::Int(i) if (min..=max).contains(&i) => Some(Located::new(i, node.span.clone())),
            Value::Int(i) => {
                let range = if i < min { format!("at least {min}") } else { format!("at most {max}") };
                let mut diagnostic = Diagnostic::error(
                    Code::OutOfRange,
                    &node.span,
                    format!("`{context}` is {i}, but must be {range}"),
                )
                .with_label(format!("must be {range}"));
                if i > max {
                    diagnostic = diagnostic.with_help(format!(
                        "use at most {max} (Prom's limit for `{context}`, see \"Limits on spec input\" in the README)"
                    ));
                }
                self.push(diagnostic);
                None
            }
            Value::Float(f) if f.is_finite() && f.fract() == 0.0 && f.abs() >= 9.2e18 => {
                // Too large for 64 bits (YAML reads it as a float): out of range, not mistyped.
                self.push(
                    Diagnostic::error(
                        Code::OutOfRange,
                        &node.span,
                        format!("`{context}` is {f:e}, but must be between {min} and {max}"),
                    )
                    .with_label(format!("must be between {min} and {max}"))
                    .with_help(format!("use at most {max}")),
                );
                None
            }
            _ => {
                self.wrong_type(node, "an integer", context);
                None
            }
        }
    }

    /// A count under `key` within `min..=max`.
    pub fn opt_count(&mut self, map: &Map<'_>, key: &str, min: u64, max: u64) -> Option<Located<u64>> {
        let to_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let located = self.opt_int(map, key, to_i64(min), to_i64(max))?;
        // Within `min..=max`, both non-negative: the conversion cannot fail.
        u64::try_from(located.value).ok().map(|n| Located::new(n, located.span))
    }

    /// A list of strings under `key` (empty when absent).
    pub fn string_list(&mut self, map: &Map<'_>, key: &str) -> Vec<Located<String>> {
        let Some(node) = map.get(key) else { return Vec::new() };
        match &node.value {
            Value::Seq(items) => items.iter().filter_map(|n| self.string(n, key)).collect(),
            _ => {
                self.wrong_type(node, "a list of strings", key);
                Vec::new()
            }
        }
    }

    /// One of a keyword type's spellings, under `key`.
    pub fn opt_keyword<K: Keyword>(&mut self, map: &Map<'_>, key: &str) -> Option<Located<K>> {
        let node = map.get(key)?;
        self.keyword(node, key)
    }

    /// One of a keyword type's spellings.
    pub fn keyword<K: Keyword>(&mut self, node: &Node, context: &str) -> Option<Located<K>> {
        let text = self.string(node, context)?;
        if let Some((_, value)) = K::ALL.iter().find(|(s, _)| *s == text.value) {
            return Some(Located::new(*value, text.span));
        }
        let spellings: Vec<&str> = K::ALL.iter().map(|(s, _)| *s).collect();
        let hint = did_you_mean(&text.value, spellings.iter().copied());
        let allowed = format!("one of {}", spellings.join(", "));
        self.push(
            Diagnostic::error(
                Code::InvalidValue,
                &text.span,
                format!("`{context}: {}` is not a valid value", text.value),
            )
            .with_label(format!("expected {allowed}"))
            .with_help(if hint.is_empty() { format!("use {allowed}") } else { hint }),
        );
        None
    }

    /// A duration such as `100ms`, `5s`, `2m`, `1h` or `1d` under `key`, at most `max`.
    pub fn opt_duration(&mut self, map: &Map<'_>, key: &str, max: Duration) -> Option<Located<Duration>> {
        self.opt_duration_within(map, key, Duration::ZERO, max)
    }

    /// A duration under `key` within `min..=max`.
    pub fn opt_duration_within(
        &mut self,
        map: &Map<'_>,
        key: &str,
        min: Duration,
        max: Duration,
    ) -> Option<Located<Duration>> {
        let node = map.get(key)?;
        if let Value::Int(n) = node.value {
            self.push(
                Diagnostic::error(Code::InvalidDuration, &node.span, format!("`{key}: {n}` has no unit"))
                    .with_label("add a unit")
                    .with_help(format!("write `{n}ms` or `{n}s`")),
            );
            return None;
        }
        let text = self.string(node, key)?;
        match parse_duration(&text.value) {
            Some(d) if d < min => {
                let limit = super::limits::duration_text(min);
                self.push(
                    Diagnostic::error(
                        Code::OutOfRange,
                        &text.span,
                        format!("`{key}: {}` is shorter than {limit}", text.value),
                    )
                    .with_label(format!("must be at least {limit}"))
                    .with_help(format!(
                        "use at least {limit} (Prom's lower bound for `{key}`, see \"Limits on spec input\" in the README)"
                    )),
                );
                None
            }
            Some(d) if d <= max => Some(Located::new(d, text.span)),
            Some(_) => {
                let limit = super::limits::duration_text(max);
                self.push(
                    Diagnostic::error(
                        Code::OutOfRange,
                        &text.span,
                        format!("`{key}: {}` is longer than {limit}", text.value),
                    )
                    .with_label(format!("must be at most {limit}"))
                    .with_help(format!(
                        "use at most {limit} (Prom's limit for `{key}`, see \"Limits on spec input\" in the README)"
                    )),
                );
                None
            }
            None => {
                self.push(
                    Diagnostic::error(
                        Code::InvalidDuration,
                        &text.span,
                        format!("`{key}: {}` is not a duration", text.value),
                    )
                    .with_help("write an integer and a unit: ms, s, m, h or d (e.g. `250ms`, `5s`)"),
                );
                None
            }
        }
    }
}

/// Parses `<integer><ms|s|m|h|d>`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let ms_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(ms_per_unit).map(Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("100ms"), Some(Duration::from_millis(100)));
        assert_eq!(parse_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("5 s"), None);
        assert_eq!(parse_duration("99999999999999999999d"), None);
    }
}
