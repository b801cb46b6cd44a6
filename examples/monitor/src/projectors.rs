//! The handler `specs/process.yaml` names for the transactional projector `process-stats`:
//! per host, how many state changes it reported and how many processes it last had running.
//! Its writes commit in one transaction with the projector's cursor, so after a crash no state
//! change is counted twice or lost.

use crate::prom::process_state;
use prom_runtime::EventRecord;
use prom_runtime::bus::mongo::mongodb::bson::{Document, doc};
use prom_runtime::bus::mongo::mongodb::{ClientSession, Database};
use prom_runtime::project::TxFuture;

/// The collection the projector maintains.
pub const COLLECTION: &str = "process_stats";

/// Counts one `process.state` change of `state.host`; every write passes `session`.
pub fn process_stats<'a>(
    state: process_state::Latest,
    _record: &'a EventRecord,
    db: &'a Database,
    session: &'a mut ClientSession,
) -> TxFuture<'a> {
    Box::pin(async move {
        let running = i64::from(state.status == process_state::Status::Running);
        db.collection::<Document>(COLLECTION)
            .update_one(
                doc! { "_id": &state.host },
                doc! {
                    "$inc": { "changes": 1_i64 },
                    "$set": { format!("processes.{}", state.name): running },
                },
            )
            .upsert(true)
            .session(&mut *session)
            .await?;
        Ok(())
    })
}
