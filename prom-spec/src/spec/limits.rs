//! Upper bounds on every count and duration a spec declares (and the lower bounds that are not
//! obvious). Lint rejects larger values (P401)
//! so that no stage downstream clamps silently or allocates what a typo asked for: the
//! runtime sizes per-partition state by `partitions`, buffers by `batch_size`, and so on.

use std::time::Duration;

/// A topic's `partitions`.
pub const PARTITIONS: u64 = 4096;
/// A consumer's `batch_size`.
pub const BATCH_SIZE: u64 = 10_000;
/// A consumer's `max_in_flight`.
pub const MAX_IN_FLIGHT: u64 = 100_000;
/// A retry policy's `max_attempts`.
pub const MAX_ATTEMPTS: u64 = 1_000;
/// A retry policy's `backoff` (the first delay).
pub const BACKOFF: Duration = Duration::from_secs(3_600);
/// A retry policy's `max_backoff`.
pub const MAX_BACKOFF: Duration = Duration::from_secs(86_400);
/// The shortest consumer `member_ttl`: members renew every third of it, so a shorter TTL
/// would let a busy but alive member (a slow store write, a GC pause) lose its partitions.
pub const MEMBER_TTL_MIN: Duration = Duration::from_secs(1);
/// The longest consumer `member_ttl` (a dead member's partitions wait that long).
pub const MEMBER_TTL: Duration = Duration::from_secs(3_600);
/// A snapshot API's `max_age` (`Cache-Control: max-age`).
pub const MAX_AGE: Duration = Duration::from_secs(7 * 86_400);
/// A snapshot API's `max_limit` (documents per page).
pub const MAX_LIMIT: u64 = 10_000;
/// An aggregate's `snapshot: { every }` (events between snapshots).
pub const SNAPSHOT_EVERY: u64 = 1_000_000;

/// `d` in the largest unit that divides it exactly, as a spec would write it.
pub fn duration_text(d: Duration) -> String {
    let ms = d.as_millis();
    for (unit, size) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)] {
        if ms >= size && ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}
