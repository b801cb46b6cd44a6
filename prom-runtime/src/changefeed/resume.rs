//! Where a changefeed resumes: its state document in `changefeeds` and the gaps it recorded in
//! `changefeed_gaps` (both in the bus's database, majority-acknowledged like every write there).
//!
//! The state holds either the resume token of the last published change, or — before the first
//! change, and after a lost resume point — the cluster time to start at. Storing a start time
//! before watching means a crash before the first change still resumes from there, not from a
//! later "now" that would silently skip the changes in between.

use mongodb::bson::{self, Bson, DateTime, Document, Timestamp, doc};
use mongodb::change_stream::event::ResumeToken;
use mongodb::error::ErrorKind;
use mongodb::{Collection, Database};

/// Collection of changefeed states: `{_id: name, token, start_at, cluster_time, updated}`.
pub const STATES: &str = "changefeeds";
/// Collection of recorded gaps: `{feed, topic, from, to, recorded, reason}`.
pub const GAPS: &str = "changefeed_gaps";

/// Where to resume.
#[derive(Debug, Clone, PartialEq)]
pub enum Resume {
    /// After the change with this token.
    After(ResumeToken),
    /// At this cluster time.
    At(Timestamp),
}

/// The stored state of a changefeed.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    /// Where to resume.
    pub resume: Resume,
    /// The cluster time of the last published change (or of the start point).
    pub cluster_time: Option<Timestamp>,
}

fn states(db: &Database) -> Collection<Document> {
    db.collection(STATES)
}

/// The stored state of `feed`, if it ever started.
pub async fn load(db: &Database, feed: &str) -> mongodb::error::Result<Option<State>> {
    let Some(stored) = states(db).find_one(doc! { "_id": feed }).await? else { return Ok(None) };
    let cluster_time = stored.get_timestamp("cluster_time").ok();
    let resume = match (stored.get_document("token"), stored.get_timestamp("start_at")) {
        (Ok(token), _) => Resume::After(bson::from_document(token.clone())?),
        (Err(_), Ok(at)) => Resume::At(at),
        (Err(_), Err(_)) => return Ok(None),
    };
    Ok(Some(State { resume, cluster_time }))
}

/// Stores the token of a published change.
pub async fn save_token(
    db: &Database,
    feed: &str,
    token: &ResumeToken,
    cluster_time: Option<Timestamp>,
) -> mongodb::error::Result<()> {
    let token = bson::to_bson(token)?;
    let set = doc! { "token": token, "cluster_time": cluster_time, "updated": DateTime::now() };
    states(db)
        .update_one(doc! { "_id": feed }, doc! { "$set": set, "$unset": { "start_at": "" } })
        .upsert(true)
        .await?;
    Ok(())
}

/// Stores a start time (dropping any token).
pub async fn save_start(db: &Database, feed: &str, at: Timestamp) -> mongodb::error::Result<()> {
    let set = doc! { "start_at": at, "cluster_time": at, "updated": DateTime::now() };
    states(db)
        .update_one(doc! { "_id": feed }, doc! { "$set": set, "$unset": { "token": "" } })
        .upsert(true)
        .await?;
    Ok(())
}

/// Records that changes of `feed` after `from` (unknown if `None`) and before `to` may be
/// missing from `topic` (the stream restarts at `to`, so changes at `to` are published).
pub async fn record_gap(
    db: &Database,
    feed: &str,
    topic: &str,
    from: Option<Timestamp>,
    to: Timestamp,
    reason: &str,
) -> mongodb::error::Result<()> {
    let gap = doc! {
        "feed": feed,
        "topic": topic,
        "from": from.map_or(Bson::Null, Bson::Timestamp),
        "to": to,
        "recorded": DateTime::now(),
        "reason": reason,
    };
    db.collection::<Document>(GAPS).insert_one(gap).await?;
    Ok(())
}

/// The deployment's current cluster time (the operation time of a no-op command).
pub async fn server_time(db: &Database) -> mongodb::error::Result<Option<Timestamp>> {
    let reply = db.run_command(doc! { "ping": 1 }).await?;
    let cluster = reply.get_document("$clusterTime").ok().and_then(|c| c.get_timestamp("clusterTime").ok());
    Ok(reply.get_timestamp("operationTime").ok().or(cluster))
}

/// Whether `e` says the resume point is no longer in the oplog (or can never be resumed from).
pub fn resume_point_lost(e: &mongodb::error::Error) -> bool {
    const CHANGE_STREAM_FATAL_ERROR: i32 = 280;
    const CHANGE_STREAM_HISTORY_LOST: i32 = 286;
    matches!(
        e.kind.as_ref(),
        ErrorKind::Command(c) if c.code == CHANGE_STREAM_HISTORY_LOST || c.code == CHANGE_STREAM_FATAL_ERROR
    )
}
