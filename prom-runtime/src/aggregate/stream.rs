//! [`Stream`]: typed load, append and handle (load → decide → append, retried on conflict) for
//! one aggregate and one state type.

use super::error::{HandleError, StreamError};
use super::retry::ConflictRetry;
use super::snapshot::Snapshots;
use super::{Aggregate, AggregateEvent};
use crate::bus::EventBus;
use crate::publish::Producer;
use crate::stream::{Appended, ExpectedVersion, StreamId};
use std::marker::PhantomData;

/// Stream events read per store round trip while folding.
const PAGE: usize = 1_000;

/// A stream's state as of a version.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded<S> {
    /// The fold of the stream's events (the state's `Default` for a stream with none).
    pub state: S,
    /// The version of the last event folded (0: the stream does not exist).
    pub version: u64,
}

/// What [`Stream::handle`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct Handled {
    /// The stream's version after the command (unchanged when it decided on no events).
    pub version: u64,
    /// The events appended, or `None` when the decide step returned no events.
    pub appended: Option<Appended>,
    /// Attempts made (1 unless another writer got in between).
    pub attempts: u32,
}

/// The typed operations on streams of aggregate `A` folded into state `S`. Generated code
/// builds one per state type (`account::STREAM.of::<Balance>()`); it is cheap to build.
pub struct Stream<A: Aggregate, S> {
    fold: fn(&mut S, &A::Event),
    snapshots: Option<Snapshots<S>>,
    retry: ConflictRetry,
    aggregate: PhantomData<fn() -> A>,
}

impl<A: Aggregate, S> Clone for Stream<A, S> {
    fn clone(&self) -> Self {
        Stream {
            fold: self.fold,
            snapshots: self.snapshots.clone(),
            retry: self.retry,
            aggregate: PhantomData,
        }
    }
}

impl<A: Aggregate, S> std::fmt::Debug for Stream<A, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("aggregate", &A::NAME)
            .field("snapshots", &self.snapshots)
            .field("retry", &self.retry)
            .finish()
    }
}

impl<A: Aggregate, S: Default + Send + 'static> Stream<A, S> {
    /// Streams folded by `fold` (the generated dispatch to the state's `on_*` methods), without
    /// snapshots, retrying conflicts as [`ConflictRetry::default`] says.
    pub fn new(fold: fn(&mut S, &A::Event)) -> Stream<A, S> {
        Stream { fold, snapshots: None, retry: ConflictRetry::default(), aggregate: PhantomData }
    }

    /// With snapshots (generated code passes the spec's `snapshot.every`).
    pub fn with_snapshots(mut self, snapshots: Snapshots<S>) -> Stream<A, S> {
        self.snapshots = Some(snapshots);
        self
    }

    /// With another conflict retry policy for [`Stream::handle`].
    pub fn with_retry(mut self, retry: ConflictRetry) -> Stream<A, S> {
        self.retry = retry;
        self
    }

    /// The snapshot policy, if any.
    pub fn snapshots(&self) -> Option<&Snapshots<S>> {
        self.snapshots.as_ref()
    }

    /// Applies events to a state, as loading does.
    pub fn fold<'a>(&self, state: &mut S, events: impl IntoIterator<Item = &'a A::Event>) {
        for event in events {
            (self.fold)(state, event);
        }
    }

    /// The state of stream `id`: from its latest usable snapshot (when the aggregate declares
    /// snapshots) plus the events after it, or folded from its first event. A snapshot of
    /// another fingerprint, or one whose state does not decode, is discarded with a `tracing`
    /// warning. A stored event that cannot be decoded fails the load ([`StreamError::Event`]).
    pub async fn load<B: EventBus>(
        &self,
        producer: &Producer<B>,
        id: &str,
    ) -> Result<Loaded<S>, StreamError> {
        let stream = StreamId::new(A::NAME, id);
        let start = self.start(producer.bus(), &stream).await;
        let from = start.version;
        let loaded = self.fold_from(producer, &stream, start).await?;
        if let Some(snapshots) = &self.snapshots
            && loaded.version - from >= snapshots.every()
        {
            // No usable snapshot covered this many events (none yet, or a discarded one): write
            // one, so the next load is short again. Off the caller's path; it needs the state,
            // which the caller keeps, so it is encoded here.
            match snapshots.encode(&loaded.state, loaded.version) {
                Ok(snapshot) => spawn_save(producer.bus().clone(), stream, snapshot),
                Err(error) => {
                    tracing::warn!(stream = %stream, %error, "cannot encode a snapshot; loads fold from the start")
                }
            }
        }
        Ok(loaded)
    }

    /// The state of stream `id` as it stood at `at_ms` (ms since the epoch): its events in
    /// version order up to the first one stamped after `at_ms` ([`crate::stream::read_until`]),
    /// folded from the stored snapshot only when that snapshot was taken at or before `at_ms`
    /// and its last event is stamped at or before it (else from the first event). Nothing is
    /// stored. `version` is the stream's version at that time (0: it did not exist yet).
    pub async fn load_at<B: EventBus>(
        &self,
        producer: &Producer<B>,
        id: &str,
        at_ms: i64,
    ) -> Result<Loaded<S>, StreamError> {
        let stream = StreamId::new(A::NAME, id);
        let start = self.start_at(producer.bus(), &stream, at_ms).await;
        self.fold_until(producer, &stream, start, Some(at_ms)).await
    }

    /// Where folding at `at_ms` starts: the snapshot when it covers only events of that time.
    async fn start_at<B: EventBus>(&self, bus: &B, stream: &StreamId, at_ms: i64) -> Loaded<S> {
        let fresh = Loaded { state: S::default(), version: 0 };
        if self.snapshots.is_none() {
            return fresh;
        }
        match bus.load_snapshot(stream).await {
            Ok(Some(stored))
                if stored.ts <= at_ms
                    && crate::stream::stamped_by(bus, stream, stored.version, at_ms)
                        .await
                        .unwrap_or(false) =>
            {
                self.resume(stream, stored)
            }
            // A snapshot is a cache: folding from the first event is always right.
            _ => fresh,
        }
    }

    /// Appends `events` to stream `id` if its version is `expected`, atomically (all or none),
    /// each validated against its topic's schema; a different version is
    /// [`StreamError::Conflict`] and stores nothing. When the append reaches a multiple of the
    /// snapshot interval, a snapshot is written by a spawned task (a failure only logs).
    pub async fn append<B: EventBus>(
        &self,
        producer: &Producer<B>,
        id: &str,
        expected: ExpectedVersion,
        events: Vec<A::Event>,
    ) -> Result<Appended, StreamError> {
        let appended = self.append_only(producer, id, expected, &events).await?;
        if let Some(snapshots) = &self.snapshots
            && snapshots.due(appended.first_version, appended.last_version)
        {
            // The state is not at hand here: the spawned task loads it (from the previous
            // snapshot) and saves it.
            let (stream, producer) = (self.clone(), producer.clone());
            let id = id.to_owned();
            spawn(async move {
                if let Err(error) = stream.snapshot_now(&producer, &id).await {
                    tracing::warn!(aggregate = A::NAME, id = %id, %error, "cannot write a snapshot");
                }
            });
        }
        Ok(appended)
    }

    /// Appends `events` to stream `id` inside an open store transaction `tx` (the embedded
    /// store's `producer.transaction()`, or `producer.in_session(&mut session)` on MongoDB) if
    /// its version is `expected`, checked in that transaction: the events are stored, and
    /// visible, only when it commits (see [`crate::outbox`]). Writes no snapshot (the events
    /// are not committed yet); loads fold them and write one when due.
    pub async fn append_in<T: crate::outbox::Outbox>(
        &self,
        tx: &mut T,
        id: &str,
        expected: ExpectedVersion,
        events: Vec<A::Event>,
    ) -> Result<Appended, StreamError> {
        append_events_in::<A, T>(tx, id, expected, &events).await
    }

    /// Loads stream `id`, asks `decide` which events the command produces given the state, and
    /// appends them expecting the version loaded. When another writer appended in between, it
    /// loads and decides again, up to [`ConflictRetry::max_attempts`] times in all with a
    /// jittered pause; `decide` must therefore have no side effects. Its error is passed through
    /// as [`HandleError::Rejected`]; deciding on no events appends nothing.
    pub async fn handle<B, F, E>(
        &self,
        producer: &Producer<B>,
        id: &str,
        mut decide: F,
    ) -> Result<Handled, HandleError<E>>
    where
        B: EventBus,
        F: FnMut(&S) -> Result<Vec<A::Event>, E>,
    {
        let max_attempts = self.retry.max_attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let Loaded { mut state, version } = self.load(producer, id).await?;
            let events = decide(&state).map_err(HandleError::Rejected)?;
            if events.is_empty() {
                return Ok(Handled { version, appended: None, attempts: attempt });
            }
            let expected =
                if version == 0 { ExpectedVersion::NoStream } else { ExpectedVersion::Exact(version) };
            match self.append_only(producer, id, expected, &events).await {
                Ok(appended) => {
                    if let Some(snapshots) = &self.snapshots
                        && snapshots.due(appended.first_version, appended.last_version)
                    {
                        self.fold(&mut state, &events);
                        let stream = StreamId::new(A::NAME, id);
                        match snapshots.encode(&state, appended.last_version) {
                            Ok(snapshot) => spawn_save(producer.bus().clone(), stream, snapshot),
                            Err(error) => {
                                tracing::warn!(stream = %stream, %error, "cannot encode a snapshot")
                            }
                        }
                    }
                    return Ok(Handled {
                        version: appended.last_version,
                        appended: Some(appended),
                        attempts: attempt,
                    });
                }
                Err(conflict @ StreamError::Conflict { .. }) if attempt >= max_attempts => {
                    let stream = StreamId::new(A::NAME, id).to_string();
                    return Err(HandleError::Conflicts { stream, attempts: attempt, last: conflict });
                }
                Err(StreamError::Conflict { .. }) => {
                    tracing::debug!(
                        aggregate = A::NAME,
                        id,
                        attempt,
                        "stream changed under the command; retrying"
                    );
                    tokio::time::sleep(self.retry.delay(attempt)).await;
                }
                Err(other) => return Err(HandleError::Stream(other)),
            }
        }
    }

    /// Loads stream `id` and saves its snapshot now, whatever the interval; a no-op without
    /// snapshots or for an empty stream.
    pub async fn snapshot_now<B: EventBus>(
        &self,
        producer: &Producer<B>,
        id: &str,
    ) -> Result<(), StreamError> {
        let Some(snapshots) = &self.snapshots else { return Ok(()) };
        let stream = StreamId::new(A::NAME, id);
        let start = self.start(producer.bus(), &stream).await;
        let loaded = self.fold_from(producer, &stream, start).await?;
        if loaded.version == 0 {
            return Ok(());
        }
        let snapshot = snapshots
            .encode(&loaded.state, loaded.version)
            .map_err(|e| crate::Error::serialize(format!("a `{}` snapshot", A::NAME), e))?;
        producer.bus().save_snapshot(&stream, snapshot).await?;
        Ok(())
    }

    /// Encodes and appends, without snapshot scheduling.
    async fn append_only<B: EventBus>(
        &self,
        producer: &Producer<B>,
        id: &str,
        expected: ExpectedVersion,
        events: &[A::Event],
    ) -> Result<Appended, StreamError> {
        append_events::<A, B>(producer, id, expected, events).await
    }

    /// Where folding starts: the latest usable snapshot, else the default state at version 0.
    async fn start<B: EventBus>(&self, bus: &B, stream: &StreamId) -> Loaded<S> {
        let fresh = || Loaded { state: S::default(), version: 0 };
        if self.snapshots.is_none() {
            return fresh();
        }
        let stored = match bus.load_snapshot(stream).await {
            Ok(Some(stored)) => stored,
            Ok(None) => return fresh(),
            Err(error) => {
                // The snapshot is a cache: folding from the start is always right.
                tracing::warn!(stream = %stream, %error, "cannot read the snapshot; folding the stream from its first event");
                return fresh();
            }
        };
        self.resume(stream, stored)
    }

    /// The state a stored snapshot holds, or the default state at version 0 when it is unusable.
    fn resume(&self, stream: &StreamId, stored: crate::stream::Snapshot) -> Loaded<S> {
        let fresh = || Loaded { state: S::default(), version: 0 };
        let Some(snapshots) = &self.snapshots else { return fresh() };
        let at = stored.version;
        match snapshots.decode(stored) {
            Ok((state, version)) => Loaded { state, version },
            Err(unusable) => {
                tracing::warn!(
                    stream = %stream,
                    snapshot_version = at,
                    expected_fingerprint = snapshots.fingerprint(),
                    "snapshot discarded ({unusable}); folding the stream from its first event"
                );
                fresh()
            }
        }
    }

    /// Folds the events after `from.version` onto `from.state`.
    async fn fold_from<B: EventBus>(
        &self,
        producer: &Producer<B>,
        stream: &StreamId,
        from: Loaded<S>,
    ) -> Result<Loaded<S>, StreamError> {
        self.fold_until(producer, stream, from, None).await
    }

    /// Folds the events after `from.version` onto `from.state`, up to the stream as it stood at
    /// `until` (ms since the epoch) when given.
    async fn fold_until<B: EventBus>(
        &self,
        producer: &Producer<B>,
        stream: &StreamId,
        from: Loaded<S>,
        until: Option<i64>,
    ) -> Result<Loaded<S>, StreamError> {
        let Loaded { mut state, mut version } = from;
        loop {
            let page = match until {
                None => producer.bus().read_stream(stream, version, PAGE).await?,
                Some(until) => {
                    crate::stream::read_until(producer.bus(), stream, version, until, PAGE).await?
                }
            };
            let full = page.len() == PAGE;
            for stored in page {
                let (at, topic, offset) = (stored.version, stored.record.topic.clone(), stored.record.offset);
                let event = A::Event::from_record(producer.registry(), stored.record).map_err(|source| {
                    StreamError::Event { stream: stream.to_string(), version: at, topic, offset, source }
                })?;
                (self.fold)(&mut state, &event);
                version = at;
            }
            if !full {
                return Ok(Loaded { state, version });
            }
        }
    }
}

/// Appends `events` to stream `id` of aggregate `A` if its version is `expected`: each encoded
/// at its topic's latest version and validated like a publish, all stored or none.
pub async fn append_events<A: Aggregate, B: EventBus>(
    producer: &Producer<B>,
    id: &str,
    expected: ExpectedVersion,
    events: &[A::Event],
) -> Result<Appended, StreamError> {
    Ok(producer.append(StreamId::new(A::NAME, id), expected, encode::<A>(events)?).await?)
}

/// Appends `events` to stream `id` of aggregate `A` inside the open transaction `tx` if its
/// version is `expected` (see [`Stream::append_in`]).
pub async fn append_events_in<A: Aggregate, T: crate::outbox::Outbox>(
    tx: &mut T,
    id: &str,
    expected: ExpectedVersion,
    events: &[A::Event],
) -> Result<Appended, StreamError> {
    Ok(tx.append(StreamId::new(A::NAME, id), expected, encode::<A>(events)?).await?)
}

/// Each event's topic and its payload at the topic's latest version.
fn encode<A: Aggregate>(events: &[A::Event]) -> crate::Result<Vec<(String, serde_json::Value)>> {
    events.iter().map(|event| Ok((event.topic().to_owned(), event.to_payload()?))).collect()
}

/// Saves a snapshot on a spawned task; a failure only logs (the next load folds more events).
fn spawn_save<B: EventBus>(bus: B, stream: StreamId, snapshot: crate::stream::Snapshot) {
    spawn(async move {
        let version = snapshot.version;
        if let Err(error) = bus.save_snapshot(&stream, snapshot).await {
            tracing::warn!(stream = %stream, version, %error, "cannot write a snapshot");
        }
    });
}

/// Runs `task` on the current tokio runtime; outside one, snapshots are skipped (logged).
fn spawn(task: impl std::future::Future<Output = ()> + Send + 'static) {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(task);
        }
        Err(_) => tracing::warn!("no tokio runtime to write a snapshot on; skipped"),
    }
}
