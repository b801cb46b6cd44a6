//! Event headers: a few name/value pairs per event, sorted by name and shared by every copy of
//! a record.
//!
//! An event carries one to three headers (`x-schema-version`, maybe a trace and a custom one),
//! and the in-memory bus hands out a copy of each stored record on every read. A `BTreeMap`
//! allocated a 0.5 KiB node per event and a copy of every string per read; here the pairs sit in
//! one sorted list behind an `Arc`: a copy is a reference count, and a change to a shared list
//! copies it first (copy on write).

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::sync::Arc;

/// Event headers: `x-schema-version`, `x-upcasted-from` and the topic's declared custom headers,
/// iterated in name order (like a `BTreeMap<String, String>`, and serialized as a JSON object).
#[derive(Clone, Default)]
pub struct Headers {
    /// Sorted by name, names unique; `None` when empty (so an empty map allocates nothing).
    pairs: Option<Arc<Vec<(String, String)>>>,
}

impl Headers {
    /// No headers.
    pub const fn new() -> Headers {
        Headers { pairs: None }
    }

    fn pairs(&self) -> &[(String, String)] {
        self.pairs.as_deref().map_or(&[], Vec::as_slice)
    }

    /// The list to change: made if there is none, copied first if another record shares it.
    fn pairs_mut(&mut self) -> &mut Vec<(String, String)> {
        Arc::make_mut(self.pairs.get_or_insert_with(|| Arc::new(Vec::with_capacity(1))))
    }

    fn find(&self, name: &str) -> Result<usize, usize> {
        self.pairs().binary_search_by(|(n, _)| n.as_str().cmp(name))
    }

    /// The value of header `name`.
    pub fn get(&self, name: &str) -> Option<&String> {
        self.find(name).ok().map(|i| &self.pairs()[i].1)
    }

    /// The value of header `name`, to change in place.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut String> {
        let i = self.find(name).ok()?;
        Some(&mut self.pairs_mut()[i].1)
    }

    /// Whether header `name` is set.
    pub fn contains_key(&self, name: &str) -> bool {
        self.find(name).is_ok()
    }

    /// Sets header `name`; returns its previous value.
    pub fn insert(&mut self, name: String, value: String) -> Option<String> {
        match self.find(&name) {
            Ok(i) => Some(std::mem::replace(&mut self.pairs_mut()[i].1, value)),
            Err(i) => {
                self.pairs_mut().insert(i, (name, value));
                None
            }
        }
    }

    /// Removes header `name`; returns its value.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        let i = self.find(name).ok()?;
        let (_, value) = self.pairs_mut().remove(i);
        if self.pairs().is_empty() {
            self.pairs = None;
        }
        Some(value)
    }

    /// Removes every header.
    pub fn clear(&mut self) {
        self.pairs = None;
    }

    /// How many headers are set.
    pub fn len(&self) -> usize {
        self.pairs().len()
    }

    /// Whether no header is set.
    pub fn is_empty(&self) -> bool {
        self.pairs().is_empty()
    }

    /// The headers as (name, value), in name order.
    pub fn iter(&self) -> Iter<'_> {
        Iter { pairs: self.pairs().iter() }
    }

    /// The header names, in order.
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.pairs().iter().map(|(n, _)| n)
    }

    /// The header values, in name order.
    pub fn values(&self) -> impl Iterator<Item = &String> {
        self.pairs().iter().map(|(_, v)| v)
    }
}

/// Parses headers texts, once for a run of equal ones: the events of a page read from a store
/// mostly carry the same `{"x-schema-version":"1"}`, and then share one list.
#[derive(Default)]
pub(crate) struct HeadersText {
    /// The last text parsed, and what it parsed to.
    last: Option<(String, Headers)>,
}

impl HeadersText {
    /// The headers `text` holds (a JSON object of strings).
    pub(crate) fn parse(&mut self, text: &str) -> serde_json::Result<Headers> {
        if let Some((last, headers)) = &self.last
            && last == text
        {
            return Ok(headers.clone());
        }
        let headers: Headers = serde_json::from_str(text)?;
        self.last = Some((text.to_owned(), headers.clone()));
        Ok(headers)
    }
}

/// The headers of a [`Headers`] as (name, value), in name order.
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    pairs: std::slice::Iter<'a, (String, String)>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a String, &'a String);

    fn next(&mut self) -> Option<Self::Item> {
        self.pairs.next().map(|(n, v)| (n, v))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.pairs.size_hint()
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.pairs.next_back().map(|(n, v)| (n, v))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a Headers {
    type Item = (&'a String, &'a String);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl IntoIterator for Headers {
    type Item = (String, String);
    type IntoIter = std::vec::IntoIter<(String, String)>;

    fn into_iter(self) -> Self::IntoIter {
        let pairs = self.pairs.map(|p| Arc::try_unwrap(p).unwrap_or_else(|shared| (*shared).clone()));
        pairs.unwrap_or_default().into_iter()
    }
}

impl<K: Into<String>, V: Into<String>> Extend<(K, V)> for Headers {
    /// A repeated name keeps its last value. Appends, then sorts once: inserting one by one
    /// would shift the list for every pair (quadratic in a hostile object with many names).
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        let mut iter = iter.into_iter().peekable();
        if iter.peek().is_none() {
            return;
        }
        let pairs = self.pairs_mut();
        pairs.extend(iter.map(|(name, value)| (name.into(), value.into())));
        // The stable sort of the reversed list puts each name's last value first; dedup keeps it.
        pairs.reverse();
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        pairs.dedup_by(|later, earlier| later.0 == earlier.0);
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Headers {
        let mut headers = Headers::new();
        headers.extend(iter);
        headers
    }
}

impl<K: Into<String>, V: Into<String>, const N: usize> From<[(K, V); N]> for Headers {
    fn from(pairs: [(K, V); N]) -> Headers {
        pairs.into_iter().collect()
    }
}

impl std::ops::Index<&str> for Headers {
    type Output = String;

    /// The value of header `name`; panics when it is not set (as a map's index does).
    fn index(&self, name: &str) -> &String {
        match self.get(name) {
            Some(value) => value,
            None => panic!("no header `{name}`"),
        }
    }
}

impl PartialEq for Headers {
    fn eq(&self, other: &Headers) -> bool {
        self.pairs() == other.pairs()
    }
}

impl Eq for Headers {}

impl std::hash::Hash for Headers {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.pairs().hash(state);
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for Headers {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (name, value) in self {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Headers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Headers, D::Error> {
        struct HeadersVisitor;

        impl<'de> Visitor<'de> for HeadersVisitor {
            type Value = Headers;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of string header values")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Headers, A::Error> {
                let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
                while let Some(pair) = map.next_entry::<String, String>()? {
                    pairs.push(pair);
                }
                // A repeated name keeps its last value, as a map built from the object would.
                Ok(pairs.into_iter().collect())
            }
        }

        deserializer.deserialize_map(HeadersVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn behaves_like_a_sorted_map() {
        let mut h = Headers::new();
        let mut m = BTreeMap::new();
        for (name, value) in [("b", "1"), ("a", "2"), ("c", "3"), ("a", "4")] {
            assert_eq!(h.insert(name.into(), value.into()), m.insert(name.to_string(), value.to_string()));
        }
        assert_eq!(h.iter().collect::<Vec<_>>(), m.iter().collect::<Vec<_>>());
        assert_eq!(h.get("a").map(String::as_str), Some("4"));
        assert!(h.contains_key("c") && !h.contains_key("d"));
        assert_eq!(h.remove("b"), m.remove("b"));
        assert_eq!(h.remove("b"), None);
        assert_eq!(h.len(), 2);
        assert_eq!(format!("{h:?}"), format!("{m:?}"));
        h.clear();
        assert!(h.is_empty());
        assert_eq!(h, Headers::new(), "an emptied map equals a new one");
    }

    #[test]
    fn a_copy_shares_until_one_side_changes() {
        let original = Headers::from([("x-schema-version", "1")]);
        let mut copy = original.clone();
        copy.insert("x-trace".into(), "t".into());
        if let Some(v) = copy.get_mut("x-schema-version") {
            v.push('0');
        }
        assert_eq!(original, Headers::from([("x-schema-version", "1")]), "the original is untouched");
        assert_eq!(copy, Headers::from([("x-schema-version", "10"), ("x-trace", "t")]));
        assert_eq!(
            original.clone().into_iter().collect::<Vec<_>>(),
            [("x-schema-version".into(), "1".into())]
        );
    }

    #[test]
    fn a_repeated_text_is_parsed_once_and_shared() {
        let mut texts = HeadersText::default();
        let a = texts.parse(r#"{"x-schema-version":"1"}"#).expect("parse");
        let b = texts.parse(r#"{"x-schema-version":"1"}"#).expect("parse");
        assert!(a.pairs.as_ref().zip(b.pairs.as_ref()).is_some_and(|(a, b)| Arc::ptr_eq(a, b)));
        assert!(texts.parse("[]").is_err());
        assert_eq!(texts.parse(r#"{"x-schema-version":"1"}"#).expect("parse"), a, "an error forgets nothing");
        assert_eq!(
            texts
                .parse(r#"{"x-schema-version":"2"}"#)
                .expect("parse")
                .get("x-schema-version")
                .map(String::as_str),
            Some("2")
        );
    }

    #[test]
    fn serializes_as_the_json_object_a_btree_map_would() {
        let h = Headers::from([("b", "2"), ("a", "1")]);
        let m: BTreeMap<&str, &str> = [("b", "2"), ("a", "1")].into();
        let text = serde_json::to_string(&h).expect("serialize");
        assert_eq!(text, serde_json::to_string(&m).expect("serialize"));
        assert_eq!(serde_json::from_str::<Headers>(&text).expect("deserialize"), h);
        assert_eq!(
            serde_json::from_str::<Headers>(r#"{"a":"1","a":"2"}"#).expect("repeated"),
            [("a", "2")].into()
        );
        assert!(serde_json::from_str::<Headers>(r#"{"a":1}"#).is_err(), "values are strings");
        assert!(serde_json::from_str::<Headers>("{}").expect("empty").is_empty());
    }

    /// An object with many names (a stored row edited behind the store's back) is sorted once,
    /// not shifted pair by pair.
    #[test]
    fn many_names_in_any_order_keep_each_name_once_with_its_last_value() {
        let n = 50_000;
        let mut object: Vec<String> = (0..n).rev().map(|i| format!("\"h{i:05}\":\"{i}\"")).collect();
        object.push("\"h00007\":\"last\"".into());
        let h: Headers = serde_json::from_str(&format!("{{{}}}", object.join(","))).expect("deserialize");
        assert_eq!(h.len(), n);
        assert!(h.keys().zip(h.keys().skip(1)).all(|(a, b)| a < b), "sorted, names unique");
        assert_eq!(h.get("h00007").map(String::as_str), Some("last"));
        assert_eq!(h.get("h49999").map(String::as_str), Some("49999"));
        let mut more = Headers::from([("b", "1")]);
        more.extend([("a", "1"), ("b", "2"), ("a", "3")]);
        assert_eq!(more, Headers::from([("a", "3"), ("b", "2")]));
    }
}
