//! Consumer groups on any [`EventBus`]: at-least-once delivery with per-key order, bounded
//! in-flight events, manual or automatic acks, and partitions split between live members.
//!
//! A [`Subscription`] is one member of a group. [`Subscription::poll`] keeps the membership
//! fresh, commits acknowledged progress, and hands out events. The committed cursor never
//! passes an event that was handed out and not acked, so after a crash everything from the
//! first unacked event on is delivered again.
//!
//! Committing is a durable write (an fsync on the embedded store), so `poll` does not commit on
//! every call: while events keep flowing it commits at most once per
//! [`SubscribeOptions::commit_interval`], and it always commits before it waits for new events,
//! before it hands a partition over, and on [`Subscription::commit`] and
//! [`Subscription::close`]. Delivery is at-least-once either way; the interval only bounds how
//! much acked work a crash makes the group see again (what was acked since the last commit).

mod membership;
mod outstanding;
mod state;
mod typed;

pub use state::Token;
pub use typed::{TypedDelivery, TypedSubscription};

use crate::bus::{EventBus, GroupId, TopicPosition};
use crate::error::{Error, Result};
use crate::record::EventRecord;
use state::Part;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;
use uuid::Uuid;

/// Where a group starts on partitions it has no cursor for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// From the first event.
    Earliest,
    /// After the newest event present when the group first starts.
    Latest,
    /// From the first event published at or after this time (ms since the epoch).
    Time(i64),
    /// After the event with this id.
    After(Uuid),
}

/// How deliveries are acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckMode {
    /// The caller acks (or nacks) each delivery.
    Manual,
    /// Everything handed out by one `poll` is acked by the next `poll` (or `commit`).
    Auto,
}

/// Which events a subscription hands out; the others are skipped (and count as done).
pub type Filter = Arc<dyn Fn(&EventRecord) -> bool + Send + Sync>;

/// How a subscription behaves.
#[derive(Clone)]
pub struct SubscribeOptions {
    /// Start position without a cursor.
    pub start: Start,
    /// Most events handed out per poll.
    pub batch_size: usize,
    /// Most events read and not yet acked (buffered or handed out).
    pub max_in_flight: usize,
    /// Manual or automatic acks.
    pub ack: AckMode,
    /// Optional event filter.
    pub filter: Option<Filter>,
    /// The topic's partition count.
    pub partitions: u32,
    /// Whether members split partitions (otherwise one member takes them all).
    pub partitioned: bool,
    /// This member's id (default: random). Reusing an id after a crash resumes its leases at
    /// once instead of waiting for them to expire.
    pub member: Option<String>,
    /// How long a silent member keeps its membership and leases.
    pub member_ttl: Duration,
    /// How long `poll` waits for events before returning an empty batch.
    pub poll_timeout: Duration,
    /// How often `poll` commits acked progress while events keep flowing (it also commits
    /// whenever it is about to wait for events). `Duration::ZERO` commits on every poll.
    /// After a crash, events acked since the last commit are delivered again.
    pub commit_interval: Duration,
}

impl Default for SubscribeOptions {
    fn default() -> Self {
        SubscribeOptions {
            start: Start::Earliest,
            batch_size: 100,
            max_in_flight: 1000,
            ack: AckMode::Manual,
            filter: None,
            partitions: 1,
            partitioned: false,
            member: None,
            member_ttl: Duration::from_secs(10),
            poll_timeout: Duration::from_millis(500),
            // An fsync every 200 ms costs little even when events flow continuously, and a
            // crash redelivers at most that much acked work.
            commit_interval: Duration::from_millis(200),
        }
    }
}

/// One handed-out event.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The event as stored, shared rather than copied: the delivery, a runner's attempts and a
    /// redelivery hold the one record read from the store (fields read through `Deref`; take
    /// it out with [`Arc::unwrap_or_clone`], free while nothing else holds it).
    pub record: Arc<EventRecord>,
    /// 1 on first delivery in this process, then 2, 3, ... after nacks.
    pub attempt: u32,
    /// What to ack or nack it by.
    pub token: Token,
}

/// Acknowledges deliveries from any task.
#[derive(Clone)]
pub struct Acker {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    changed: Notify,
}

#[derive(Default)]
struct State {
    parts: BTreeMap<u32, Part>,
    revoking: BTreeSet<u32>,
    epochs: u64,
    /// The poller is waiting for room (every event it may hold is read and unacked).
    full: bool,
    /// Acks since the poller started waiting for room.
    acks_while_full: usize,
    /// Acks that wake a poller waiting for room: waking it on every ack would hand out one
    /// event per poll.
    wake_after: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Bookkeeping mutations finish before anything can panic; a poisoned lock is still sound.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Acker {
    /// Marks a delivery done; the cursor may move past it at the next commit.
    pub fn ack(&self, delivery: &Delivery) {
        self.ack_token(&delivery.token);
    }

    /// Records cursors the caller committed itself, from any task (see
    /// [`Subscription::committed_by_caller`]).
    pub fn committed_by_caller(&self, cursors: &[(u32, i64)]) {
        let mut state = self.shared.lock();
        for &(p, offset) in cursors {
            if let Some(part) = state.parts.get_mut(&p) {
                part.committed = part.committed.max(offset);
            }
        }
    }

    /// Marks an event done by its token.
    pub fn ack_token(&self, token: &Token) {
        self.ack_tokens(std::slice::from_ref(token));
    }

    /// Marks events done by their tokens under one lock, waking the poller at most once (what
    /// a runner does with the events of a batch its handler finished at once).
    pub fn ack_tokens(&self, tokens: &[Token]) {
        let wake = {
            let mut state = self.shared.lock();
            let mut wake = false;
            for token in tokens {
                wake |= Self::ack_locked(&mut state, token);
            }
            wake
        };
        if wake {
            self.shared.changed.notify_waiters();
        }
    }

    /// Acks `token` in the locked state; whether the poller should wake.
    fn ack_locked(state: &mut State, token: &Token) -> bool {
        match state.parts.get_mut(&token.partition).and_then(|p| p.ack(token)) {
            None => false,
            // A buffered event of the same key may go out now.
            Some(true) => true,
            Some(false) if state.full => {
                state.acks_while_full += 1;
                state.acks_while_full >= state.wake_after || state.parts.values().all(|p| p.in_flight == 0)
            }
            Some(false) => false,
        }
    }

    /// After a caller's own commit of these partitions failed because it lost `lost`'s lease:
    /// drops `lost` (another member redelivers it from the stored cursor, as after a failed
    /// [`Subscription::commit`]) and reads the other `partitions` again from their committed
    /// cursors in a new tenure, so their handed-out events, never to be acked now, neither
    /// block their keys nor keep the partitions from being handed over.
    pub fn rewind(&self, partitions: &BTreeSet<u32>, lost: u32) {
        {
            let mut state = self.shared.lock();
            state.parts.remove(&lost);
            state.revoking.remove(&lost);
            for &p in partitions {
                let Some(committed) = state.parts.get(&p).map(|part| part.committed) else { continue };
                state.epochs += 1;
                let epoch = state.epochs;
                state.parts.insert(p, Part::new(epoch, committed));
            }
            state.full = false;
        }
        self.shared.changed.notify_waiters();
    }

    /// Asks for a delivery again after `delay`; later events of its key wait for it.
    pub fn nack(&self, delivery: &Delivery, delay: Duration) {
        self.nack_token(&delivery.token, delivery.record.clone(), delay);
    }

    /// [`Acker::nack`] by token, handing back the record to deliver again.
    pub fn nack_token(&self, token: &Token, record: Arc<EventRecord>, delay: Duration) {
        let due = Instant::now() + delay;
        let nacked =
            self.shared.lock().parts.get_mut(&token.partition).is_some_and(|p| p.nack(token, record, due));
        if nacked {
            self.shared.changed.notify_waiters();
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refill {
    Read,
    Nothing,
    Full,
}

/// A member of a consumer group.
pub struct Subscription<B: EventBus> {
    bus: B,
    group: GroupId,
    member: String,
    opts: SubscribeOptions,
    shared: Arc<Shared>,
    auto_pending: Vec<Token>,
    start_position: Option<TopicPosition>,
    next_tick: Instant,
    /// When `poll` next commits even though events keep coming.
    next_commit: Instant,
    /// The heads the last refill found nothing new below (`None`: not yet).
    seen_heads: Option<TopicPosition>,
    rotate: usize,
}

impl<B: EventBus> Subscription<B> {
    /// Joins `group` on `topic` and fixes where the group starts before returning: with
    /// `Start::Latest`, every event published after this returns is delivered. Prefer it to
    /// [`Subscription::new`]; a group that already has cursors keeps them.
    pub async fn subscribe(
        bus: B,
        topic: &str,
        group: &str,
        opts: SubscribeOptions,
    ) -> Result<Subscription<B>> {
        let mut sub = Subscription::new(bus, topic, group, opts)?;
        sub.start().await?;
        Ok(sub)
    }

    /// Joins `group` on `topic` without touching the store: the start position of a new group
    /// is fixed by [`Subscription::start`] or, failing that, at the first `poll`, so with
    /// `Start::Latest` events published before then are not delivered to it.
    /// [`Subscription::subscribe`] does both steps.
    pub fn new(bus: B, topic: &str, group: &str, opts: SubscribeOptions) -> Result<Subscription<B>> {
        if opts.batch_size == 0 || opts.max_in_flight == 0 || opts.partitions == 0 {
            return Err(Error::setting(
                format!("subscription to `{topic}` (group `{group}`)"),
                format!(
                    "batch_size, max_in_flight and partitions must be at least 1 (got {}, {}, {})",
                    opts.batch_size, opts.max_in_flight, opts.partitions
                ),
            ));
        }
        let member = opts.member.clone().unwrap_or_else(member_id);
        let commit_interval = opts.commit_interval;
        let wake_after = (opts.batch_size.min(opts.max_in_flight) / 4).max(1);
        Ok(Subscription {
            bus,
            group: GroupId::new(topic, group),
            member,
            opts,
            shared: Arc::new(Shared {
                state: Mutex::new(State { wake_after, ..State::default() }),
                changed: Notify::new(),
            }),
            auto_pending: Vec::new(),
            start_position: None,
            next_tick: Instant::now(),
            next_commit: later(commit_interval),
            seen_heads: None,
            rotate: 0,
        })
    }

    /// The group.
    pub fn group(&self) -> &GroupId {
        &self.group
    }

    /// This member's id.
    pub fn member(&self) -> &str {
        &self.member
    }

    /// The options.
    pub fn options(&self) -> &SubscribeOptions {
        &self.opts
    }

    /// A handle for acking from other tasks.
    pub fn acker(&self) -> Acker {
        Acker { shared: self.shared.clone() }
    }

    /// Marks a delivery done.
    pub fn ack(&self, delivery: &Delivery) {
        self.acker().ack(delivery);
    }

    /// Asks for a delivery again after `delay`.
    pub fn nack(&self, delivery: &Delivery, delay: Duration) {
        self.acker().nack(delivery, delay);
    }

    /// The partitions this member holds now.
    pub fn partitions(&self) -> Vec<u32> {
        self.shared.lock().parts.keys().copied().collect()
    }

    /// Events handed out and not yet acked or nacked.
    pub fn in_flight(&self) -> usize {
        self.shared.lock().parts.values().map(|p| p.in_flight).sum()
    }

    /// Waits up to the poll timeout for events and hands out at most `batch_size` of them.
    ///
    /// Cancel-safe: every await leaves the bookkeeping consistent, so dropping the future (for
    /// example in a `select!` on shutdown) loses nothing.
    pub async fn poll(&mut self) -> Result<Vec<Delivery>> {
        let deadline = Instant::now() + self.opts.poll_timeout;
        if self.opts.ack == AckMode::Auto {
            let acker = self.acker();
            for token in std::mem::take(&mut self.auto_pending) {
                acker.ack_token(&token);
            }
        }
        let shared = self.shared.clone();
        loop {
            let changed = shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            shared.lock().full = false;
            self.maintain().await?;
            if Instant::now() >= self.next_commit {
                self.commit().await?;
            }
            let (batch, next_due) = self.take_ready();
            if !batch.is_empty() {
                if self.opts.ack == AckMode::Auto {
                    self.auto_pending.extend(batch.iter().map(|d| d.token.clone()));
                }
                return Ok(batch);
            }
            let refill = self.refill().await?;
            if refill == Refill::Read {
                continue;
            }
            if refill == Refill::Nothing {
                // Caught up: about to wait for new events, so commit what was acked now rather
                // than leave it to a crash to redeliver. (When only full, acks are coming in one
                // by one; committing on each would be an fsync per event, so the interval rules.)
                self.commit().await?;
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let until = [Some(deadline), next_due, Some(self.next_tick), Some(self.next_commit)]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(deadline);
            let timeout = until.saturating_duration_since(now);
            if refill == Refill::Full {
                // Nothing more may be read until something is acked.
                tokio::select! {
                    () = tokio::time::sleep(timeout) => {}
                    () = changed => {}
                }
            } else {
                let Some(seen) = &self.seen_heads else { continue };
                tokio::select! {
                    () = self.bus.wait(&self.group.topic, seen, timeout) => {}
                    () = changed => {}
                }
            }
        }
    }

    fn take_ready(&mut self) -> (Vec<Delivery>, Option<Instant>) {
        let now = Instant::now();
        let mut state = self.shared.lock();
        let State { parts, revoking, .. } = &mut *state;
        // Sized for a full batch up front: growing it event by event cost more than the take.
        let mut taken = Vec::with_capacity(self.opts.batch_size);
        let ids: Vec<u32> = parts.keys().copied().filter(|p| !revoking.contains(p)).collect();
        if !ids.is_empty() {
            // Rotating the starting partition keeps one busy partition from starving the rest.
            self.rotate = self.rotate.wrapping_add(1);
            for i in 0..ids.len() {
                let p = ids[(i + self.rotate) % ids.len()];
                if let Some(part) = parts.get_mut(&p) {
                    part.take(p, self.opts.batch_size, now, &mut taken);
                }
            }
        }
        let next_due = parts.values().filter_map(Part::next_due).min();
        (taken, next_due)
    }

    /// Reads more events into the buffers of held partitions.
    async fn refill(&mut self) -> Result<Refill> {
        let heads = self.bus.heads(&self.group.topic).await?;
        let moved = |p: u32| self.seen_heads.as_ref().is_none_or(|seen| heads.at(p) > seen.at(p));
        let plan: Vec<(u32, i64)> = {
            let state = self.shared.lock();
            state
                .parts
                .iter()
                .filter(|&(&p, part)| !state.revoking.contains(&p) && (part.more || moved(p)))
                .filter(|&(&p, part)| part.read_upto < heads.at(p))
                .map(|(&p, part)| (p, part.read_upto))
                .collect()
        };
        let mut read_any = false;
        for (p, after) in plan {
            let room = self.room();
            if room == 0 {
                return Ok(if read_any { Refill::Read } else { Refill::Full });
            }
            let limit = room.min(self.opts.batch_size);
            let events = self.bus.read_shared(&self.group.topic, p, after, limit).await?;
            let filter = self.opts.filter.clone();
            let mut state = self.shared.lock();
            // The partition may have been dropped or re-acquired while reading.
            let Some(part) = state.parts.get_mut(&p).filter(|part| part.read_upto == after) else { continue };
            read_any |= !events.is_empty();
            let limit_hit = events.len() >= limit;
            part.add(events, limit_hit, |e| filter.as_ref().is_none_or(|f| f(e)));
        }
        if read_any {
            return Ok(Refill::Read);
        }
        // Every held partition was read up to its head, so waiting for a head to move is exact.
        self.seen_heads = Some(heads);
        Ok(if self.room() == 0 { Refill::Full } else { Refill::Nothing })
    }

    /// How many more events may be read; at 0 acks start counting towards waking the poller
    /// (set under the same lock, so no ack between the check and the wait is missed).
    fn room(&self) -> usize {
        let mut state = self.shared.lock();
        let outstanding: usize = state.parts.values().map(Part::outstanding).sum();
        let room = self.opts.max_in_flight.saturating_sub(outstanding);
        if room == 0 && !state.full {
            state.full = true;
            state.acks_while_full = 0;
        }
        room
    }

    /// The cursors a commit would store once `deliveries` are acked, without acking them: per
    /// held partition they belong to, where its cursor may then move, when that is past the
    /// committed one. A caller that stores progress in its own transaction (the embedded
    /// projector) commits these with its writes, then acks the deliveries and reports the
    /// commit with [`Subscription::committed_by_caller`].
    pub fn cursors_if_acked(&self, deliveries: &[Delivery]) -> Vec<(u32, i64)> {
        self.cursors_if_tokens_acked(deliveries.iter().map(|d| &d.token))
    }

    /// [`Subscription::cursors_if_acked`] for deliveries given by their tokens.
    pub fn cursors_if_tokens_acked<'t>(
        &self,
        tokens: impl IntoIterator<Item = &'t Token>,
    ) -> Vec<(u32, i64)> {
        let mut offsets: BTreeMap<u32, BTreeSet<i64>> = BTreeMap::new();
        for token in tokens {
            offsets.entry(token.partition).or_default().insert(token.offset);
        }
        let state = self.shared.lock();
        offsets
            .iter()
            .filter_map(|(p, offsets)| {
                let part = state.parts.get(p)?;
                let candidate = part.candidate_with(offsets);
                (candidate > part.committed).then_some((*p, candidate))
            })
            .collect()
    }

    /// Records cursors the caller committed itself (see [`Subscription::cursors_if_acked`]), so
    /// the next commit does not write them again.
    pub fn committed_by_caller(&self, cursors: &[(u32, i64)]) {
        self.acker().committed_by_caller(cursors);
    }

    /// Commits the progress acked so far (fenced by this member's leases).
    pub async fn commit(&mut self) -> Result<()> {
        if self.opts.ack == AckMode::Auto {
            let acker = self.acker();
            for token in std::mem::take(&mut self.auto_pending) {
                acker.ack_token(&token);
            }
        }
        self.next_commit = later(self.opts.commit_interval);
        let cursors: Vec<(u32, i64)> = {
            let state = self.shared.lock();
            state
                .parts
                .iter()
                .filter(|(_, part)| part.candidate() > part.committed)
                .map(|(&p, part)| (p, part.candidate()))
                .collect()
        };
        self.commit_cursors(cursors).await
    }

    async fn commit_cursors(&mut self, cursors: Vec<(u32, i64)>) -> Result<()> {
        if cursors.is_empty() {
            return Ok(());
        }
        match self.bus.commit(&self.group, Some(&self.member), cursors.clone()).await {
            Ok(()) => {
                let mut state = self.shared.lock();
                for (p, offset) in cursors {
                    if let Some(part) = state.parts.get_mut(&p) {
                        part.committed = part.committed.max(offset);
                    }
                }
                Ok(())
            }
            Err(Error::LeaseLost { partition, .. }) => {
                // Another member owns it now and redelivers from the stored cursor; drop ours.
                let mut state = self.shared.lock();
                state.parts.remove(&partition);
                state.revoking.remove(&partition);
                self.next_tick = Instant::now();
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Commits, then leaves the group so other members take over at once.
    pub async fn close(mut self) -> Result<()> {
        self.commit().await?;
        self.bus.leave(&self.group, &self.member).await
    }
}

/// `delay` from now; a delay too large to represent means "not in this process's lifetime".
fn later(delay: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(delay).unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}

/// Events of `group` not yet consumed, over all partitions.
pub async fn lag<B: EventBus>(bus: &B, group: &GroupId, partitions: u32) -> Result<u64> {
    let cursors = bus.cursors(group).await?;
    let mut total = 0;
    for p in 0..partitions {
        total += bus.count_after(&group.topic, p, cursors.get(&p).copied().unwrap_or(0)).await?;
    }
    Ok(total)
}

/// A new group member id (process id and a UUIDv7). A task that starts its subscription again
/// after an outage keeps the one it made first, so the leases it held resume at once.
pub(crate) fn member_id() -> String {
    format!("{}-{}", std::process::id(), Uuid::now_v7())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::MemoryBus;
    use crate::record::NewEvent;
    use serde_json::json;

    async fn committed(bus: &MemoryBus) -> i64 {
        bus.cursors(&GroupId::new("t", "g")).await.expect("cursors").get(&0).copied().unwrap_or(0)
    }

    #[tokio::test]
    async fn poll_commits_on_the_interval_while_busy_and_before_it_waits() {
        let bus = MemoryBus::new();
        let events =
            (0..20).map(|n| NewEvent::new("t", json!({ "n": n })).keyed(format!("k{n}"), 0)).collect();
        bus.publish(events).await.expect("publish");
        let opts = SubscribeOptions {
            batch_size: 5,
            poll_timeout: Duration::from_millis(20),
            commit_interval: Duration::from_secs(3600),
            ..SubscribeOptions::default()
        };
        let mut sub = Subscription::new(bus.clone(), "t", "g", opts).expect("subscribe");
        let mut seen = 0;
        while seen < 20 {
            let batch = sub.poll().await.expect("poll");
            for d in &batch {
                sub.ack(d);
            }
            seen += batch.len();
            assert_eq!(committed(&bus).await, 0, "events keep coming: nothing committed before the interval");
        }
        assert!(sub.poll().await.expect("poll").is_empty());
        assert_eq!(committed(&bus).await, 20, "caught up: committed before waiting");
    }

    #[tokio::test]
    async fn a_zero_interval_commits_on_every_poll() {
        let bus = MemoryBus::new();
        let events =
            (0..10).map(|n| NewEvent::new("t", json!({ "n": n })).keyed(format!("k{n}"), 0)).collect();
        bus.publish(events).await.expect("publish");
        let opts = SubscribeOptions {
            batch_size: 5,
            commit_interval: Duration::ZERO,
            ..SubscribeOptions::default()
        };
        let mut sub = Subscription::new(bus.clone(), "t", "g", opts).expect("subscribe");
        for d in &sub.poll().await.expect("poll") {
            sub.ack(d);
        }
        assert_eq!(sub.poll().await.expect("poll").len(), 5);
        assert_eq!(committed(&bus).await, 5);
    }
}
