//! Writes inside the caller's own MongoDB transaction (the outbox, natively): the same
//! statements as a publish ([`super::publish`]) and an append ([`super::streams`]), run in a
//! session whose transaction the caller started and will commit or abort.
//!
//! The group committer is bypassed (the caller owns the commit), yet offsets stay gap-free and
//! never handed out twice: every writer of a partition, the committer included, reserves offsets
//! by `$inc` on the partition's counter document inside its transaction, so two open
//! transactions writing one counter conflict and only one of them can commit; an aborted
//! transaction takes its `$inc` with it. The unique `topic_part_off` index is the backstop. A conflict here is not
//! retried (the caller's own writes are in the transaction too): it is handed back as
//! [`Error::TransactionConflict`] for the caller to run the whole transaction again.

use super::MongoBus;
use super::txn::Abort;
use crate::error::{Cause, Error, Result};
use crate::record::{NewEvent, Receipt};
use crate::stream::{Appended, StreamAppend};
use mongodb::ClientSession;
use mongodb::error::{ErrorKind, TRANSIENT_TRANSACTION_ERROR, WriteFailure};

/// Stores `events` (validated, with their dual-write copies) in the caller's transaction.
pub async fn publish(
    bus: &MongoBus,
    session: &mut ClientSession,
    what: &str,
    events: &[NewEvent],
) -> Result<Vec<Receipt>> {
    check_session(session, what)?;
    let rows = super::docs::rows(events)?;
    super::publish::attempt(bus, session, &rows).await.map_err(|abort| failed(bus, what, abort))
}

/// Appends in the caller's transaction, the expected version checked on its snapshot.
pub async fn append(
    bus: &MongoBus,
    session: &mut ClientSession,
    what: &str,
    append: StreamAppend,
) -> Result<Appended> {
    check_session(session, what)?;
    let job = super::streams::job(append)?;
    super::streams::attempt(bus, session, &job).await.map_err(|abort| failed(bus, what, abort))
}

/// Refuses a session without an open transaction: each statement would then commit on its
/// own, and a failure between the counter's `$inc` and the insert would leave a gap.
///
/// The driver keeps `ClientSession::in_transaction` to itself, so the state is read from the
/// session's `Debug` form (`transaction: Transaction { state: InProgress, .. }`). A form this
/// code does not recognise (another driver release) is refused too: a refused publish is
/// visible at once, a torn one is not.
fn check_session(session: &ClientSession, what: &str) -> Result<()> {
    let state = transaction_state(session);
    match state.as_deref() {
        Some("Starting" | "InProgress") => Ok(()),
        Some(other) => {
            Err(Error::NoTransaction { what: what.to_owned(), state: format!("its state is `{other}`") })
        }
        None => Err(Error::NoTransaction {
            what: what.to_owned(),
            state: "this MongoDB driver release does not say whether one is open, so Prom cannot \
                    tell; report this with the driver's version"
                .to_owned(),
        }),
    }
}

/// The session's transaction state as the driver names it (`None`, `Starting`, `InProgress`,
/// `Committed`, `Aborted`), if its `Debug` form shows it.
fn transaction_state(session: &ClientSession) -> Option<String> {
    const MARK: &str = "transaction: Transaction { state: ";
    let text = format!("{session:?}");
    let rest = &text[text.find(MARK)? + MARK.len()..];
    let end = rest.find(|c: char| !c.is_ascii_alphanumeric())?;
    Some(rest[..end].to_owned()).filter(|s| !s.is_empty())
}

/// An attempt's failure as the caller sees it: conflicts are retryable as a whole transaction.
fn failed(bus: &MongoBus, what: &str, abort: Abort) -> Error {
    match abort {
        Abort::Fail(e) => e,
        Abort::Db(e) if conflict(&e) => {
            Error::TransactionConflict { what: what.to_owned(), source: Cause::new(e) }
        }
        Abort::Db(e) if wrong_client(&e) => Error::setting(
            what,
            format!(
                "{e}\nhelp: start the session from the bus's own client (`bus.client().start_session()`): \
                 a session of another client cannot join the bus's writes"
            ),
        ),
        Abort::Db(e) => bus.db(what, &e),
    }
}

/// Whether running the whole transaction again may succeed: the driver says so, or another
/// transaction wrote the same document or unique key first.
fn conflict(e: &mongodb::error::Error) -> bool {
    const DUPLICATE_KEY: i32 = 11000;
    const WRITE_CONFLICT: i32 = 112;
    let code = |code: i32| code == DUPLICATE_KEY || code == WRITE_CONFLICT;
    e.contains_label(TRANSIENT_TRANSACTION_ERROR)
        || match e.kind.as_ref() {
            ErrorKind::Command(c) => code(c.code),
            ErrorKind::Write(WriteFailure::WriteError(w)) => code(w.code),
            ErrorKind::InsertMany(m) => {
                m.write_errors.as_ref().is_some_and(|es| es.iter().any(|w| code(w.code)))
            }
            _ => false,
        }
}

/// Whether the driver refused the session as one of another client.
fn wrong_client(e: &mongodb::error::Error) -> bool {
    matches!(e.kind.as_ref(), ErrorKind::InvalidArgument { message, .. } if message.contains("same client"))
}
