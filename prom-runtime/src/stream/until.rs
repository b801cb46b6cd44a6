//! A stream as it stood at a past time: its events in version order up to the first one
//! stamped after that time.
//!
//! A stream's versions are a chain of decisions (each append expected the version before it),
//! so the stream at `T` is a prefix of it: an event stamped after `T` ends it, even if a later
//! version carries an earlier stamp (a skewed clock), because that later event was decided on a
//! state that included the one left out.

use super::{StreamId, StreamRecord};
use crate::bus::EventBus;
use crate::error::Result;

/// Up to `limit` events of `stream` after version `after`, in version order, ending before the
/// first event stamped after `until_ms` (ms since the epoch). Fewer than `limit` events means
/// the stream at that time ends there.
pub async fn read_until<B: EventBus>(
    bus: &B,
    stream: &StreamId,
    after: u64,
    until_ms: i64,
    limit: usize,
) -> Result<Vec<StreamRecord>> {
    let mut page = bus.read_stream(stream, after, limit).await?;
    if let Some(late) = page.iter().position(|r| r.record.ts > until_ms) {
        page.truncate(late);
    }
    Ok(page)
}

/// Whether the stream's event at `version` is part of the stream at `until_ms`, judged by its own
/// stamp (`false` when it is missing). With stamps in version order this is exact; it is what
/// decides whether a snapshot at `version` may start a fold at that time.
pub async fn stamped_by<B: EventBus>(
    bus: &B,
    stream: &StreamId,
    version: u64,
    until_ms: i64,
) -> Result<bool> {
    if version == 0 {
        return Ok(true);
    }
    let found = bus.read_stream(stream, version - 1, 1).await?;
    Ok(found.first().is_some_and(|r| r.version == version && r.record.ts <= until_ms))
}
