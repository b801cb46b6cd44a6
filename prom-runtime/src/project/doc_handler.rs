//! The store-neutral transactional handler: it takes the event and the [`Documents`] of the
//! transaction, so one handler runs unchanged on the embedded store ([`super::embedded_tx`])
//! and on MongoDB ([`super::transactional`]). [`TxFn`] lets generated code register a handler
//! of either signature — documents, or (feature `mongo`) the raw MongoDB session.

use crate::documents::Documents;
use crate::record::EventRecord;
use crate::typed::Versioned;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// What a documents handler fails with: any error (`?` on the document API's
/// [`crate::Error`], or your own; a `String` or `&str` converts too).
pub type DocHandlerError = Box<dyn std::error::Error + Send + Sync>;

/// The future a documents handler returns.
pub type DocTxFuture<'a> = Pin<Box<dyn Future<Output = Result<(), DocHandlerError>> + Send + 'a>>;

/// Applies one decoded event through the transaction's documents.
pub trait DocHandler: Send + Sync {
    /// Applies `event` (upcast to the latest version and validated) inside the transaction.
    fn handle<'a>(&'a self, event: &'a EventRecord, docs: &'a mut dyn Documents) -> DocTxFuture<'a>;
}

impl<F> DocHandler for F
where
    F: for<'a> Fn(&'a EventRecord, &'a mut dyn Documents) -> DocTxFuture<'a> + Send + Sync,
{
    fn handle<'a>(&'a self, event: &'a EventRecord, docs: &'a mut dyn Documents) -> DocTxFuture<'a> {
        self(event, docs)
    }
}

/// A [`DocHandler`] that hands the user's function the payload decoded as `V::Latest`.
pub struct TypedDocs<V, F> {
    handler: F,
    versions: PhantomData<fn() -> V>,
}

impl<V, F> TypedDocs<V, F> {
    /// Wraps `handler`, a function of the topic's latest payload type.
    pub fn new(handler: F) -> TypedDocs<V, F> {
        TypedDocs { handler, versions: PhantomData }
    }
}

impl<V, F> DocHandler for TypedDocs<V, F>
where
    V: Versioned,
    F: for<'a> Fn(V::Latest, &'a EventRecord, &'a mut dyn Documents) -> DocTxFuture<'a> + Send + Sync,
{
    fn handle<'a>(&'a self, event: &'a EventRecord, docs: &'a mut dyn Documents) -> DocTxFuture<'a> {
        // Validated already: a mismatch means the generated types are older than the spec.
        match <V::Latest as serde::Deserialize>::deserialize(&*event.payload) {
            Ok(payload) => (self.handler)(payload, event, docs),
            Err(e) => Box::pin(async move {
                Err(format!("payload does not decode into the handler's type: {e}").into())
            }),
        }
    }
}

/// A transactional projector's handler, of either kind.
#[derive(Clone)]
pub enum AnyTxHandler {
    /// Through the document API: runs on both stores.
    Documents(Arc<dyn DocHandler>),
    /// Through the raw MongoDB session: runs on MongoDB only.
    #[cfg(feature = "mongo")]
    Session(Arc<dyn super::tx_handler::TxHandler>),
}

/// Marks a handler taking `&mut dyn Documents` (see [`TxFn`]).
pub struct ByDocuments;

/// Marks a handler taking the MongoDB database and session (see [`TxFn`]).
pub struct BySession;

/// A user function generated code registers as a transactional handler of topic versions `V`;
/// `M` ([`ByDocuments`], [`BySession`]) tells the signatures apart.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a transactional projector handler",
    note = "a handler is `fn<'a>(Latest, &'a EventRecord, &'a mut dyn Documents) -> DocTxFuture<'a>` (runs on \
            both stores), or with prom-runtime's `mongo` feature `fn<'a>(Latest, &'a EventRecord, &'a Database, \
            &'a mut ClientSession) -> TxFuture<'a>` (MongoDB only)"
)]
pub trait TxFn<V, M> {
    /// The handler.
    fn into_tx(self) -> AnyTxHandler;
}

impl<V, F> TxFn<V, ByDocuments> for F
where
    V: Versioned + 'static,
    F: for<'a> Fn(V::Latest, &'a EventRecord, &'a mut dyn Documents) -> DocTxFuture<'a>
        + Send
        + Sync
        + 'static,
{
    fn into_tx(self) -> AnyTxHandler {
        AnyTxHandler::Documents(Arc::new(TypedDocs::<V, F>::new(self)))
    }
}

#[cfg(feature = "mongo")]
impl<V, F> TxFn<V, BySession> for F
where
    V: Versioned + 'static,
    F: for<'a> Fn(
            V::Latest,
            &'a EventRecord,
            &'a mongodb::Database,
            &'a mut mongodb::ClientSession,
        ) -> super::tx_handler::TxFuture<'a>
        + Send
        + Sync
        + 'static,
{
    fn into_tx(self) -> AnyTxHandler {
        AnyTxHandler::Session(Arc::new(super::transactional::TypedTx::<V, F>::new(self)))
    }
}

/// The handler of `function` (what `wire()` registers for a projector's `handler:`).
pub fn typed_tx<V, M, F: TxFn<V, M>>(function: F) -> AnyTxHandler {
    function.into_tx()
}

/// Runs `future`, turning a panic into an error (a panicking handler fails its event and is
/// retried instead of taking the projector down).
pub(crate) struct CatchPanic<F>(pub(crate) F);

impl<F: Future + Unpin> Future for CatchPanic<F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.0;
        match std::panic::catch_unwind(AssertUnwindSafe(|| Pin::new(inner).poll(cx))) {
            Ok(Poll::Ready(output)) => Poll::Ready(Some(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(None),
        }
    }
}
