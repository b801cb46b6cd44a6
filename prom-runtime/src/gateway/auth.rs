//! Bearer tokens: who may publish, subscribe or read, on which topics.
//!
//! The tokens file (`prom serve --tokens FILE`, or the same JSON in `PROM_API_TOKENS`):
//!
//! ```json
//! { "tokens": [
//!   { "name": "ingest", "token": "a-long-random-secret", "actions": ["publish"], "topics": ["heartbeat.*"] }
//! ] }
//! ```
//!
//! A topic pattern is a topic name where `*` stands for any run of characters (`*` alone: every
//! topic). Presented tokens are compared with every configured token in constant time, so the
//! time an answer takes says nothing about how much of a token was right; token values are
//! never logged nor echoed, only their names.

use serde::Deserialize;
use std::fmt;

/// What a request does with a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Action {
    /// `POST /topics/{topic}/events`.
    Publish,
    /// `GET /topics/{topic}/events` (Server-Sent Events or WebSocket).
    Subscribe,
    /// The snapshot APIs (`GET|HEAD` on a projector's path); topic patterns do not apply.
    Read,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Publish => "publish",
            Action::Subscribe => "subscribe",
            Action::Read => "read",
        })
    }
}

/// The shortest token accepted: shorter ones can be guessed.
pub const MIN_TOKEN_LEN: usize = 16;

/// One configured token.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    token: String,
    actions: Vec<Action>,
    topics: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    tokens: Vec<Entry>,
}

/// The configured tokens.
#[derive(Clone)]
pub struct Tokens {
    entries: Vec<Entry>,
}

impl fmt::Debug for Tokens {
    // Never the token values.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.entries.iter().map(|e| &e.name)).finish()
    }
}

/// Why a tokens file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokensError {
    /// The text is not the expected JSON (line and column of the problem).
    #[error(
        "{source_name}:{line}:{column}: {message}\nhelp: write {{\"tokens\": [{{\"name\": ..., \"token\": ..., \"actions\": [\"publish\"|\"subscribe\"|\"read\"], \"topics\": [\"pattern\"]}}]}}"
    )]
    Syntax {
        /// Where the text came from (a path or `PROM_API_TOKENS`).
        source_name: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What serde reported.
        message: String,
    },
    /// One token is unusable (JSON pointer of the value).
    #[error("{source_name}: at `{pointer}`: {reason}")]
    Invalid {
        /// Where the text came from.
        source_name: String,
        /// The JSON pointer of the offending value.
        pointer: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
}

/// The outcome of checking a request's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The token allows the action.
    Allowed,
    /// No token, or no configured token matches.
    Unauthenticated,
    /// The token (named) does not allow the action on the topic.
    Forbidden(String),
}

impl Tokens {
    /// Parses the tokens JSON; `source_name` names it in errors.
    pub fn parse(source_name: &str, text: &str) -> Result<Tokens, TokensError> {
        let file: File = serde_json::from_str(text).map_err(|e| TokensError::Syntax {
            source_name: source_name.to_string(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        let invalid = |pointer: String, reason: String| TokensError::Invalid {
            source_name: source_name.to_string(),
            pointer,
            reason,
        };
        if file.tokens.is_empty() {
            return Err(invalid(
                "/tokens".into(),
                "no token is configured, so every request would be refused; add one".into(),
            ));
        }
        for (i, entry) in file.tokens.iter().enumerate() {
            if entry.name.trim().is_empty() {
                return Err(invalid(
                    format!("/tokens/{i}/name"),
                    "give the token a name (it is what logs and 403 answers show)".into(),
                ));
            }
            if entry.token.len() < MIN_TOKEN_LEN || !entry.token.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(invalid(
                    format!("/tokens/{i}/token"),
                    format!(
                        "token `{}` must be at least {MIN_TOKEN_LEN} visible ASCII characters (no spaces); \
                         generate one with `openssl rand -hex 32`",
                        entry.name
                    ),
                ));
            }
            if let Some(j) = file.tokens[..i].iter().position(|other| other.token == entry.token) {
                return Err(invalid(
                    format!("/tokens/{i}/token"),
                    format!("token `{}` has the same value as `/tokens/{j}`; give each its own", entry.name),
                ));
            }
            if entry.actions.is_empty() {
                return Err(invalid(
                    format!("/tokens/{i}/actions"),
                    "list at least one of publish, subscribe, read".into(),
                ));
            }
            if entry.topics.is_empty() && entry.actions.iter().any(|a| *a != Action::Read) {
                return Err(invalid(
                    format!("/tokens/{i}/topics"),
                    "list the topic patterns it may use (`*` for all)".into(),
                ));
            }
            if let Some(k) = entry.topics.iter().position(|t| t.is_empty()) {
                return Err(invalid(
                    format!("/tokens/{i}/topics/{k}"),
                    "an empty pattern matches no topic".into(),
                ));
            }
        }
        Ok(Tokens { entries: file.tokens })
    }

    /// Whether `authorization` (the header's value, if any) allows `action` on `topic` (the
    /// snapshot APIs' `Read` has none).
    pub fn check(&self, authorization: Option<&[u8]>, action: Action, topic: Option<&str>) -> Verdict {
        let Some(presented) = authorization.and_then(bearer) else { return Verdict::Unauthenticated };
        // Every configured token is compared, so the time taken does not depend on which matched.
        let mut found = None;
        for entry in &self.entries {
            if constant_time_eq(entry.token.as_bytes(), presented) {
                found = Some(entry);
            }
        }
        let Some(entry) = found else { return Verdict::Unauthenticated };
        let topic_allowed = match topic {
            None => true,
            Some(topic) => entry.topics.iter().any(|pattern| matches(pattern, topic)),
        };
        if entry.actions.contains(&action) && topic_allowed {
            Verdict::Allowed
        } else {
            Verdict::Forbidden(entry.name.clone())
        }
    }
}

/// The token of an `Authorization: Bearer TOKEN` value.
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    scheme.eq_ignore_ascii_case(b"bearer ").then(|| rest.trim_ascii())
}

/// Compares without stopping at the first difference (nor at a length difference).
fn constant_time_eq(expected: &[u8], presented: &[u8]) -> bool {
    let mut difference = u8::from(expected.len() != presented.len());
    for (i, &byte) in expected.iter().enumerate() {
        difference |= byte ^ presented.get(i).copied().unwrap_or(!byte);
    }
    std::hint::black_box(difference) == 0
}

/// Whether `topic` matches `pattern`, where `*` matches any run of characters.
pub fn matches(pattern: &str, topic: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = topic.strip_prefix(first) else { return false };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else { return rest.is_empty() };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"{"tokens": [
        {"name": "ingest", "token": "0123456789abcdef", "actions": ["publish"], "topics": ["heartbeat.*"]},
        {"name": "reader", "token": "fedcba9876543210", "actions": ["subscribe", "read"], "topics": ["*"]}
    ]}"#;

    #[test]
    fn tokens_are_scoped_to_actions_and_topic_patterns() {
        let tokens = Tokens::parse("tokens.json", FILE).expect("valid");
        let ingest = Some(&b"Bearer 0123456789abcdef"[..]);
        assert_eq!(tokens.check(ingest, Action::Publish, Some("heartbeat.received")), Verdict::Allowed);
        assert_eq!(
            tokens.check(ingest, Action::Publish, Some("process.state")),
            Verdict::Forbidden("ingest".into())
        );
        assert_eq!(
            tokens.check(ingest, Action::Subscribe, Some("heartbeat.received")),
            Verdict::Forbidden("ingest".into())
        );
        let reader = Some(&b"bearer fedcba9876543210"[..]);
        assert_eq!(tokens.check(reader, Action::Read, None), Verdict::Allowed);
        for bad in
            [None, Some(&b"Bearer 0123456789abcdeX"[..]), Some(b"Basic 0123456789abcdef"), Some(b"Bearer ")]
        {
            assert_eq!(
                tokens.check(bad, Action::Publish, Some("heartbeat.received")),
                Verdict::Unauthenticated
            );
        }
        assert_eq!(format!("{tokens:?}"), r#"["ingest", "reader"]"#, "never the values");
    }

    #[test]
    fn bad_files_say_where_and_how_to_fix() {
        let e = Tokens::parse("t.json", "{\"tokens\": [}").expect_err("syntax");
        assert!(e.to_string().starts_with("t.json:1:"), "{e}");
        let short =
            r#"{"tokens": [{"name": "a", "token": "short", "actions": ["publish"], "topics": ["*"]}]}"#;
        let e = Tokens::parse("t.json", short).expect_err("short");
        assert!(
            e.to_string().contains("at `/tokens/0/token`") && e.to_string().contains("openssl rand"),
            "{e}"
        );
        let action = r#"{"tokens": [{"name": "a", "token": "0123456789abcdef", "actions": ["write"], "topics": ["*"]}]}"#;
        assert!(Tokens::parse("t.json", action).is_err());
        assert!(Tokens::parse("t.json", r#"{"tokens": []}"#).is_err());
    }

    #[test]
    fn patterns_match_runs_of_characters() {
        assert!(matches("*", "anything"));
        assert!(matches("heartbeat.*", "heartbeat.received"));
        assert!(!matches("heartbeat.*", "process.state"));
        assert!(matches("a*c*e", "abcde"));
        assert!(!matches("a*c*e", "abcd"));
        assert!(matches("exact", "exact") && !matches("exact", "exact2"));
        assert!(matches("*.state", "process.state") && !matches("*.state", "state"));
    }

    #[test]
    fn comparison_sees_every_byte_and_the_length() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
