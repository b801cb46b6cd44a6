//! What a failed publish or read tells the client: the runtime's [`Error`] as a problem
//! document. Store failures are reported server-side and answered without their internals.

use crate::error::Error;
use crate::server::Reporter;
use crate::server::problem::{Kind, Problem};
use serde_json::{Value, json};
use std::time::Duration;

/// The problem document for `error`, which happened while `doing` (e.g. "publishing to `t`").
pub(super) fn problem_of(error: &Error, doing: &str, reporter: &Reporter) -> Problem {
    match error {
        Error::UnknownTopic { .. } => Problem::new(Kind::NotFound, format!("{error}")),
        Error::Invalid { errors, .. } => {
            Problem::new(Kind::InvalidPayload, format!("{doing}: {error}")).with("errors", violations(errors))
        }
        Error::UnknownVersion { .. }
        | Error::NotPublishable { .. }
        | Error::ReservedHeader { .. }
        | Error::UndeclaredHeader { .. }
        | Error::VersionMismatch { .. }
        | Error::Serialize { .. } => Problem::new(Kind::BadRequest, format!("{doing}: {error}")),
        Error::Store { .. } | Error::Unavailable { .. } | Error::DiskFull { .. } | Error::Closed => {
            reporter.report(&format!("{doing}: {error}"));
            Problem::new(Kind::StoreUnavailable, format!("{doing}: the store failed; retry later"))
                .retry_after(Duration::from_secs(1))
        }
        _ => {
            reporter.report(&format!("{doing}: {error}"));
            Problem::new(Kind::Internal, format!("{doing} failed; the server log says why"))
        }
    }
}

/// The `errors` member: each violation's JSON pointer and reason, from the validator's lines
/// (`  at `/seq`: reason`, or `  at the payload root: reason`).
pub(super) fn violations(lines: &[String]) -> Value {
    let items: Vec<Value> = lines
        .iter()
        .map(|line| {
            let line = line.trim_start();
            let rest = line.strip_prefix("at ").unwrap_or(line);
            let (pointer, reason) = if let Some(quoted) = rest.strip_prefix('`') {
                match quoted.split_once("`: ") {
                    Some((pointer, reason)) => (pointer.to_string(), reason.to_string()),
                    None => (String::new(), rest.to_string()),
                }
            } else {
                let reason = rest.strip_prefix("the payload root: ").unwrap_or(rest);
                (String::new(), reason.to_string())
            };
            json!({ "pointer": pointer, "reason": reason })
        })
        .collect();
    Value::Array(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validator_lines_become_pointers_and_reasons() {
        let lines = [
            "  at `/seq`: -1 is less than the minimum of 0".to_string(),
            "  at the payload root: \"x\" is a required property".to_string(),
        ];
        assert_eq!(
            violations(&lines),
            json!([
                { "pointer": "/seq", "reason": "-1 is less than the minimum of 0" },
                { "pointer": "", "reason": "\"x\" is a required property" },
            ])
        );
    }
}
