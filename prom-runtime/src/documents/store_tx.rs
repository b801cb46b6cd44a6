//! One transaction of the embedded store, driven from async code: document reads and writes,
//! validated publishes and stream appends with an expected version (the outbox, natively), all
//! committed together or not at all.
//!
//! The store has one write connection, owned by its committer thread. A [`StoreTx`] is a job
//! of that thread that stays open: it runs each operation the caller sends, in order, on the
//! write connection inside `BEGIN IMMEDIATE`, and replies; `commit` ends the job and the
//! committer commits (durable when `commit` returns). So the caller's code is ordinary async
//! code (it may await anything), statements run synchronously where the connection lives, and
//! no other writer interleaves. The price: while the transaction is open the store's other
//! writes wait, so it is bounded by a timeout (default [`DEFAULT_TIMEOUT`], counted from when the
//! committer starts it), after which it is rolled back and every later call fails with
//! [`Error::TransactionAborted`]. Awaiting another write of the same store (a plain
//! `Producer::publish`) inside the transaction would wait for it forever; publish through
//! [`StoreTx::publish`] instead.

use super::sqlite::{self, Failed};
use super::{Declared, DocFuture, Documents, check_find, check_names, with_id};
use crate::bus::SqliteBus;
use crate::bus::sqlite::projection::ProjectionTx;
use crate::error::{Cause, Error, Result};
use crate::publish::{self, Producer, PublishOptions};
use crate::record::Receipt;
use crate::registry::Registry;
use crate::stream::{Appended, ExpectedVersion, StreamId, stream_append};
use crate::typed::Event;
use serde_json::Value;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long a transaction may hold the store's writer by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the committer thread runs of an open transaction.
type Op = Box<dyn FnOnce(&mut Live<'_, '_, '_>) + Send>;

enum Msg {
    Op(Op),
    Commit,
}

/// The transaction's state on the committer thread.
pub(crate) struct Live<'t, 'a, 'b> {
    pub(crate) tx: &'t mut ProjectionTx<'a, 'b>,
    /// Tables created (or found) in this transaction.
    tables: HashSet<String>,
    /// Why the transaction can no longer commit (a store operation failed).
    doomed: Option<String>,
}

impl Live<'_, '_, '_> {
    /// Maps a failed statement: a store error dooms the transaction (as on MongoDB, where a
    /// failed operation aborts it), a refused document does not.
    fn fail(&mut self, failed: Failed) -> Error {
        match failed {
            Failed::Sql(e) => {
                let error = self.tx.err(e);
                self.doomed.get_or_insert_with(|| error.to_string());
                error
            }
            Failed::Runtime(e) => e,
        }
    }
}

/// Options of a [`StoreTx`].
#[derive(Debug, Clone)]
pub struct TxOptions {
    /// The longest the transaction may hold the store's writer before it is rolled back.
    pub timeout: Duration,
    /// The fields `find` may use.
    pub declared: Declared,
}

impl Default for TxOptions {
    fn default() -> Self {
        TxOptions { timeout: DEFAULT_TIMEOUT, declared: Declared::none() }
    }
}

/// An open transaction of the embedded store: documents and publishes that commit together.
/// Dropping it without [`StoreTx::commit`] rolls everything back.
pub struct StoreTx {
    ops: Option<mpsc::Sender<Msg>>,
    done: Option<JoinHandle<Result<()>>>,
    /// The job's outcome once it ended early (timed out, or a call found it gone).
    ended: Option<Error>,
    registry: Arc<Registry>,
    declared: Arc<Declared>,
}

impl Producer<SqliteBus> {
    /// Opens a transaction of the store ([`StoreTx`]) with the default options.
    pub fn transaction(&self) -> Result<StoreTx> {
        self.transaction_with(TxOptions::default())
    }

    /// Opens a transaction of the store with `options`.
    pub fn transaction_with(&self, options: TxOptions) -> Result<StoreTx> {
        StoreTx::begin(self.bus(), self.registry().clone(), options)
    }
}

impl StoreTx {
    /// Queues the transaction on the store's committer (needs a Tokio runtime).
    pub(crate) fn begin(bus: &SqliteBus, registry: Arc<Registry>, options: TxOptions) -> Result<StoreTx> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|e| {
            Error::setting("a store transaction", format!("it needs a Tokio runtime to run on: {e}"))
        })?;
        let (ops, rx) = mpsc::channel::<Msg>();
        let bus = bus.clone();
        let timeout = options.timeout;
        let done = runtime.spawn(async move {
            // `true`: it may publish, so subscribers are woken after the commit.
            bus.in_transaction(true, move |tx| serve(tx, &rx, timeout)).await
        });
        Ok(StoreTx {
            ops: Some(ops),
            done: Some(done),
            ended: None,
            registry,
            declared: Arc::new(options.declared),
        })
    }

    /// Runs `op` on the committer thread inside the transaction and returns its result.
    pub(crate) async fn call<T, F>(&mut self, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Live<'_, '_, '_>) -> Result<T> + Send + 'static,
    {
        if let Some(error) = &self.ended {
            return Err(error.clone());
        }
        let (reply, answer) = oneshot::channel();
        let sent = self.ops.as_ref().is_some_and(|ops| {
            let op: Op = Box::new(move |live| {
                // The caller may have stopped waiting (dropped); nothing to tell it then.
                let _ = reply.send(op(live));
            });
            ops.send(Msg::Op(op)).is_ok()
        });
        if sent && let Ok(result) = answer.await {
            return result;
        }
        // The job ended before running `op`: its outcome says why.
        Err(self.end().await)
    }

    /// The outcome of a job that ended without a commit.
    async fn end(&mut self) -> Error {
        self.ops = None;
        let error = match self.done.take() {
            Some(done) => match done.await {
                Ok(Err(e)) => e,
                Ok(Ok(())) => Error::TransactionAborted { reason: "it is already committed".into() },
                Err(e) => Error::TaskFailed { source: Cause::new(e) },
            },
            None => Error::TransactionAborted { reason: "it has ended".into() },
        };
        self.ended = Some(error.clone());
        error
    }

    /// Runs a crate-internal step (cursors, dead letters) on the transaction's connection.
    pub(crate) async fn raw<T, F>(&mut self, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut ProjectionTx<'_, '_>) -> Result<T> + Send + 'static,
    {
        self.call(move |live| {
            let result = op(live.tx);
            if let Err(e) = &result {
                live.doomed.get_or_insert_with(|| e.to_string());
            }
            result
        })
        .await
    }

    /// Publishes `payload` to `topic` in the transaction, validated like any publish (a
    /// dual-write copy included); stored only if the transaction commits. Returns the event's
    /// receipt. An invalid payload is refused ([`Error::Invalid`]) without dooming the
    /// transaction: the caller decides whether to commit the rest.
    pub async fn publish(&mut self, topic: &str, payload: Value, options: PublishOptions) -> Result<Receipt> {
        let events = publish::prepare(&self.registry, topic, payload, &options)?;
        let receipts = self
            .call(move |live| {
                live.tx.publish(events).inspect_err(|e| {
                    live.doomed.get_or_insert_with(|| e.to_string());
                })
            })
            .await?;
        receipts.into_iter().next().ok_or(Error::Closed)
    }

    /// Publishes a typed payload at its type's topic and version, in the transaction (see
    /// [`Producer::publish_event`]).
    pub async fn publish_event<E: Event>(&mut self, event: &E) -> Result<Receipt> {
        let (value, options) = publish::event_payload(event, PublishOptions::default())?;
        self.publish(E::TOPIC, value, options).await
    }

    /// Publishes several payloads in the transaction, validated like
    /// [`Producer::publish_all`]; returns the receipts of the events on their topics. An invalid
    /// payload refuses the whole call ([`Error::Invalid`], nothing of it written) without
    /// dooming the transaction.
    pub async fn publish_all(&mut self, items: Vec<(String, Value, PublishOptions)>) -> Result<Vec<Receipt>> {
        let mut events = Vec::new();
        let mut primary = Vec::with_capacity(items.len());
        for (topic, payload, options) in items {
            primary.push(events.len());
            events.extend(publish::prepare(&self.registry, &topic, payload, &options)?);
        }
        let receipts = self
            .call(move |live| {
                live.tx.publish(events).inspect_err(|e| {
                    live.doomed.get_or_insert_with(|| e.to_string());
                })
            })
            .await?;
        Ok(primary.into_iter().filter_map(|i| receipts.get(i).copied()).collect())
    }

    /// Appends `events` (topic, payload) to `stream` in the transaction if its version is
    /// `expected`, validated like [`Producer::append`] (aggregate's topics, id pointer, chain).
    /// The version is checked inside the transaction, which holds the store's writer, so no
    /// other append can slip in before the commit. A conflict ([`Error::StreamConflict`], or
    /// any store failure) dooms the transaction: `commit` then fails and nothing of it is stored,
    /// the documents and publishes before the append included. An invalid payload is refused
    /// before anything is written and does not doom it.
    pub async fn append(
        &mut self,
        stream: StreamId,
        expected: ExpectedVersion,
        events: Vec<(String, Value)>,
    ) -> Result<Appended> {
        let append = stream_append(&self.registry, stream, expected, events)?;
        self.call(move |live| {
            live.tx.append(append).inspect_err(|e| {
                live.doomed.get_or_insert_with(|| e.to_string());
            })
        })
        .await
    }

    /// Commits everything the transaction wrote and published; durable when it returns. Fails
    /// (and stores nothing) when the transaction timed out or one of its store operations failed.
    pub async fn commit(mut self) -> Result<()> {
        if let Some(error) = self.ended.take() {
            return Err(error);
        }
        if let Some(ops) = self.ops.take() {
            // A send error means the job ended already; its outcome below says why.
            let _ = ops.send(Msg::Commit);
        }
        match self.done.take() {
            Some(done) => done.await.map_err(|e| Error::TaskFailed { source: Cause::new(e) })?,
            None => Err(Error::TransactionAborted { reason: "it has ended".into() }),
        }
    }

    /// Rolls everything back (as dropping the transaction does) and waits until it is undone.
    pub async fn rollback(mut self) {
        self.ops = None;
        if let Some(done) = self.done.take() {
            // Its outcome is the rollback we asked for.
            let _ = done.await;
        }
    }
}

/// The job on the committer thread: runs operations until `Commit`, the caller's drop, or the
/// timeout.
fn serve(tx: &mut ProjectionTx<'_, '_>, rx: &mpsc::Receiver<Msg>, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut live = Live { tx, tables: HashSet::new(), doomed: None };
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Msg::Op(op)) => op(&mut live),
            Ok(Msg::Commit) => {
                return match live.doomed {
                    None => Ok(()),
                    Some(reason) => Err(Error::TransactionAborted {
                        reason: format!("an operation in it failed: {reason}"),
                    }),
                };
            }
            Err(RecvTimeoutError::Timeout) => {
                tracing::warn!(?timeout, "a store transaction held the writer too long: rolled back");
                return Err(Error::TransactionAborted {
                    reason: format!(
                        "it held the store's writer for more than {timeout:?}; keep transactions short \
                         (no waiting on other writes of the store inside one), or raise TxOptions::timeout"
                    ),
                });
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(Error::TransactionAborted { reason: "it was dropped without commit".into() });
            }
        }
    }
}

impl Documents for StoreTx {
    fn get<'a>(&'a mut self, collection: &'a str, key: &'a str) -> DocFuture<'a, Option<Value>> {
        Box::pin(async move {
            check_names(collection, key)?;
            let (c, k) = (collection.to_owned(), key.to_owned());
            self.call(move |live| sqlite::get(live.tx.conn(), &c, &k).map_err(|e| live.fail(e))).await
        })
    }

    fn put<'a>(&'a mut self, collection: &'a str, key: &'a str, doc: Value) -> DocFuture<'a, ()> {
        Box::pin(async move {
            let doc = with_id(collection, key, doc)?;
            let text = Value::Object(doc).to_string();
            let (c, k) = (collection.to_owned(), key.to_owned());
            self.call(move |live| {
                if !live.tables.contains(&c) {
                    sqlite::create(live.tx.conn(), &c).map_err(|e| live.fail(e.into()))?;
                    live.tables.insert(c.clone());
                }
                sqlite::put(live.tx.conn(), &c, &k, &text).map_err(|e| live.fail(e.into()))
            })
            .await
        })
    }

    fn delete<'a>(&'a mut self, collection: &'a str, key: &'a str) -> DocFuture<'a, bool> {
        Box::pin(async move {
            check_names(collection, key)?;
            let (c, k) = (collection.to_owned(), key.to_owned());
            self.call(move |live| sqlite::delete(live.tx.conn(), &c, &k).map_err(|e| live.fail(e.into())))
                .await
        })
    }

    fn find<'a>(
        &'a mut self,
        collection: &'a str,
        field: &'a str,
        value: Value,
    ) -> DocFuture<'a, Vec<Value>> {
        Box::pin(async move {
            check_find(&self.declared, collection, field, &value)?;
            let (c, f) = (collection.to_owned(), field.to_owned());
            self.call(move |live| sqlite::find(live.tx.conn(), &c, &f, &value).map_err(|e| live.fail(e)))
                .await
        })
    }
}
