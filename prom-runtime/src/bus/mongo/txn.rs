//! Running a body in a transaction, retried when MongoDB says a retry can succeed.
//!
//! Concurrent writers of one document (a partition counter, a lease) make all but one transaction
//! fail with a write conflict; a racing insert of one unique key fails with a duplicate key. Both
//! are retried from the start, on a fresh snapshot that sees the winner's write, so the bodies
//! must only decide from what they read inside the transaction.

use crate::error::Error;
use mongodb::ClientSession;
use mongodb::error::{
    ErrorKind, TRANSIENT_TRANSACTION_ERROR, UNKNOWN_TRANSACTION_COMMIT_RESULT, WriteFailure,
};
use std::time::{Duration, Instant};

/// Why a transaction body stopped.
#[derive(Debug)]
pub enum Abort {
    /// The database failed (retried when transient).
    Db(mongodb::error::Error),
    /// The operation is refused (for example a lost lease); never retried.
    Fail(Error),
}

impl From<mongodb::error::Error> for Abort {
    fn from(e: mongodb::error::Error) -> Abort {
        Abort::Db(e)
    }
}

/// The result of a transaction body.
pub type TxResult<T> = std::result::Result<T, Abort>;

/// How a transaction attempt ended.
pub enum Settled<T> {
    /// Committed.
    Done(T),
    /// Run the body again.
    Retry,
    /// Give up with this error.
    Failed(Abort),
}

/// How long a conflicted transaction keeps retrying before reporting the conflict.
const MAX_RETRY_TIME: Duration = Duration::from_secs(60);

/// Backoff state of one transaction.
pub struct Retry {
    started: Instant,
    attempt: u32,
}

impl Default for Retry {
    fn default() -> Retry {
        Retry::new()
    }
}

impl Retry {
    /// A fresh retry budget.
    pub fn new() -> Retry {
        Retry { started: Instant::now(), attempt: 0 }
    }

    /// Sleeps before the next attempt; `false` when the time budget is spent.
    async fn again(&mut self) -> bool {
        if self.started.elapsed() >= MAX_RETRY_TIME {
            return false;
        }
        self.attempt = self.attempt.saturating_add(1);
        // Jitter spreads out writers that conflicted on the same document; the clock's
        // nanoseconds are random enough for that and need no RNG dependency.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::from(d.subsec_nanos()));
        let ceiling_us = 500u64.saturating_mul(1 << self.attempt.min(8)).min(100_000);
        tokio::time::sleep(Duration::from_micros(nanos % ceiling_us.max(1))).await;
        true
    }
}

/// Whether a failed attempt may succeed when run again soon. An unreachable server is not
/// retried here: it is handed back at once as [`Error::Unavailable`], so a long-running task
/// reports the outage and waits it out ([`crate::outage`]) instead of spinning silently.
fn retryable(e: &mongodb::error::Error) -> bool {
    if crate::outage::mongo::unreachable(e) {
        return false;
    }
    const DUPLICATE_KEY: i32 = 11000;
    const WRITE_CONFLICT: i32 = 112;
    let code_retryable = |code: i32| code == DUPLICATE_KEY || code == WRITE_CONFLICT;
    e.contains_label(TRANSIENT_TRANSACTION_ERROR)
        || match e.kind.as_ref() {
            ErrorKind::Command(c) => code_retryable(c.code),
            ErrorKind::Write(WriteFailure::WriteError(w)) => code_retryable(w.code),
            ErrorKind::InsertMany(m) => {
                m.write_errors.as_ref().is_some_and(|errors| errors.iter().any(|w| code_retryable(w.code)))
            }
            _ => false,
        }
}

/// Commits after a successful body, or aborts after a failed one, and says what to do next.
pub async fn settle<T>(session: &mut ClientSession, outcome: TxResult<T>, retry: &mut Retry) -> Settled<T> {
    match outcome {
        Ok(value) => loop {
            match session.commit_transaction().await {
                Ok(()) => return Settled::Done(value),
                // Committing again is safe: the server remembers the transaction's outcome.
                Err(e) if e.contains_label(UNKNOWN_TRANSACTION_COMMIT_RESULT) && retry.again().await => {}
                Err(e) if retryable(&e) && retry.again().await => return Settled::Retry,
                Err(e) => return Settled::Failed(Abort::Db(e)),
            }
        },
        Err(abort) => {
            // Best effort: after a server error the server has usually aborted it already.
            let _ = session.abort_transaction().await;
            match abort {
                Abort::Db(e) if retryable(&e) && retry.again().await => Settled::Retry,
                other => Settled::Failed(other),
            }
        }
    }
}

/// Runs `$body` (a future using `$s: &mut ClientSession` and `$b: &MongoBus`) in a
/// transaction on `$bus`, retrying conflicts; evaluates to `crate::Result<T>`.
///
/// The transaction runs in a task of its own, so a caller that stops waiting (a `select!` on
/// shutdown) never leaves it half done: an abandoned open transaction would hold its documents'
/// write locks until the server's transaction lifetime (60 s) ran out, stalling every other
/// writer of those documents. Everything the body uses must therefore be owned (moved in).
macro_rules! transaction {
    ($bus:expr, |$b:ident, $s:ident| $body:expr) => {{
        let owner: $crate::bus::mongo::MongoBus = $bus.clone();
        let task = tokio::spawn(async move {
            let $b = &owner;
            let mut session = $b.session().await?;
            let mut retry = $crate::bus::mongo::txn::Retry::new();
            loop {
                if let Err(e) = session.start_transaction().await {
                    break Err($b.db("cannot start a transaction", &e));
                }
                let outcome = {
                    let $s = &mut session;
                    $body.await
                };
                match $crate::bus::mongo::txn::settle(&mut session, outcome, &mut retry).await {
                    $crate::bus::mongo::txn::Settled::Done(value) => break Ok(value),
                    $crate::bus::mongo::txn::Settled::Retry => {}
                    $crate::bus::mongo::txn::Settled::Failed(abort) => break Err($b.abort(abort)),
                }
            }
        });
        match task.await {
            Ok(result) => result,
            Err(e) => Err($bus.err(format!("a transaction task failed: {e}"))),
        }
    }};
}

pub(super) use transaction;
