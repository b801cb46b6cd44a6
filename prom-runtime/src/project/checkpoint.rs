//! One event applied in one MongoDB transaction together with its group's cursor.
//!
//! The cursor document (`cursors`, shared with the consumer groups) is read in the
//! transaction's snapshot: an event at or below the stored cursor, or listed in the ledger
//! ([`APPLIED`]) past it, was applied already (before a crash, or by another member) and is
//! skipped. Otherwise the handler runs in the session and, in the same commit, the cursor moves
//! as far as the subscription allows (just before the oldest event still out: one event per key
//! is handed out at a time, so a later event of another key can be done before an earlier one)
//! and an event the cursor cannot pass yet goes into the ledger; entries the cursor passed are
//! dropped. Two members racing on one event both write the cursor document, so one of them
//! conflicts, retries on a fresh snapshot and skips.

use super::tx_handler::{HandlerError, TxHandler};
use crate::bus::GroupId;
use crate::bus::mongo::layout::CURSORS;
use crate::outage;
use crate::record::EventRecord;
use mongodb::bson::{Document, doc};
use mongodb::error::{ErrorKind, TRANSIENT_TRANSACTION_ERROR, UNKNOWN_TRANSACTION_COMMIT_RESULT};
use mongodb::{ClientSession, Database};
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

/// The ledger of events applied past their partition's cursor.
pub const APPLIED: &str = "projector_applied";

/// Creates the ledger collection (idempotent): creating it implicitly inside a snapshot
/// transaction is refused by the server.
pub async fn create_ledger(db: &Database) -> mongodb::error::Result<()> {
    const NAMESPACE_EXISTS: i32 = 48;
    match db.create_collection(APPLIED).await {
        Err(e) if matches!(e.kind.as_ref(), ErrorKind::Command(c) if c.code == NAMESPACE_EXISTS) => Ok(()),
        other => other,
    }
}

/// How long transient transaction errors are retried before the projector gives up.
const TRANSIENT_BUDGET: Duration = Duration::from_secs(60);

/// What one attempt at an event did.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    /// The handler's writes and the cursor committed together.
    Committed,
    /// The cursor was already at or past the event: its effects are stored.
    AlreadyApplied,
}

/// Why an attempt failed.
#[derive(Debug)]
pub enum Failure {
    /// The handler failed (counted against the retry policy, then dead-lettered).
    Handler(String),
    /// The store failed: what failed and the driver's error. The projector waits out a
    /// transient one ([`crate::outage`]) and stops on any other.
    Store(&'static str, mongodb::error::Error),
}

/// Where one group's cursor for one partition lives.
fn cursor_key(group: &GroupId, partition: u32) -> Document {
    doc! { "topic": &group.topic, "grp": &group.group, "part": i64::from(partition) }
}

/// Runs the handler for `event` and moves the cursor, in one transaction, retrying transient
/// errors (write conflicts, failovers, unknown commit results) with backoff.
pub async fn apply_once(
    db: &Database,
    session: &mut ClientSession,
    group: &GroupId,
    handler: &dyn TxHandler,
    event: &EventRecord,
    cursor_to: Option<i64>,
) -> Result<Applied, Failure> {
    let started = Instant::now();
    let mut attempt = 0u32;
    loop {
        attempt = attempt.saturating_add(1);
        // An unreachable server goes back to the projector, which reports the outage and
        // waits it out; only conflicts and failovers are retried here.
        let retry = |e: &mongodb::error::Error| {
            transient(e) && !outage::mongo::unreachable(e) && started.elapsed() < TRANSIENT_BUDGET
        };
        session.start_transaction().await.map_err(|e| Failure::Store("cannot start a transaction", e))?;
        let outcome = body(db, session, group, handler, event, cursor_to).await;
        match outcome {
            Ok(applied) => match commit(session, started).await {
                Ok(()) => return Ok(applied),
                Err(e) if retry(&e) => {}
                Err(e) => return Err(Failure::Store("cannot commit", e)),
            },
            Err(error) => {
                // Best effort: after most server errors the server has aborted it already.
                let _ = session.abort_transaction().await;
                match error {
                    Step::Db(e) if retry(&e) => {}
                    Step::Db(e) => return Err(Failure::Store("cannot read or move the cursor", e)),
                    Step::Handler(HandlerError::Db(e)) if retry(&e) => {}
                    // Not the handler's fault: the projector waits the outage out.
                    Step::Handler(HandlerError::Db(e)) if outage::mongo::unreachable(&e) => {
                        return Err(Failure::Store("the handler cannot reach MongoDB", e));
                    }
                    Step::Handler(e) => return Err(Failure::Handler(e.to_string())),
                }
            }
        }
        backoff(attempt).await;
    }
}

/// Why a transaction body stopped: the projector's own reads and writes, or the handler.
enum Step {
    Db(mongodb::error::Error),
    Handler(HandlerError),
}

async fn body(
    db: &Database,
    session: &mut ClientSession,
    group: &GroupId,
    handler: &dyn TxHandler,
    event: &EventRecord,
    cursor_to: Option<i64>,
) -> Result<Applied, Step> {
    let cursors = db.collection::<Document>(CURSORS);
    let ledger = db.collection::<Document>(APPLIED);
    let key = cursor_key(group, event.partition);
    let stored = cursors.find_one(key.clone()).session(&mut *session).await.map_err(Step::Db)?;
    let at = stored.and_then(|d| d.get_i64("off").ok()).unwrap_or(0);
    if at >= event.offset {
        return Ok(Applied::AlreadyApplied);
    }
    let mut entry = key.clone();
    entry.insert("off", event.offset);
    if ledger.find_one(entry.clone()).session(&mut *session).await.map_err(Step::Db)?.is_some() {
        return Ok(Applied::AlreadyApplied);
    }
    // A panicking handler fails its event (and is retried) instead of taking the projector down.
    let handled = futures_util::FutureExt::catch_unwind(AssertUnwindSafe(handler.handle(event, db, session)))
        .await
        .unwrap_or_else(|_| Err(HandlerError::Failed("the handler panicked".into())));
    handled.map_err(Step::Handler)?;
    let cursor = cursor_to.unwrap_or(at).max(at);
    if event.offset > cursor {
        ledger.insert_one(entry).session(&mut *session).await.map_err(Step::Db)?;
    }
    // Written even when it does not move: that write is what makes racing members conflict.
    cursors
        .update_one(key.clone(), doc! { "$max": { "off": cursor } })
        .upsert(true)
        .session(&mut *session)
        .await
        .map_err(Step::Db)?;
    if cursor > at {
        let mut passed = key;
        passed.insert("off", doc! { "$lte": cursor });
        ledger.delete_many(passed).session(&mut *session).await.map_err(Step::Db)?;
    }
    Ok(Applied::Committed)
}

/// Commits; an unknown commit result is committed again (the server remembers the outcome).
async fn commit(session: &mut ClientSession, started: Instant) -> mongodb::error::Result<()> {
    let mut attempt = 0;
    loop {
        match session.commit_transaction().await {
            // Unreachable: handed back; running the transaction again later is safe, since
            // its cursor check sees whether this commit went through.
            Err(e)
                if e.contains_label(UNKNOWN_TRANSACTION_COMMIT_RESULT)
                    && !outage::mongo::unreachable(&e)
                    && started.elapsed() < TRANSIENT_BUDGET =>
            {
                attempt += 1;
                backoff(attempt).await;
            }
            other => return other,
        }
    }
}

/// Whether running the transaction again may succeed.
fn transient(e: &mongodb::error::Error) -> bool {
    const WRITE_CONFLICT: i32 = 112;
    e.contains_label(TRANSIENT_TRANSACTION_ERROR)
        || matches!(e.kind.as_ref(), ErrorKind::Command(c) if c.code == WRITE_CONFLICT)
}

/// Exponential backoff with jitter, 1 ms up to 200 ms.
async fn backoff(attempt: u32) {
    // The clock's nanoseconds spread out members that conflicted on one document; no RNG needed.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    let ceiling_us = 1000u64.saturating_mul(1 << attempt.min(8)).min(200_000);
    tokio::time::sleep(Duration::from_micros(ceiling_us / 2 + nanos % (ceiling_us / 2))).await;
}
