//! The pure part of the snapshot API: list parameters, cursors and ETags.
//!
//! Query parameters never reach MongoDB as operators: a filter is accepted only when its name is
//! one of the declared fields, and its value is compared with `$eq`, so `status[$ne]=x`,
//! `$where=...` or `a.b=c` cannot change what the query means.
//!
//! Percent-escapes are decoded strictly: a `%` not followed by two hex digits, or bytes that are
//! not UTF-8 once decoded, are refused (lenient decoders turn them into U+FFFD and answer for a
//! value the client never sent).

use sha2::{Digest, Sha256};

/// A validated `GET {path}/list` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// Documents per page (1..=`max_limit`).
    pub limit: u64,
    /// Return documents whose `_id` sorts after this one (from the cursor).
    pub after: Option<String>,
    /// Exact-match filters, `(field, value)`, each field at most once.
    pub filters: Vec<(String, String)>,
}

// The server decodes every request target the same way; the snapshot handlers reuse it.
pub use crate::server::target::{decode_component, parse_query_string};

/// Checks that a declared filter is a plain top-level field name MongoDB reads literally.
pub fn check_field_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.chars().any(|c| matches!(c, '$' | '.' | '[' | ']' | '\0')) {
        return Err(format!(
            "filter `{name}` must be a top-level field name without `$`, `.`, brackets or NUL"
        ));
    }
    Ok(())
}

/// Validates the parameters of a list request against the declared filters.
pub fn parse_list(
    pairs: &[(String, String)],
    allowed: &[String],
    max_limit: u64,
) -> Result<ListQuery, String> {
    let mut query = ListQuery { limit: max_limit, after: None, filters: Vec::new() };
    let mut seen: Vec<&str> = Vec::new();
    for (name, value) in pairs {
        if seen.contains(&name.as_str()) {
            return Err(format!("the parameter `{name}` is given twice"));
        }
        seen.push(name);
        match name.as_str() {
            "limit" => query.limit = parse_limit(value, max_limit)?,
            "cursor" => query.after = Some(decode_cursor(value)?),
            _ if check_field_name(name).is_err() => {
                return Err(format!("`{name}` is not a field name; query operators are not accepted"));
            }
            _ if allowed.contains(name) => query.filters.push((name.clone(), value.clone())),
            _ => return Err(format!("`{name}` is not a filter of this collection")),
        }
    }
    Ok(query)
}

fn parse_limit(text: &str, max_limit: u64) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(0) | Err(_) => Err(format!("`limit={text}` must be a whole number from 1 to {max_limit}")),
        Ok(n) => Ok(n.min(max_limit)),
    }
}

/// The cursor that continues after the document `id` (opaque to clients).
pub fn encode_cursor(id: &str) -> String {
    id.bytes().map(|b| format!("{b:02x}")).collect()
}

/// The `_id` a cursor continues after.
pub fn decode_cursor(cursor: &str) -> Result<String, String> {
    let invalid = || format!("`cursor={cursor}` is not a cursor this API returned");
    if cursor.is_empty() || !cursor.len().is_multiple_of(2) {
        return Err(invalid());
    }
    let bytes = (0..cursor.len())
        .step_by(2)
        .map(|i| cursor.get(i..i + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()))
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(invalid)?;
    String::from_utf8(bytes).map_err(|_| invalid())
}

/// A strong ETag: the SHA-256 of the stored document's bytes, quoted.
pub fn etag(document_bytes: &[u8]) -> String {
    let digest = Sha256::digest(document_bytes);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// Whether an `If-None-Match` header value matches `etag` (weak comparison, as RFC 9110 says
/// for this header; `*` matches any existing document).
pub fn none_match(header: &str, etag: &str) -> bool {
    header.split(',').map(str::trim).any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

/// The time of `GET {path}/snap/{key}?at=T` (`None`: now): `at` is the only parameter, given
/// once, as RFC 3339 or ms since the epoch. The error names the parameter and the format.
pub fn parse_snap(pairs: &[(String, String)]) -> Result<Option<i64>, String> {
    let mut at = None;
    for (name, value) in pairs {
        match name.as_str() {
            "at" if at.is_some() => return Err("the parameter `at` is given twice; give it once".into()),
            "at" => {
                let ms = crate::record::parse_ts(value).map_err(|e| format!("the parameter `at`: {e}"))?;
                at = Some(ms);
            }
            other => {
                return Err(format!(
                    "unknown query parameter `{other}`; a snapshot takes only `at` (a time, RFC 3339)"
                ));
            }
        }
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn only_declared_filters_and_no_operators() {
        let allowed = vec!["status".to_string(), "host".to_string()];
        let ok = parse_list(&pairs(&[("status", "up"), ("limit", "900")]), &allowed, 500).expect("ok");
        assert_eq!(ok, ListQuery { limit: 500, after: None, filters: pairs(&[("status", "up")]) });
        for bad in [
            &[("status[$ne]", "x")][..],
            &[("$where", "1")],
            &[("name", "x")],
            &[("host.x", "y")],
            &[("status", "a"), ("status", "b")],
            &[("limit", "0")],
            &[("limit", "-1")],
            &[("cursor", "zz")],
        ] {
            assert!(parse_list(&pairs(bad), &allowed, 500).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn percent_escapes_decode_strictly() {
        assert_eq!(decode_component("a%20b+c%C3%A9", true).as_deref(), Ok("a b cé"));
        assert_eq!(decode_component("a+b", false).as_deref(), Ok("a+b"));
        let not_utf8 = decode_component("%ff", true).expect_err("0xFF is not UTF-8");
        assert!(not_utf8.contains("not UTF-8"), "{not_utf8}");
        for bad in ["%", "%f", "%zz", "a%g1", "%e9"] {
            assert!(decode_component(bad, true).is_err(), "{bad}");
        }
        assert_eq!(
            parse_query_string("status=up&&limit=5&flag").expect("ok"),
            pairs(&[("status", "up"), ("limit", "5"), ("flag", "")])
        );
        let error = parse_query_string("status=%ff").expect_err("undecodable");
        assert!(error.starts_with("query parameter `status`"), "{error}");
        assert!(parse_query_string("%ff=1").is_err());
    }

    #[test]
    fn a_snapshot_takes_one_time() {
        assert_eq!(parse_snap(&[]), Ok(None));
        assert_eq!(parse_snap(&pairs(&[("at", "1970-01-01T00:00:01Z")])), Ok(Some(1000)));
        assert_eq!(parse_snap(&pairs(&[("at", "2500")])), Ok(Some(2500)));
        let bad = parse_snap(&pairs(&[("at", "yesterday")])).expect_err("not a time");
        assert!(bad.contains("`at`") && bad.contains("RFC 3339"), "{bad}");
        assert!(parse_snap(&pairs(&[("at", "1"), ("at", "2")])).is_err());
        assert!(parse_snap(&pairs(&[("when", "1")])).expect_err("unknown").contains("`when`"));
    }

    #[test]
    fn cursors_round_trip_and_etags_compare() {
        let id = "proc/é 1";
        assert_eq!(decode_cursor(&encode_cursor(id)).as_deref(), Ok(id));
        assert!(decode_cursor("ff").is_err(), "not UTF-8");
        let tag = etag(b"doc");
        assert!(tag.starts_with('"') && tag.len() == 66);
        assert!(none_match(&tag, &tag));
        assert!(none_match(&format!("\"x\", W/{tag}"), &tag));
        assert!(none_match("*", &tag));
        assert!(!none_match("\"other\"", &tag));
    }
}
