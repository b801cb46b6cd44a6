//! Group commit: the publishes one process makes at the same time share one transaction.
//!
//! Every publish to MongoDB bumps its topic's offset counter inside a transaction, so two
//! transactions publishing to one topic at once conflict and one of them retries: sixty-four
//! tasks each publishing one event would spend most of their time retrying. Instead, a publish
//! joins a queue; one committer task per bus takes everything queued (up to [`MAX_GROUP_EVENTS`]
//! events and [`MAX_GROUP_BYTES`]) and stores it in **one** transaction, while the next group
//! queues up behind it. Nothing waits for a group to fill: an idle bus commits a lone publish at
//! once, and a busy one batches exactly as much as arrived during the previous commit.
//!
//! Guarantees are those of a lone publish: each publish returns only after the majority,
//! journaled commit of the transaction holding its events; a publish's events are stored all
//! or none; dedup keys are checked across the whole group (a key published twice in one group
//! is stored once, the later publish gets the earlier event's receipt, as if they had run one
//! after the other in queue order). When a group fails for a reason other than an outage (a
//! document too large, say), each of its publishes is retried alone, so one bad publish never
//! fails the others.

use super::MongoBus;
use super::docs::Row;
use crate::error::{Error, Result};
use crate::record::Receipt;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::oneshot;

/// At most this many events go into one group transaction (more only when one publish has more).
pub const MAX_GROUP_EVENTS: usize = 1000;
/// At most this many bytes of headers and payload go into one group transaction (more only when
/// one publish has more). MongoDB splits large transactions itself, but small ones commit and
/// replicate sooner and never approach its 16 MiB per-document limit of a batch insert command.
pub const MAX_GROUP_BYTES: usize = 4 << 20;

/// The queue of one bus's publishes waiting for a group commit.
#[derive(Default)]
pub struct Committer {
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// Whether a committer task is running (it takes the queue until it is empty).
    running: bool,
}

/// One publish waiting for its commit.
struct Job {
    rows: Vec<Row>,
    bytes: usize,
    reply: oneshot::Sender<Result<Vec<Receipt>>>,
}

impl Committer {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        // The queue is consistent after every statement; a poisoned lock still holds a sound one.
        self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Stores `rows` atomically in the next group transaction; returns after it committed.
pub async fn publish(bus: &MongoBus, rows: Vec<Row>) -> Result<Vec<Receipt>> {
    let bytes = rows.iter().map(|r| r.doc.headers.len() + r.doc.payload.len() + r.doc.topic.len()).sum();
    let (reply, answer) = oneshot::channel();
    let start = {
        let mut queue = bus.inner.committer.queue();
        queue.jobs.push_back(Job { rows, bytes, reply });
        !std::mem::replace(&mut queue.running, true)
    };
    if start {
        // A task of its own: a caller that stops waiting never leaves a group half done.
        tokio::spawn(run(bus.clone()));
    }
    answer.await.map_err(|_| bus.err("the group committer stopped before the publish was committed"))?
}

/// Takes groups off the queue and commits them until the queue is empty.
async fn run(bus: MongoBus) {
    let guard = Running { bus: &bus };
    loop {
        let group = {
            let mut queue = bus.inner.committer.queue();
            if queue.jobs.is_empty() {
                queue.running = false;
                break;
            }
            take_group(&mut queue.jobs)
        };
        commit(&bus, group).await;
    }
    std::mem::forget(guard);
}

/// Clears `running` (and fails what is queued) if the committer task unwinds, so later
/// publishes start a new one instead of waiting forever.
struct Running<'a> {
    bus: &'a MongoBus,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let mut queue = self.bus.inner.committer.queue();
        queue.running = false;
        for job in queue.jobs.drain(..) {
            let _ = job.reply.send(Err(self.bus.err("the group committer failed; publish again")));
        }
    }
}

/// The jobs at the head of the queue that fit in one group (always at least one).
fn take_group(jobs: &mut VecDeque<Job>) -> Vec<Job> {
    let (mut events, mut bytes) = (0usize, 0usize);
    let mut group = Vec::new();
    while let Some(job) = jobs.front() {
        let fits = events + job.rows.len() <= MAX_GROUP_EVENTS && bytes + job.bytes <= MAX_GROUP_BYTES;
        if !group.is_empty() && !fits {
            break;
        }
        events += job.rows.len();
        bytes += job.bytes;
        group.extend(jobs.pop_front());
    }
    group
}

/// Commits `group` in one transaction and answers each publish.
async fn commit(bus: &MongoBus, group: Vec<Job>) {
    if group.len() == 1 {
        for job in group {
            let result = super::publish::publish(bus, Arc::new(job.rows)).await;
            let _ = job.reply.send(result);
        }
        return;
    }
    let mut sizes = Vec::with_capacity(group.len());
    let mut replies = Vec::with_capacity(group.len());
    let mut rows = Vec::with_capacity(group.iter().map(|j| j.rows.len()).sum());
    for job in group {
        sizes.push(job.rows.len());
        replies.push(job.reply);
        rows.extend(job.rows);
    }
    let rows = Arc::new(rows);
    match super::publish::publish(bus, Arc::clone(&rows)).await {
        Ok(receipts) => {
            let mut receipts = receipts.into_iter();
            for (size, reply) in sizes.into_iter().zip(replies) {
                let _ = reply.send(Ok(receipts.by_ref().take(size).collect()));
            }
        }
        Err(e @ Error::Unavailable { .. }) => {
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
        Err(e) => {
            // Some publish of the group may be at fault: each one alone gets its own answer.
            tracing::debug!(error = %e, publishes = sizes.len(), "a group commit failed; committing its publishes one by one");
            let mut rest = Arc::try_unwrap(rows).unwrap_or_else(|shared| shared.iter().cloned().collect());
            for (size, reply) in sizes.into_iter().zip(replies) {
                let tail = rest.split_off(size);
                let result = super::publish::publish(bus, Arc::new(rest)).await;
                let _ = reply.send(result);
                rest = tail;
            }
        }
    }
}
