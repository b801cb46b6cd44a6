//! Snapshots of a stream's state: how a state is written and read back, and when a stored one
//! is usable. A snapshot is only a cache of the fold: one that does not match (another
//! fingerprint) or does not decode is discarded and the stream folded from its first event,
//! never resumed at the snapshot's version with a default state (that would skip events).

use crate::stream::Snapshot;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The fingerprint stored with a snapshot of `S`: its type name and `version` (`bank::Balance#1`).
/// Bump the version when the state's meaning changes while its shape still decodes (a field now
/// counts cents instead of euros), so older snapshots are discarded.
pub fn fingerprint<S>(version: u32) -> String {
    format!("{}#{version}", std::any::type_name::<S>())
}

/// The snapshot policy of a [`super::Stream`]: every how many events, the state's fingerprint,
/// and how the state is written as JSON.
pub struct Snapshots<S> {
    every: u64,
    fingerprint: String,
    encode: fn(&S) -> Result<Value, serde_json::Error>,
    decode: fn(Value) -> Result<S, serde_json::Error>,
}

impl<S> Clone for Snapshots<S> {
    fn clone(&self) -> Self {
        Snapshots {
            every: self.every,
            fingerprint: self.fingerprint.clone(),
            encode: self.encode,
            decode: self.decode,
        }
    }
}

impl<S> std::fmt::Debug for Snapshots<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshots")
            .field("every", &self.every)
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

impl<S: Serialize + DeserializeOwned> Snapshots<S> {
    /// A snapshot every `every` events (at least 1), tagged with `fingerprint`
    /// ([`fingerprint`]`::<S>(version)`).
    pub fn new(every: u64, fingerprint: String) -> Snapshots<S> {
        Snapshots {
            every: every.max(1),
            fingerprint,
            encode: |state| serde_json::to_value(state),
            decode: serde_json::from_value,
        }
    }
}

impl<S> Snapshots<S> {
    /// Events between snapshots.
    pub fn every(&self) -> u64 {
        self.every
    }

    /// The fingerprint snapshots are written with and must match to be used.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Whether an append of versions `first..=last` reached a multiple of `every`.
    pub(crate) fn due(&self, first: u64, last: u64) -> bool {
        first <= last && last / self.every > first.saturating_sub(1) / self.every
    }

    /// The snapshot of `state` at `version`.
    pub(crate) fn encode(&self, state: &S, version: u64) -> Result<Snapshot, serde_json::Error> {
        Ok(Snapshot {
            version,
            fingerprint: self.fingerprint.clone(),
            state: (self.encode)(state)?,
            ts: crate::record::now_ms(),
        })
    }

    /// The state a stored snapshot holds, or why it cannot be used.
    pub(crate) fn decode(&self, snapshot: Snapshot) -> Result<(S, u64), Unusable> {
        if snapshot.fingerprint != self.fingerprint {
            return Err(Unusable::Fingerprint { found: snapshot.fingerprint });
        }
        let version = snapshot.version;
        (self.decode)(snapshot.state)
            .map(|state| (state, version))
            .map_err(|e| Unusable::Decode(e.to_string()))
    }
}

/// Why a stored snapshot is discarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unusable {
    /// Written for another state type or version.
    Fingerprint {
        /// The stored fingerprint.
        found: String,
    },
    /// Its state does not decode into the state type.
    Decode(String),
}

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unusable::Fingerprint { found } => write!(f, "it was written for `{found}`"),
            Unusable::Decode(reason) => write!(f, "its state does not decode: {reason}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_is_due_when_an_append_reaches_a_multiple_of_every() {
        let every_3 = Snapshots::<u64>::new(3, fingerprint::<u64>(1));
        assert!(!every_3.due(1, 2));
        assert!(every_3.due(1, 3));
        assert!(every_3.due(3, 3));
        assert!(!every_3.due(4, 5));
        assert!(every_3.due(5, 10), "6 and 9 lie inside");
        assert!(Snapshots::<u64>::new(0, String::new()).due(7, 7), "every is at least 1");
    }

    #[test]
    fn another_fingerprint_or_an_undecodable_state_is_unusable() {
        let policy = Snapshots::<u64>::new(10, fingerprint::<u64>(2));
        let stored = policy.encode(&7, 10).expect("encodes");
        assert_eq!(stored.fingerprint, "u64#2");
        assert_eq!(policy.decode(stored.clone()), Ok((7, 10)));
        let older = Snapshots::<u64>::new(10, fingerprint::<u64>(1));
        assert_eq!(older.decode(stored.clone()), Err(Unusable::Fingerprint { found: "u64#2".into() }));
        let garbled = Snapshot { state: serde_json::json!("seven"), ..stored };
        assert!(matches!(policy.decode(garbled), Err(Unusable::Decode(_))));
    }
}
