//! Payload text as it enters the runtime: strict JSON parsing (a repeated object key is an
//! error, not "last one wins"), and the one canonical text of a key value.

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::cell::RefCell;
use std::fmt;

/// Payload text that cannot be taken as one JSON value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// An object repeats a key; JSON parsers disagree on which value wins, so neither does.
    #[error(
        "the payload repeats the key `{key}` at `{pointer}` (line {line}, column {column}); \
         remove one of the two: JSON parsers disagree on which value wins"
    )]
    DuplicateKey {
        /// The JSON pointer of the repeated member.
        pointer: String,
        /// The repeated key.
        key: String,
        /// Line of the second occurrence's value (1-based).
        line: usize,
        /// Column of the second occurrence's value (1-based).
        column: usize,
    },
    /// The text is not JSON.
    #[error("the payload is not valid JSON: {message} (line {line}, column {column})")]
    Syntax {
        /// What the parser reported.
        message: String,
        /// Line (1-based).
        line: usize,
        /// Column (1-based).
        column: usize,
    },
}

/// Parses one JSON payload, rejecting repeated object keys with the pointer of the repeat.
pub fn parse(text: &str) -> Result<Value, PayloadError> {
    let duplicate = RefCell::new(None);
    let path = RefCell::new(Vec::new());
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let parsed = Seed { path: &path, duplicate: &duplicate }
        .deserialize(&mut deserializer)
        .and_then(|value| deserializer.end().map(|()| value));
    parsed.map_err(|e| match duplicate.into_inner() {
        Some((pointer, key)) => {
            PayloadError::DuplicateKey { pointer, key, line: e.line(), column: e.column() }
        }
        None => PayloadError::Syntax { message: message_of(&e), line: e.line(), column: e.column() },
    })
}

/// serde_json's message without its trailing " at line L column C" (reported separately).
fn message_of(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// The canonical text of a key value: strings as they are; numbers with an integral value as
/// integers (`1`, `1.0` and `1e0` are one key, `"1"`; `-0` is `"0"`); anything else as JSON.
pub fn key_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        // Integers (most numeric keys) skip `fmt`: formatting was a fifth of a publish's key work.
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => itoa::Buffer::new().format(i).to_owned(),
            (_, Some(u)) => itoa::Buffer::new().format(u).to_owned(),
            _ => canonical_number(n).to_string(),
        },
        other => other.to_string(),
    }
}

/// `n` as an integer when it is a float holding an integral value that i64 or u64 represents
/// exactly; otherwise `n` itself.
pub fn canonical_number(n: &Number) -> Number {
    if !n.is_f64() {
        return n.clone();
    }
    integral(n.as_f64().unwrap_or(f64::NAN)).unwrap_or_else(|| n.clone())
}

/// The integer an f64 holds exactly, if it holds one within i64 or u64.
pub(crate) fn integral(x: f64) -> Option<Number> {
    // 2^63 and 2^64 as f64 are exact; beyond them no integer type here can hold the value.
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    const TWO_64: f64 = 18_446_744_073_709_551_616.0;
    if x.fract() != 0.0 || !x.is_finite() {
        return None;
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // range-checked above each cast
    if (-TWO_63..TWO_63).contains(&x) {
        Some(Number::from(x as i64))
    } else if (0.0..TWO_64).contains(&x) {
        Some(Number::from(x as u64))
    } else {
        None
    }
}

/// Appends `key` to a JSON pointer, escaped (`~` → `~0`, `/` → `~1`).
pub(crate) fn push_pointer(pointer: &mut String, key: &str) {
    pointer.push('/');
    for c in key.chars() {
        match c {
            '~' => pointer.push_str("~0"),
            '/' => pointer.push_str("~1"),
            c => pointer.push(c),
        }
    }
}

#[derive(Clone, Copy)]
struct Seed<'a> {
    path: &'a RefCell<Vec<String>>,
    duplicate: &'a RefCell<Option<(String, String)>>,
}

impl Seed<'_> {
    fn pointer_to(&self, key: &str) -> String {
        let mut pointer = String::new();
        for segment in self.path.borrow().iter() {
            push_pointer(&mut pointer, segment);
        }
        push_pointer(&mut pointer, key);
        pointer
    }
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // JSON text has no NaN or infinity, so every parsed float is finite.
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            self.path.borrow_mut().push(items.len().to_string());
            let item = seq.next_element_seed(self);
            self.path.borrow_mut().pop();
            match item? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if members.contains_key(&key) {
                let pointer = self.pointer_to(&key);
                *self.duplicate.borrow_mut() = Some((pointer.clone(), key.clone()));
                return Err(de::Error::custom(format!("duplicate key `{key}` at `{pointer}`")));
            }
            self.path.borrow_mut().push(key);
            let value = map.next_value_seed(self);
            let key = self.path.borrow_mut().pop().unwrap_or_default();
            members.insert(key, value?);
        }
        Ok(Value::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn repeated_keys_are_rejected_with_their_pointer() {
        let e = parse(r#"{"n":"str","n":2}"#).expect_err("duplicate");
        assert!(
            matches!(&e, PayloadError::DuplicateKey { pointer, key, .. } if pointer == "/n" && key == "n")
        );
        let e = parse(r#"{"a":[{"x":1},{"b/c":{"k":1,"k":1}}]}"#).expect_err("nested duplicate");
        assert!(e.to_string().contains("`/a/1/b~1c/k`"), "{e}");
        assert_eq!(parse(r#"{"a":{"n":1},"b":{"n":1}}"#), Ok(json!({ "a": { "n": 1 }, "b": { "n": 1 } })));
    }

    #[test]
    fn syntax_errors_say_where() {
        let e = parse("{\"a\":\n  tru}").expect_err("syntax");
        assert!(matches!(e, PayloadError::Syntax { line: 2, .. }), "{e:?}");
        assert!(parse("{} {}").is_err(), "one value only");
        assert!(parse(&"[".repeat(10_000)).is_err(), "deep nesting is an error, not a stack overflow");
    }

    #[test]
    fn one_key_value_has_one_text() {
        for text in ["1", "1.0", "1e0", "10e-1"] {
            assert_eq!(key_text(&parse(text).expect("number")), "1", "{text}");
        }
        assert_eq!(key_text(&parse("-0").expect("number")), "0");
        assert_eq!(key_text(&json!(1.5)), "1.5");
        assert_eq!(key_text(&json!(-42)), "-42");
        assert_eq!(key_text(&json!(i64::MIN)), i64::MIN.to_string());
        assert_eq!(key_text(&json!(u64::MAX)), u64::MAX.to_string());
        assert_eq!(key_text(&json!("1.0")), "1.0", "strings are kept as they are");
        assert_eq!(key_text(&json!(1e300)), "1e+300");
    }
}
