//! The handler `specs/process.yaml` names for the transactional projector `process-stats`:
//! per host, how many state changes it reported and which of its processes last ran.
//! It writes through the document API, so the same handler runs on the embedded store and on
//! MongoDB; its writes commit in one transaction with the projector's cursor, so after a crash
//! no state change is counted twice or lost.

use crate::prom::process_state;
use prom_runtime::EventRecord;
use prom_runtime::documents::{Documents, DocumentsExt};
use prom_runtime::project::DocTxFuture;
use std::collections::BTreeMap;

/// The collection the projector maintains.
pub const COLLECTION: &str = "process_stats";

/// One host's document.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct HostStats {
    /// State changes counted (each exactly once).
    pub changes: i64,
    /// Per process name, 1 if its latest state was `running`, else 0.
    pub processes: BTreeMap<String, i64>,
}

/// Counts one `process.state` change of `state.host`.
pub fn process_stats<'a>(
    state: process_state::Latest,
    _record: &'a EventRecord,
    docs: &'a mut dyn Documents,
) -> DocTxFuture<'a> {
    Box::pin(async move {
        let mut stats = docs.get_as::<HostStats>(COLLECTION, &state.host).await?.unwrap_or_default();
        stats.changes += 1;
        let running = i64::from(state.status == process_state::Status::Running);
        stats.processes.insert(state.name.clone(), running);
        docs.put_as(COLLECTION, &state.host, &stats).await?;
        Ok(())
    })
}
