//! Event streams of aggregates: per stream a gap-free version, appends with an expected version
//! (optimistic concurrency), optional hash chains (tamper evidence) and snapshots.
//!
//! A stream is not a second log: its events are ordinary events of their topics (same offsets,
//! seen by consumers, projectors and changefeeds); the store keeps beside them which stream and
//! version each one is.

mod append;
pub mod chain;
mod expected;
mod id;
mod until;
pub mod verify;

pub use append::{id_text, stream_append};
pub use expected::{ExpectedVersion, ParseExpectedVersionError};
pub use id::StreamId;
pub use until::{read_until, stamped_by};
pub use verify::verify;

use crate::error::{Error, Result};
use crate::record::{EventRecord, NewEvent, Receipt};

/// An atomic append to one stream: every event or none.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamAppend {
    /// The stream appended to.
    pub stream: StreamId,
    /// What the stream's version must be for the append to go through.
    pub expected: ExpectedVersion,
    /// The events, in version order; each becomes an ordinary event of its topic.
    pub events: Vec<NewEvent>,
    /// Whether each event is chained to its predecessor (the aggregate's `tamper_evident`).
    pub tamper_evident: bool,
    /// Events written in the same transaction that are not part of the stream (dual-write
    /// copies on `<topic>.v<N>`).
    pub copies: Vec<NewEvent>,
}

impl StreamAppend {
    /// An append of `events` to `stream` when its version is `expected` (no chain, no copies).
    pub fn new(stream: StreamId, expected: ExpectedVersion, events: Vec<NewEvent>) -> StreamAppend {
        StreamAppend { stream, expected, events, tamper_evident: false, copies: Vec::new() }
    }

    /// Checks what every store requires before it writes: at least one event, no dedup keys.
    pub fn check(&self) -> Result<()> {
        let reason = if self.events.is_empty() {
            "it has no events; append at least one"
        } else if self.events.iter().chain(&self.copies).any(|e| e.dedup.is_some()) {
            "an event carries a dedup key; the expected version already makes a retried append safe, \
             so leave `dedup` unset"
        } else {
            return Ok(());
        };
        Err(Error::InvalidAppend { stream: self.stream.to_string(), reason: reason.to_owned() })
    }
}

/// What an append stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The version of the first event appended.
    pub first_version: u64,
    /// The version of the last event appended: the stream's version now.
    pub last_version: u64,
    /// One receipt per stream event, in order (offsets on their topics).
    pub receipts: Vec<Receipt>,
}

/// A stored stream event.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamRecord {
    /// Its version in the stream (1, 2, ...).
    pub version: u64,
    /// The event as its topic holds it.
    pub record: EventRecord,
    /// Its chain link, when the stream is tamper-evident.
    pub link: Option<ChainLink>,
}

/// A hash chain link: the predecessor's hash and this event's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChainLink {
    /// The predecessor's hash (32 zero bytes for version 1).
    pub prev: [u8; 32],
    /// SHA-256 over this event's canonical encoding and `prev`.
    pub hash: [u8; 32],
}

impl ChainLink {
    /// `prev` as lowercase hex.
    pub fn prev_hex(&self) -> String {
        hex(&self.prev)
    }

    /// `hash` as lowercase hex.
    pub fn hash_hex(&self) -> String {
        hex(&self.hash)
    }
}

impl std::fmt::Display for ChainLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} <- {}", self.hash_hex(), self.prev_hex())
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// Bytes from lowercase or uppercase hex, if `text` is exactly `N` bytes of it.
pub fn from_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let bytes = text.as_bytes();
    if bytes.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let digit = |c: u8| char::from(c).to_digit(16);
        let value = digit(pair[0])? * 16 + digit(pair[1])?;
        out[i] = u8::try_from(value).ok()?;
    }
    Some(out)
}

/// A folded state of a stream at a version, stored so loads need not replay from version 1.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The stream version the state includes (events 1..=version).
    pub version: u64,
    /// Identifies the state type (and a version the user can bump): a snapshot with another
    /// fingerprint is discarded by loads.
    pub fingerprint: String,
    /// The state as JSON.
    pub state: serde_json::Value,
    /// When it was taken, ms since the epoch.
    pub ts: i64,
}

/// Checks `expected` against the stream's `actual` version (`None`: no stream yet).
pub fn check_expected(stream: &StreamId, expected: ExpectedVersion, actual: Option<u64>) -> Result<()> {
    if expected.admits(actual) {
        Ok(())
    } else {
        Err(Error::StreamConflict { stream: stream.to_string(), expected, actual })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let bytes: [u8; 4] = [0, 1, 0xab, 0xff];
        assert_eq!(hex(&bytes), "0001abff");
        assert_eq!(from_hex::<4>("0001ABff"), Some(bytes));
        assert_eq!(from_hex::<4>("0001ab"), None);
        assert_eq!(from_hex::<4>("0001abzz"), None);
    }

    #[test]
    fn appends_need_events_and_no_dedup_keys() {
        let stream = StreamId::new("account", "42");
        let empty = StreamAppend::new(stream.clone(), ExpectedVersion::Any, Vec::new());
        let error = empty.check().expect_err("no events").to_string();
        assert!(error.contains("account/42") && error.contains("no events"), "{error}");
        let event = NewEvent::new("money.deposited", serde_json::json!({})).dedup("k");
        let deduped = StreamAppend::new(stream, ExpectedVersion::Any, vec![event]);
        assert!(deduped.check().expect_err("dedup key").to_string().contains("dedup"));
    }
}
