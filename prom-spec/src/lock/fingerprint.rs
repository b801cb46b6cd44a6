//! A version's fingerprint: SHA-256 of its schema and of its upcast, in canonical JSON.

use crate::spec::{Upcast, Version};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The recorded identity of one version: what readers of its stored events rely on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Fingerprint {
    /// `sha256:<hex>` of the payload schema (with `$ref`'d files resolved), in canonical JSON.
    pub schema: String,
    /// `sha256:<hex>` of the upcast block, when the version has one.
    pub upcast: Option<String>,
}

/// The fingerprint of `version` as declared now.
pub fn fingerprint(version: &Version) -> Fingerprint {
    Fingerprint {
        schema: digest(&canonical(&version.schema.json)),
        upcast: version.upcast.as_ref().map(|u| digest(&canonical(&upcast_json(u)))),
    }
}

/// The upcast as JSON, steps in the order they apply (so reordering renames is a change).
fn upcast_json(upcast: &Upcast) -> Value {
    let rename: Vec<Value> = upcast
        .steps
        .rename
        .iter()
        .map(|(from, to)| Value::from(vec![from.value.clone(), to.value.clone()]))
        .collect();
    let remove: Vec<Value> = upcast.steps.remove.iter().map(|f| Value::from(f.value.clone())).collect();
    let set_default: Vec<Value> = upcast
        .steps
        .set_default
        .iter()
        // A default JSON cannot hold (NaN) was already reported by lint; it still counts as text.
        .map(|(field, node)| {
            let value = node.to_json().unwrap_or_else(|_| Value::from(format!("{:?}", node.value)));
            Value::from(vec![Value::from(field.value.clone()), value])
        })
        .collect();
    serde_json::json!({
        "rename": rename,
        "remove": remove,
        "set_default": set_default,
        "with": upcast.with.as_ref().map(|w| w.value.clone()),
    })
}

/// JSON with object keys sorted and no whitespace: the same schema always gives the same text,
/// however its YAML or JSON was laid out.
pub(crate) fn canonical(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::from(key.as_str()).to_string());
                out.push(':');
                write_canonical(value, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

fn digest(text: &str) -> String {
    let hash = Sha256::digest(text.as_bytes());
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for byte in hash.iter() {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_ignores_layout_and_key_order() {
        let a: Value = serde_json::from_str(r#"{"b": [1, {"d": 2, "c": 3}], "a": "x"}"#).expect("json");
        let b: Value = serde_json::from_str(r#"{"a":"x","b":[1,{"c":3,"d":2}]}"#).expect("json");
        assert_eq!(canonical(&a), canonical(&b));
        assert_eq!(canonical(&a), r#"{"a":"x","b":[1,{"c":3,"d":2}]}"#);
    }

    #[test]
    fn digest_is_sha256_hex() {
        // The SHA-256 test vector of "abc" (FIPS 180-2).
        assert_eq!(digest("abc"), "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
