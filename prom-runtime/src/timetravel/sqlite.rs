//! Time travel's storage on the embedded store: snapshots in the table `key_snapshots`, a key's
//! events through the per-key index (see [`crate::bus::SqliteBus`]).

use super::KeySnapshot;
use crate::bus::SqliteBus;
use crate::error::{Error, Result};
use serde_json::{Number, Value};

/// The embedded projector stores any JSON document, as it is.
pub fn admit(doc: Value) -> Option<Value> {
    Some(doc)
}

/// The nearest snapshot of `key` at or before `at_ms`.
pub async fn snapshot(
    bus: &SqliteBus,
    topic: &str,
    key: &str,
    fp: &str,
    at_ms: i64,
) -> Result<Option<KeySnapshot>> {
    let Some((off, ts, state, version)) = bus.key_snapshot(topic, key, fp, at_ms).await? else {
        return Ok(None);
    };
    let corrupt = |field: &'static str| Error::CorruptSnapshot { topic: topic.to_owned(), field };
    let state = match state {
        None => None,
        Some(text) => match serde_json::from_str::<Value>(&text) {
            Ok(Value::Null) => None,
            Ok(doc @ Value::Object(_)) => Some(doc),
            _ => return Err(corrupt("state")),
        },
    };
    let version = match version {
        None => None,
        Some(text) => Some(text.parse::<Number>().map_err(|_| corrupt("version"))?),
    };
    Ok(Some(KeySnapshot {
        topic: topic.to_owned(),
        key: key.to_owned(),
        fp: fp.to_owned(),
        off,
        ts,
        state,
        version,
    }))
}
