//! Event payloads shared instead of copied: a stored event's JSON value lives once, and every
//! record handed out for it (a poll, a retry, a dead letter, a dual-write copy) holds a
//! reference to it. Readers see a plain `serde_json::Value` through `Deref`.

use serde::de::Visitor;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// Identifies one JSON Schema of one topic version: a digest of the topic, the version and the
/// schema's text, so two registries built from the same spec agree and any change disagrees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct SchemaStamp([u8; 16]);

impl SchemaStamp {
    /// The stamp of `schema` (JSON text) as version `version` of `topic`.
    pub(crate) fn of(topic: &str, version: u32, schema: &str) -> SchemaStamp {
        use sha2::{Digest, Sha256};
        let mut digest = Sha256::new();
        // Length-prefixed, so no two (topic, schema) pairs hash the same bytes.
        digest.update((topic.len() as u64).to_le_bytes());
        digest.update(topic.as_bytes());
        digest.update(version.to_le_bytes());
        digest.update(schema.as_bytes());
        let full = digest.finalize();
        let mut stamp = [0; 16];
        stamp.copy_from_slice(&full[..16]);
        SchemaStamp(stamp)
    }
}

/// An event's payload: one immutable JSON value, cheap to clone (a reference count).
///
/// Read it as a [`Value`] (`payload["field"]`, `payload.pointer("/a/b")`, `&*payload`); compare
/// it with a `Value` directly (`assert_eq!(record.payload, json!({..}))`). It serializes as the
/// bare JSON value, so records look the same on the wire as before payloads were shared. To
/// change one, [`Payload::make_mut`] copies it first when other records share it.
#[derive(Clone)]
pub struct Payload(Arc<Shared>);

#[derive(Clone)]
struct Shared {
    value: Value,
    /// The schema this value was validated against when it was published in this process; a
    /// reader with the same schema need not validate it again. Never set for payloads read
    /// from a file or a database, which other programs can change.
    checked: Option<SchemaStamp>,
}

impl Payload {
    /// A payload holding `value`.
    pub fn new(value: Value) -> Payload {
        Payload(Arc::new(Shared { value, checked: None }))
    }

    /// A payload that was just validated against the schema `stamp` names.
    pub(crate) fn checked(value: Value, stamp: SchemaStamp) -> Payload {
        Payload(Arc::new(Shared { value, checked: Some(stamp) }))
    }

    /// Whether this value was validated against the schema `stamp` names (at publish, in this
    /// process), so validating it again would find nothing new.
    pub(crate) fn is_checked_by(&self, stamp: SchemaStamp) -> bool {
        self.0.checked == Some(stamp)
    }

    /// The JSON value.
    pub fn value(&self) -> &Value {
        &self.0.value
    }

    /// The JSON value, owned: moved out when no other record shares it, copied otherwise.
    pub fn into_value(self) -> Value {
        match Arc::try_unwrap(self.0) {
            Ok(shared) => shared.value,
            Err(shared) => shared.value.clone(),
        }
    }

    /// The JSON value for changing it; copied first when other records share it, so they keep
    /// seeing the old one. The value counts as unvalidated afterwards.
    pub fn make_mut(&mut self) -> &mut Value {
        let shared = Arc::make_mut(&mut self.0);
        shared.checked = None;
        &mut shared.value
    }

    /// Whether `a` and `b` hold the very same value (not a copy).
    pub fn ptr_eq(a: &Payload, b: &Payload) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }
}

impl Default for Payload {
    /// `null`.
    fn default() -> Payload {
        Payload::new(Value::Null)
    }
}

impl Deref for Payload {
    type Target = Value;

    fn deref(&self) -> &Value {
        &self.0.value
    }
}

impl AsRef<Value> for Payload {
    fn as_ref(&self) -> &Value {
        &self.0.value
    }
}

impl std::borrow::Borrow<Value> for Payload {
    fn borrow(&self) -> &Value {
        &self.0.value
    }
}

impl From<Value> for Payload {
    fn from(value: Value) -> Payload {
        Payload::new(value)
    }
}

impl From<Payload> for Value {
    fn from(payload: Payload) -> Value {
        payload.into_value()
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0.value, f)
    }
}

impl fmt::Display for Payload {
    /// The payload as compact JSON text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.value, f)
    }
}

impl PartialEq for Payload {
    /// Equal values are equal payloads, shared or not, validated or not.
    fn eq(&self, other: &Payload) -> bool {
        Payload::ptr_eq(self, other) || self.0.value == other.0.value
    }
}

impl Eq for Payload {}

impl PartialEq<Value> for Payload {
    fn eq(&self, other: &Value) -> bool {
        self.0.value == *other
    }
}

impl PartialEq<Payload> for Value {
    fn eq(&self, other: &Payload) -> bool {
        *self == other.0.value
    }
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.value.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Payload, D::Error> {
        Value::deserialize(deserializer).map(Payload::new)
    }
}

/// Forwards each `Deserializer` method of `&Payload` to the `&Value` it holds.
macro_rules! forward_to_value {
    ($($method:ident($($arg:ident: $ty:ty),*)),* $(,)?) => {
        $(
            fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, serde_json::Error> {
                (&self.0.value).$method($($arg,)* visitor)
            }
        )*
    };
}

/// Typed decoding straight from a record's payload, in place: `T::deserialize(&record.payload)`
/// reads the shared value without copying it, exactly as `T::deserialize(&value)` would.
impl<'de> Deserializer<'de> for &'de Payload {
    type Error = serde_json::Error;

    forward_to_value! {
        deserialize_any(), deserialize_bool(), deserialize_i8(), deserialize_i16(), deserialize_i32(),
        deserialize_i64(), deserialize_i128(), deserialize_u8(), deserialize_u16(), deserialize_u32(),
        deserialize_u64(), deserialize_u128(), deserialize_f32(), deserialize_f64(), deserialize_char(),
        deserialize_str(), deserialize_string(), deserialize_bytes(), deserialize_byte_buf(),
        deserialize_option(), deserialize_unit(), deserialize_unit_struct(name: &'static str),
        deserialize_newtype_struct(name: &'static str), deserialize_seq(), deserialize_tuple(len: usize),
        deserialize_tuple_struct(name: &'static str, len: usize), deserialize_map(),
        deserialize_struct(name: &'static str, fields: &'static [&'static str]),
        deserialize_enum(name: &'static str, variants: &'static [&'static str]),
        deserialize_identifier(), deserialize_ignored_any(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn clones_share_one_value_and_read_like_a_value() {
        let a = Payload::new(json!({ "n": 1, "tags": ["x"] }));
        let b = a.clone();
        assert!(Payload::ptr_eq(&a, &b));
        assert_eq!(b["n"], 1);
        assert_eq!(b.pointer("/tags/0"), Some(&json!("x")));
        assert_eq!(a, json!({ "n": 1, "tags": ["x"] }));
        assert_eq!(json!({ "n": 1, "tags": ["x"] }), b);
        assert_eq!(format!("{a}"), r#"{"n":1,"tags":["x"]}"#);
        assert_eq!(format!("{a:?}"), format!("{:?}", json!({ "n": 1, "tags": ["x"] })));
    }

    #[test]
    fn typed_values_decode_from_the_payload_in_place() {
        #[derive(Debug, PartialEq, Deserialize)]
        struct Reading {
            id: u64,
            label: Option<String>,
            kind: Kind,
            pair: (i8, f32),
            unit: Unit,
            wrapped: Wrapped,
        }
        #[derive(Debug, PartialEq, Deserialize)]
        enum Kind {
            Hot,
            Cold { below: i32 },
        }
        #[derive(Debug, PartialEq, Deserialize)]
        struct Unit;
        #[derive(Debug, PartialEq, Deserialize)]
        struct Wrapped(String);
        let payload = Payload::new(json!({
            "id": 7, "label": null, "kind": { "Cold": { "below": -3 } }, "pair": [1, 0.5],
            "unit": null, "wrapped": "w"
        }));
        let reading = Reading::deserialize(&payload).expect("decodes");
        assert_eq!(reading, Reading::deserialize(payload.value()).expect("decodes from the value"));
        assert_eq!(reading.kind, Kind::Cold { below: -3 });
        assert_eq!(Kind::deserialize(&Payload::new(json!("Hot"))).expect("unit variant"), Kind::Hot);
        let e = u8::deserialize(&Payload::new(json!(300))).expect_err("out of range");
        assert_eq!(e.to_string(), u8::deserialize(&json!(300)).expect_err("same").to_string());
    }

    #[test]
    fn changing_a_shared_payload_copies_it_and_drops_the_check() {
        let stamp = SchemaStamp::of("t", 1, "{}");
        let a = Payload::checked(json!({ "n": 1 }), stamp);
        let mut b = a.clone();
        assert!(b.is_checked_by(stamp));
        b.make_mut()["n"] = json!(2);
        assert_eq!(a["n"], 1, "the other holder keeps the old value");
        assert_eq!(b["n"], 2);
        assert!(a.is_checked_by(stamp) && !b.is_checked_by(stamp));
        assert_eq!(b.clone().into_value(), json!({ "n": 2 }));
    }

    #[test]
    fn stamps_name_one_schema_of_one_version_of_one_topic() {
        let stamp = SchemaStamp::of("t", 1, "{}");
        assert_eq!(stamp, SchemaStamp::of("t", 1, "{}"));
        assert_ne!(stamp, SchemaStamp::of("t", 2, "{}"));
        assert_ne!(stamp, SchemaStamp::of("u", 1, "{}"));
        assert_ne!(stamp, SchemaStamp::of("t", 1, "{\"type\":\"object\"}"));
        assert!(!Payload::new(json!(1)).is_checked_by(stamp));
    }

    #[test]
    fn the_wire_form_is_the_bare_value_and_read_payloads_are_unchecked() {
        let stamp = SchemaStamp::of("t", 1, "{}");
        let payload = Payload::checked(json!({ "a": [1, 2] }), stamp);
        let text = serde_json::to_string(&payload).expect("serializes");
        assert_eq!(text, r#"{"a":[1,2]}"#);
        let back: Payload = serde_json::from_str(&text).expect("deserializes");
        assert_eq!(back, payload);
        assert!(!back.is_checked_by(stamp), "a payload read from text was validated by nobody");
    }
}
