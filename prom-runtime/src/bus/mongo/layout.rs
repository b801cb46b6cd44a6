//! Collection names, their indexes, and the server checks made when a bus opens.

use crate::error::{Error, Result};
use futures_util::TryStreamExt;
use mongodb::bson::{Document, doc};
use mongodb::options::IndexOptions;
use mongodb::{Collection, Database, IndexModel};

/// Events, one document per partition per transaction ([`super::chunk`]): `_id` (the first
/// event's id), `topic`, `part`, `off` and `last` (the offsets it holds), `tsmax`, `dedups`, and
/// `evs`, the events (`_id`, `key`, `ts`, `headers`, `payload`, `v`, ...).
pub const CHUNKS: &str = "chunks";
/// Events of earlier releases, one document per event: `_id` (event id), `topic`, `off`,
/// `key`, `part`, `ts`, `headers`, `payload`, `v` (the `x-schema-version` header as a number,
/// for counting), ... Read, never written: see [`freeze_events`].
pub const EVENTS: &str = "events";
/// The index of each per-event document's stored schema version (`v`), which `prom status`
/// counts over.
pub const VERSION_INDEX: &str = "topic_version";
/// The field a validator on [`EVENTS`] requires and no document has, so an earlier release
/// still running fails to publish (naming this field) instead of writing events that readers
/// of `chunks` would never see.
pub const FROZEN: &str = "prom_events_are_stored_in_chunks_upgrade_this_process";

/// Per-partition offset counters: `{topic, part, head, vs}` (unique by topic and partition);
/// `vs` counts the partition's chunked events by schema version (see [`version_key`]).
pub const PARTITIONS: &str = "partitions";
/// The per-topic offset counters of the layout before per-partition offsets (`{_id: topic,
/// head}`): never written any more, read once per partition to start its counter above them.
pub const TOPICS: &str = "topics";
/// Consumer-group cursors: `{topic, grp, part, off}`.
pub const CURSORS: &str = "cursors";
/// Live group members: `{topic, grp, member, expires}` (server time).
pub const MEMBERS: &str = "members";
/// Partition leases: `{topic, grp, part, member, expires, fence}`.
pub const LEASES: &str = "leases";
/// Stream events: `{aggregate, id, version, topic, off, prev?, hash?}`.
pub const STREAMS: &str = "prom_streams";
/// Stream snapshots: `{_id: {aggregate, id}, version, fingerprint, state, ts}`.
pub const SNAPSHOTS: &str = "prom_snapshots";

/// The field of a counter's `vs` counting events of schema version `v` (`None`: without a
/// readable `x-schema-version`).
pub fn version_key(v: Option<i64>) -> String {
    v.map_or_else(|| "none".to_owned(), |v| format!("v{v}"))
}

/// The schema version a field of a counter's `vs` counts (`None` for `none` and for anything
/// not a version).
pub fn version_of(key: &str) -> Option<u32> {
    key.strip_prefix('v')?.parse().ok()
}

fn index(keys: Document, name: &str, unique: bool, partial: Option<Document>) -> IndexModel {
    let options = IndexOptions::builder()
        .name(name.to_string())
        .unique(unique)
        .partial_filter_expression(partial)
        .build();
    IndexModel::builder().keys(keys).options(options).build()
}

/// The indexes of each collection (`_id` is always unique: it makes the ids of per-event
/// documents unique, and `event_id` does for chunked events).
pub fn indexes() -> Vec<(&'static str, Vec<IndexModel>)> {
    vec![
        (
            CHUNKS,
            vec![
                // Unique: the backstop against two writers ever handing out one offset of a
                // partition (chunks of one partition start at different offsets) and the shard
                // key's index.
                index(doc! { "topic": 1, "part": 1, "off": 1 }, "topic_part_off", true, None),
                // The read path: chunks ending after a position, and (covered) their spans.
                index(doc! { "topic": 1, "part": 1, "last": 1, "off": 1 }, "topic_part_last", false, None),
                // Event ids are unique across chunks (within one, the writer checks).
                index(doc! { "evs._id": 1 }, "event_id", true, None),
                index(doc! { "topic": 1, "evs.key": 1, "last": 1 }, "topic_key_last", false, None),
                index(
                    doc! { "topic": 1, "dedups": 1 },
                    "topic_dedup",
                    true,
                    Some(doc! { "dedups": { "$exists": true } }),
                ),
            ],
        ),
        (
            EVENTS,
            vec![
                // Unique: the backstop against two writers ever handing out one offset of a
                // partition; also the consumer's read path and the shard key's index.
                index(doc! { "topic": 1, "part": 1, "off": 1 }, "topic_part_off", true, None),
                index(doc! { "topic": 1, "key": 1, "off": 1 }, "topic_key_off", false, None),
                index(doc! { "topic": 1, "v": 1 }, VERSION_INDEX, false, None),
                index(
                    doc! { "topic": 1, "dedup": 1 },
                    "topic_dedup",
                    true,
                    Some(doc! { "dedup": { "$type": "string" } }),
                ),
            ],
        ),
        (PARTITIONS, vec![index(doc! { "topic": 1, "part": 1 }, "topic_part", true, None)]),
        (CURSORS, vec![index(doc! { "topic": 1, "grp": 1, "part": 1 }, "group_part", true, None)]),
        (MEMBERS, vec![index(doc! { "topic": 1, "grp": 1, "member": 1 }, "group_member", true, None)]),
        (LEASES, vec![index(doc! { "topic": 1, "grp": 1, "part": 1 }, "group_part", true, None)]),
        // Unique: two writers can never both store one version of a stream.
        (STREAMS, vec![index(doc! { "aggregate": 1, "id": 1, "version": 1 }, "stream_version", true, None)]),
    ]
}

/// Indexes of earlier layouts, dropped when found: `topic_off` was unique on (topic, offset)
/// when offsets were per topic; partitions now share offsets, and topic-wide reads go partition
/// by partition on `topic_part_off`.
const RETIRED: [(&str, &str); 1] = [(EVENTS, "topic_off")];

/// Creates the indexes (a no-op when they exist, so every open may run it), first dropping
/// the indexes of earlier layouts: retired ones, and those whose name is now taken by an index
/// with other options.
pub async fn create_indexes(db: &Database) -> mongodb::error::Result<()> {
    freeze_events(db).await?;
    for (collection, models) in indexes() {
        let coll = db.collection::<Document>(collection);
        drop_changed(&coll, &models).await?;
        coll.create_indexes(models).await?;
    }
    Ok(())
}

/// Puts a validator on [`EVENTS`] (creating it) that refuses every document: events are
/// written to [`CHUNKS`] now, and a process of an earlier release still writing per-event
/// documents would number them in the same partitions, where readers of this release would miss
/// events or an earlier release's reader skip the chunked ones. Frozen, its documents all come
/// before every chunk of their partition. An account without the `collMod` privilege leaves it
/// as it is, with a warning.
pub(crate) async fn freeze_events(db: &Database) -> mongodb::error::Result<()> {
    const NAMESPACE_EXISTS: i32 = 48;
    let validator = doc! { FROZEN: { "$exists": true } };
    match db.create_collection(EVENTS).validator(validator.clone()).await {
        Ok(()) => return Ok(()),
        Err(e) if code(&e) == Some(NAMESPACE_EXISTS) => {}
        Err(e) => return Err(e),
    }
    let listed = db.list_collections().filter(doc! { "name": EVENTS }).await?.try_collect::<Vec<_>>().await?;
    if listed.iter().any(|c| c.options.validator.as_ref() == Some(&validator)) {
        return Ok(());
    }
    let frozen = db
        .run_command(doc! {
            "collMod": EVENTS,
            "validator": validator,
            "validationLevel": "strict",
            "validationAction": "error",
        })
        .await;
    match frozen {
        Err(e) if crate::outage::mongo::unauthorized(&e) => {
            tracing::warn!(
                collection = EVENTS,
                "cannot put the validator on `events` that stops processes of earlier releases from writing \
                 there (this account lacks the collMod privilege): stop every process of an earlier release \
                 before publishing with this one, or open the database once with an account that has it"
            );
            Ok(())
        }
        other => other.map(drop),
    }
}

/// Drops each retired index of `coll`, and each named like one of `models` but differing in
/// keys or uniqueness (before per-partition offsets `topic_part_off` was not unique), which
/// MongoDB would refuse to create over.
async fn drop_changed(coll: &Collection<Document>, models: &[IndexModel]) -> mongodb::error::Result<()> {
    const NAMESPACE_NOT_FOUND: i32 = 26;
    const INDEX_NOT_FOUND: i32 = 27;
    let existing: Vec<IndexModel> = match coll.list_indexes().await {
        Ok(cursor) => cursor.try_collect().await?,
        Err(e) if code(&e) == Some(NAMESPACE_NOT_FOUND) => return Ok(()),
        Err(e) => return Err(e),
    };
    let unique = |m: &IndexModel| m.options.as_ref().and_then(|o| o.unique).unwrap_or(false);
    let name = |m: &IndexModel| m.options.as_ref().and_then(|o| o.name.clone());
    for old in &existing {
        let Some(old_name) = name(old) else { continue };
        let retired = RETIRED.contains(&(coll.name(), old_name.as_str()));
        let changed = retired
            || models.iter().any(|m| {
                name(m).as_deref() == Some(&old_name)
                    && (unique(m) != unique(old) || !same_keys(&m.keys, &old.keys))
            });
        if !changed {
            continue;
        }
        tracing::info!(collection = coll.name(), index = %old_name, "dropping an index of the earlier layout");
        match coll.drop_index(&old_name).await {
            // Another process opening the same database dropped it first.
            Err(e) if code(&e) == Some(INDEX_NOT_FOUND) => {}
            other => other?,
        }
    }
    Ok(())
}

/// Whether two index key documents are equal (the server may list `1` as a double).
fn same_keys(a: &Document, b: &Document) -> bool {
    let number = |v: &mongodb::bson::Bson| {
        v.as_f64().or_else(|| v.as_i32().map(f64::from)).or_else(|| v.as_i64().map(|n| n as f64))
    };
    a.len() == b.len()
        && a.iter().zip(b.iter()).all(|((ka, va), (kb, vb))| {
            ka == kb && (va == vb || (number(va).is_some() && number(va) == number(vb)))
        })
}

/// The server's error code of a failed command.
fn code(e: &mongodb::error::Error) -> Option<i32> {
    match e.kind.as_ref() {
        mongodb::error::ErrorKind::Command(c) => Some(c.code),
        _ => None,
    }
}

/// Checks that the server is reachable and can run transactions (a replica set or mongos);
/// returns whether it is a sharded cluster's `mongos`.
pub async fn check_server(db: &Database, display: &str) -> Result<bool> {
    let hello = db.run_command(doc! { "hello": 1 }).await.map_err(|e| {
        Error::store(
            display,
            format!(
                "cannot reach MongoDB: {e}\nhelp: start a local one with `scripts/mongo.sh start` and connect \
                 to the URL it prints"
            ),
        )
    })?;
    let replica_set = hello.get_str("setName").is_ok();
    let mongos = hello.get_str("msg").is_ok_and(|m| m == "isdbgrid");
    if !replica_set && !mongos {
        return Err(Error::store(
            display,
            "this MongoDB is a standalone server, but Prom needs transactions, which only replica sets \
             and sharded clusters have\nhelp: restart mongod with `--replSet rs0` and run \
             `rs.initiate()` once (scripts/mongo.sh start does both)",
        ));
    }
    Ok(mongos)
}
