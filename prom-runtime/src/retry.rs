//! Retry policy: how often and how long to retry a failing handler before dead-lettering.

use std::time::Duration;

/// Exponential backoff, capped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included (≥ 1).
    pub max_attempts: u32,
    /// Delay after the first failure; doubled after each further one.
    pub backoff: Duration,
    /// Upper bound on a delay (also the redelivery delay when there is no DLQ).
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// One attempt (no retry), as when a consumer declares no `retry:`.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 1,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The delay after `failed` attempts have failed (1 → `backoff`, 2 → 2×, ...), capped.
    pub fn delay(&self, failed: u32) -> Duration {
        let factor = 2_u32.saturating_pow(failed.saturating_sub(1).min(30));
        self.backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap() {
        let p = RetryPolicy {
            max_attempts: 10,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
        };
        let delays: Vec<u128> = (1..=5).map(|n| p.delay(n).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 500, 500]);
        assert_eq!(p.delay(u32::MAX), Duration::from_millis(500));
    }
}
