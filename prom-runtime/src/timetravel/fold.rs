//! The store-independent part of time travel: how a key's events, in offset order, fold into
//! the document the changelog projector would have stored, and which snapshots the fold may
//! store on the way.

use super::{FoldSpec, KeySnapshot};
use crate::project::plan::{self, Change, Op};
use crate::record::EventRecord;
use crate::registry::Registry;
use serde_json::{Number, Value};
use std::cmp::Ordering;

/// A key's folded state: the document and its version.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct State {
    /// The document (`_id` included), or `None` when absent.
    pub doc: Option<Value>,
    /// The version of the change that wrote it.
    pub version: Option<Number>,
}

/// What a store does to a document the projector would write: `Some` with the document as the
/// store gives it back, or `None` when the store cannot hold it (the projector dead-letters it).
pub type Admit = fn(Value) -> Option<Value>;

/// One fold of a key from a starting point (a snapshot, or nothing) towards a time.
pub struct Fold<'a> {
    spec: &'a FoldSpec,
    registry: &'a Registry,
    fingerprint: &'a str,
    key: &'a str,
    admit: Admit,
    every: u64,
    /// Snapshots may be stored only below this offset: the first event of the key after the
    /// starting point that is later than the time, which this fold leaves out.
    below: i64,
    state: State,
    max_ts: i64,
    read: u64,
    pending: Vec<KeySnapshot>,
}

/// Where a fold ends.
#[derive(Debug)]
pub struct Folded {
    /// The state after the last event folded.
    pub state: State,
    /// Events read.
    pub read: u64,
    /// Snapshots the fold may store.
    pub pending: Vec<KeySnapshot>,
}

impl<'a> Fold<'a> {
    /// A fold starting at `state`, which covers every event of the key up to some offset,
    /// the latest of them published at `max_ts`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        spec: &'a FoldSpec,
        registry: &'a Registry,
        fingerprint: &'a str,
        key: &'a str,
        admit: Admit,
        every: u64,
        below: i64,
        start: (State, i64),
    ) -> Fold<'a> {
        let (state, max_ts) = start;
        Fold {
            spec,
            registry,
            fingerprint,
            key,
            admit,
            every,
            below,
            state,
            max_ts,
            read: 0,
            pending: Vec::new(),
        }
    }

    /// Folds the next event of the key (in offset order, published at or before the time).
    pub fn push(&mut self, record: EventRecord) {
        self.read += 1;
        self.max_ts = self.max_ts.max(record.ts);
        let offset = record.offset;
        if let Some(change) = self.change_of(record) {
            apply(&mut self.state, change, self.admit);
        }
        if self.every > 0 && self.read.is_multiple_of(self.every) && offset < self.below {
            self.pending.push(KeySnapshot {
                topic: self.spec.topic.clone(),
                key: self.key.to_owned(),
                fp: self.fingerprint.to_owned(),
                off: offset,
                ts: self.max_ts,
                state: self.state.doc.clone(),
                version: self.state.version.clone(),
            });
        }
    }

    /// The state after every event pushed.
    pub fn finish(self) -> Folded {
        Folded { state: self.state, read: self.read, pending: self.pending }
    }

    /// The change an event makes, or `None` for events the projector dead-letters.
    fn change_of(&self, record: EventRecord) -> Option<Change> {
        // Like the projector: a null tombstone has nothing to upcast or validate.
        let record = if record.payload.is_null() && record.corruption().is_none() {
            record
        } else {
            self.registry.decode(record).ok()?
        };
        plan::change_of(&record, &self.spec.pointers).ok()
    }
}

/// Applies one change the way the projector's guarded writes do: an upsert replaces unless the
/// stored version is newer or equal; a delete removes unless the stored version is newer.
pub fn apply(state: &mut State, change: Change, admit: Admit) {
    let admits = |stored: &Option<Number>, equal_passes: bool| match (stored, &change.version) {
        (Some(stored), Some(new)) => match plan::compare_versions(stored, new) {
            Ordering::Less => true,
            Ordering::Equal => equal_passes,
            Ordering::Greater => false,
        },
        // Unguarded: no version on one side, so the write's filter is the key alone.
        _ => true,
    };
    match change.op {
        Op::Upsert(value) => {
            if state.doc.is_none() || admits(&state.version, false) {
                // The projector dead-letters a document its store cannot hold, so the fold skips it.
                let Some(doc) = admit(value) else { return };
                state.version = change.version.clone();
                state.doc = Some(doc);
            }
        }
        Op::Delete => {
            if state.doc.is_some() && admits(&state.version, true) {
                *state = State::default();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn change(version: Option<i64>, delete: bool) -> Change {
        Change {
            key: "k".into(),
            version: version.map(Number::from),
            op: if delete { Op::Delete } else { Op::Upsert(json!({ "_id": "k", "v": version })) },
            offset: 0,
        }
    }

    fn fold(changes: &[(Option<i64>, bool)]) -> Option<Value> {
        let mut state = State::default();
        for (version, delete) in changes {
            apply(&mut state, change(*version, *delete), Some);
        }
        state.doc
    }

    #[test]
    fn the_fold_follows_the_guarded_writes() {
        assert_eq!(
            fold(&[(Some(1), false), (Some(3), false), (Some(2), false)]),
            Some(json!({ "_id": "k", "v": 3 }))
        );
        assert_eq!(
            fold(&[(Some(2), false), (Some(2), false)]),
            Some(json!({ "_id": "k", "v": 2 })),
            "equal: kept"
        );
        assert_eq!(
            fold(&[(Some(2), false), (Some(1), true)]),
            Some(json!({ "_id": "k", "v": 2 })),
            "stale delete"
        );
        assert_eq!(fold(&[(Some(2), false), (Some(2), true)]), None, "delete at the same version");
        assert_eq!(fold(&[(Some(2), false), (None, true)]), None, "null tombstone");
        assert_eq!(
            fold(&[(Some(5), false), (None, true), (Some(1), false)]),
            Some(json!({ "_id": "k", "v": 1 }))
        );
        assert_eq!(fold(&[(None, false), (None, false)]), Some(json!({ "_id": "k", "v": null })));
    }

    #[test]
    fn a_document_the_store_cannot_hold_is_skipped() {
        let mut state = State::default();
        apply(&mut state, change(Some(1), false), Some);
        apply(&mut state, change(Some(2), false), |_| None);
        assert_eq!(state.doc, Some(json!({ "_id": "k", "v": 1 })));
        assert_eq!(state.version, Some(Number::from(1)));
    }
}
