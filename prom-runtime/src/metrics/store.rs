//! Read-only queries `prom status` and the sampler need beyond [`EventBus`]: who is in a group,
//! who holds which partition, each partition's newest offset and, on MongoDB, resume points
//! and the oplog window. Nothing here writes, joins a group or takes an event.

use crate::bus::{AnyBus, EventBus, GroupId};
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
            let events = bus.read(topic, None, 0, usize::MAX).await?;
            for e in events {
                if let Some(head) = heads.get_mut(e.partition as usize) {
                    *head = e.offset;
                }
            }
            Ok(heads)
        }
    }
}

/// MongoDB's side: collections of the bus, the changefeed states and the `local` oplog.
#[cfg(feature = "mongo")]
pub mod mongo {
    use super::Membership;
    use crate::bus::mongo::layout::{EVENTS, LEASES, MEMBERS};
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
        let events = bus.database().collection::<Document>(EVENTS);
        let mut heads = Vec::with_capacity(partitions as usize);
        for p in 0..partitions {
            let newest = events
                .find_one(doc! { "topic": topic, "part": i64::from(p) })
                .sort(doc! { "topic": 1, "part": 1, "off": -1 })
                .projection(doc! { "off": 1 })
                .await
                .map_err(|e| failed("cannot read a partition's head", &e))?;
            heads.push(newest.and_then(|d| d.get_i64("off").ok()).unwrap_or(0));
        }
        Ok(heads)
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

    /// Seconds between the oldest and the newest entry of the replica set's oplog.
    pub async fn oplog_window(bus: &MongoBus) -> Result<Option<f64>> {
        let oplog = bus.client().database("local").collection::<Document>("oplog.rs");
        let edge = |order: i32| {
            let oplog = oplog.clone();
            async move {
                oplog
                    .find_one(doc! {})
                    .sort(doc! { "$natural": order })
                    .projection(doc! { "ts": 1 })
                    .await
                    .map_err(|e| failed("cannot read the oplog (needs read access to `local.oplog.rs`)", &e))
                    .map(|d| d.and_then(|d| d.get_timestamp("ts").ok()))
            }
        };
        let (first, last) = (edge(1).await?, edge(-1).await?);
        Ok(match (first, last) {
            (Some(first), Some(last)) => Some(f64::from(last.time.saturating_sub(first.time))),
            _ => None,
        })
    }
}
