//! Verifies the streams of an aggregate: versions run 1, 2, ... without gaps, and in
//! tamper-evident streams every stored hash matches its event and links to its predecessor.

use super::chain::{self, GENESIS};
use super::{StreamId, StreamRecord, hex};
use crate::bus::EventBus;
use crate::error::Result;

/// Stream ids and events read per round trip.
const PAGE: usize = 1_000;

/// What verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Streams checked (up to and including the broken one).
    pub streams: u64,
    /// Events checked.
    pub events: u64,
    /// Events that carried a chain link.
    pub linked: u64,
    /// The first broken stream (in id order) and version, if any.
    pub broken: Option<Broken>,
}

impl Report {
    /// Whether every chain holds.
    pub fn ok(&self) -> bool {
        self.broken.is_none()
    }
}

/// The first place a stream does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    /// The stream.
    pub stream: StreamId,
    /// The version where it breaks.
    pub version: u64,
    /// Why.
    pub reason: Reason,
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stream `{}` breaks at version {}: {}", self.stream, self.version, self.reason)
    }
}

/// Why a stream breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// The event's content no longer hashes to its stored hash (payload, headers, key, time,
    /// id or topic changed).
    Changed {
        /// The stored hash, hex.
        stored: String,
        /// The hash of what is stored now, hex.
        computed: String,
    },
    /// The stored predecessor hash is not the predecessor's hash (an event was replaced,
    /// reordered or its hashes rewritten).
    LinkBroken {
        /// The stored predecessor hash, hex.
        stored: String,
        /// The predecessor's hash, hex.
        expected: String,
    },
    /// The event has no link although its predecessor has one (its hashes were removed).
    LinkMissing,
    /// The version is missing: the stream jumps from the version before to `found`.
    Missing {
        /// The next version present (`None`: the stream ends there although the store listed it).
        found: Option<u64>,
    },
    /// The store cannot read the event back.
    Corrupt {
        /// What the store reported.
        reason: String,
    },
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Changed { stored, computed } => write!(
                f,
                "the event was changed after it was appended (stored hash {stored}, its content hashes to {computed})"
            ),
            Reason::LinkBroken { stored, expected } => write!(
                f,
                "the link to the previous version is broken (stored {stored}, the previous event's hash is {expected})"
            ),
            Reason::LinkMissing => f.write_str("the event's chain link was removed"),
            Reason::Missing { found: Some(next) } => {
                write!(f, "the version is missing (the next one stored is {next})")
            }
            Reason::Missing { found: None } => f.write_str("the version is missing"),
            Reason::Corrupt { reason } => write!(f, "the stored event is unreadable: {reason}"),
        }
    }
}

/// Verifies every stream of `aggregate` (or only stream `id`), stopping at the first break.
pub async fn verify<B: EventBus>(bus: &B, aggregate: &str, id: Option<&str>) -> Result<Report> {
    let mut report = Report { streams: 0, events: 0, linked: 0, broken: None };
    if let Some(id) = id {
        report.broken = verify_stream(bus, &StreamId::new(aggregate, id), &mut report).await?;
        return Ok(report);
    }
    let mut after = None;
    loop {
        let ids = bus.stream_ids(aggregate, after.clone(), PAGE).await?;
        for id in &ids {
            if let Some(broken) =
                verify_stream(bus, &StreamId::new(aggregate, id.as_str()), &mut report).await?
            {
                report.broken = Some(broken);
                return Ok(report);
            }
        }
        if ids.len() < PAGE {
            return Ok(report);
        }
        after = ids.last().cloned();
    }
}

async fn verify_stream<B: EventBus>(
    bus: &B,
    stream: &StreamId,
    report: &mut Report,
) -> Result<Option<Broken>> {
    report.streams += 1;
    let mut expected_version = 1;
    let mut prev: Option<[u8; 32]> = None;
    loop {
        let page = bus.read_stream(stream, expected_version - 1, PAGE).await?;
        if page.is_empty() {
            let head = bus.stream_version(stream).await?;
            // The stream lists versions past the last event read: the rest are gone.
            if head.is_some_and(|h| h >= expected_version) {
                return Ok(Some(Broken {
                    stream: stream.clone(),
                    version: expected_version,
                    reason: Reason::Missing { found: None },
                }));
            }
            return Ok(None);
        }
        let full = page.len() == PAGE;
        for record in &page {
            report.events += 1;
            if let Some(reason) = check(stream, record, expected_version, &mut prev) {
                let version = expected_version.min(record.version);
                return Ok(Some(Broken { stream: stream.clone(), version, reason }));
            }
            if record.link.is_some() {
                report.linked += 1;
            }
            expected_version += 1;
        }
        if !full {
            let head = bus.stream_version(stream).await?;
            if head.is_some_and(|h| h >= expected_version) {
                return Ok(Some(Broken {
                    stream: stream.clone(),
                    version: expected_version,
                    reason: Reason::Missing { found: None },
                }));
            }
            return Ok(None);
        }
    }
}

/// Why `record` breaks the stream at `expected` after a predecessor hashed `prev`, if it does.
fn check(
    stream: &StreamId,
    record: &StreamRecord,
    expected: u64,
    prev: &mut Option<[u8; 32]>,
) -> Option<Reason> {
    if record.version != expected {
        return Some(Reason::Missing { found: Some(record.version) });
    }
    if let Some(reason) = record.record.corruption() {
        return Some(Reason::Corrupt { reason: reason.to_owned() });
    }
    let Some(link) = record.link else {
        return prev.is_some().then_some(Reason::LinkMissing);
    };
    let expected_prev = prev.unwrap_or(GENESIS);
    if link.prev != expected_prev {
        return Some(Reason::LinkBroken { stored: hex(&link.prev), expected: hex(&expected_prev) });
    }
    let computed = chain::hash(stream, record.version, (&record.record).into(), &link.prev);
    if computed != link.hash {
        return Some(Reason::Changed { stored: hex(&link.hash), computed: hex(&computed) });
    }
    *prev = Some(link.hash);
    None
}
