//! Collection names, their indexes, and the server checks made when a bus opens.

use crate::error::{Error, Result};
use mongodb::bson::{Document, doc};
use mongodb::options::IndexOptions;
use mongodb::{Database, IndexModel};

/// Events: `_id` (event id), `topic`, `off`, `key`, `part`, `ts`, `headers`, `payload`, `v`
/// (the `x-schema-version` header as a number, for counting), ...
pub const EVENTS: &str = "events";
/// The index of each event's stored schema version (`v`), which `prom status` counts over.
pub const VERSION_INDEX: &str = "topic_version";

/// Per-topic offset counters: `{_id: topic, head}`.
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

fn index(keys: Document, name: &str, unique: bool, partial: Option<Document>) -> IndexModel {
    let options = IndexOptions::builder()
        .name(name.to_string())
        .unique(unique)
        .partial_filter_expression(partial)
        .build();
    IndexModel::builder().keys(keys).options(options).build()
}

/// The indexes of each collection (`_id` is always unique, which makes event ids unique).
pub fn indexes() -> Vec<(&'static str, Vec<IndexModel>)> {
    vec![
        (
            EVENTS,
            vec![
                // Unique: the backstop against two writers ever handing out one offset.
                index(doc! { "topic": 1, "off": 1 }, "topic_off", true, None),
                index(doc! { "topic": 1, "part": 1, "off": 1 }, "topic_part_off", false, None),
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
        (CURSORS, vec![index(doc! { "topic": 1, "grp": 1, "part": 1 }, "group_part", true, None)]),
        (MEMBERS, vec![index(doc! { "topic": 1, "grp": 1, "member": 1 }, "group_member", true, None)]),
        (LEASES, vec![index(doc! { "topic": 1, "grp": 1, "part": 1 }, "group_part", true, None)]),
        // Unique: two writers can never both store one version of a stream.
        (STREAMS, vec![index(doc! { "aggregate": 1, "id": 1, "version": 1 }, "stream_version", true, None)]),
    ]
}

/// Creates the indexes (a no-op when they exist, so every open may run it).
pub async fn create_indexes(db: &Database) -> mongodb::error::Result<()> {
    for (collection, models) in indexes() {
        db.collection::<Document>(collection).create_indexes(models).await?;
    }
    Ok(())
}

/// Checks that the server is reachable and can run transactions (a replica set or mongos).
pub async fn check_server(db: &Database, display: &str) -> Result<()> {
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
    Ok(())
}
