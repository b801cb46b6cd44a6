//! The state of a declared system in a store, read without taking part in it: what `prom status`
//! prints and what the sampler turns into gauges. Its JSON shape (`serde`) is the stable output
//! of `prom status --format json`: fields are only ever added.

use super::store::{self, Membership};
use crate::bus::{AnyBus, EventBus, GroupId, TopicPosition};
use crate::dlq;
use crate::error::Result;
use crate::record::{DLQ_ERROR, now_ms};
use crate::registry::DLQ_PREFIX;
use crate::system::{ProjectorKind, StartFrom, System};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// Dead letters read per page while counting a DLQ.
const DLQ_PAGE: usize = 1000;

/// Everything `prom status` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Which store was read: `embedded`, `mongodb` or `memory`.
    pub store: &'static str,
    /// When it was read (Unix milliseconds).
    pub at_ms: i64,
    /// Each declared topic.
    pub topics: Vec<TopicStatus>,
    /// Each declared consumer.
    pub consumers: Vec<ConsumerStatus>,
    /// Each topic that has a DLQ (read by a consumer with `dlq: true` or by a projector, or
    /// holding dead letters).
    pub dlqs: Vec<DlqStatus>,
    /// Each declared projector.
    pub projectors: Vec<ProjectorStatus>,
    /// Each declared changefeed.
    pub changefeeds: Vec<ChangefeedStatus>,
    /// Seconds the MongoDB oplog spans (`null` on the embedded store, or when unreadable).
    pub oplog_window_seconds: Option<f64>,
    /// Why the oplog window is missing although the store is MongoDB: the account may not read
    /// `local.oplog.rs` (`null` otherwise).
    pub oplog_unreadable: Option<String>,
}

/// What `prom status` says when the account may not read the oplog.
pub const OPLOG_UNREADABLE: &str = "this account may not read `local.oplog.rs`, so the oplog window \
    (how long a stopped changefeed can stay away) is not known; grant it the `clusterMonitor` role, or \
    `read` on the `local` database";

/// A topic.
#[derive(Debug, Clone, Serialize)]
pub struct TopicStatus {
    /// Its name.
    pub name: String,
    /// Declared partitions.
    pub partitions: u32,
    /// Declared schema versions (the latest last); events may be stored at any of them.
    pub versions: Vec<u32>,
    /// The versions events are actually stored at, with counts, oldest first (`version: null`
    /// last: events whose version the store has not recorded).
    pub stored_versions: Vec<StoredVersion>,
    /// `Some(n)` when only the newest `n` events were counted for `stored_versions` (an embedded
    /// store of an older layout, opened read-only, has no index to count all); else `null`.
    pub stored_versions_newest_only: Option<u64>,
    /// The newest offset of the topic (0 when empty).
    pub head: i64,
    /// The newest offset stored in each partition, by partition.
    pub partition_heads: Vec<i64>,
}

/// Events stored at one schema version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredVersion {
    /// The `x-schema-version` (`null`: not recorded, e.g. MongoDB events written before prom
    /// recorded it).
    pub version: Option<u32>,
    /// How many events.
    pub events: u64,
}

/// A partition of a group: where its cursor is, how far behind, who holds it.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionStatus {
    /// The partition.
    pub partition: u32,
    /// The committed cursor (`null`: the group never started on it).
    pub cursor: Option<i64>,
    /// Events after the cursor (for a group that never started: every event with `from:
    /// earliest`, none with `from: latest`).
    pub lag: u64,
    /// The live member holding its lease, if any.
    pub held_by: Option<String>,
}

/// A live member and the partitions it holds.
#[derive(Debug, Clone, Serialize)]
pub struct MemberStatus {
    /// Its member id.
    pub member: String,
    /// Partitions whose lease it holds.
    pub partitions: Vec<u32>,
}

/// A consumer group.
#[derive(Debug, Clone, Serialize)]
pub struct ConsumerStatus {
    /// The consumer's name.
    pub name: String,
    /// Its group.
    pub group: String,
    /// The topic it reads.
    pub topic: String,
    /// Live members.
    pub members: Vec<MemberStatus>,
    /// Each partition's cursor and lag.
    pub partitions: Vec<PartitionStatus>,
    /// Lag over all partitions.
    pub lag: u64,
}

/// The most frequent error among dead letters not replayed yet.
#[derive(Debug, Clone, Serialize)]
pub struct CommonError {
    /// The error's first line, as stored in `x-dlq-error`.
    pub error: String,
    /// How many dead letters carry it.
    pub count: u64,
}

/// A DLQ.
#[derive(Debug, Clone, Serialize)]
pub struct DlqStatus {
    /// The topic whose dead letters these are.
    pub topic: String,
    /// The DLQ topic (`dlq.<topic>`).
    pub dlq_topic: String,
    /// Dead letters not replayed yet.
    pub depth: u64,
    /// Dead letters already replayed.
    pub replayed: u64,
    /// Seconds since the oldest dead letter not replayed was written.
    pub oldest_age_seconds: Option<f64>,
    /// The most common error among those not replayed.
    pub most_common_error: Option<CommonError>,
}

/// A projector.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectorStatus {
    /// Its name.
    pub name: String,
    /// `changelog` or `transactional`.
    pub kind: &'static str,
    /// The topic it projects.
    pub topic: String,
    /// Its checkpoint: the cursor of each partition (`null`: not started there).
    pub checkpoint: Vec<Option<i64>>,
    /// Events not applied yet.
    pub lag: u64,
}

/// A changefeed.
#[derive(Debug, Clone, Serialize)]
pub struct ChangefeedStatus {
    /// Its name.
    pub name: String,
    /// The topic it publishes to.
    pub topic: String,
    /// Seconds between the cluster time and its stored resume point (MongoDB; `null` on the
    /// embedded store, where a projector publishes it in its own transaction, and before it
    /// first started).
    pub resume_token_age_seconds: Option<f64>,
}

/// Reads the status of `system` from `bus` (read-only: joins no group, takes no event).
pub async fn collect(bus: &AnyBus, system: &System) -> Result<Status> {
    let mut topics = Vec::new();
    for t in &system.topics {
        let partition_heads = store::partition_heads(bus, &t.name, t.partitions).await?;
        let stored = store::stored_versions(bus, &t.name).await?;
        // `None` sorts first in the map; unknown versions are listed last.
        let (unknown, known): (Vec<_>, Vec<_>) = stored.counts.into_iter().partition(|(v, _)| v.is_none());
        topics.push(TopicStatus {
            name: t.name.clone(),
            partitions: t.partitions,
            versions: t.versions.iter().map(|v| v.number).collect(),
            stored_versions: known
                .into_iter()
                .chain(unknown)
                .map(|(version, events)| StoredVersion { version, events })
                .collect(),
            stored_versions_newest_only: stored.newest_only,
            head: bus.heads(&t.name).await?.total(),
            partition_heads,
        });
    }
    let partitions_of = |topic: &str| system.topic(topic).map_or(1, |t| t.partitions);
    let mut consumers = Vec::new();
    for c in &system.consumers {
        let group = GroupId::new(&c.topic, &c.group);
        let earliest = c.start == StartFrom::Earliest;
        let (partitions, lag) = group_lag(bus, &group, partitions_of(&c.topic), earliest).await?;
        let membership = store::membership(bus, &group).await?;
        consumers.push(ConsumerStatus {
            name: c.name.clone(),
            group: c.group.clone(),
            topic: c.topic.clone(),
            members: members(&membership),
            partitions: with_holders(partitions, &membership),
            lag,
        });
    }
    let mut projectors = Vec::new();
    for p in &system.projectors {
        let group = GroupId::new(&p.topic, format!("projector.{}", p.name));
        // Projectors start from the earliest event.
        let (partitions, lag) = group_lag(bus, &group, partitions_of(&p.topic), true).await?;
        projectors.push(ProjectorStatus {
            name: p.name.clone(),
            kind: match p.kind {
                ProjectorKind::Changelog(_) => "changelog",
                ProjectorKind::Transactional { .. } => "transactional",
            },
            topic: p.topic.clone(),
            checkpoint: partitions.iter().map(|p| p.cursor).collect(),
            lag,
        });
    }
    let mut dlqs = Vec::new();
    for topic in dlq_topics(system) {
        let status = dlq_status(bus, &topic).await?;
        let declared = system.consumers.iter().any(|c| c.topic == topic && c.dlq)
            || system.projectors.iter().any(|p| p.topic == topic);
        if declared || status.depth + status.replayed > 0 {
            dlqs.push(status);
        }
    }
    let mut changefeeds = Vec::new();
    for f in &system.changefeeds {
        changefeeds.push(ChangefeedStatus {
            name: f.name.clone(),
            topic: f.topic.clone(),
            resume_token_age_seconds: token_age(bus, &f.name).await?,
        });
    }
    let (window, unreadable) = oplog_window(bus).await?;
    Ok(Status {
        store: match bus {
            AnyBus::Memory(_) => "memory",
            AnyBus::Sqlite(_) => "embedded",
            #[cfg(feature = "mongo")]
            AnyBus::Mongo(_) => "mongodb",
        },
        at_ms: now_ms(),
        topics,
        consumers,
        dlqs,
        projectors,
        changefeeds,
        oplog_window_seconds: window,
        oplog_unreadable: unreadable.then(|| OPLOG_UNREADABLE.to_owned()),
    })
}

/// Every declared topic, sorted (a DLQ exists per topic).
fn dlq_topics(system: &System) -> BTreeSet<String> {
    system.topics.iter().map(|t| t.name.clone()).collect()
}

/// Each partition's cursor and lag; a partition without a cursor lags by all its events when
/// the group will start from the earliest, by none when from the latest.
async fn group_lag(
    bus: &AnyBus,
    group: &GroupId,
    partitions: u32,
    earliest: bool,
) -> Result<(Vec<PartitionStatus>, u64)> {
    let cursors = bus.cursors(group).await?;
    let mut out = Vec::with_capacity(partitions as usize);
    let mut total = 0;
    for p in 0..partitions {
        let cursor = cursors.get(&p).copied();
        let lag = match cursor {
            Some(c) => bus.count_after(&group.topic, p, c).await?,
            None if earliest => bus.count_after(&group.topic, p, 0).await?,
            None => 0,
        };
        total += lag;
        out.push(PartitionStatus { partition: p, cursor, lag, held_by: None });
    }
    Ok((out, total))
}

fn members(membership: &Membership) -> Vec<MemberStatus> {
    membership
        .members
        .iter()
        .map(|m| MemberStatus {
            member: m.clone(),
            partitions: membership.leases.iter().filter(|(_, h)| *h == m).map(|(p, _)| *p).collect(),
        })
        .collect()
}

fn with_holders(mut partitions: Vec<PartitionStatus>, membership: &Membership) -> Vec<PartitionStatus> {
    for p in &mut partitions {
        p.held_by = membership.leases.get(&p.partition).cloned();
    }
    partitions
}

/// Counts the DLQ of `topic` page by page: replayed or not, the oldest pending one's age and
/// the most common pending error.
async fn dlq_status(bus: &AnyBus, topic: &str) -> Result<DlqStatus> {
    let dlq_topic = format!("{DLQ_PREFIX}{topic}");
    let (mut depth, mut replayed, mut oldest) = (0u64, 0u64, None::<i64>);
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut after = TopicPosition::start();
    let ordered = bus.ordered();
    loop {
        let page = bus.read_topic(&dlq_topic, &after, DLQ_PAGE).await?;
        for e in &page {
            after.advance(e, ordered);
        }
        if page.is_empty() {
            break;
        }
        let keys: Vec<String> = page.iter().map(|e| dlq::replay_key(e.id)).collect();
        let done: HashSet<String> = bus.existing_dedup(topic, keys).await?.into_iter().collect();
        for e in &page {
            if done.contains(&dlq::replay_key(e.id)) {
                replayed += 1;
                continue;
            }
            depth += 1;
            oldest = Some(oldest.map_or(e.ts, |o: i64| o.min(e.ts)));
            let error = e.headers.get(DLQ_ERROR).cloned().unwrap_or_default();
            *errors.entry(error).or_default() += 1;
        }
        if page.len() < DLQ_PAGE {
            break;
        }
    }
    // The first of the most frequent errors in sorted order, so the answer is deterministic.
    let most_common_error = errors
        .into_iter()
        .fold(None::<(String, u64)>, |best, (error, count)| match best {
            Some((_, c)) if c >= count => best,
            _ => Some((error, count)),
        })
        .map(|(error, count)| CommonError { error, count });
    Ok(DlqStatus {
        topic: topic.to_owned(),
        dlq_topic,
        depth,
        replayed,
        oldest_age_seconds: oldest.map(|ts| (now_ms().saturating_sub(ts)).max(0) as f64 / 1000.0),
        most_common_error,
    })
}

async fn token_age(bus: &AnyBus, feed: &str) -> Result<Option<f64>> {
    match bus {
        #[cfg(feature = "mongo")]
        AnyBus::Mongo(bus) => store::mongo::resume_token_age(bus, feed).await,
        _ => {
            let _ = feed;
            Ok(None)
        }
    }
}

/// The oplog's span in seconds, and whether the account may not read it (MongoDB only).
async fn oplog_window(bus: &AnyBus) -> Result<(Option<f64>, bool)> {
    match bus {
        #[cfg(feature = "mongo")]
        AnyBus::Mongo(bus) => Ok(match store::mongo::oplog_window(bus).await? {
            store::mongo::OplogWindow::Seconds(window) => (window, false),
            store::mongo::OplogWindow::Unreadable => (None, true),
        }),
        _ => Ok((None, false)),
    }
}
