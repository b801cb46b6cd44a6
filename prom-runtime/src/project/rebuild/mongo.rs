//! Rebuilds on MongoDB.
//!
//! The shadow is the collection `<collection>__rebuild` (the declared indexes created on it
//! first). Pages of events are written to it with the projector's own majority-acknowledged,
//! version-guarded bulk writes; after each, the checkpoint (collection `prom_rebuilds`, one
//! document per collection) moves past the page: its `position` is the topic position read up
//! to, an integer while it is one number (as every checkpoint before topic positions was), else
//! its text form. A kill between a page's writes
//! and its checkpoint writes that page again on resume, which is harmless: replaying a suffix of
//! the events in order leaves every document where the first pass left it.
//!
//! MongoDB cannot drop, rename and move cursors in one transaction, so the swap runs fenced:
//! the rebuild joins the projector's group (`projector.<name>`) and takes the lease of every
//! partition. A live member holding any lease makes it fail with [`Error::RebuildFenced`]
//! (shadow and checkpoint kept; stop the live projector and run again); once it holds them all
//! no live projector writes the collection until it is done. Then, in this order:
//! 1. the shadow catches up to the topic's head; events past the group's cursors that cannot be
//!    projected are dead-lettered (deduplicated), as the live projector would have;
//! 2. the checkpoint records `phase: "swapping"` with the cursors to set;
//! 3. `renameCollection` shadow → collection with `dropTarget` (one atomic step for readers:
//!    they read the old collection before it and the new one after it);
//! 4. the group's cursors move (fenced by the leases, never backwards); the checkpoint is
//!    deleted and the rebuild leaves the group.
//!
//! A crash before 3 resumes from the checkpoint; a crash between 3 and 4 leaves the new
//! collection in place with the old cursors, which a live projector would replay harmlessly
//! (a suffix again), and the next `prom rebuild` sees `phase: "swapping"` without a shadow and
//! finishes 4. The leases of a crashed rebuild expire after [`FENCE_TTL`].

use super::{Progress, RebuildOptions, RebuildReport, changes_of, fingerprint, shadow_collection};
use crate::bus::{EventBus, GroupId, MongoBus, TopicPosition};
use crate::dlq;
use crate::error::{Error, Result};
use crate::project::ChangelogSpec;
use crate::project::plan;
use crate::project::write;
use crate::registry::Registry;
use crate::system::System;
use mongodb::Database;
use mongodb::bson::{Bson, Document, doc};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The collection of rebuild checkpoints.
pub const CHECKPOINTS: &str = "prom_rebuilds";

/// How long the leases of a rebuild that died mid-swap keep a live projector out.
pub const FENCE_TTL: Duration = Duration::from_secs(30);

/// Rebuilds the changelog projector `name` on MongoDB (see the module docs).
pub async fn rebuild(
    bus: &MongoBus,
    system: &System,
    registry: Arc<Registry>,
    name: &str,
    opts: &RebuildOptions,
) -> Result<RebuildReport> {
    let projector = super::changelog_projector(system, name)?;
    let spec = ChangelogSpec::from_system(projector, &registry)?;
    let partitions = registry.topic(&spec.topic)?.partitions;
    let version_path = spec.pointers.version.as_deref().map(plan::dotted_path).transpose();
    let version_path = version_path.map_err(|e| Error::system(format!("projector `{name}`"), e))?;
    let run = Run {
        db: bus.database().clone(),
        shadow: shadow_collection(&spec.collection),
        fingerprint: fingerprint(&[
            &spec.topic,
            &spec.pointers.key,
            spec.pointers.version.as_deref().unwrap_or_default(),
            &format!("{:?}", spec.indexes),
        ]),
        group: GroupId::new(spec.topic.clone(), spec.group()),
        member: format!("rebuild-{}", uuid::Uuid::now_v7()),
        partitions,
        version_path,
        registry,
        spec,
    };
    let mut report = RebuildReport {
        projector: run.spec.name.clone(),
        collection: run.spec.collection.clone(),
        ..RebuildReport::default()
    };
    let stored = run.checkpoint().await?;
    let shadow_exists = run.shadow_exists().await?;
    let resumable = stored.as_ref().filter(|c| {
        c.get_str("projector").ok() == Some(run.spec.name.as_str())
            && c.get_str("fingerprint").ok() == Some(run.fingerprint.as_str())
    });
    // Renamed already, cursors not moved yet: finish that swap.
    if let Some(checkpoint) = resumable
        && checkpoint.get_str("phase").ok() == Some("swapping")
        && !shadow_exists
    {
        let position = run.position_of(checkpoint)?;
        let cursors = stored_cursors(checkpoint);
        run.fenced(bus, |_| async { Ok(()) }).await?;
        run.finish(bus, &cursors).await?;
        report.resumed_from = Some(position.total());
        report.position = position.total();
        report.rows = run.count(&run.spec.collection).await?;
        return Ok(report);
    }
    let mut position = match resumable {
        Some(checkpoint) if shadow_exists => {
            let position = run.position_of(checkpoint)?;
            report.resumed_from = Some(position.total());
            position
        }
        _ => {
            run.start().await?;
            TopicPosition::start()
        }
    };
    let batch = opts.batch_size.max(1);
    loop {
        let heads = bus.heads(&run.spec.topic).await?;
        let (at, head) = (position.total(), heads.total());
        opts.report(Progress { position: at, head: head.max(at), events: report.events });
        if !heads.passes(&position) {
            break;
        }
        let page = bus.read_topic(&run.spec.topic, &position, batch).await?;
        if page.is_empty() {
            break;
        }
        let (changes, refused) = changes_of(&run.registry, &run.spec.pointers, &page);
        report.refused += refused + run.write(changes).await?;
        position = run.advance_past(bus, &position, &page).await?;
        report.events += page.len() as u64;
    }
    // The swap, holding every lease of the group.
    let swapped = run
        .fenced(bus, |run| async move {
            let mut position = position;
            let mut events = 0;
            let mut refused = 0;
            loop {
                let page = bus.read_topic(&run.spec.topic, &position, batch).await?;
                if page.is_empty() {
                    break;
                }
                let (changes, left_out) = changes_of(&run.registry, &run.spec.pointers, &page);
                refused += left_out + run.write(changes).await?;
                position = run.advance_past(bus, &position, &page).await?;
                events += page.len() as u64;
            }
            let live = bus.cursors(&run.group).await?;
            let finished = run.dead_letter_pending(bus, &live, &position).await?;
            run.advance(&position, &position, &[], true).await?;
            let cursors = run.checkpoint().await?.map(|c| stored_cursors(&c)).unwrap_or_default();
            run.rename().await?;
            run.finish(bus, &cursors).await?;
            Ok((position, events, refused, finished))
        })
        .await?;
    let (position, events, refused, finished) = swapped;
    let position = position.total();
    report.position = position;
    report.events += events;
    report.refused += refused;
    report.finished_for_live = finished;
    report.rows = run.count(&run.spec.collection).await?;
    opts.report(Progress { position, head: position, events: report.events });
    Ok(report)
}

/// One rebuild's names and handles.
struct Run {
    db: Database,
    spec: ChangelogSpec,
    shadow: String,
    fingerprint: String,
    group: GroupId,
    member: String,
    partitions: u32,
    version_path: Option<String>,
    registry: Arc<Registry>,
}

impl Run {
    fn path(&self) -> String {
        format!("rebuild of projector `{}`", self.spec.name)
    }

    fn db_err(&self, what: &str, e: &mongodb::error::Error) -> Error {
        crate::outage::mongo::error(self.path(), what.to_owned(), e)
    }

    fn checkpoints(&self) -> mongodb::Collection<Document> {
        self.db.collection(CHECKPOINTS)
    }

    async fn checkpoint(&self) -> Result<Option<Document>> {
        self.checkpoints()
            .find_one(doc! { "_id": &self.spec.collection })
            .await
            .map_err(|e| self.db_err("cannot read its checkpoint", &e))
    }

    async fn shadow_exists(&self) -> Result<bool> {
        let names = self
            .db
            .list_collection_names()
            .filter(doc! { "name": &self.shadow })
            .await
            .map_err(|e| self.db_err("cannot list collections", &e))?;
        Ok(!names.is_empty())
    }

    async fn count(&self, collection: &str) -> Result<u64> {
        self.db
            .collection::<Document>(collection)
            .count_documents(doc! {})
            .await
            .map_err(|e| self.db_err("cannot count the new collection", &e))
    }

    /// A new shadow (the declared indexes first) and a checkpoint at offset 0.
    async fn start(&self) -> Result<()> {
        let shadow = self.db.collection::<Document>(&self.shadow);
        shadow.drop().await.map_err(|e| self.db_err("cannot drop an old shadow", &e))?;
        self.db
            .create_collection(&self.shadow)
            .await
            .map_err(|e| self.db_err("cannot create the shadow", &e))?;
        if !self.spec.indexes.is_empty() {
            shadow
                .create_indexes(self.spec.indexes.clone())
                .await
                .map_err(|e| self.db_err("cannot create the shadow's indexes", &e))?;
        }
        let checkpoint = doc! {
            "_id": &self.spec.collection,
            "projector": &self.spec.name,
            "fingerprint": &self.fingerprint,
            "position": 0_i64,
            "phase": "building",
        };
        self.checkpoints()
            .replace_one(doc! { "_id": &self.spec.collection }, checkpoint)
            .upsert(true)
            .await
            .map_err(|e| self.db_err("cannot write its checkpoint", &e))?;
        Ok(())
    }

    /// Writes changes (in offset order) to the shadow; returns how many it refused for good.
    async fn write(&self, changes: Vec<plan::Change>) -> Result<u64> {
        let mut refused = 0;
        for round in rounds(changes) {
            match write::apply(&self.db, &self.shadow, self.version_path.as_deref(), &round).await {
                Ok(outcome) => refused += outcome.rejected.len() as u64,
                Err(e) => {
                    let (message, source) = e.into_parts();
                    let message = format!("cannot write to `{}`: {message}", self.shadow);
                    return Err(Error::Store { path: self.path(), message, source });
                }
            }
        }
        Ok(refused)
    }

    /// The position a checkpoint records: an integer (every checkpoint written before topic
    /// positions, and any while the position is one number) or the text form.
    fn position_of(&self, checkpoint: &Document) -> Result<TopicPosition> {
        match checkpoint.get("position") {
            Some(Bson::Int64(offset)) => Ok(TopicPosition::after(*offset)),
            Some(Bson::Int32(offset)) => Ok(TopicPosition::after(i64::from(*offset))),
            Some(Bson::String(text)) => text.parse().map_err(|e| {
                Error::store(self.path(), format!("its checkpoint in `{CHECKPOINTS}` is unreadable: {e}"))
            }),
            _ => Ok(TopicPosition::start()),
        }
    }

    /// Moves the checkpoint past `page`, read from `from`; returns the new position.
    async fn advance_past(
        &self,
        bus: &MongoBus,
        from: &TopicPosition,
        page: &[crate::record::EventRecord],
    ) -> Result<TopicPosition> {
        let mut to = from.clone();
        let ordered = bus.ordered();
        for record in page {
            to.advance(record, ordered);
        }
        self.advance(from, &to, &page_lasts(page), false).await?;
        Ok(to)
    }

    /// Moves the checkpoint from `from` to `to` (failing if another rebuild moved it), raising
    /// each partition's last folded offset to `lasts`; `swapping` marks the swap as begun.
    async fn advance(
        &self,
        from: &TopicPosition,
        to: &TopicPosition,
        lasts: &[(u32, i64)],
        swapping: bool,
    ) -> Result<()> {
        let mut set = doc! { "position": position_bson(to) };
        if swapping {
            set.insert("phase", "swapping");
        }
        let mut max = Document::new();
        for (partition, offset) in lasts {
            max.insert(format!("last.{partition}"), *offset);
        }
        let mut update = doc! { "$set": set };
        if !max.is_empty() {
            update.insert("$max", max);
        }
        let filter = doc! {
            "_id": &self.spec.collection,
            "fingerprint": &self.fingerprint,
            "position": position_bson(from),
        };
        let moved = self
            .checkpoints()
            .update_one(filter, update)
            .await
            .map_err(|e| self.db_err("cannot move its checkpoint", &e))?;
        if moved.matched_count == 1 {
            Ok(())
        } else {
            Err(Error::RebuildConflict { projector: self.spec.name.clone(), expected: from.total() })
        }
    }

    /// Dead-letters the events past the live cursors (up to `head`) that cannot be projected,
    /// as the live projector would have; returns how many events were past the cursors.
    async fn dead_letter_pending(
        &self,
        bus: &MongoBus,
        live: &BTreeMap<u32, i64>,
        head: &TopicPosition,
    ) -> Result<u64> {
        let mut pending = 0;
        for partition in 0..self.partitions {
            let mut after = live.get(&partition).copied().unwrap_or(0);
            loop {
                let page = bus.read(&self.spec.topic, partition, after, 1000).await?;
                let page: Vec<_> = page.into_iter().filter(|r| r.offset <= head.at(partition)).collect();
                let Some(last) = page.last().map(|r| r.offset) else { break };
                after = last;
                pending += page.len() as u64;
                let letters: Vec<_> = page
                    .iter()
                    .filter_map(|record| {
                        super::change_of(&self.registry, &self.spec.pointers, record)
                            .err()
                            .map(|reason| dlq::dead_letter(record, &self.group.group, &reason, 0))
                    })
                    .collect();
                if !letters.is_empty() {
                    bus.publish(letters).await?;
                }
            }
        }
        Ok(pending)
    }

    /// `renameCollection` shadow → collection, dropping the old one.
    async fn rename(&self) -> Result<()> {
        let db = self.db.name();
        let command = doc! {
            "renameCollection": format!("{db}.{}", self.shadow),
            "to": format!("{db}.{}", self.spec.collection),
            "dropTarget": true,
        };
        self.db
            .client()
            .database("admin")
            .run_command(command)
            .await
            .map(|_| ())
            .map_err(|e| self.db_err("cannot rename the shadow over the collection", &e))
    }

    /// Moves the group's cursors (fenced, never backwards) and deletes the checkpoint.
    async fn finish(&self, bus: &MongoBus, cursors: &[(u32, i64)]) -> Result<()> {
        bus.commit(&self.group, Some(&self.member), cursors.to_vec()).await?;
        self.checkpoints()
            .delete_one(doc! { "_id": &self.spec.collection })
            .await
            .map_err(|e| self.db_err("cannot delete its checkpoint", &e))?;
        Ok(())
    }

    /// Runs `swap` holding every lease of the projector's group; fails with
    /// [`Error::RebuildFenced`] when a live member holds any. Leaves the group afterwards.
    async fn fenced<'a, T, F, Fut>(&'a self, bus: &MongoBus, swap: F) -> Result<T>
    where
        F: FnOnce(&'a Run) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let members = bus.heartbeat(&self.group, &self.member, FENCE_TTL).await?;
        let live: Vec<String> = members.into_iter().filter(|m| *m != self.member).collect();
        let all: Vec<u32> = (0..self.partitions).collect();
        let held = if live.is_empty() {
            bus.claim(&self.group, &self.member, all.clone(), Vec::new(), FENCE_TTL).await?
        } else {
            Vec::new()
        };
        if held != all {
            let _ = bus.leave(&self.group, &self.member).await;
            return Err(Error::RebuildFenced {
                projector: self.spec.name.clone(),
                group: self.group.group.clone(),
                members: if live.is_empty() { vec!["(an expiring lease)".into()] } else { live },
            });
        }
        let outcome = swap(self).await;
        let left = bus.leave(&self.group, &self.member).await;
        let value = outcome?;
        left?;
        Ok(value)
    }
}

/// Splits changes (in offset order) into bulk writes holding at most one change per key, each
/// key's changes in order: the n-th change of every key goes into the n-th write. Collapsing a
/// key's changes into one is not the same as applying them in turn (a tombstone followed by a
/// stale version ends with a document), and an unordered bulk has no order within it.
fn rounds(changes: Vec<plan::Change>) -> Vec<Vec<plan::Change>> {
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut rounds: Vec<Vec<plan::Change>> = Vec::new();
    for change in changes {
        let n = seen.entry(change.key.clone()).or_insert(0);
        if rounds.len() <= *n {
            rounds.push(Vec::new());
        }
        rounds[*n].push(change);
        *n += 1;
    }
    rounds
}

/// The last offset of each partition in a page.
/// A position as a checkpoint stores it: an integer while it is one number (so checkpoints
/// read as they always did), else its text form.
fn position_bson(position: &TopicPosition) -> Bson {
    if position.parts().is_empty() {
        Bson::Int64(position.floor())
    } else {
        Bson::String(position.to_string())
    }
}

fn page_lasts(page: &[crate::record::EventRecord]) -> Vec<(u32, i64)> {
    let mut lasts: BTreeMap<u32, i64> = BTreeMap::new();
    for record in page {
        let last = lasts.entry(record.partition).or_insert(record.offset);
        *last = (*last).max(record.offset);
    }
    lasts.into_iter().collect()
}

/// The cursors a checkpoint says the group moves to: each partition's last folded offset.
fn stored_cursors(checkpoint: &Document) -> Vec<(u32, i64)> {
    checkpoint
        .get_document("last")
        .map(|last| {
            last.iter().filter_map(|(part, off)| Some((part.parse::<u32>().ok()?, off.as_i64()?))).collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::project::plan::{Change, Op};

    fn change(key: &str, offset: i64) -> Change {
        Change { key: key.into(), version: None, op: Op::Delete, offset }
    }

    #[test]
    fn rounds_hold_one_change_per_key_in_each_keys_order() {
        let rounds =
            rounds(vec![change("a", 1), change("b", 2), change("a", 3), change("a", 4), change("c", 5)]);
        let offsets: Vec<Vec<i64>> = rounds.iter().map(|r| r.iter().map(|c| c.offset).collect()).collect();
        assert_eq!(offsets, [vec![1, 2, 5], vec![3], vec![4]]);
    }

    #[test]
    fn page_lasts_and_stored_cursors_round_trip() {
        let record = |partition: u32, offset: i64| {
            let mut r = crate::record::NewEvent::new("t", serde_json::json!({})).into_record(offset);
            r.partition = partition;
            r
        };
        assert_eq!(page_lasts(&[record(0, 1), record(1, 2), record(0, 3)]), [(0, 3), (1, 2)]);
        let checkpoint = doc! { "last": { "0": 3_i64, "1": 2_i64 } };
        assert_eq!(stored_cursors(&checkpoint), [(0, 3), (1, 2)]);
    }
}
