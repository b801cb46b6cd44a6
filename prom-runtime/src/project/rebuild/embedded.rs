//! Rebuilds on the embedded store.
//!
//! The shadow is the table `proj_<collection>__rebuild` (with the declared indexes, under
//! shadow names) in the store's own file. Each page of events is folded into it in one
//! transaction together with the checkpoint (table `proj__rebuild`, one row per collection), so
//! a killed rebuild resumes exactly after the last page it committed; a checkpoint left by
//! another definition of the projector (key, version or indexes changed) starts over.
//!
//! The swap is one transaction, so readers (each statement reads one committed state) see the
//! old table up to it and the new one after it, never neither:
//! 1. the events published since the last page are folded into the shadow (the writer lock
//!    is held, so the topic's head cannot move meanwhile);
//! 2. the events the live projector (group `projector.<name>`) has not applied yet are applied
//!    to the old table exactly as it would (changefeed events, dead letters), so nothing it
//!    owes downstream is skipped;
//! 3. the old table is dropped, the shadow renamed to it and its indexes renamed;
//! 4. the group's cursors move to the last offset of each partition and its ledger of applied
//!    offsets is cleared; the checkpoint row is deleted.
//!
//! A live projector may run during a rebuild: its batches commit before the swap (and are
//! re-folded by it) or after it, when its transaction finds the cursors past them and skips
//! them. No event is lost or applied twice.

use super::{Progress, RebuildOptions, RebuildReport, changes_of, fingerprint, shadow_collection};
use crate::bus::sqlite::projection::ProjectionTx;
use crate::bus::{EventBus, GroupId, SqliteBus, TopicPosition};
use crate::dlq;
use crate::error::{Error, Result};
use crate::project::embedded::{self as live, EmbeddedSpec};
use crate::project::plan::Change;
use crate::project::table::{self, Refused, Statements, Written};
use crate::record::{EventRecord, NewEvent};
use crate::registry::Registry;
use crate::system::{Index, ProjectorKind, System};
use rusqlite::{OptionalExtension, params};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// The checkpoints of running (or killed) rebuilds, one row per collection.
pub const CHECKPOINTS: &str = "CREATE TABLE IF NOT EXISTS proj__rebuild (\
    collection TEXT PRIMARY KEY NOT NULL, projector TEXT NOT NULL, fingerprint TEXT NOT NULL, \
    position INTEGER NOT NULL) WITHOUT ROWID";

/// Pages queued for the committer at once at most: one folds while the next waits behind it,
/// so the committer does not wait for the rebuild between pages.
const IN_FLIGHT_PAGES: usize = 2;

/// Events read per statement inside the swap transaction.
const SWAP_PAGE: usize = 2000;

/// What a rebuild of one projector needs, shared with the committer's jobs.
struct Plan {
    spec: EmbeddedSpec,
    registry: Arc<Registry>,
    indexes: Vec<Index>,
    shadow: String,
    shadow_ddl: Vec<String>,
    shadow_writes: Statements,
    live_writes: Statements,
    fingerprint: String,
    group: GroupId,
}

impl Plan {
    fn new(spec: EmbeddedSpec, indexes: Vec<Index>, registry: Arc<Registry>) -> Result<Plan> {
        let shadow = shadow_collection(&spec.collection);
        let mut shadow_ddl = vec![table::create_table(&shadow)];
        for index in &indexes {
            let ddl = table::create_index(&shadow, index)
                .map_err(|e| Error::system(format!("projector `{}`", spec.name), format!("index: {e}")))?;
            shadow_ddl.push(ddl);
        }
        let version = spec.pointers.version.clone().unwrap_or_default();
        let mut parts = vec![spec.topic.as_str(), spec.pointers.key.as_str(), version.as_str()];
        parts.extend(spec.ddl.iter().map(String::as_str));
        let fingerprint = fingerprint(&parts);
        Ok(Plan {
            shadow_writes: Statements::new(&shadow, spec.version_path.as_deref()),
            live_writes: Statements::new(&spec.collection, spec.version_path.as_deref()),
            group: GroupId::new(spec.topic.clone(), spec.group()),
            shadow,
            shadow_ddl,
            fingerprint,
            indexes,
            registry,
            spec,
        })
    }

    fn conflict(&self, expected: i64) -> Error {
        Error::RebuildConflict { projector: self.spec.name.clone(), expected }
    }
}

/// Rebuilds the changelog projector `name` on the embedded store (see the module docs).
pub async fn rebuild(
    bus: &SqliteBus,
    system: &System,
    registry: Arc<Registry>,
    name: &str,
    opts: &RebuildOptions,
) -> Result<RebuildReport> {
    let projector = super::changelog_projector(system, name)?;
    let indexes = match &projector.kind {
        ProjectorKind::Changelog(changelog) => changelog.indexes.clone(),
        _ => Vec::new(),
    };
    let spec = EmbeddedSpec::from_system(projector, system, &registry)?;
    let plan = Arc::new(Plan::new(spec, indexes, registry)?);
    let job = plan.clone();
    let resumed = bus.in_transaction(false, move |tx| begin(tx, &job)).await?;
    let mut report = RebuildReport {
        projector: plan.spec.name.clone(),
        collection: plan.spec.collection.clone(),
        resumed_from: resumed,
        ..RebuildReport::default()
    };
    let mut position = resumed.unwrap_or(0);
    if let Some(from) = resumed {
        tracing::info!(projector = %plan.spec.name, "resuming the rebuild from offset {from}");
    }
    let batch = opts.batch_size.max(1);
    // Pages are pipelined: while one folds on the store's committer thread, the next is read
    // and decoded, then queued behind it (the committer runs them in order, so each moves the
    // checkpoint from where the one before left it).
    let mut folding: VecDeque<Folding> = VecDeque::with_capacity(IN_FLIGHT_PAGES);
    // The embedded store numbers a topic's events topic-wide in commit order (one writer assigns
    // offsets), so one offset is a whole topic position here: the checkpoint stays an integer.
    let mut head = bus.heads(&plan.spec.topic).await?.floor();
    opts.report(Progress { position, head: head.max(position), events: report.events });
    loop {
        // What arrives after this head is folded by the swap, so a busy topic cannot keep the
        // rebuild from finishing.
        if position >= head {
            head = bus.heads(&plan.spec.topic).await?.floor();
            if position >= head {
                break;
            }
        }
        let page = bus.read_topic(&plan.spec.topic, &TopicPosition::after(position), batch).await?;
        let Some(last) = page.last().map(|r| r.offset) else { break };
        let (changes, refused) = changes_of(&plan.registry, &plan.spec.pointers, &page);
        let events = page.len() as u64;
        drop(page);
        while folding.len() >= IN_FLIGHT_PAGES {
            let Some(oldest) = folding.pop_front() else { break };
            oldest.settle(&mut report, head, opts).await?;
        }
        let job = plan.clone();
        let from = position;
        let done = bus.queue_transaction(false, move |tx| fold(tx, &job, from, last, changes))?;
        folding.push_back(Folding { done: Box::pin(done), last, events, refused });
        position = last;
    }
    while let Some(oldest) = folding.pop_front() {
        oldest.settle(&mut report, head, opts).await?;
    }
    let job = plan.clone();
    let swapped = bus.in_transaction(true, move |tx| swap(tx, &job, position)).await?;
    report.events += swapped.events;
    report.refused += swapped.refused;
    report.finished_for_live = swapped.finished_for_live;
    report.position = swapped.position;
    report.rows = swapped.rows;
    opts.report(Progress { position: swapped.position, head: swapped.position, events: report.events });
    Ok(report)
}

/// The wait for a page's fold: the changes the shadow refused, and the changes.
type Folded = Pin<Box<dyn Future<Output = Result<(u64, Vec<Change>)>> + Send>>;

/// A page queued for folding: the wait for its transaction and what it holds.
struct Folding {
    done: Folded,
    last: i64,
    events: u64,
    refused: u64,
}

impl Folding {
    /// Waits until the page is folded and its checkpoint durable, counts it and reports it.
    async fn settle(self, report: &mut RebuildReport, head: i64, opts: &RebuildOptions) -> Result<()> {
        // The page's changes come back to be freed here, not on the committer thread.
        let (refused_by_table, _changes) = self.done.await?;
        report.events += self.events;
        report.refused += self.refused + refused_by_table;
        opts.report(Progress { position: self.last, head: head.max(self.last), events: report.events });
        Ok(())
    }
}

/// Resumes the checkpoint of this definition, or starts a new shadow at offset 0.
fn begin(tx: &mut ProjectionTx<'_, '_>, plan: &Plan) -> Result<Option<i64>> {
    let conn = tx.conn();
    conn.execute_batch(CHECKPOINTS).map_err(|e| tx.err(e))?;
    let stored: Option<(String, String, i64)> = conn
        .query_row(
            "SELECT projector, fingerprint, position FROM proj__rebuild WHERE collection = ?1",
            [&plan.spec.collection],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(|e| tx.err(e))?;
    let shadow_exists = table_exists(conn, &table::table_name(&plan.shadow)).map_err(|e| tx.err(e))?;
    if let Some((projector, fingerprint, position)) = stored {
        if projector == plan.spec.name && fingerprint == plan.fingerprint && shadow_exists {
            return Ok(Some(position));
        }
        tracing::info!(
            projector = %plan.spec.name,
            "a rebuild checkpoint of another definition (or without its shadow) is discarded; starting from 0"
        );
    }
    let reset = format!(
        "DROP TABLE IF EXISTS {};\n{};",
        table::quote_ident(&table::table_name(&plan.shadow)),
        plan.shadow_ddl.join(";\n")
    );
    conn.execute_batch(&reset).map_err(|e| tx.err(e))?;
    conn.execute(
        "INSERT INTO proj__rebuild (collection, projector, fingerprint, position) VALUES (?1, ?2, ?3, 0) \
         ON CONFLICT (collection) DO UPDATE SET projector = excluded.projector, \
         fingerprint = excluded.fingerprint, position = 0",
        params![plan.spec.collection, plan.spec.name, plan.fingerprint],
    )
    .map_err(|e| tx.err(e))?;
    Ok(None)
}

/// Folds one page into the shadow and moves the checkpoint from `from` to `to`; returns the
/// changes the shadow refused (a declared unique index), and the changes.
fn fold(
    tx: &mut ProjectionTx<'_, '_>,
    plan: &Plan,
    from: i64,
    to: i64,
    changes: Vec<Change>,
) -> Result<(u64, Vec<Change>)> {
    advance(tx, plan, from, to)?;
    Ok((apply_to_shadow(tx, plan, &changes)?, changes))
}

/// Moves the checkpoint, failing if another rebuild moved it meanwhile.
fn advance(tx: &mut ProjectionTx<'_, '_>, plan: &Plan, from: i64, to: i64) -> Result<()> {
    let moved = tx
        .conn()
        .prepare_cached(
            "UPDATE proj__rebuild SET position = ?4 WHERE collection = ?1 AND fingerprint = ?2 AND position = ?3",
        )
        .and_then(|mut s| s.execute(params![plan.spec.collection, plan.fingerprint, from, to]))
        .map_err(|e| tx.err(e))?;
    if moved == 1 { Ok(()) } else { Err(plan.conflict(from)) }
}

fn apply_to_shadow(tx: &mut ProjectionTx<'_, '_>, plan: &Plan, changes: &[Change]) -> Result<u64> {
    let mut refused = 0;
    // Prepared once per page, not looked up in the statement cache per row.
    let mut writes = plan.shadow_writes.prepare(tx.conn());
    // One by one in offset order, not collapsed: a page holds several events of a key, and a
    // tombstone followed by a stale version ends with a row, which collapsing would lose.
    for change in changes {
        match writes.apply(change, false) {
            Ok(_) => {}
            Err(Refused::Change(reason)) => {
                refused += 1;
                tracing::debug!(offset = change.offset, "left out of the rebuilt projection: {reason}");
            }
            Err(Refused::Store(e)) => return Err(tx.err(e)),
        }
    }
    Ok(refused)
}

/// What the swap did.
struct Swapped {
    events: u64,
    refused: u64,
    finished_for_live: u64,
    position: i64,
    rows: u64,
}

/// Catches up, finishes the live projector's pending events, replaces the table and moves the
/// group's cursors, all in one transaction (see the module docs).
fn swap(tx: &mut ProjectionTx<'_, '_>, plan: &Plan, position: i64) -> Result<Swapped> {
    let mut out = Swapped { events: 0, refused: 0, finished_for_live: 0, position, rows: 0 };
    // 1. Catch up (the writer lock holds the head still).
    loop {
        let page = tx.read_events(&plan.spec.topic, out.position, SWAP_PAGE)?;
        let Some(last) = page.last().map(|r| r.offset) else { break };
        let (changes, refused) = changes_of(&plan.registry, &plan.spec.pointers, &page);
        advance(tx, plan, out.position, last)?;
        out.refused += refused + apply_to_shadow(tx, plan, &changes)?;
        out.events += page.len() as u64;
        out.position = last;
    }
    // The checkpoint must still be this rebuild's (another one may have swapped meanwhile).
    advance(tx, plan, out.position, out.position)?;
    let head = out.position;
    // 2. The live projector's pending events, applied to the old table as it would.
    out.finished_for_live = finish_for_live(tx, plan, head)?;
    // 3. Replace the table.
    let live_table = table::quote_ident(&table::table_name(&plan.spec.collection));
    let mut sql = format!(
        "DROP TABLE IF EXISTS {live_table};\nALTER TABLE {} RENAME TO {live_table};\n",
        table::quote_ident(&table::table_name(&plan.shadow))
    );
    for index in &plan.indexes {
        sql.push_str(&format!(
            "DROP INDEX IF EXISTS {};\n",
            table::quote_ident(&table::index_name(&plan.shadow, index))
        ));
    }
    // The canonical names, so the live projector's `CREATE INDEX IF NOT EXISTS` finds them.
    for ddl in plan.spec.ddl.iter().skip(1) {
        sql.push_str(ddl);
        sql.push_str(";\n");
    }
    tx.conn().execute_batch(&sql).map_err(|e| tx.err(e))?;
    // 4. The group's cursors and ledger, and the checkpoint.
    let conn = tx.conn();
    let moved = (|| -> rusqlite::Result<i64> {
        for partition in 0..plan.spec.partitions {
            let last: Option<i64> = conn
                .prepare_cached("SELECT max(off) FROM events WHERE topic = ?1 AND part = ?2 AND off <= ?3")?
                .query_row(params![plan.spec.topic, partition, head], |r| r.get(0))?;
            let Some(last) = last else { continue };
            conn.prepare_cached(
                "INSERT INTO cursors (topic, grp, part, off) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT DO UPDATE SET off = max(off, excluded.off)",
            )?
            .execute(params![plan.group.topic, plan.group.group, partition, last])?;
            let cursor: i64 = conn
                .prepare_cached("SELECT off FROM cursors WHERE topic = ?1 AND grp = ?2 AND part = ?3")?
                .query_row(params![plan.group.topic, plan.group.group, partition], |r| r.get(0))?;
            table::record_applied(conn, &plan.group, partition, std::iter::empty(), cursor)?;
        }
        conn.execute("DELETE FROM proj__rebuild WHERE collection = ?1", [&plan.spec.collection])?;
        conn.query_row(&format!("SELECT count(*) FROM {live_table}"), [], |r| r.get(0))
    })();
    out.rows = u64::try_from(moved.map_err(|e| tx.err(e))?).unwrap_or(0);
    Ok(out)
}

/// Applies the events up to `head` that the live projector has not applied (past its cursors
/// and not in its ledger) to the old table, with their changefeed events and dead letters.
fn finish_for_live(tx: &mut ProjectionTx<'_, '_>, plan: &Plan, head: i64) -> Result<u64> {
    // The old table exists for the writes below even if the live projector never ran (it is
    // dropped by the swap anyway), and so does the ledger.
    let ddl = format!("{};\n{}", plan.spec.ddl.join(";\n"), table::LEDGER);
    tx.conn().execute_batch(&ddl).map_err(|e| tx.err(e))?;
    let mut done: BTreeMap<u32, (i64, BTreeSet<i64>)> = BTreeMap::new();
    for partition in 0..plan.spec.partitions {
        let cursor = tx.cursor(&plan.group, partition)?.unwrap_or(0);
        let past = table::applied_past(tx.conn(), &plan.group, partition, cursor).map_err(|e| tx.err(e))?;
        done.insert(partition, (cursor, past));
    }
    let applied = |record: &EventRecord| {
        done.get(&record.partition)
            .is_some_and(|(cursor, past)| record.offset <= *cursor || past.contains(&record.offset))
    };
    let mut after = done.values().map(|(cursor, _)| *cursor).min().unwrap_or(0);
    let mut finished = 0;
    let track = !plan.spec.feeds.is_empty();
    while after < head {
        let page = tx.read_events(&plan.spec.topic, after, SWAP_PAGE)?;
        let Some(last) = page.last().map(|r| r.offset) else { break };
        after = last;
        let pending: Vec<&EventRecord> = page.iter().filter(|r| r.offset <= head && !applied(r)).collect();
        finished += pending.len() as u64;
        let mut events: Vec<NewEvent> = Vec::new();
        let mut letters: Vec<(&EventRecord, String)> = Vec::new();
        let mut changes = Vec::with_capacity(pending.len());
        let by_offset: BTreeMap<i64, &EventRecord> = pending.iter().map(|r| (r.offset, *r)).collect();
        for record in &pending {
            match super::change_of(&plan.registry, &plan.spec.pointers, record) {
                Ok(change) => changes.push(change),
                Err(reason) => letters.push((record, reason)),
            }
        }
        // One by one, not collapsed: the live projector's batches hold one event per key, so
        // each of its changes gets its own changefeed event.
        for change in changes {
            match plan.live_writes.apply(tx.conn(), &change, track) {
                Ok(Written::Skipped) => {}
                Ok(written) => {
                    for feed in &plan.spec.feeds {
                        events.extend(live::feed_events(
                            &plan.registry,
                            feed,
                            &change,
                            written,
                            by_offset.get(&change.offset).copied(),
                        )?);
                    }
                }
                Err(Refused::Change(reason)) => {
                    if let Some(record) = by_offset.get(&change.offset) {
                        letters.push((record, reason));
                    }
                }
                Err(Refused::Store(e)) => return Err(tx.err(e)),
            }
        }
        for (record, reason) in letters {
            events.push(dlq::dead_letter(record, &plan.group.group, &reason, 0));
        }
        tx.publish(events)?;
    }
    Ok(finished)
}

fn table_exists(conn: &rusqlite::Connection, name: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1")?.exists([name])
}
