//! Per-partition delivery bookkeeping: what was read, handed out, acked, and how far the
//! cursor may move.
//!
//! Invariants: every event read from the store and not yet acked is in `outstanding` (buffered,
//! handed out, or waiting for redelivery), so the commit candidate — just before the smallest
//! outstanding offset — never passes an unacked event; and at most one event per key is handed
//! out at a time, which gives per-key order even when a handler fails and is retried.

use super::Delivery;
use super::outstanding::Outstanding;
use crate::record::EventRecord;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use tokio::time::Instant;

/// Identifies one handed-out event, for ack and nack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub(crate) partition: u32,
    pub(crate) offset: i64,
    /// Which tenure of the partition the event was handed out under; acks from an earlier
    /// tenure (before the lease was lost and regained) are ignored.
    pub(crate) epoch: u64,
    pub(crate) lane: Lane,
}

/// An ordering lane: a hash of the event's key. Two keys sharing a lane are only delivered one
/// at a time, like one key; order within a key never depends on the hash.
pub(crate) type Lane = u64;

/// Hashes a lane as itself: a lane already is a hash of the key, so hashing it again (SipHash,
/// the std default) would only cost time on every handed-out and acked event.
#[derive(Default)]
pub(crate) struct LaneHasher(u64);

impl Hasher for LaneHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used for a `Lane`; anything else still hashes deterministically.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, lane: u64) {
        self.0 = lane;
    }
}

/// The hasher of the per-lane map.
type Lanes = BuildHasherDefault<LaneHasher>;

/// What one lane has besides its order: whether an event of it is out, and how many wait in
/// the buffer. A lane with neither has no entry, so the map stays as small as the keys in play.
#[derive(Default)]
struct LaneState {
    busy: bool,
    waiting: u32,
}

/// An event waiting for redelivery after a nack.
struct Redelivery {
    due: Instant,
    record: Arc<EventRecord>,
    attempt: u32,
    lane: Lane,
}

/// One partition this member holds.
pub(crate) struct Part {
    pub epoch: u64,
    /// The cursor as committed in the store.
    pub committed: i64,
    /// The highest offset read from the store.
    pub read_upto: i64,
    /// Whether the last read hit its limit (more may be waiting).
    pub more: bool,
    /// Read and not handed out yet, in offset order, with their lanes. Shared, so a delivery,
    /// its handler's attempts and a redelivery all hold the one record read from the store.
    buffer: VecDeque<(Lane, Arc<EventRecord>)>,
    /// Per lane with an event out or buffered: one lookup per take and per ack answers both
    /// whether the lane is free and whether an ack made a buffered event ready.
    lanes: HashMap<Lane, LaneState, Lanes>,
    outstanding: Outstanding,
    redeliver: Vec<Redelivery>,
    attempts: BTreeMap<i64, u32>,
    pub in_flight: usize,
}

impl Part {
    pub fn new(epoch: u64, cursor: i64) -> Part {
        Part {
            epoch,
            committed: cursor,
            read_upto: cursor,
            more: true,
            buffer: VecDeque::new(),
            lanes: HashMap::default(),
            outstanding: Outstanding::default(),
            redeliver: Vec::new(),
            attempts: BTreeMap::new(),
            in_flight: 0,
        }
    }

    /// Events read but not acked (buffered, handed out or waiting for redelivery).
    pub fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    /// Adds freshly read events; `kept` says which pass the filter (the others count as done).
    pub fn add(
        &mut self,
        events: Vec<Arc<EventRecord>>,
        limit_hit: bool,
        kept: impl Fn(&EventRecord) -> bool,
    ) {
        self.more = limit_hit;
        for event in events {
            self.read_upto = self.read_upto.max(event.offset);
            if kept(&event) {
                self.outstanding.insert(event.offset);
                let lane = lane(&event);
                self.lanes.entry(lane).or_default().waiting += 1;
                self.buffer.push_back((lane, event));
            }
        }
    }

    /// Where the cursor may move: just before the oldest unacked event, or to the read position.
    pub fn candidate(&self) -> i64 {
        self.outstanding.first().map_or(self.read_upto, |first| first - 1)
    }

    /// Where the cursor could move once the events at `offsets` are acked too (without acking
    /// them).
    pub fn candidate_with(&self, offsets: &BTreeSet<i64>) -> i64 {
        self.outstanding.iter().find(|o| !offsets.contains(o)).map_or(self.read_upto, |first| first - 1)
    }

    /// Hands out up to `room` events: due redeliveries first, then buffered events whose key has
    /// nothing else out, each with its attempt number.
    pub fn take(&mut self, partition: u32, room: usize, now: Instant, out: &mut Vec<Delivery>) {
        let mut i = 0;
        while i < self.redeliver.len() && out.len() < room {
            if self.redeliver[i].due <= now {
                let Redelivery { record, attempt, lane, .. } = self.redeliver.swap_remove(i);
                let token = Token { partition, offset: record.offset, epoch: self.epoch, lane };
                self.in_flight += 1;
                out.push(Delivery { record, attempt, token });
            } else {
                i += 1;
            }
        }
        // One pass: events of busy lanes stay in order for a later take.
        let mut blocked = Vec::new();
        while out.len() < room {
            let Some((lane, record)) = self.buffer.pop_front() else { break };
            // A buffered event's lane has an entry: `add` counted it as waiting.
            let state = self.lanes.entry(lane).or_default();
            if state.busy {
                blocked.push((lane, record));
                continue;
            }
            state.waiting = state.waiting.saturating_sub(1);
            state.busy = true;
            // Redeliveries are rare: most takes find no attempts to look up.
            let attempt = if self.attempts.is_empty() {
                1
            } else {
                self.attempts.get(&record.offset).copied().unwrap_or(1)
            };
            let token = Token { partition, offset: record.offset, epoch: self.epoch, lane };
            self.in_flight += 1;
            out.push(Delivery { record, attempt, token });
        }
        // Back in front, in order, into the room their taking left: the rest of the buffer
        // stays where it is.
        for held in blocked.into_iter().rev() {
            self.buffer.push_front(held);
        }
    }

    /// Marks a handed-out event done: `None` if the token is stale, else whether a buffered
    /// event of the same lane can now be handed out.
    pub fn ack(&mut self, token: &Token) -> Option<bool> {
        if token.epoch != self.epoch || !self.outstanding.remove(token.offset) {
            return None;
        }
        if !self.attempts.is_empty() {
            self.attempts.remove(&token.offset);
        }
        self.in_flight = self.in_flight.saturating_sub(1);
        let waiting = match self.lanes.get_mut(&token.lane) {
            Some(state) if state.waiting > 0 => {
                state.busy = false;
                true
            }
            Some(_) => {
                self.lanes.remove(&token.lane);
                false
            }
            None => false,
        };
        Some(waiting)
    }

    /// Schedules a handed-out event for redelivery; its key stays blocked until then.
    pub fn nack(&mut self, token: &Token, record: Arc<EventRecord>, due: Instant) -> bool {
        if token.epoch != self.epoch || !self.outstanding.contains(token.offset) {
            return false;
        }
        let attempt = self.attempts.entry(token.offset).or_insert(1);
        *attempt += 1;
        let attempt = *attempt;
        self.in_flight = self.in_flight.saturating_sub(1);
        self.redeliver.push(Redelivery { due, record, attempt, lane: token.lane });
        true
    }

    /// The earliest pending redelivery.
    pub fn next_due(&self) -> Option<Instant> {
        self.redeliver.iter().map(|r| r.due).min()
    }
}

/// The ordering lane of an event: a hash of its key (keyless events share one lane, so they
/// keep their partition's order too). FNV-1a, fixed: lanes only need to agree within a process,
/// and keys that collide (by chance or chosen to) only take turns like one key, in order.
fn lane(record: &EventRecord) -> Lane {
    let key = record.key.as_deref().unwrap_or_default();
    key.bytes()
        .fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::NewEvent;
    use serde_json::json;

    fn event(offset: i64, key: &str) -> Arc<EventRecord> {
        Arc::new(NewEvent::new("t", json!({})).keyed(key, 0).into_record(offset))
    }

    #[test]
    fn cursor_stops_before_the_first_unacked_event() {
        let mut part = Part::new(1, 0);
        part.add(vec![event(1, "a"), event(2, "b"), event(3, "c")], false, |_| true);
        let mut out = Vec::new();
        part.take(0, 10, Instant::now(), &mut out);
        assert_eq!(out.len(), 3);
        assert!(part.ack(&out[1].token).is_some());
        assert!(part.ack(&out[2].token).is_some());
        assert_eq!(part.candidate(), 0, "event 1 is unacked, so the cursor cannot pass it");
        assert!(part.ack(&out[0].token).is_some());
        assert_eq!(part.candidate(), 3);
    }

    #[test]
    fn one_event_per_key_is_out_at_a_time() {
        let mut part = Part::new(1, 0);
        part.add(vec![event(1, "a"), event(2, "a"), event(3, "b")], false, |_| true);
        let mut out = Vec::new();
        part.take(0, 10, Instant::now(), &mut out);
        let offsets: Vec<i64> = out.iter().map(|d| d.record.offset).collect();
        assert_eq!(offsets, [1, 3]);
        let now = Instant::now();
        assert!(part.nack(&out[0].token, out[0].record.clone(), now));
        let mut again = Vec::new();
        part.take(0, 10, now, &mut again);
        assert_eq!(again.len(), 1);
        assert_eq!(
            (again[0].record.offset, again[0].attempt),
            (1, 2),
            "the nacked event comes back before offset 2"
        );
    }

    #[test]
    fn filtered_events_count_as_done_and_stale_acks_are_ignored() {
        let mut part = Part::new(7, 0);
        part.add(vec![event(1, "a"), event(2, "b")], false, |e| e.offset == 2);
        assert_eq!(part.candidate(), 1);
        let mut out = Vec::new();
        part.take(0, 10, Instant::now(), &mut out);
        let mut stale = out[0].token.clone();
        stale.epoch = 6;
        assert!(part.ack(&stale).is_none());
        assert!(part.ack(&out[0].token).is_some());
        assert_eq!(part.candidate(), 2);
    }

    #[test]
    fn an_ack_says_whether_it_unblocked_a_buffered_event_of_its_key() {
        let mut part = Part::new(1, 0);
        part.add(vec![event(1, "a"), event(2, "a"), event(3, "b")], false, |_| true);
        let mut out = Vec::new();
        part.take(0, 10, Instant::now(), &mut out);
        assert_eq!(part.ack(&out[1].token), Some(false), "nothing of `b` waits");
        assert_eq!(part.ack(&out[0].token), Some(true), "offset 2 of `a` waits behind offset 1");
        let mut again = Vec::new();
        part.take(0, 10, Instant::now(), &mut again);
        assert_eq!(again.len(), 1);
        assert_eq!(part.ack(&again[0].token), Some(false));
    }

    #[test]
    fn idle_lanes_leave_no_entry_behind() {
        let mut part = Part::new(1, 0);
        let events = (1..=50).map(|offset| event(offset, &format!("k{}", offset % 7))).collect();
        part.add(events, false, |_| true);
        let mut acked = 0;
        while acked < 50 {
            let mut out = Vec::new();
            part.take(0, 10, Instant::now(), &mut out);
            assert!(!out.is_empty(), "a key's next event goes out once the one before it is acked");
            for delivery in &out {
                assert!(part.ack(&delivery.token).is_some());
            }
            acked += out.len();
        }
        assert!(part.lanes.is_empty(), "every lane is idle, so none keeps an entry");
        assert_eq!((part.outstanding(), part.candidate()), (0, 50));
    }

    #[test]
    fn blocked_events_keep_their_order_over_takes() {
        let mut part = Part::new(1, 0);
        let events = vec![event(1, "a"), event(2, "a"), event(3, "b"), event(4, "a"), event(5, "c")];
        part.add(events, false, |_| true);
        let mut out = Vec::new();
        part.take(0, 10, Instant::now(), &mut out);
        let offsets: Vec<i64> = out.iter().map(|d| d.record.offset).collect();
        assert_eq!(offsets, [1, 3, 5], "`a`'s later events wait behind offset 1");
        let mut token = out[0].token.clone();
        for next in [2, 4] {
            assert_eq!(part.ack(&token), Some(true), "an `a` waits");
            let mut again = Vec::new();
            part.take(0, 10, Instant::now(), &mut again);
            let offsets: Vec<i64> = again.iter().map(|d| d.record.offset).collect();
            assert_eq!(offsets, [next], "the next `a` in offset order, alone");
            token = again[0].token.clone();
        }
        assert_eq!(part.ack(&token), Some(false), "no `a` left");
    }
}
