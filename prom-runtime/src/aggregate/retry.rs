//! How often, and after how long a pause, a command is retried when another writer appended to
//! its stream first.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// Retries of [`super::Stream::handle`] on expected-version conflicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConflictRetry {
    /// Attempts in all, the first included (at least 1; default 10).
    pub max_attempts: u32,
    /// The pause after the first conflict is drawn from `0..=backoff`; it doubles per attempt
    /// (default 2 ms).
    pub backoff: Duration,
    /// The ceiling of the pause (default 100 ms).
    pub max_backoff: Duration,
}

impl Default for ConflictRetry {
    fn default() -> Self {
        ConflictRetry {
            max_attempts: 10,
            backoff: Duration::from_millis(2),
            max_backoff: Duration::from_millis(100),
        }
    }
}

impl ConflictRetry {
    /// The pause before attempt `attempt + 1`, after `attempt` (1, 2, ...) conflicted: a random
    /// share of the doubled backoff ("full jitter"), so writers that collided spread out instead
    /// of colliding again in step.
    pub fn delay(&self, attempt: u32) -> Duration {
        let doubled = self.backoff.saturating_mul(1_u32 << attempt.saturating_sub(1).min(20));
        let ceiling = doubled.min(self.max_backoff);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        if nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(random() % (nanos + 1))
    }
}

/// A random number from the standard library's per-instance hash keys (no RNG dependency).
fn random() -> u64 {
    std::collections::hash_map::RandomState::new().build_hasher().finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_under_the_doubled_backoff_and_the_ceiling() {
        let retry = ConflictRetry {
            max_attempts: 5,
            backoff: Duration::from_millis(4),
            max_backoff: Duration::from_millis(10),
        };
        for _ in 0..200 {
            assert!(retry.delay(1) <= Duration::from_millis(4));
            assert!(retry.delay(2) <= Duration::from_millis(8));
            assert!(retry.delay(30) <= Duration::from_millis(10));
        }
        let zero = ConflictRetry { backoff: Duration::ZERO, ..retry };
        assert_eq!(zero.delay(3), Duration::ZERO);
        let distinct: std::collections::BTreeSet<Duration> = (0..50).map(|_| retry.delay(3)).collect();
        assert!(distinct.len() > 1, "the pause is jittered");
    }
}
