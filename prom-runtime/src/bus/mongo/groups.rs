//! Consumer groups: cursors, membership and partition leases, shared by every process.
//!
//! Expiry times are the server's (`$$NOW` plus the TTL), so members on machines whose clocks
//! disagree still agree on who is alive. Each operation is one transaction; the ones that decide
//! from what they read (claim, fenced commit) also write the documents they decided on, so a
//! concurrent change makes one of the two transactions conflict and retry.

use super::MongoBus;
use super::layout::{CURSORS, LEASES, MEMBERS};
use super::txn::{Abort, TxResult, transaction};
use crate::bus::GroupId;
use crate::error::{Error, Result};
use futures_util::TryStreamExt;
use mongodb::ClientSession;
use mongodb::bson::{Document, doc};
use std::collections::{BTreeMap, BTreeSet};

fn group_filter(group: &GroupId) -> Document {
    doc! { "topic": &group.topic, "grp": &group.group }
}

fn with(mut filter: Document, extra: Document) -> Document {
    filter.extend(extra);
    filter
}

/// An update pipeline setting `expires` to the server's now plus `ttl_ms`.
fn expires_in(ttl_ms: i64, mut set: Document) -> Vec<Document> {
    set.insert("expires", doc! { "$add": ["$$NOW", ttl_ms] });
    vec![doc! { "$set": set }]
}

async fn find_all(
    bus: &MongoBus,
    s: &mut ClientSession,
    collection: &str,
    filter: Document,
    sort: Document,
) -> mongodb::error::Result<Vec<Document>> {
    let mut cursor = bus.coll(collection).find(filter).sort(sort).session(&mut *s).await?;
    cursor.stream(s).try_collect().await
}

fn part_of(d: &Document) -> Option<u32> {
    d.get_i64("part").ok().and_then(|p| u32::try_from(p).ok())
}

/// The group's committed cursors.
pub async fn cursors(bus: &MongoBus, group: &GroupId) -> Result<BTreeMap<u32, i64>> {
    let cursor =
        bus.coll(CURSORS).find(group_filter(group)).await.map_err(|e| bus.db("cannot read cursors", &e))?;
    let docs: Vec<Document> = cursor.try_collect().await.map_err(|e| bus.db("cannot read cursors", &e))?;
    Ok(docs.iter().filter_map(|d| Some((part_of(d)?, d.get_i64("off").ok()?))).collect())
}

/// Creates missing cursors at each partition's start; returns the cursors in effect for them.
pub async fn init_cursors(
    bus: &MongoBus,
    group: &GroupId,
    starts: &[(u32, i64)],
) -> Result<BTreeMap<u32, i64>> {
    let (group, starts) = (group.clone(), starts.to_vec());
    transaction!(bus, |bus, s| async {
        let group = &group;
        for &(p, offset) in &starts {
            bus.coll(CURSORS)
                .update_one(
                    with(group_filter(group), doc! { "part": i64::from(p) }),
                    doc! { "$setOnInsert": { "off": offset } },
                )
                .upsert(true)
                .session(&mut *s)
                .await?;
        }
        let wanted: Vec<i64> = starts.iter().map(|&(p, _)| i64::from(p)).collect();
        let filter = with(group_filter(group), doc! { "part": { "$in": wanted } });
        let docs = find_all(bus, s, CURSORS, filter, doc! { "part": 1 }).await?;
        Ok(docs.iter().filter_map(|d| Some((part_of(d)?, d.get_i64("off").ok()?))).collect())
    })
}

/// Commits cursors; with `member`, only on partitions it holds, never backwards.
pub async fn commit(
    bus: &MongoBus,
    group: &GroupId,
    member: Option<&str>,
    cursors: &[(u32, i64)],
) -> Result<()> {
    let (group, member, cursors) = (group.clone(), member.map(str::to_string), cursors.to_vec());
    transaction!(bus, |bus, s| commit_in(bus, s, &group, member.as_deref(), &cursors))
}

async fn commit_in(
    bus: &MongoBus,
    s: &mut ClientSession,
    group: &GroupId,
    member: Option<&str>,
    cursors: &[(u32, i64)],
) -> TxResult<()> {
    for &(partition, offset) in cursors {
        let key = with(group_filter(group), doc! { "part": i64::from(partition) });
        let update = match member {
            Some(member) => {
                // Writing the lease (not just reading it) fences a concurrent takeover: whichever
                // transaction commits second conflicts and re-checks the holder.
                let fenced = bus
                    .coll(LEASES)
                    .update_one(with(key.clone(), doc! { "member": member }), doc! { "$inc": { "fence": 1 } })
                    .session(&mut *s)
                    .await?;
                if fenced.matched_count == 0 {
                    return Err(Abort::Fail(Error::LeaseLost {
                        topic: group.topic.clone(),
                        group: group.group.clone(),
                        partition,
                    }));
                }
                doc! { "$max": { "off": offset } }
            }
            None => doc! { "$set": { "off": offset } },
        };
        bus.coll(CURSORS).update_one(key, update).upsert(true).session(&mut *s).await?;
    }
    Ok(())
}

/// Refreshes `member`, sweeps expired members and their leases; returns the live members.
pub async fn heartbeat(bus: &MongoBus, group: &GroupId, member: &str, ttl_ms: i64) -> Result<Vec<String>> {
    let (group, member) = (group.clone(), member.to_string());
    transaction!(bus, |bus, s| async {
        let (group, member) = (&group, member.as_str());
        let members = bus.coll(MEMBERS);
        members
            .update_one(with(group_filter(group), doc! { "member": member }), expires_in(ttl_ms, doc! {}))
            .upsert(true)
            .session(&mut *s)
            .await?;
        let expired = doc! { "$expr": { "$lte": ["$expires", "$$NOW"] } };
        members.delete_many(with(group_filter(group), expired)).session(&mut *s).await?;
        let live: Vec<String> = find_all(bus, s, MEMBERS, group_filter(group), doc! { "member": 1 })
            .await?
            .iter()
            .filter_map(|d| d.get_str("member").ok().map(str::to_string))
            .collect();
        let orphaned = with(group_filter(group), doc! { "member": { "$nin": &live } });
        bus.coll(LEASES).delete_many(orphaned).session(&mut *s).await?;
        Ok(live)
    })
}

/// Renews `member`'s leases, releases `release`, takes the free or expired ones of `want`;
/// returns the partitions `member` holds.
pub async fn claim(
    bus: &MongoBus,
    group: &GroupId,
    member: &str,
    want: &[u32],
    release: &[u32],
    ttl_ms: i64,
) -> Result<Vec<u32>> {
    let (group, member, want, release) = (group.clone(), member.to_string(), want.to_vec(), release.to_vec());
    transaction!(bus, |bus, s| claim_in(bus, s, &group, &member, &want, &release, ttl_ms))
}

async fn claim_in(
    bus: &MongoBus,
    s: &mut ClientSession,
    group: &GroupId,
    member: &str,
    want: &[u32],
    release: &[u32],
    ttl_ms: i64,
) -> TxResult<Vec<u32>> {
    let leases = bus.coll(LEASES);
    let mine = with(group_filter(group), doc! { "member": member });
    if !release.is_empty() {
        let parts: Vec<i64> = release.iter().map(|&p| i64::from(p)).collect();
        leases.delete_many(with(mine.clone(), doc! { "part": { "$in": parts } })).session(&mut *s).await?;
    }
    leases.update_many(mine.clone(), expires_in(ttl_ms, doc! {})).session(&mut *s).await?;
    if !want.is_empty() {
        let parts: Vec<i64> = want.iter().map(|&p| i64::from(p)).collect();
        let filter = with(group_filter(group), doc! { "part": { "$in": parts } });
        // Expiry is judged by the server's clock, in the same snapshot the decision is made on.
        let projection = doc! { "part": 1, "member": 1, "expired": { "$lte": ["$expires", "$$NOW"] } };
        let mut cursor = leases.find(filter).projection(projection).session(&mut *s).await?;
        let held: Vec<Document> = cursor.stream(&mut *s).try_collect().await?;
        let taken: BTreeSet<u32> = held
            .iter()
            .filter(|d| d.get_str("member").is_ok_and(|m| m != member))
            .filter(|d| !d.get_bool("expired").unwrap_or(false))
            .filter_map(part_of)
            .collect();
        for &p in want.iter().filter(|p| !taken.contains(p)) {
            // Upserting a lease another claimer just created conflicts (or hits the unique
            // index) and the whole claim retries, seeing that lease as taken.
            leases
                .update_one(
                    with(group_filter(group), doc! { "part": i64::from(p) }),
                    expires_in(ttl_ms, doc! { "member": member }),
                )
                .upsert(true)
                .session(&mut *s)
                .await?;
        }
    }
    let held = find_all(bus, s, LEASES, mine, doc! { "part": 1 }).await?;
    Ok(held.iter().filter_map(part_of).collect())
}

/// Removes `member` and its leases.
pub async fn leave(bus: &MongoBus, group: &GroupId, member: &str) -> Result<()> {
    let mine = with(group_filter(group), doc! { "member": member });
    transaction!(bus, |bus, s| async {
        let mine = mine.clone();
        bus.coll(MEMBERS).delete_many(mine.clone()).session(&mut *s).await?;
        bus.coll(LEASES).delete_many(mine).session(&mut *s).await?;
        Ok(())
    })
}
