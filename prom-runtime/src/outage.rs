//! Riding out store outages: which failures are transient, and the wait-and-retry loop every
//! long-running task (consumers, changelog and transactional projectors, changefeeds) runs.
//!
//! A transient failure — MongoDB unreachable (network, server selection), a primary stepping
//! down or starting up, an error the driver labels retryable, the embedded store's disk full —
//! is waited out with capped, jittered exponential backoff for as long as it lasts, and the
//! task carries on from its own stored position (cursor, checkpoint, resume token), so nothing
//! is lost or repeated. A permanent failure (bad configuration, authentication, a lost resume
//! point, a refused document) is handed back, so the task stops with its error.
//!
//! While it waits, the task says so through a `tracing` warning (target `prom_runtime::outage`):
//! once when it starts failing, again every
//! [`REPORT_EVERY`] while the outage lasts, and once when it is back.

use crate::error::{Error, Result};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The delay after the first failure; doubled after each further one.
pub const FIRST_DELAY: Duration = Duration::from_millis(100);
/// The longest delay between two attempts.
pub const MAX_DELAY: Duration = Duration::from_secs(5);
/// How often a task that is still failing repeats its report.
pub const REPORT_EVERY: Duration = Duration::from_secs(10);

/// A boxed attempt borrowing the state it works on (see [`Outage::retry_on`]).
pub type Attempt<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// Where outage reports go (one line each).
pub type Reporter = Arc<dyn Fn(&str) + Send + Sync>;

/// Whether retrying `error` later may succeed: the store was unreachable or busy changing
/// primaries, or its disk was full. Everything else is permanent.
pub fn is_transient(error: &Error) -> bool {
    matches!(error, Error::Unavailable { .. } | Error::DiskFull { .. })
}

/// What a task waits for, as its reports say it.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Awaited {
    /// MongoDB to be reachable again.
    Server,
    /// Room on the embedded store's disk.
    Room,
}

impl Awaited {
    fn of(error: &Error) -> Awaited {
        if matches!(error, Error::DiskFull { .. }) { Awaited::Room } else { Awaited::Server }
    }

    /// The first report's words: what failed, and until when the task retries.
    fn started(self) -> (&'static str, &'static str) {
        match self {
            Awaited::Server => ("MongoDB unreachable", "until it is back"),
            Awaited::Room => ("the store's disk is full", "until there is room"),
        }
    }

    fn lasting(self) -> &'static str {
        match self {
            Awaited::Server => "MongoDB still unreachable",
            Awaited::Room => "the store's disk still full",
        }
    }

    fn ended(self) -> &'static str {
        match self {
            Awaited::Server => "MongoDB reconnected",
            Awaited::Room => "the store's disk has room again",
        }
    }
}

/// The outage state of one task: how long it has been failing and when it last said so.
pub struct Outage {
    task: String,
    since: Option<Instant>,
    failures: u32,
    next_report: Option<Instant>,
    last_error: String,
    awaited: Awaited,
    report: Reporter,
}

impl Outage {
    /// The outage state of `task` (its name in reports, e.g. "projector `processes`"),
    /// reporting through `tracing` warnings.
    pub fn new(task: impl Into<String>) -> Outage {
        Outage::with_reporter(task, Arc::new(|line: &str| tracing::warn!("{line}")))
    }

    /// Like [`Outage::new`], reporting through `report`.
    pub fn with_reporter(task: impl Into<String>, report: Reporter) -> Outage {
        Outage {
            task: task.into(),
            since: None,
            failures: 0,
            next_report: None,
            last_error: String::new(),
            awaited: Awaited::Server,
            report,
        }
    }

    /// Whether the task is in an outage (failed and not yet succeeded since).
    pub fn failing(&self) -> bool {
        self.since.is_some()
    }

    /// Takes a failure: a permanent one comes back as the error; a transient one is reported
    /// (when due) and gives the delay to wait before the next attempt.
    pub fn failed(&mut self, error: Error) -> Result<Duration> {
        if !is_transient(&error) {
            return Err(error);
        }
        let now = Instant::now();
        let since = *self.since.get_or_insert(now);
        self.failures = self.failures.saturating_add(1);
        self.last_error = summary(&error);
        self.awaited = Awaited::of(&error);
        if self.next_report.is_none_or(|due| now >= due) {
            let line = if self.failures == 1 {
                let (what, until) = self.awaited.started();
                format!(
                    "[{}] {what}: {}; retrying with backoff {until} (nothing is lost: it resumes from its \
                     stored position)",
                    self.task, self.last_error
                )
            } else {
                format!(
                    "[{}] {} after {:.0}s ({} failed): {}",
                    self.task,
                    self.awaited.lasting(),
                    now.duration_since(since).as_secs_f64(),
                    attempts(self.failures),
                    self.last_error
                )
            };
            (self.report)(&line);
            self.next_report = Some(now + REPORT_EVERY);
        }
        Ok(delay(self.failures))
    }

    /// Takes a success: ends an outage, reporting how long it lasted.
    pub fn recovered(&mut self) {
        if let Some(since) = self.since.take() {
            (self.report)(&format!(
                "[{}] {} after {:.1}s ({} failed); resuming",
                self.task,
                self.awaited.ended(),
                since.elapsed().as_secs_f64(),
                attempts(self.failures)
            ));
        }
        self.failures = 0;
        self.next_report = None;
    }

    /// Waits out a transient `error` (or until `shutdown` completes): `Ok(true)` to try again,
    /// `Ok(false)` when `shutdown` came first (it has completed then: stop, and never poll it
    /// again); a permanent error comes back as it is.
    pub async fn wait<S>(&mut self, error: Error, shutdown: Pin<&mut S>) -> Result<bool>
    where
        S: Future<Output = ()> + ?Sized,
    {
        let delay = self.failed(error)?;
        tokio::select! {
            biased;
            () = shutdown => Ok(false),
            () = tokio::time::sleep(delay) => Ok(true),
        }
    }

    /// Runs `attempt` until it succeeds (`Some`), fails for good (the error), or `shutdown`
    /// completes first (`None`: stop, and never poll `shutdown` again). Every attempt races
    /// `shutdown`, so `attempt` must be safe to abandon: cancel-safe or idempotent.
    pub async fn retry<S, T, F, Fut>(
        &mut self,
        mut shutdown: Pin<&mut S>,
        mut attempt: F,
    ) -> Result<Option<T>>
    where
        S: Future<Output = ()> + ?Sized,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        loop {
            let outcome = tokio::select! {
                biased;
                () = shutdown.as_mut() => return Ok(None),
                outcome = attempt() => outcome,
            };
            match outcome {
                Ok(value) => {
                    self.recovered();
                    return Ok(Some(value));
                }
                Err(error) => {
                    if !self.wait(error, shutdown.as_mut()).await? {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// [`Outage::retry`] for an attempt that needs `state` mutably (a subscription's `poll`
    /// or `commit`).
    pub async fn retry_on<S, St, T, F>(
        &mut self,
        mut shutdown: Pin<&mut S>,
        state: &mut St,
        mut attempt: F,
    ) -> Result<Option<T>>
    where
        S: Future<Output = ()> + ?Sized,
        St: ?Sized,
        F: for<'a> FnMut(&'a mut St) -> Attempt<'a, T>,
    {
        loop {
            let outcome = tokio::select! {
                biased;
                () = shutdown.as_mut() => return Ok(None),
                outcome = attempt(state) => outcome,
            };
            match outcome {
                Ok(value) => {
                    self.recovered();
                    return Ok(Some(value));
                }
                Err(error) => {
                    if !self.wait(error, shutdown.as_mut()).await? {
                        return Ok(None);
                    }
                }
            }
        }
    }
}

/// One line saying what failed: the message, and where when it names a store's URL (a task's
/// reports carry the task's name already).
fn summary(error: &Error) -> String {
    match error {
        Error::Unavailable { path, message, .. } if path.contains("://") => format!("{message} (at {path})"),
        Error::Unavailable { message, .. } => message.clone(),
        Error::DiskFull { path, .. } => format!("cannot write to `{path}`; free space on its disk"),
        other => other.to_string(),
    }
}

/// "1 attempt", "2 attempts".
fn attempts(n: u32) -> String {
    if n == 1 { "1 attempt".into() } else { format!("{n} attempts") }
}

/// The delay after `failures` transient failures: doubling from [`FIRST_DELAY`], capped at
/// [`MAX_DELAY`], with jitter (between half and all of it) so tasks that lost the server
/// together do not come back in lockstep.
pub fn delay(failures: u32) -> Duration {
    let ceiling = FIRST_DELAY.saturating_mul(1 << failures.saturating_sub(1).min(16)).min(MAX_DELAY);
    // The clock's nanoseconds are random enough for jitter; no RNG dependency needed.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    let half = ceiling / 2;
    let spread = u64::try_from(half.as_micros()).unwrap_or(u64::MAX).max(1);
    half + Duration::from_micros(nanos % spread)
}

/// MongoDB errors: which are transient, and the runtime error each becomes.
#[cfg(feature = "mongo")]
pub mod mongo {
    use crate::error::Error;
    use mongodb::error::{
        ErrorKind, RESUMABLE_CHANGE_STREAM_ERROR, RETRYABLE_ERROR, RETRYABLE_WRITE_ERROR,
        SYSTEM_OVERLOADED_ERROR, TRANSIENT_TRANSACTION_ERROR, UNKNOWN_TRANSACTION_COMMIT_RESULT,
        WriteFailure,
    };

    /// Server error codes that mean "not now": no primary (stepping down, starting up,
    /// shutting down), or the network between servers failed.
    const TRANSIENT_CODES: [i32; 16] = [
        6,     // HostUnreachable
        7,     // HostNotFound
        64,    // WriteConcernFailed (timed out waiting for a majority)
        89,    // NetworkTimeout
        91,    // ShutdownInProgress
        133,   // FailedToSatisfyReadPreference
        134,   // ReadConcernMajorityNotAvailableYet
        189,   // PrimarySteppedDown
        202,   // NetworkInterfaceExceededTimeLimit
        262,   // ExceededTimeLimit
        9001,  // SocketException
        10107, // NotWritablePrimary
        11600, // InterruptedAtShutdown
        11602, // InterruptedDueToReplStateChange
        13435, // NotPrimaryNoSecondaryOk
        13436, // NotPrimaryOrSecondary
    ];

    /// Labels the server or driver puts on errors that a later attempt may not meet.
    const TRANSIENT_LABELS: [&str; 6] = [
        RETRYABLE_WRITE_ERROR,
        TRANSIENT_TRANSACTION_ERROR,
        UNKNOWN_TRANSACTION_COMMIT_RESULT,
        RESUMABLE_CHANGE_STREAM_ERROR,
        SYSTEM_OVERLOADED_ERROR,
        RETRYABLE_ERROR,
    ];

    /// Whether the server could not be reached at all: no connection, a broken one, or no
    /// server selected within the timeout. Bus transactions hand these straight back instead
    /// of retrying them, so the long-running tasks notice (and report) the outage at once.
    pub fn unreachable(e: &mongodb::error::Error) -> bool {
        matches!(
            e.kind.as_ref(),
            ErrorKind::Io(_)
                | ErrorKind::ConnectionPoolCleared { .. }
                | ErrorKind::ServerSelection { .. }
                | ErrorKind::DnsResolve { .. }
        )
    }

    /// Whether the account may not do what was asked (server code 13, `Unauthorized`): never
    /// transient, but some callers leave the part out and say what to grant.
    pub fn unauthorized(e: &mongodb::error::Error) -> bool {
        const UNAUTHORIZED: i32 = 13;
        matches!(e.kind.as_ref(), ErrorKind::Command(c) if c.code == UNAUTHORIZED)
    }

    /// Whether a server error code means "not now" (see [`TRANSIENT_CODES`]).
    pub fn transient_code(code: i32) -> bool {
        TRANSIENT_CODES.contains(&code)
    }

    /// Whether retrying after `e` may succeed: unreachable, a transient code (in a command
    /// reply or a write concern error), or a retryable label. Authentication, bad arguments,
    /// refused documents and every other server error are permanent.
    pub fn transient(e: &mongodb::error::Error) -> bool {
        if unreachable(e) || TRANSIENT_LABELS.iter().any(|label| e.contains_label(label)) {
            return true;
        }
        match e.kind.as_ref() {
            ErrorKind::Command(c) => transient_code(c.code),
            ErrorKind::Write(WriteFailure::WriteConcernError(w)) => transient_code(w.code),
            _ => false,
        }
    }

    /// `e` as a runtime error of `path` (the store or task it concerns), saying `what` failed:
    /// [`Error::Unavailable`] when transient, else [`Error::Store`].
    pub fn error(path: impl Into<String>, what: impl std::fmt::Display, e: &mongodb::error::Error) -> Error {
        let path = path.into();
        if transient(e) {
            // The kind alone: the full error repeats labels and the raw server reply.
            Error::unavailable(path, format!("{what}: {}", e.kind), Some(crate::error::Cause::new(e.clone())))
        } else {
            Error::store_caused(path, format!("{what}: {e}"), e.clone())
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use mongodb::bson::doc;

        fn command(code: i32, name: &str) -> mongodb::error::Error {
            let reply = doc! { "code": code, "codeName": name, "errmsg": format!("{name} (test)") };
            let command: mongodb::error::CommandError =
                mongodb::bson::from_document(reply).expect("a command error");
            ErrorKind::Command(command).into()
        }

        #[test]
        fn network_and_failover_errors_are_transient_the_rest_permanent() {
            let refused: mongodb::error::Error =
                std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused").into();
            assert!(unreachable(&refused) && transient(&refused));
            let stepped_down = command(10107, "NotWritablePrimary");
            assert!(transient(&stepped_down) && !unreachable(&stepped_down));
            assert!(transient(&command(11602, "InterruptedDueToReplStateChange")));
            assert!(!transient(&command(18, "AuthenticationFailed")));
            assert!(!transient(&command(286, "ChangeStreamHistoryLost")));
            assert!(!transient(&command(2, "BadValue")));
        }

        #[test]
        fn transient_errors_become_unavailable_and_name_where() {
            let refused: mongodb::error::Error =
                std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused").into();
            let unavailable = error("changefeed `c`", "cannot watch", &refused);
            match &unavailable {
                Error::Unavailable { path, message, .. } => {
                    assert_eq!(path, "changefeed `c`");
                    assert!(message.starts_with("cannot watch: "), "{message}");
                }
                other => panic!("not unavailable: {other:?}"),
            }
            // The driver's error is the cause, with the OS error in it.
            let driver = driver_cause(&unavailable).expect("the driver's error is kept");
            assert!(
                matches!(driver.kind.as_ref(), ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused),
                "{driver:?}"
            );
            let refused_auth = error("mongodb://h/db", "cannot read", &command(18, "AuthenticationFailed"));
            assert!(matches!(&refused_auth, Error::Store { .. }), "{refused_auth:?}");
            assert!(!crate::outage::is_transient(&refused_auth));
            let driver = driver_cause(&refused_auth).expect("the driver's error is kept");
            assert!(matches!(driver.kind.as_ref(), ErrorKind::Command(c) if c.code == 18));
        }

        /// The `mongodb::error::Error` among the causes of `error`.
        fn driver_cause(error: &Error) -> Option<&mongodb::error::Error> {
            let mut next = std::error::Error::source(error);
            while let Some(cause) = next {
                if let Some(driver) = cause.downcast_ref::<mongodb::error::Error>() {
                    return Some(driver);
                }
                next = cause.source();
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn unavailable() -> Error {
        Error::unavailable("mongodb://h/db", "no server", None)
    }

    #[test]
    fn delays_grow_jittered_up_to_the_cap() {
        for failures in 1..40 {
            let ceiling = FIRST_DELAY.saturating_mul(1 << (failures - 1).min(16)).min(MAX_DELAY);
            let d = delay(failures);
            assert!(
                d >= ceiling / 2 && d <= ceiling,
                "{failures}: {d:?} not in [{:?}, {ceiling:?}]",
                ceiling / 2
            );
        }
        assert!(delay(u32::MAX) <= MAX_DELAY);
    }

    #[test]
    fn permanent_errors_come_back_and_transient_ones_are_reported_once_then_on_recovery() {
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let sink = lines.clone();
        let mut outage = Outage::with_reporter(
            "projector `p`",
            Arc::new(move |line: &str| sink.lock().expect("lock").push(line.to_string())),
        );
        let permanent = Error::setting("the test", "bad");
        assert_eq!(outage.failed(permanent.clone()), Err(permanent));
        assert!(!outage.failing());
        for _ in 0..5 {
            assert!(outage.failed(unavailable()).is_ok());
        }
        assert!(outage.failing());
        outage.recovered();
        outage.recovered();
        let lines = lines.lock().expect("lock").clone();
        assert_eq!(lines.len(), 2, "{lines:#?}");
        assert!(lines[0].starts_with("[projector `p`] MongoDB unreachable: "), "{}", lines[0]);
        assert!(lines[0].contains("no server"), "{}", lines[0]);
        assert!(lines[1].starts_with("[projector `p`] MongoDB reconnected after "), "{}", lines[1]);
        assert!(lines[1].contains("(5 attempts failed)"), "{}", lines[1]);
    }

    #[test]
    fn a_full_disk_is_waited_out_and_reported_as_such() {
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let sink = lines.clone();
        let mut outage = Outage::with_reporter(
            "consumer group `g`",
            Arc::new(move |line: &str| sink.lock().expect("lock").push(line.to_string())),
        );
        let full = Error::DiskFull {
            path: "/srv/store/events.db".into(),
            source: crate::error::Cause::new(std::io::Error::other("database or disk is full")),
        };
        assert!(is_transient(&full));
        assert!(outage.failed(full).is_ok());
        outage.recovered();
        let lines = lines.lock().expect("lock").clone();
        assert_eq!(
            lines[0],
            "[consumer group `g`] the store's disk is full: cannot write to `/srv/store/events.db`; free space \
             on its disk; retrying with backoff until there is room (nothing is lost: it resumes from its \
             stored position)"
        );
        assert!(
            lines[1].starts_with("[consumer group `g`] the store's disk has room again after "),
            "{}",
            lines[1]
        );
    }

    #[tokio::test]
    async fn retry_waits_out_transient_failures_and_stops_on_shutdown() {
        let mut outage = Outage::with_reporter("t", Arc::new(|_: &str| {}));
        let mut calls = 0;
        let shutdown = std::future::pending::<()>();
        tokio::pin!(shutdown);
        let got = outage
            .retry(shutdown.as_mut(), || {
                calls += 1;
                let outcome = if calls < 3 { Err(unavailable()) } else { Ok(calls) };
                async move { outcome }
            })
            .await;
        assert_eq!(got, Ok(Some(3)));
        assert!(!outage.failing());

        let failed = outage.retry(shutdown.as_mut(), || async { Err::<(), _>(Error::Closed) }).await;
        assert_eq!(failed, Err(Error::Closed));

        let stop = std::future::ready(());
        tokio::pin!(stop);
        let stopped = outage.retry(stop, || async { Err::<(), _>(unavailable()) }).await;
        assert_eq!(stopped, Ok(None));
    }
}
