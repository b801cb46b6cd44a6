//! Projection rebuilds: a changelog projector's collection folded again from offset 0 of its
//! topic into a shadow (`<collection>__rebuild`), checkpointed in the store so a killed rebuild
//! resumes, then swapped in atomically.
//!
//! Readers keep reading the old collection until the swap and the new one after it; they never
//! see the shadow, an empty collection or a half-built one. [`embedded`] swaps in one SQLite
//! transaction (and may run next to the live projector); [`mongo`] swaps with `renameCollection`
//! while it holds every lease of the projector's group (so no live projector writes meanwhile).
//! Transactional projectors are not rebuilt: their effects are the user's handler's writes,
//! which Prom cannot redo or undo.

pub mod embedded;
#[cfg(feature = "mongo")]
pub mod mongo;

use super::plan::{self, Change, Pointers};
use crate::bus::{AnyBus, EventBus};
use crate::error::{Error, Result};
use crate::record::EventRecord;
use crate::registry::Registry;
use crate::system::{Projector, ProjectorKind, System};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// What a shadow collection's name adds to its collection's.
pub const SHADOW_SUFFIX: &str = "__rebuild";

/// Events read and folded per checkpoint unless told otherwise.
pub const DEFAULT_BATCH: usize = 2000;

/// The shadow a rebuild of `collection` folds into.
pub fn shadow_collection(collection: &str) -> String {
    format!("{collection}{SHADOW_SUFFIX}")
}

/// Where a rebuild is, for progress output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// The last offset folded into the shadow.
    pub position: i64,
    /// The topic's head when last read.
    pub head: i64,
    /// Events folded by this run.
    pub events: u64,
}

/// Called after each checkpoint.
pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// How to rebuild.
#[derive(Clone)]
pub struct RebuildOptions {
    /// Events read and folded per checkpoint (each is one transaction / one bulk write).
    pub batch_size: usize,
    /// Told where the rebuild is after each checkpoint.
    pub progress: Option<ProgressFn>,
}

impl Default for RebuildOptions {
    fn default() -> RebuildOptions {
        RebuildOptions { batch_size: DEFAULT_BATCH, progress: None }
    }
}

impl std::fmt::Debug for RebuildOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RebuildOptions")
            .field("batch_size", &self.batch_size)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl RebuildOptions {
    fn report(&self, progress: Progress) {
        if let Some(report) = &self.progress {
            report(progress);
        }
    }
}

/// What a finished rebuild did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RebuildReport {
    /// The projector rebuilt.
    pub projector: String,
    /// Its collection (table `proj_<collection>` on the embedded store).
    pub collection: String,
    /// The checkpoint a killed or stopped rebuild had left, which this run resumed from.
    pub resumed_from: Option<i64>,
    /// The last offset the new projection contains (the topic's head at the swap).
    pub position: i64,
    /// Events this run folded into the shadow.
    pub events: u64,
    /// Events that could not be projected (undecodable, no key, refused by a unique index):
    /// left out of the new projection, as the live projector dead-lettered them.
    pub refused: u64,
    /// Events the live projector had not applied yet, finished by the swap as it would have
    /// (writes, changefeed events, dead letters) before the table was replaced.
    pub finished_for_live: u64,
    /// Rows (documents) in the new projection.
    pub rows: u64,
}

/// Rebuilds the changelog projector `projector` of `system` on `bus` (the embedded store or
/// MongoDB), from offset 0 of its topic, and swaps the result in; resumes a killed rebuild
/// from its checkpoint.
pub async fn rebuild(
    bus: &AnyBus,
    system: &System,
    registry: Arc<Registry>,
    projector: &str,
    opts: &RebuildOptions,
) -> Result<RebuildReport> {
    if let Some(sqlite) = bus.as_sqlite() {
        return embedded::rebuild(sqlite, system, registry, projector, opts).await;
    }
    #[cfg(feature = "mongo")]
    if let Some(mongo) = bus.as_mongo() {
        return mongo::rebuild(mongo, system, registry, projector, opts).await;
    }
    Err(Error::setting(
        "projection rebuild",
        "it needs the embedded store or MongoDB (the in-memory bus keeps no projections)",
    ))
}

/// The changelog projector `name` of `system`: a typed error for an undeclared name (with the
/// closest declared one) and for a transactional projector.
pub fn changelog_projector<'a>(system: &'a System, name: &str) -> Result<&'a Projector> {
    let Some(projector) = system.projectors.iter().find(|p| p.name == name) else {
        let names = system.projectors.iter().map(|p| p.name.as_str());
        let hint = prom_spec::suggest::closest(name, names.clone()).map(str::to_owned);
        let list: Vec<String> = names.map(|n| format!("`{n}`")).collect();
        let declared = hint.is_none().then(|| {
            format!("projectors: {}", if list.is_empty() { "none".to_owned() } else { list.join(", ") })
        });
        return Err(Error::UnknownComponent { kind: "projector".into(), name: name.into(), hint, declared });
    };
    if !matches!(projector.kind, ProjectorKind::Changelog(_)) {
        return Err(Error::WrongProjectorKind {
            projector: name.into(),
            kind: "transactional",
            help: "only changelog projectors can be rebuilt (a transactional projector's effects are its \
                   handler's own writes, which Prom cannot redo or undo); reset its group's cursor and \
                   clear what the handler wrote instead",
        });
    }
    Ok(projector)
}

/// The change an event asks for, or why it cannot be projected (as the live projectors decide).
pub(crate) fn change_of(
    registry: &Registry,
    pointers: &Pointers,
    record: &EventRecord,
) -> std::result::Result<Change, String> {
    if let Some(error) = record.corrupt_error() {
        return Err(format!("corrupt event: {error}"));
    }
    // A null tombstone has no payload to upcast or validate.
    if record.payload.is_null() {
        return plan::change_of(record, pointers);
    }
    // Borrowed unless upcast: a page of current events is decoded without copying a record.
    let decoded = registry.decode_ref(record).map_err(|e| format!("cannot decode: {e}"))?;
    plan::change_of(&decoded, pointers)
}

/// Decodes a page of events into changes (in offset order) and the count that cannot be
/// projected.
pub(crate) fn changes_of(
    registry: &Registry,
    pointers: &Pointers,
    page: &[EventRecord],
) -> (Vec<Change>, u64) {
    let mut refused = 0;
    let mut changes = Vec::with_capacity(page.len());
    for record in page {
        match change_of(registry, pointers, record) {
            Ok(change) => changes.push(change),
            Err(reason) => {
                refused += 1;
                tracing::debug!(
                    topic = %record.topic, offset = record.offset,
                    "left out of the rebuilt projection: {reason}"
                );
            }
        }
    }
    (changes, refused)
}

/// A fingerprint of what decides a projection's content: a checkpoint left by a rebuild of
/// another definition (key, version, indexes changed) is not resumed.
pub(crate) fn fingerprint(parts: &[&str]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part.as_bytes());
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}
