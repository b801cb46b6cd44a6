//! Read-only queries `prom status` and the sampler need beyond [`EventBus`]: who is in a group,
//! who holds which partition, each partition's newest offset and, on MongoDB, resume points
//! and the oplog window. Nothing here writes, joins a group or takes an event.

use crate::bus::{AnyBus, EventBus, GroupId, TopicPosition};
use crate::error::Result;
use rusqlite::params;
use std::collections::BTreeMap;

/// The live members of a group and the partitions whose unexpired lease each holds.
#[derive(Debug, Default)]
pub struct Membership {
    /// Live member ids, sorted.
    pub members: Vec<String>,
    /// Partition → the member holding its lease.
    pub leases: BTreeMap<u32, String>,
}

/// Who is in `group` now (members and leases whose time has not run out).
pub async fn membership(bus: &AnyBus, group: &GroupId) -> Result<Membership> {
    match bus {
        AnyBus::Memory(_) => Ok(Membership::default()),
        AnyBus::Sqlite(bus) => {
            let group = group.clone();
            let now = crate::record::now_ms();
            bus.read_with(move |conn| {
                let mut members = conn.prepare_cached(
                    "SELECT member FROM members WHERE topic = ?1 AND grp = ?2 AND expires > ?3 ORDER BY member",
                )?;
                let members = members
                    .query_map(params![group.topic, group.group, now], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<String>>>()?;
                let mut leases = conn.prepare_cached(
                    "SELECT part, member FROM leases WHERE topic = ?1 AND grp = ?2 AND expires > ?3",
                )?;
                let leases = leases
                    .query_map(params![group.topic, group.group, now], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<BTreeMap<u32, String>>>()?;
                Ok(Membership { members, leases })
            })
            .await
        }
        #[cfg(feature = "mongo")]
        AnyBus::Mongo(bus) => mongo::membership(bus, group).await,
    }
}

/// The newest offset stored in each of `partitions` of `topic` (0 for an empty partition).
pub async fn partition_heads(bus: &AnyBus, topic: &str, partitions: u32) -> Result<Vec<i64>> {
    match bus {
        AnyBus::Sqlite(bus) => {
            let topic = topic.to_owned();
            bus.read_with(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT coalesce(max(off), 0) FROM events WHERE topic = ?1 AND part = ?2",
                )?;
                (0..partitions).map(|p| stmt.query_row(params![topic, p], |r| r.get(0))).collect()
            })
            .await
        }
        #[cfg(feature = "mongo")]
        AnyBus::Mongo(bus) => mongo::partition_heads(bus, topic, partitions).await,
        AnyBus::Memory(bus) => {
            // The in-memory bus keeps no per-partition index: read the topic once.
            let mut heads = vec![0; partitions as usize];
            let events = bus.read_topic(topic, &TopicPosition::start(), usize::MAX).await?;
            for e in events {
                if let Some(head) = heads.get_mut(e.partition as usize) {
                    *head = e.offset;
                }
            }
            Ok(heads)
        }
    }
}

/// How many events of a topic are stored at each schema version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionCounts {
    /// `x-schema-version` → events; `None` counts events whose version is not recorded where it
    /// can be counted (MongoDB events written before prom recorded it, unreadable headers).
    pub counts: BTreeMap<Option<u32>, u64>,
    /// `Some(n)`: only the newest `n` events were counted (an embedded store of layout 3 or
    /// older opened read-only has no index to count from); `None`: every event.
    pub newest_only: Option<u64>,
}

/// Events counted, at most, on an embedded store without the version index.
pub const UNINDEXED_VERSION_SCAN: u64 = 100_000;

/// The schema versions `topic`'s stored events are at, with counts, over an index on both
/// stores (payloads are never read).
pub async fn stored_versions(bus: &AnyBus, topic: &str) -> Result<VersionCounts> {
    match bus {
        AnyBus::Sqlite(bus) => {
            let topic = topic.to_owned();
            bus.read_with(move |conn| sqlite_versions(conn, &topic)).await
        }
        #[cfg(feature = "mongo")]
        AnyBus::Mongo(bus) => mongo::stored_versions(bus, topic).await,
        AnyBus::Memory(bus) => {
            let mut counts = BTreeMap::new();
            for e in bus.read_topic(topic, &TopicPosition::start(), usize::MAX).await? {
                *counts.entry(e.schema_version()).or_insert(0) += 1;
            }
            Ok(VersionCounts { counts, newest_only: None })
        }
    }
}

/// Counts over the topic's range of `events_topic_version` (the query repeats its expression,
/// so the planner groups in index order; SQLite still reads each row's header text, never its
/// payload); without that index (an older layout read read-only), the newest
/// [`UNINDEXED_VERSION_SCAN`] events' headers.
fn sqlite_versions(conn: &rusqlite::Connection, topic: &str) -> rusqlite::Result<VersionCounts> {
    use crate::bus::sqlite::{STORED_VERSION, VERSION_INDEX};
    let indexed: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?1)",
        [VERSION_INDEX],
        |r| r.get(0),
    )?;
    let (sql, newest_only) = if indexed {
        (format!("SELECT {STORED_VERSION} AS v, count(*) FROM events WHERE topic = ?1 GROUP BY v"), None)
    } else {
        (
            format!(
                "SELECT v, count(*) FROM (SELECT {STORED_VERSION} AS v FROM events WHERE topic = ?1 \
                 ORDER BY off DESC LIMIT {UNINDEXED_VERSION_SCAN}) GROUP BY v"
            ),
            Some(UNINDEXED_VERSION_SCAN),
        )
    };
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut counts = BTreeMap::new();
    let mut total = 0;
    let rows = stmt
        .query_map([topic], |r| Ok((r.get::<_, Option<rusqlite::types::Value>>(0)?, r.get::<_, i64>(1)?)))?;
    for row in rows {
        let (version, count) = row?;
        let version = match version {
            Some(rusqlite::types::Value::Text(text)) => text.parse().ok(),
            Some(rusqlite::types::Value::Integer(n)) => u32::try_from(n).ok(),
            _ => None,
        };
        let count = u64::try_from(count).unwrap_or(0);
        total += count;
        *counts.entry(version).or_insert(0) += count;
    }
    // Fewer events than the bound: they were all counted.
    let newest_only = newest_only.filter(|bound| total >= *bound);
    Ok(VersionCounts { counts, newest_only })
}

/// MongoDB's side: collections of the bus, the changefeed states and the `local` oplog.
#[cfg(feature = "mongo")]
pub mod mongo {
    use super::Membership;
    use crate::bus::mongo::layout::{LEASES, MEMBERS};
    use crate::bus::mongo::stored;
    use crate::bus::{GroupId, MongoBus};
    use crate::error::{Error, Result};
    use futures_util::TryStreamExt;
    use mongodb::bson::{Document, doc};
    use std::collections::BTreeMap;

    fn failed(what: &str, e: &mongodb::error::Error) -> Error {
        crate::outage::mongo::error("MongoDB", what, e)
    }

    /// Members and leases whose `expires` (server time) is still ahead.
    pub async fn membership(bus: &MongoBus, group: &GroupId) -> Result<Membership> {
        let db = bus.database();
        let live =
            doc! { "topic": &group.topic, "grp": &group.group, "$expr": { "$gt": ["$expires", "$$NOW"] } };
        let members: Vec<Document> = db
            .collection::<Document>(MEMBERS)
            .find(live.clone())
            .sort(doc! { "member": 1 })
            .await
            .map_err(|e| failed("cannot read group members", &e))?
            .try_collect()
            .await
            .map_err(|e| failed("cannot read group members", &e))?;
        let leases: Vec<Document> = db
            .collection::<Document>(LEASES)
            .find(live)
            .await
            .map_err(|e| failed("cannot read leases", &e))?
            .try_collect()
            .await
            .map_err(|e| failed("cannot read leases", &e))?;
        let members = members.iter().filter_map(|d| d.get_str("member").ok().map(str::to_owned)).collect();
        let leases: BTreeMap<u32, String> = leases
            .iter()
            .filter_map(|d| {
                let part = d.get_i64("part").ok().or_else(|| d.get_i32("part").ok().map(i64::from))?;
                Some((u32::try_from(part).ok()?, d.get_str("member").ok()?.to_owned()))
            })
            .collect();
        Ok(Membership { members, leases })
    }

    /// The newest offset of each partition (one indexed lookup per partition).
    pub async fn partition_heads(bus: &MongoBus, topic: &str, partitions: u32) -> Result<Vec<i64>> {
        let mut heads = Vec::with_capacity(partitions as usize);
        for p in 0..partitions {
            let newest = stored::newest_offset(bus.database(), None, topic, i64::from(p))
                .await
                .map_err(|e| failed("cannot read a partition's head", &e))?;
            heads.push(newest.unwrap_or(0));
        }
        Ok(heads)
    }

    /// Counts by the `v` field the bus stores beside the headers (see [`stored::versions`]).
    pub async fn stored_versions(bus: &MongoBus, topic: &str) -> Result<super::VersionCounts> {
        let counts = stored::versions(bus.database(), topic)
            .await
            .map_err(|e| failed("cannot count stored versions", &e))?;
        Ok(super::VersionCounts { counts, newest_only: None })
    }

    /// Seconds between the server's cluster time and `feed`'s stored resume point (`None`
    /// until the changefeed has started once).
    pub async fn resume_token_age(bus: &MongoBus, feed: &str) -> Result<Option<f64>> {
        let db = bus.database();
        let state = crate::changefeed::resume::load(db, feed)
            .await
            .map_err(|e| failed("cannot read a changefeed's resume point", &e))?;
        let now = crate::changefeed::resume::server_time(db)
            .await
            .map_err(|e| failed("cannot read the cluster time", &e))?;
        Ok(match (state.and_then(|s| s.cluster_time), now) {
            (Some(at), Some(now)) => Some(f64::from(now.time.saturating_sub(at.time))),
            _ => None,
        })
    }

    /// Seconds between the oldest and the newest entry of the replica set's oplog; an account
    /// that may not read it (an application's `readWrite` usually may not) gets
    /// [`OplogWindow::Unreadable`], so the rest of the status and every other gauge still come.
    pub async fn oplog_window(bus: &MongoBus) -> Result<OplogWindow> {
        let oplog = bus.client().database("local").collection::<Document>("oplog.rs");
        let edge = |order: i32| {
            let found = oplog.find_one(doc! {}).sort(doc! { "$natural": order }).projection(doc! { "ts": 1 });
            async move { found.await.map(|d| d.and_then(|d| d.get_timestamp("ts").ok())) }
        };
        let edges = async { Ok::<_, mongodb::error::Error>((edge(1).await?, edge(-1).await?)) }.await;
        Ok(OplogWindow::Seconds(match edges {
            Ok((Some(first), Some(last))) => Some(f64::from(last.time.saturating_sub(first.time))),
            Ok(_) => None,
            Err(e) if crate::outage::mongo::unauthorized(&e) => return Ok(OplogWindow::Unreadable),
            Err(e) => return Err(failed("cannot read the oplog", &e)),
        }))
    }

    /// What [`oplog_window`] found.
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub enum OplogWindow {
        /// The seconds it spans (`None`: it holds fewer than two entries).
        Seconds(Option<f64>),
        /// This account may not read `local.oplog.rs`.
        Unreadable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NewEvent;
    use crate::record::SCHEMA_VERSION;
    use serde_json::json;

    fn event(version: &str) -> NewEvent {
        NewEvent::new("t", json!({})).header(SCHEMA_VERSION, version)
    }

    #[tokio::test]
    async fn versions_are_counted_over_the_version_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bus = crate::SqliteBus::open(dir.path()).expect("open");
        let mut no_version = NewEvent::new("t", json!({}));
        no_version.headers.clear();
        bus.publish(vec![event("1"), event("2"), event("2"), no_version, NewEvent::new("u", json!({}))])
            .await
            .expect("publish");
        let any: AnyBus = bus.clone().into();
        let counts = stored_versions(&any, "t").await.expect("count");
        assert_eq!(counts.counts, BTreeMap::from([(None, 1), (Some(1), 1), (Some(2), 2)]));
        assert_eq!(counts.newest_only, None);
        let plan = bus
            .read_with(|conn| {
                let sql = format!(
                    "EXPLAIN QUERY PLAN SELECT {} AS v, count(*) FROM events WHERE topic = 't' GROUP BY v",
                    crate::bus::sqlite::STORED_VERSION
                );
                let mut stmt = conn.prepare(&sql)?;
                let rows = stmt.query_map([], |r| r.get::<_, String>(3))?;
                rows.collect::<rusqlite::Result<Vec<String>>>()
            })
            .await
            .expect("plan");
        assert!(
            plan.iter().any(|step| step.contains("USING INDEX events_topic_version (topic=?)")),
            "not the topic's range of the version index: {plan:?}"
        );
    }

    #[tokio::test]
    async fn without_the_index_only_the_newest_events_are_counted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bus = crate::SqliteBus::open(dir.path()).expect("open");
        bus.publish(vec![event("1"), event("2")]).await.expect("publish");
        let conn = rusqlite::Connection::open(dir.path().join("events.db")).expect("open the file");
        conn.execute_batch("DROP INDEX events_topic_version").expect("drop the index");
        let counts = sqlite_versions(&conn, "t").expect("count");
        assert_eq!(counts.counts, BTreeMap::from([(Some(1), 1), (Some(2), 1)]));
        assert_eq!(counts.newest_only, None, "fewer events than the bound: all were counted");
    }
}
