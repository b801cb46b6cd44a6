//! "What was the balance at T": an account's state as it stood at a past time, folded from its
//! stream's events stamped up to that time ([`prom_runtime::aggregate::Stream::load_at`]).

use crate::{Balance, Bank};
use prom_runtime::EventBus;
use prom_runtime::aggregate::StreamError;

impl<B: EventBus> Bank<B> {
    /// The balance of account `id` at `at_ms` (ms since the epoch) and the stream's version then
    /// (0, with an unopened balance, before the account was opened).
    pub async fn balance_at(&self, id: &str, at_ms: i64) -> Result<(Balance, u64), StreamError> {
        let loaded = self.accounts.load_at(&self.producer, id, at_ms).await?;
        Ok((loaded.state, loaded.version))
    }
}

/// A time given on the command line: RFC 3339 (`2026-11-24T13:00:00Z`) or ms since the epoch.
pub fn parse_time(text: &str) -> Result<i64, String> {
    prom_runtime::record::parse_ts(text)
}
