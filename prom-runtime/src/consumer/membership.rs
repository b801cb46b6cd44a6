//! Group membership: heartbeats, rendezvous assignment, and partition leases.
//!
//! Each tick a member heartbeats (which sweeps members whose TTL ran out), computes the
//! rendezvous assignment over the live members, gives up partitions it should no longer own
//! once nothing of theirs is in flight, and claims the ones it should own when their previous
//! holder has released them or its lease expired. Only the lease holder may commit a cursor,
//! so a partition is never processed by two members at once as long as members tick within
//! their TTL.

use super::state::Part;
use super::{Start, Subscription};
use crate::bus::{EventBus, TopicPosition};
use crate::error::{Error, Result};
use crate::partition;
use std::collections::{BTreeMap, BTreeSet};
use tokio::time::Instant;

impl<B: EventBus> Subscription<B> {
    /// Runs a membership tick if one is due.
    pub(super) async fn maintain(&mut self) -> Result<()> {
        let now = Instant::now();
        if now < self.next_tick {
            return Ok(());
        }
        let ttl = self.opts.member_ttl;
        let members = self.bus.heartbeat(&self.group, &self.member, ttl).await?;
        let desired: BTreeSet<u32> = partition::assign(self.opts.partitions, &members, self.opts.partitioned)
            .into_iter()
            .filter(|(_, owner)| *owner == self.member)
            .map(|(p, _)| p)
            .collect();
        let (held, release) = {
            let mut state = self.shared.lock();
            let held: BTreeSet<u32> = state.parts.keys().copied().collect();
            state.revoking = held.difference(&desired).copied().collect();
            let release: Vec<u32> = state
                .revoking
                .iter()
                .copied()
                .filter(|p| state.parts.get(p).is_some_and(|x| x.in_flight == 0))
                .collect();
            (held, release)
        };
        // Commit what was acked on the partitions being handed over before letting them go.
        let final_cursors: Vec<(u32, i64)> = {
            let state = self.shared.lock();
            release
                .iter()
                .filter_map(|p| state.parts.get(p).map(|part| (*p, part.candidate())))
                .filter(|(p, c)| state.parts.get(p).is_some_and(|part| *c > part.committed))
                .collect()
        };
        self.commit_cursors(final_cursors).await?;
        let want: Vec<u32> = desired.difference(&held).copied().collect();
        let now_held: BTreeSet<u32> = self
            .bus
            .claim(&self.group, &self.member, want, release.clone(), ttl)
            .await?
            .into_iter()
            .collect();
        let fresh: Vec<u32> = {
            let mut state = self.shared.lock();
            for p in &held {
                if !now_held.contains(p) {
                    state.parts.remove(p);
                    state.revoking.remove(p);
                }
            }
            now_held.iter().copied().filter(|p| !state.parts.contains_key(p)).collect()
        };
        if !fresh.is_empty() {
            let (start, cursors) = self.init_cursors().await?;
            let mut state = self.shared.lock();
            for p in fresh {
                state.epochs += 1;
                let epoch = state.epochs;
                let cursor = cursors.get(&p).copied().unwrap_or_else(|| start.at(p));
                state.parts.insert(p, Part::new(epoch, cursor));
            }
        }
        // Ticking at a third of the TTL leaves two chances to renew before the leases lapse.
        self.next_tick = Instant::now() + ttl / 3;
        Ok(())
    }

    /// Fixes where the group starts: stores a cursor for every partition that has none yet (at
    /// the start position), so events published from now on are delivered to the group even
    /// with `Start::Latest`. Idempotent; the first `poll` does it if this was not called.
    ///
    /// Cancel-safe: the cursors are written at most once, and a retry after a failure or a
    /// cancellation reuses the start position already resolved.
    pub async fn start(&mut self) -> Result<()> {
        self.init_cursors().await.map(drop)
    }

    /// Resolves the start position and creates the cursors still missing; returns the start
    /// and the cursors in effect.
    async fn init_cursors(&mut self) -> Result<(TopicPosition, BTreeMap<u32, i64>)> {
        let start = self.start_position().await?;
        let all: Vec<u32> = (0..self.opts.partitions).collect();
        // Initialize every partition's cursor, not only ours: a partition another member
        // claims later must start where the group started, not at a later `latest`.
        let cursors = self.bus.init_cursors(&self.group, all, &start).await?;
        Ok((start, cursors))
    }

    /// Where each partition starts, resolved once.
    async fn start_position(&mut self) -> Result<TopicPosition> {
        if let Some(position) = &self.start_position {
            return Ok(position.clone());
        }
        let topic = &self.group.topic;
        let position = match self.opts.start {
            Start::Earliest => TopicPosition::start(),
            Start::Latest => self.bus.heads(topic).await?,
            Start::Time(ms) => self.bus.position_before_time(topic, ms).await?,
            Start::After(id) => self.bus.position_of(topic, id).await?.ok_or_else(|| {
                Error::UnknownStartEvent { group: self.group.group.clone(), topic: topic.to_owned(), id }
            })?,
        };
        self.start_position = Some(position.clone());
        Ok(position)
    }
}
