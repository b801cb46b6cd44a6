//! Tamper evidence: each event of a tamper-evident stream stores the hash of its predecessor
//! and its own, so editing, removing or reordering a stored event breaks the chain.
//!
//! `hash = SHA-256(encoding)`, where the encoding is the ASCII tag `prom-stream-chain-v1`
//! followed by these fields, each as an 8-byte big-endian length and then its bytes (UTF-8):
//! aggregate, stream id, version (decimal), topic, event id (hyphenated lowercase UUID),
//! ts (decimal ms), key (`0x00` when absent, else `0x01` then the key), headers and payload as
//! canonical JSON (object keys sorted by their UTF-8 bytes, no whitespace, strings escaped as
//! `serde_json` does, integral numbers within ±2^53 as integers, other numbers in their
//! shortest round-trip form), and finally the predecessor's 32-byte hash (zeros for version 1).

use super::{ChainLink, StreamId};
use crate::record::{EventRecord, Headers, NewEvent};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The fields of an event the chain covers.
#[derive(Debug, Clone, Copy)]
pub struct Chained<'a> {
    /// Topic name.
    pub topic: &'a str,
    /// Event id.
    pub id: uuid::Uuid,
    /// Publish time, ms.
    pub ts: i64,
    /// Partition key.
    pub key: Option<&'a str>,
    /// Headers.
    pub headers: &'a Headers,
    /// Payload.
    pub payload: &'a Value,
}

impl<'a> From<&'a NewEvent> for Chained<'a> {
    fn from(e: &'a NewEvent) -> Chained<'a> {
        Chained {
            topic: &e.topic,
            id: e.id,
            ts: e.ts,
            key: e.key.as_deref(),
            headers: &e.headers,
            payload: &e.payload,
        }
    }
}

impl<'a> From<&'a EventRecord> for Chained<'a> {
    fn from(e: &'a EventRecord) -> Chained<'a> {
        Chained {
            topic: &e.topic,
            id: e.id,
            ts: e.ts,
            key: e.key.as_deref(),
            headers: &e.headers,
            payload: &e.payload,
        }
    }
}

/// The predecessor hash of version 1.
pub const GENESIS: [u8; 32] = [0; 32];

/// The link of `event` at `version` of `stream`, after a predecessor whose hash is `prev`.
pub fn link(stream: &StreamId, version: u64, event: Chained<'_>, prev: [u8; 32]) -> ChainLink {
    ChainLink { prev, hash: hash(stream, version, event, &prev) }
}

/// SHA-256 over the canonical encoding described in the module docs.
pub fn hash(stream: &StreamId, version: u64, event: Chained<'_>, prev: &[u8; 32]) -> [u8; 32] {
    Prefix::new(stream, version, event).finish(prev)
}

/// The hash of an event at a version with everything fed in but its predecessor's hash.
///
/// The encoding puts the predecessor last, so an append builds this (canonical JSON and all)
/// before its job is queued and the committer, which alone sees the predecessor, only feeds
/// 32 bytes and finalizes.
#[derive(Clone)]
pub struct Prefix {
    version: u64,
    hasher: Sha256,
}

impl Prefix {
    /// Feeds every field of `event` at `version` of `stream`, through one scratch buffer.
    pub fn new(stream: &StreamId, version: u64, event: Chained<'_>) -> Prefix {
        use std::fmt::Write as _;
        let mut h = Sha256::new();
        h.update(b"prom-stream-chain-v1");
        let mut field = |bytes: &[u8]| {
            h.update((bytes.len() as u64).to_be_bytes());
            h.update(bytes);
        };
        let mut scratch = String::with_capacity(256);
        field(stream.aggregate.as_bytes());
        field(stream.id.as_bytes());
        let _ = write!(scratch, "{version}");
        field(scratch.as_bytes());
        field(event.topic.as_bytes());
        field(event.id.hyphenated().encode_lower(&mut uuid::Uuid::encode_buffer()).as_bytes());
        scratch.clear();
        let _ = write!(scratch, "{}", event.ts);
        field(scratch.as_bytes());
        match event.key {
            None => field(&[0]),
            Some(key) => {
                scratch.clear();
                scratch.push('\u{1}');
                scratch.push_str(key);
                field(scratch.as_bytes());
            }
        }
        scratch.clear();
        scratch.push('{');
        for (i, (name, value)) in event.headers.iter().enumerate() {
            if i > 0 {
                scratch.push(',');
            }
            push_string(&mut scratch, name);
            scratch.push(':');
            push_string(&mut scratch, value);
        }
        scratch.push('}');
        field(scratch.as_bytes());
        scratch.clear();
        canonical_json(event.payload, &mut scratch);
        field(scratch.as_bytes());
        Prefix { version, hasher: h }
    }

    /// The version this prefix was built for (the version is hashed).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The hash, given the predecessor's.
    pub fn finish(self, prev: &[u8; 32]) -> [u8; 32] {
        let mut h = self.hasher;
        h.update(prev);
        h.finalize().into()
    }
}

/// `value` as canonical JSON (see the module docs).
pub fn canonical_json(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => push_number(n, out),
        Value::String(s) => push_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            // Maps keep insertion order (`preserve_order`); payloads built or parsed with sorted
            // keys need no sorted copy.
            if map.keys().is_sorted_by(|a, b| a.as_bytes() <= b.as_bytes()) {
                push_object(map.iter(), out);
            } else {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
                push_object(entries.into_iter(), out);
            }
        }
    }
}

/// An object of `entries`, already in canonical (sorted) order.
fn push_object<'a>(entries: impl Iterator<Item = (&'a String, &'a Value)>, out: &mut String) {
    out.push('{');
    for (i, (name, item)) in entries.enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_string(out, name);
        out.push(':');
        canonical_json(item, out);
    }
    out.push('}');
}

/// Integral numbers within ±2^53 as integers (a store may hand `1` back as `1.0`), others as
/// `serde_json` prints them (shortest round-trip form).
fn push_number(n: &serde_json::Number, out: &mut String) {
    use std::fmt::Write as _;
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if let Some(f) = n.as_f64().filter(|_| n.is_f64())
        && f.fract() == 0.0
        && f.abs() <= EXACT
    {
        // Exact: |f| <= 2^53 and integral.
        #[allow(clippy::cast_possible_truncation)]
        let _ = write!(out, "{}", f as i64);
        return;
    }
    let _ = write!(out, "{n}");
}

/// `s` as a JSON string, escaped as `serde_json` escapes it (only quotes, backslashes and control
/// characters), without an intermediate string when nothing needs escaping.
fn push_string(out: &mut String, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
        return;
    }
    // Serializing a string cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_json_sorts_keys_and_normalises_integral_floats() {
        let mut out = String::new();
        canonical_json(&json!({"b": [1.0, 2.5, "x\"y"], "a": {"d": null, "c": true}}), &mut out);
        assert_eq!(out, r#"{"a":{"c":true,"d":null},"b":[1,2.5,"x\"y"]}"#);
    }

    /// The encoding as the module docs spell it, field by field with allocated strings: the
    /// hasher's scratch-buffer encoding must give the same hash (stored chains stay valid).
    fn documented_hash(stream: &StreamId, version: u64, event: Chained<'_>, prev: &[u8; 32]) -> [u8; 32] {
        let mut bytes = b"prom-stream-chain-v1".to_vec();
        let mut field = |b: &[u8]| {
            bytes.extend((b.len() as u64).to_be_bytes());
            bytes.extend(b);
        };
        field(stream.aggregate.as_bytes());
        field(stream.id.as_bytes());
        field(version.to_string().as_bytes());
        field(event.topic.as_bytes());
        field(event.id.hyphenated().to_string().as_bytes());
        field(event.ts.to_string().as_bytes());
        match event.key {
            None => field(&[0]),
            Some(key) => field(&[&[1u8][..], key.as_bytes()].concat()),
        }
        let headers: Vec<String> = event
            .headers
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}:{}",
                    serde_json::to_string(k).expect("a string"),
                    serde_json::to_string(v).expect("a string")
                )
            })
            .collect();
        field(format!("{{{}}}", headers.join(",")).as_bytes());
        let mut payload = String::new();
        canonical_json(event.payload, &mut payload);
        field(payload.as_bytes());
        bytes.extend(prev);
        Sha256::digest(&bytes).into()
    }

    #[test]
    fn the_hash_is_the_documented_encoding() {
        let stream = StreamId::new("account", "a\"1");
        let mut headers = Headers::new();
        headers.insert("x-schema-version".into(), "2".into());
        headers.insert("x-note".into(), "tab\there \u{1} \\ é".into());
        let payload =
            json!({"z": [1.0, -0.5, 1e300, 12345678901234567890u64], "a": {"q\"": null, "b": "ü\n"}});
        let event = Chained {
            topic: "money.deposited",
            id: uuid::Uuid::now_v7(),
            ts: 1_700_000_000_123,
            key: Some("a\"1"),
            headers: &headers,
            payload: &payload,
        };
        for (version, key, prev) in [(1, Some("a\"1"), GENESIS), (42, None, [7; 32]), (3, Some(""), [1; 32])]
        {
            let event = Chained { key, ..event };
            assert_eq!(hash(&stream, version, event, &prev), documented_hash(&stream, version, event, &prev));
        }
        let empty = Headers::new();
        let bare = Chained { headers: &empty, ..event };
        assert_eq!(hash(&stream, 1, bare, &GENESIS), documented_hash(&stream, 1, bare, &GENESIS));
        let mut out = String::new();
        push_string(&mut out, "a\"b\\c\u{7f}\u{1f}");
        assert_eq!(out, serde_json::to_string("a\"b\\c\u{7f}\u{1f}").expect("a string"));
    }

    #[test]
    fn every_covered_field_changes_the_hash() {
        let stream = StreamId::new("account", "42");
        let mut headers = Headers::new();
        headers.insert("x-schema-version".into(), "1".into());
        let payload = json!({"accountId": "42", "amount": 5});
        let id = uuid::Uuid::now_v7();
        let base = Chained {
            topic: "money.deposited",
            id,
            ts: 1,
            key: Some("42"),
            headers: &headers,
            payload: &payload,
        };
        let h = hash(&stream, 1, base, &GENESIS);
        assert_eq!(h, hash(&stream, 1, base, &GENESIS), "deterministic");
        let other_payload = json!({"accountId": "42", "amount": 6});
        let mut other_headers = headers.clone();
        other_headers.insert("x-schema-version".into(), "2".into());
        let changed = [
            hash(&StreamId::new("account", "43"), 1, base, &GENESIS),
            hash(&stream, 2, base, &GENESIS),
            hash(&stream, 1, Chained { topic: "money.withdrawn", ..base }, &GENESIS),
            hash(&stream, 1, Chained { id: uuid::Uuid::now_v7(), ..base }, &GENESIS),
            hash(&stream, 1, Chained { ts: 2, ..base }, &GENESIS),
            hash(&stream, 1, Chained { key: None, ..base }, &GENESIS),
            hash(&stream, 1, Chained { key: Some(""), ..base }, &GENESIS),
            hash(&stream, 1, Chained { headers: &other_headers, ..base }, &GENESIS),
            hash(&stream, 1, Chained { payload: &other_payload, ..base }, &GENESIS),
            hash(&stream, 1, base, &[1; 32]),
        ];
        for (i, other) in changed.iter().enumerate() {
            assert_ne!(*other, h, "change {i} went unnoticed");
        }
    }
}
