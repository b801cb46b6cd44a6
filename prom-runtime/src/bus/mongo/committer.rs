//! Group commit: the publishes one process makes at the same time share one transaction,
//! whatever partitions they write.
//!
//! Every publish to MongoDB bumps the offset counter of each partition it writes inside a
//! transaction, so two transactions publishing to one partition at once conflict and one of
//! them retries: sixty-four tasks each publishing one event would spend most of their time
//! retrying. Instead, a publish joins a queue, and a committer task takes the oldest queued
//! publish with every later one whose partitions no running group writes (up to
//! [`MAX_GROUP_EVENTS`] events and [`MAX_GROUP_BYTES`]) and stores them in **one** transaction:
//! one dedup read, one counter reservation for all their partitions (two round trips however
//! many, see [`super::counters`]), one insert and one majority-journaled commit. Nothing waits
//! for a group to fill: an idle bus commits a lone publish at once, and a busy one batches what
//! arrived during the previous commit. A further group runs beside the first ones (up to
//! [`MAX_GROUPS_IN_FLIGHT`]) only once [`MAX_GROUP_EVENTS`] events wait or a publish of
//! [`LARGE_PUBLISH_EVENTS`] comes (which is a group of its own), so large batches insert in
//! parallel while small publishes keep filling one group. Queued publishes touching
//! one partition are taken in queue order (one waiting for a busy partition holds back every
//! later one touching any of its partitions).
//!
//! Why groups span partitions instead of one group per partition (the layout before, measured
//! by `--bench mongo -- concurrency` on one machine): sixty-four publishers over eight
//! partitions made eight groups of two to four events, i.e. a transaction and a journal write
//! per few events, and over two processes every partition's pair of groups conflicted (about
//! 45 % of attempts retried): 0.43-0.49x raw `insert_one`. One group per process commits 16-35
//! events per transaction and two processes conflict once per group instead of once per
//! partition: 0.88-1.19x over 3 runs. On a sharded cluster a group whose partitions live on
//! several shards would be a distributed transaction, so on a sharded cluster (a `mongos`)
//! groups are per partition instead ([`Committer::per_partition`]): every transaction on the
//! publish path then stays on its partition's shard, and groups of different partitions commit
//! side by side (see the README's "Layout and sharding").
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
use std::collections::{BTreeSet, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::oneshot;

/// At most this many events go into one group transaction (more only when one publish has
/// more); once this many wait, a further group starts beside the running ones. Fewer fill the
/// next group of a running committer (one transaction for many small publishes); more are
/// worth a transaction of their own (large batches insert in parallel).
pub const MAX_GROUP_EVENTS: usize = 256;
/// A publish of at least this many events is a group of its own, started beside the running
/// ones (up to [`MAX_GROUPS_IN_FLIGHT`]): it is worth a transaction of its own, and batches then
/// insert in parallel (on one partition's counter each) instead of queueing behind one another.
pub const LARGE_PUBLISH_EVENTS: usize = 64;
/// At most this many bytes of headers and payload go into one group transaction (more only when
/// one publish has more). MongoDB splits large transactions itself, but small ones commit and
/// replicate sooner and never approach its 16 MiB per-document limit of a batch insert command.
pub const MAX_GROUP_BYTES: usize = 4 << 20;
/// At most this many group transactions of one bus run at once (each holds a pooled
/// connection; the driver's pool has 10 by default, and reads need some).
pub const MAX_GROUPS_IN_FLIGHT: usize = 8;

/// A partition: topic and partition number.
type Part = (String, u32);

/// The queue of one bus's publishes waiting for a group commit.
#[derive(Default)]
pub struct Committer {
    queue: Mutex<Queue>,
}

impl Committer {
    /// Group publishes per partition (`true`: a sharded cluster, where a group spanning
    /// partitions would span shards) or across partitions (`false`, the default).
    pub fn per_partition(&self, on: bool) {
        self.queue().per_partition = on;
    }
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// The partitions a running group writes.
    busy: HashSet<Part>,
    /// How many committer tasks run (each takes groups until none is ready).
    runners: usize,
    /// Events in `jobs`.
    waiting: usize,
    /// Whether a group holds one partition's publishes only.
    per_partition: bool,
}

/// One publish waiting for its commit.
struct Job {
    rows: Vec<Row>,
    /// The partitions its events go to, sorted.
    parts: Vec<Part>,
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
    let parts: BTreeSet<Part> = rows.iter().map(|r| (r.doc.topic.clone(), r.partition)).collect();
    let (reply, answer) = oneshot::channel();
    let start = {
        let mut queue = bus.inner.committer.queue();
        let large = rows.len() >= LARGE_PUBLISH_EVENTS;
        queue.waiting += rows.len();
        queue.jobs.push_back(Job { rows, parts: parts.into_iter().collect(), bytes, reply });
        another(&mut queue, large)
    };
    if start {
        // A task of its own: a caller that stops waiting never leaves a group half done.
        tokio::spawn(run(bus.clone()));
    }
    answer.await.map_err(|_| bus.err("the group committer stopped before the publish was committed"))?
}

/// Whether a committer should start: none runs, or fewer than [`MAX_GROUPS_IN_FLIGHT`] run and
/// a full group waits or a `large` publish just came; counts it as running if so.
fn another(queue: &mut Queue, large: bool) -> bool {
    // Per partition, a group cannot take another partition's publishes, so they need a
    // committer of their own to commit side by side.
    let start = queue.runners == 0
        || (queue.runners < MAX_GROUPS_IN_FLIGHT
            && (large || queue.per_partition || queue.waiting >= MAX_GROUP_EVENTS));
    queue.runners += usize::from(start);
    start
}

/// A committer task (boxed: a committer may start another, and a recursive `async fn` has no
/// provable `Send`).
fn run(bus: MongoBus) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(committer(bus))
}

/// Takes ready groups off the queue and commits them until none is ready.
async fn committer(bus: MongoBus) {
    let mut guard = Running { bus: &bus, parts: Vec::new(), done: false };
    loop {
        let (group, more) = {
            let mut queue = bus.inner.committer.queue();
            for part in guard.parts.drain(..) {
                queue.busy.remove(&part);
            }
            match take_group(&mut queue) {
                Some((group, parts)) => {
                    guard.parts = parts;
                    // What is left may make a full group of its own.
                    (group, another(&mut queue, false))
                }
                None => {
                    // Publishes left queued wait for a busy partition, whose runner takes
                    // them when its commit is done.
                    queue.runners -= 1;
                    guard.done = true;
                    break;
                }
            }
        };
        if more {
            tokio::spawn(run(bus.clone()));
        }
        commit(&bus, group).await;
    }
}

/// Releases a committer task's partitions and its place if it unwinds; the last one to go
/// fails what is queued, so later publishes start a new one instead of waiting forever.
struct Running<'a> {
    bus: &'a MongoBus,
    parts: Vec<Part>,
    done: bool,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut queue = self.bus.inner.committer.queue();
        for part in self.parts.drain(..) {
            queue.busy.remove(&part);
        }
        queue.runners = queue.runners.saturating_sub(1);
        if queue.runners == 0 {
            queue.waiting = 0;
            for job in queue.jobs.drain(..) {
                let _ = job.reply.send(Err(self.bus.err("the group committer failed; publish again")));
            }
        }
    }
}

/// The oldest queued publish none of whose partitions is busy, with every later one that is
/// free too and fits; marks their partitions busy and returns them. A publish left in the
/// queue holds its partitions for the rest of the scan, so no later publish to them passes it
/// (queue order per partition).
fn take_group(queue: &mut Queue) -> Option<(Vec<Job>, Vec<Part>)> {
    let mut held: HashSet<Part> = queue.busy.clone();
    let mut parts: BTreeSet<Part> = BTreeSet::new();
    let (mut events, mut bytes) = (0, 0);
    let mut group = Vec::new();
    let mut i = 0;
    while let Some(job) = queue.jobs.get(i) {
        let free = !job.parts.iter().any(|p| held.contains(p));
        // The first publish always fits, however large; a large one stays alone.
        let large = |n: usize| n >= LARGE_PUBLISH_EVENTS;
        let alone = large(job.rows.len()) || (group.len() == 1 && large(events));
        // Per partition, later publishes join only a one-partition group, and only to its partition.
        let joins = !queue.per_partition || (parts.len() == 1 && job.parts.iter().all(|p| parts.contains(p)));
        let fits = group.is_empty()
            || (!alone
                && joins
                && events + job.rows.len() <= MAX_GROUP_EVENTS
                && bytes + job.bytes <= MAX_GROUP_BYTES);
        if free && fits {
            events += job.rows.len();
            bytes += job.bytes;
            parts.extend(job.parts.iter().cloned());
            queue.waiting -= job.rows.len();
            group.extend(queue.jobs.remove(i));
            continue;
        }
        held.extend(job.parts.iter().cloned());
        i += 1;
    }
    if group.is_empty() {
        return None;
    }
    queue.busy.extend(parts.iter().cloned());
    Some((group, parts.into_iter().collect()))
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

#[cfg(test)]
mod tests {
    use super::{Job, Part, Queue, take_group};
    use tokio::sync::oneshot;

    fn job(parts: &[(&str, u32)]) -> Job {
        let parts: Vec<Part> = parts.iter().map(|&(t, p)| (t.to_string(), p)).collect();
        Job { rows: Vec::new(), parts, bytes: 0, reply: oneshot::channel().0 }
    }

    fn queue(per_partition: bool, jobs: Vec<Job>) -> Queue {
        Queue { jobs: jobs.into(), per_partition, ..Queue::default() }
    }

    fn parts(taken: &[Job]) -> Vec<Vec<Part>> {
        taken.iter().map(|j| j.parts.clone()).collect()
    }

    #[test]
    fn across_partitions_a_group_takes_every_free_publish() {
        let mut q = queue(false, vec![job(&[("t", 0)]), job(&[("t", 1)]), job(&[("t", 0), ("t", 2)])]);
        let (group, busy) = take_group(&mut q).expect("a group");
        assert_eq!(group.len(), 3);
        assert_eq!(busy, [("t".into(), 0), ("t".into(), 1), ("t".into(), 2)]);
        assert!(take_group(&mut q).is_none());
    }

    #[test]
    fn per_partition_a_group_holds_one_partition_and_the_others_wait_for_their_own() {
        let jobs = vec![job(&[("t", 0)]), job(&[("t", 1)]), job(&[("t", 0)]), job(&[("t", 0), ("t", 1)])];
        let mut q = queue(true, jobs);
        let (first, busy) = take_group(&mut q).expect("partition 0's group");
        assert_eq!(parts(&first), [vec![("t".to_string(), 0)], vec![("t".to_string(), 0)]]);
        assert_eq!(busy, [("t".to_string(), 0)]);
        // Partition 0 is busy: the next group is partition 1's, beside it.
        let (second, busy) = take_group(&mut q).expect("partition 1's group");
        assert_eq!(parts(&second), [vec![("t".to_string(), 1)]]);
        assert_eq!(busy, [("t".to_string(), 1)]);
        assert!(take_group(&mut q).is_none(), "the two-partition publish waits for both");
        q.busy.clear();
        let (last, _) = take_group(&mut q).expect("the spanning publish, alone");
        assert_eq!(last.len(), 1);
    }
}
