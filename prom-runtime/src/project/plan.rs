//! From events to changes: key and version extraction, tombstones, and collapsing a batch to one
//! change per key.
//!
//! A document's `_id` is its key as text, by the same rule as event keys (strings as they are,
//! other values as JSON text), so a `null` tombstone — which has no payload to point into — finds
//! its document through the event's key.

use crate::record::EventRecord;
#[cfg(feature = "mongo")]
use mongodb::bson::Bson;
use prom_spec::schema::value_kind;
use serde_json::{Number, Value};
use std::cmp::Ordering;
use std::collections::HashMap;

/// What a change does to its key's document.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Replace (or insert) the document with this one: the payload, a JSON object, with `_id`
    /// set to the key (each store encodes it its own way).
    Upsert(Value),
    /// Delete the document.
    Delete,
}

/// One write, derived from an event.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The document's `_id`.
    pub key: String,
    /// The event's version (at the projector's `version` pointer), if it has one.
    pub version: Option<Number>,
    /// Upsert or delete.
    pub op: Op,
    /// The offset of the event this change came from.
    pub offset: i64,
}

/// Where a projector finds the key and version inside payloads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pointers {
    /// JSON pointer to the key.
    pub key: String,
    /// JSON pointer to the version, when updates are version-guarded.
    pub version: Option<String>,
    /// Whether the key pointer is the topic's key (then `null` tombstones use the event key).
    pub key_is_event_key: bool,
}

/// Whether a payload deletes its key: `null`, or an object with `_deleted: true`.
pub fn is_tombstone(payload: &Value) -> bool {
    payload.is_null() || payload.get("_deleted") == Some(&Value::Bool(true))
}

/// A key value as text: strings as they are, numbers and booleans as JSON.
pub fn key_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(_) | Value::Bool(_) => Some(value.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// The change `record` asks for, or why it cannot be projected (it is then dead-lettered).
pub fn change_of(record: &EventRecord, pointers: &Pointers) -> Result<Change, String> {
    let (key, version, fields) = parts_of(record, pointers)?;
    let op = match fields {
        None => Op::Delete,
        Some(fields) => Op::Upsert(document(fields, &key)),
    };
    Ok(Change { key, version, op, offset: record.offset })
}

/// A change as the embedded store writes it: the document encoded to JSON text once, by the
/// task that decodes the event, so the committer (which every writer of the store waits for)
/// only binds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    /// The row's key (the document's `_id`).
    pub key: String,
    /// The event's version, if it has one.
    pub version: Option<Number>,
    /// The document's JSON text; `None` deletes the row.
    pub text: Option<String>,
    /// The document itself, kept only when changefeeds publish it.
    pub document: Option<Value>,
    /// The offset of the event this change came from.
    pub offset: i64,
}

impl Encoded {
    /// The change as the changefeeds see it; `None` for an upsert whose document was not kept.
    pub fn into_change(self) -> Option<Change> {
        let op = match (self.text, self.document) {
            (None, _) => Op::Delete,
            (Some(_), Some(document)) => Op::Upsert(document),
            (Some(_), None) => return None,
        };
        Some(Change { key: self.key, version: self.version, op, offset: self.offset })
    }
}

/// [`change_of`] for the embedded store: the document encoded as text straight from the
/// payload (no copy of its fields), and kept as a value too when `keep_document`.
pub fn encoded_of(record: &EventRecord, pointers: &Pointers, keep_document: bool) -> Result<Encoded, String> {
    let (key, version, fields) = parts_of(record, pointers)?;
    let (text, document) = match fields {
        None => (None, None),
        Some(fields) => {
            let text = serde_json::to_string(&WithId { key: &key, fields })
                .map_err(|e| format!("the document cannot be encoded: {e}"))?;
            (Some(text), keep_document.then(|| document(fields, &key)))
        }
    };
    Ok(Encoded { key, version, text, document, offset: record.offset })
}

/// An event's key, version and — for an upsert — payload fields.
type Parts<'r> = (String, Option<Number>, Option<&'r serde_json::Map<String, Value>>);

/// Key, version and — for an upsert — the payload's fields; or why the event cannot be
/// projected.
fn parts_of<'r>(record: &'r EventRecord, pointers: &Pointers) -> Result<Parts<'r>, String> {
    let payload: &Value = &record.payload;
    if payload.is_null() {
        if !pointers.key_is_event_key {
            return Err(format!(
                "a null tombstone has no payload to read the key `{}` from, and that pointer is not the \
                 topic's key; publish `{{\"_deleted\": true, ...}}` with the key instead",
                pointers.key
            ));
        }
        let key = record.key.clone().ok_or("a null tombstone without an event key names no document")?;
        return Ok((key, None, None));
    }
    let key = payload.pointer(&pointers.key).and_then(key_text).ok_or_else(|| {
        format!("the payload has no string, number or boolean at the key `{}`", pointers.key)
    })?;
    let version = match &pointers.version {
        None => None,
        Some(pointer) => match payload.pointer(pointer) {
            Some(Value::Number(n)) => Some(n.clone()),
            Some(_) | None if is_tombstone(payload) => None,
            Some(other) => return Err(format!("the version at `{pointer}` is {other}, not a number")),
            None => return Err(format!("the payload has no version at `{pointer}`")),
        },
    };
    if is_tombstone(payload) {
        return Ok((key, version, None));
    }
    let Value::Object(fields) = payload else {
        return Err(format!("the payload is {}, not an object, so it is no document", value_kind(payload)));
    };
    Ok((key, version, Some(fields)))
}

/// The document an upsert stores: `_id` (the key) first, then the payload's other fields.
fn document(fields: &serde_json::Map<String, Value>, key: &str) -> Value {
    let mut doc = serde_json::Map::with_capacity(fields.len() + 1);
    doc.insert("_id".into(), Value::String(key.to_string()));
    doc.extend(fields.iter().filter(|(k, _)| *k != "_id").map(|(k, v)| (k.clone(), v.clone())));
    Value::Object(doc)
}

/// Serializes as [`document`] builds, without building it.
struct WithId<'a> {
    key: &'a str,
    fields: &'a serde_json::Map<String, Value>,
}

impl serde::Serialize for WithId<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("_id", self.key)?;
        for (name, value) in self.fields.iter().filter(|(k, _)| *k != "_id") {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// Orders two versions numerically (integers exactly, otherwise as floats).
pub fn compare_versions(a: &Number, b: &Number) -> Ordering {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return x.cmp(&y);
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return x.cmp(&y);
    }
    let (x, y) = (a.as_f64().unwrap_or(f64::NAN), b.as_f64().unwrap_or(f64::NAN));
    x.partial_cmp(&y).unwrap_or(Ordering::Equal)
}

/// A version as BSON, for the guard's comparison on the server.
#[cfg(feature = "mongo")]
pub fn version_bson(n: &Number) -> Bson {
    match n.as_i64() {
        Some(i) => Bson::Int64(i),
        None => Bson::Double(n.as_f64().unwrap_or(f64::MAX)),
    }
}

/// Collapses `changes` (in offset order) to one per key, in order of each key's first change.
///
/// Applying them one by one would end where the winner ends: a later change replaces an earlier
/// one unless both carry versions and the later one's is lower (a stale event). Versions are
/// still checked against the stored document when the winner is written.
pub fn collapse(changes: Vec<Change>) -> Vec<Change> {
    collapse_by(changes, |c| (&c.key, c.version.as_ref()))
}

/// [`collapse`] for any change type, given its key and version.
pub fn collapse_by<T>(items: Vec<T>, id: impl Fn(&T) -> (&str, Option<&Number>)) -> Vec<T> {
    // The winner of each key by index, in order of first change: the keys are borrowed, not
    // copied, and a batch without repeated keys (the common case) is returned as it is.
    let winners = {
        let mut slots: HashMap<&str, usize> = HashMap::with_capacity(items.len());
        let mut winners: Vec<usize> = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let (key, version) = id(item);
            match slots.get(key) {
                None => {
                    slots.insert(key, winners.len());
                    winners.push(i);
                }
                Some(&slot) => {
                    let (_, current) = id(&items[winners[slot]]);
                    let stale = match (version, current) {
                        (Some(new), Some(old)) => compare_versions(new, old) == Ordering::Less,
                        _ => false,
                    };
                    if !stale {
                        winners[slot] = i;
                    }
                }
            }
        }
        winners
    };
    if winners.len() == items.len() {
        return items;
    }
    let mut items: Vec<Option<T>> = items.into_iter().map(Some).collect();
    winners.into_iter().filter_map(|i| items.get_mut(i).and_then(Option::take)).collect()
}

/// A JSON pointer as a MongoDB dotted field path (`/a/b` → `a.b`).
pub fn dotted_path(pointer: &str) -> Result<String, String> {
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(format!("`{pointer}` is not a JSON pointer (it must start with `/`)"));
    };
    let mut parts = Vec::new();
    for raw in rest.split('/') {
        let part = raw.replace("~1", "/").replace("~0", "~");
        if part.is_empty() || part.contains('.') || part.starts_with('$') {
            return Err(format!(
                "`{pointer}` has the segment `{part}`, which MongoDB cannot address in a field path \
                 (empty, containing `.` or starting with `$`); rename the field"
            ));
        }
        parts.push(part);
    }
    Ok(parts.join("."))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn change(key: &str, version: Option<i64>, offset: i64, delete: bool) -> Change {
        Change {
            key: key.into(),
            version: version.map(Number::from),
            op: if delete { Op::Delete } else { Op::Upsert(json!({ "_id": key, "o": offset })) },
            offset,
        }
    }

    #[test]
    fn collapse_keeps_the_newest_change_per_key_and_skips_stale_ones() {
        let out = collapse(vec![
            change("a", Some(1), 1, false),
            change("b", Some(1), 2, false),
            change("a", Some(3), 3, false),
            change("a", Some(2), 4, false), // stale: a is at 3 in this batch
            change("b", Some(1), 5, true),  // same version, later: wins
        ]);
        assert_eq!(out.iter().map(|c| (c.key.as_str(), c.offset)).collect::<Vec<_>>(), [("a", 3), ("b", 5)]);
    }

    #[test]
    fn without_versions_the_last_change_wins() {
        let out = collapse(vec![change("a", None, 1, false), change("a", None, 2, true)]);
        assert_eq!(out, [change("a", None, 2, true)]);
    }

    #[test]
    fn encoded_text_is_the_document_change_of_builds() {
        let pointers = Pointers { key: "/id".into(), version: Some("/v".into()), key_is_event_key: true };
        let payload = json!({ "b": [1, {"c": "\"q\""}], "_id": "stale", "id": 7, "v": 2, "a": null });
        let record = crate::record::NewEvent::new("t", payload).into_record(3);
        let change = change_of(&record, &pointers).expect("change");
        let Op::Upsert(document) = &change.op else { panic!("an upsert") };
        let encoded = encoded_of(&record, &pointers, false).expect("encoded");
        assert_eq!(encoded.text.as_deref(), Some(serde_json::to_string(document).expect("json").as_str()));
        assert_eq!(
            (encoded.key.as_str(), encoded.version.clone(), encoded.offset),
            ("7", Some(Number::from(2)), 3)
        );
        assert!(encoded.document.is_none() && encoded.clone().into_change().is_none(), "not kept");
        let kept = encoded_of(&record, &pointers, true).expect("encoded");
        assert_eq!(kept.into_change(), Some(change));
        let mut tombstone = record.clone();
        tombstone.payload = json!({ "id": 7, "_deleted": true }).into();
        let deleted = encoded_of(&tombstone, &pointers, false).expect("encoded");
        assert_eq!(deleted.text, None);
        assert_eq!(deleted.into_change().map(|c| c.op), Some(Op::Delete));
        tombstone.payload = json!([1]).into();
        assert!(encoded_of(&tombstone, &pointers, false).is_err(), "not an object");
    }

    #[test]
    fn collapse_by_keeps_input_without_repeats_and_moves_winners_otherwise() {
        let unique = vec![change("a", Some(1), 1, false), change("b", None, 2, false)];
        assert_eq!(collapse_by(unique.clone(), |c| (&c.key, c.version.as_ref())), unique);
        let repeated = vec![
            change("a", Some(2), 1, false),
            change("b", None, 2, false),
            change("a", Some(1), 3, false), // stale
            change("b", None, 4, true),
        ];
        let out = collapse_by(repeated.clone(), |c| (&c.key, c.version.as_ref()));
        assert_eq!(out, collapse(repeated));
        assert_eq!(out.iter().map(|c| c.offset).collect::<Vec<_>>(), [1, 4]);
    }

    #[test]
    fn pointers_become_dotted_paths() {
        assert_eq!(dotted_path("/seq").as_deref(), Ok("seq"));
        assert_eq!(dotted_path("/meta/seq").as_deref(), Ok("meta.seq"));
        assert!(dotted_path("seq").is_err());
        assert!(dotted_path("/a.b").is_err());
        assert!(dotted_path("/$x").is_err());
    }

    #[test]
    fn tombstones_and_keys() {
        let pointers = Pointers { key: "/id".into(), version: Some("/v".into()), key_is_event_key: true };
        let mut record = crate::record::NewEvent::new("t", json!({ "id": 7, "v": 2 })).into_record(1);
        let up = change_of(&record, &pointers).expect("change");
        assert_eq!((up.key.as_str(), up.version.clone()), ("7", Some(Number::from(2))));
        record.payload = json!({ "id": "x", "_deleted": true }).into();
        assert_eq!(change_of(&record, &pointers).expect("change").op, Op::Delete);
        record.payload = Value::Null.into();
        record.key = Some("x".into());
        assert_eq!(change_of(&record, &pointers).expect("change").key, "x");
        record.payload = json!({ "id": 1, "v": "two" }).into();
        assert!(change_of(&record, &pointers).expect_err("bad version").contains("not a number"));
        assert!(
            compare_versions(&Number::from(2), &serde_json::from_str("2.5").expect("n")) == Ordering::Less
        );
    }
}
