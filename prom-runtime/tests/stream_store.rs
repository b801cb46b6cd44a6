//! Streams and the stores underneath: layout-1 and layout-4 embedded stores are migrated, and
//! an event edited behind MongoDB's back is named by `prom verify --mongo`.

mod common;

use prom_runtime::stream::{ExpectedVersion, StreamId};
use prom_runtime::{EventBus, NewEvent, Producer, Registry, SqliteBus};
use std::sync::Arc;

const SPEC: &str = include_str!("streams/streams.yaml");

fn producer<B: EventBus>(bus: B) -> Producer<B> {
    Producer::new(bus, Arc::new(Registry::from_yaml("streams.yaml", SPEC).expect("spec")))
}

fn deposit(id: &str, cents: i64) -> (String, serde_json::Value) {
    ("money.deposited".to_owned(), serde_json::json!({ "accountId": id, "cents": cents }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layout_1_store_is_migrated_and_keeps_its_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bus = SqliteBus::open(dir.path()).expect("create");
    bus.publish(vec![NewEvent::new("money.deposited", serde_json::json!({ "old": true }))])
        .await
        .expect("publish");
    drop(bus);
    // Turn it into what layout 1 wrote: no stream tables, user_version 1.
    let db = rusqlite::Connection::open(dir.path().join("events.db")).expect("open");
    db.execute_batch(
        "DROP TABLE streams; DROP TABLE snapshots; DROP TABLE key_snapshots; \
         DROP INDEX events_topic_key_off; PRAGMA user_version = 1;",
    )
    .expect("downgrade");
    drop(db);

    let read_only = SqliteBus::open_read_only(dir.path()).expect("a read-only open accepts layout 1");
    assert_eq!(read_only.heads("money.deposited").await.expect("head").total(), 1);
    drop(read_only);

    let p = producer(SqliteBus::open(dir.path()).expect("migrate"));
    let version: i64 = rusqlite::Connection::open(dir.path().join("events.db"))
        .and_then(|c| c.pragma_query_value(None, "user_version", |r| r.get(0)))
        .expect("user_version");
    assert_eq!(version, 5);
    let appended =
        p.append(StreamId::new("account", "m"), ExpectedVersion::NoStream, vec![deposit("m", 3)]).await;
    let appended = appended.expect("append after the migration");
    assert_eq!((appended.last_version, appended.receipts[0].offset), (1, 2), "the old event keeps offset 1");
    let old =
        p.bus().read_topic("money.deposited", &prom_runtime::TopicPosition::start(), 10).await.expect("read");
    assert_eq!(old[0].payload, serde_json::json!({ "old": true }));
}

/// Layout 4 stored each link's predecessor hash in `streams.prev_hash`; layout 5 derives it
/// from the previous version's hash. A layout-4 store (a chain restarting after an unlinked
/// event included) reads the same links read-only, and after the migration drops the column its
/// chains verify, extend and still catch an edited event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layout_4_store_keeps_its_chains_without_prev_hash() {
    use prom_runtime::stream::verify;
    let dir = tempfile::tempdir().expect("tempdir");
    let p = producer(SqliteBus::open(dir.path()).expect("create"));
    let account = StreamId::new("account", "c");
    p.append(account.clone(), ExpectedVersion::NoStream, vec![deposit("c", 1), deposit("c", 2)])
        .await
        .expect("a");
    p.append(account.clone(), ExpectedVersion::Any, vec![deposit("c", 3)]).await.expect("b");
    let mut before = p.bus().read_stream(&account, 0, 10).await.expect("read");
    drop(p);
    let db = rusqlite::Connection::open(dir.path().join("events.db")).expect("open");
    // What layout 4 wrote: the same rows with `prev_hash`; version 1 made unlinked, as when tamper
    // evidence is turned on later, so version 2 starts the chain again (zeros before it).
    db.execute_batch(
        "UPDATE streams SET hash = NULL WHERE version = 1; \
         CREATE TABLE old (aggregate TEXT NOT NULL, stream_id TEXT NOT NULL, version INTEGER NOT NULL, \
             topic TEXT NOT NULL, off INTEGER NOT NULL, prev_hash BLOB, hash BLOB, \
             PRIMARY KEY (aggregate, stream_id, version)) WITHOUT ROWID; \
         INSERT INTO old SELECT aggregate, stream_id, version, topic, off, CASE WHEN hash IS NULL THEN NULL ELSE \
             coalesce((SELECT p.hash FROM streams p WHERE p.aggregate = s.aggregate AND p.stream_id = s.stream_id \
             AND p.version = s.version - 1), zeroblob(32)) END, hash FROM streams s; \
         DROP TABLE streams; ALTER TABLE old RENAME TO streams; PRAGMA user_version = 4;",
    )
    .expect("downgrade");
    // Version 2's hash was computed after version 1's: rewrite it as a chain start.
    let v2 = &before[1];
    let restarted = prom_runtime::stream::chain::hash(&account, 2, (&v2.record).into(), &[0; 32]);
    db.execute("UPDATE streams SET hash = ?1 WHERE version = 2", [&restarted[..]]).expect("restart");
    let v3 = &before[2];
    let relinked = prom_runtime::stream::chain::hash(&account, 3, (&v3.record).into(), &restarted);
    db.execute(
        "UPDATE streams SET prev_hash = ?1, hash = ?2 WHERE version = 3",
        [&restarted[..], &relinked[..]],
    )
    .expect("relink");
    drop(db);
    before[0].link = None;
    before[1].link = Some(prom_runtime::stream::ChainLink { prev: [0; 32], hash: restarted });
    before[2].link = Some(prom_runtime::stream::ChainLink { prev: restarted, hash: relinked });

    let read_only = SqliteBus::open_read_only(dir.path()).expect("a read-only open accepts layout 4");
    assert_eq!(read_only.read_stream(&account, 0, 10).await.expect("read"), before);
    assert!(verify(&read_only, "account", None).await.expect("verify").ok());
    drop(read_only);

    let p = producer(SqliteBus::open(dir.path()).expect("migrate"));
    let db = rusqlite::Connection::open(dir.path().join("events.db")).expect("open");
    let (version, prev_hash): (i64, bool) = db
        .query_row(
            "SELECT (SELECT user_version FROM pragma_user_version), \
             EXISTS (SELECT 1 FROM pragma_table_info('streams') WHERE name = 'prev_hash')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("layout");
    assert_eq!((version, prev_hash), (5, false));
    assert_eq!(p.bus().read_stream(&account, 0, 10).await.expect("read"), before, "the same links");
    let report = verify(p.bus(), "account", None).await.expect("verify");
    assert!(report.ok() && report.linked == 2, "{report:?}");
    p.append(account.clone(), ExpectedVersion::Exact(3), vec![deposit("c", 4)]).await.expect("extend");
    let after = p.bus().read_stream(&account, 0, 10).await.expect("read");
    assert_eq!(after[3].link.map(|l| l.prev), Some(relinked), "version 4 follows version 3");
    let report = verify(p.bus(), "account", None).await.expect("verify");
    assert!(report.ok() && report.linked == 3, "{report:?}");
    let edited = db
        .execute(
            "UPDATE events SET payload = '{\"accountId\":\"c\",\"cents\":300}' WHERE topic = 'money.deposited' \
             AND off = (SELECT off FROM streams WHERE stream_id = 'c' AND version = 3)",
            [],
        )
        .expect("edit");
    assert_eq!(edited, 1);
    let report = verify(p.bus(), "account", None).await.expect("verify");
    assert_eq!(report.broken.map(|b| b.version), Some(3), "the edited event breaks the chain");
}

#[cfg(feature = "mongo")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prom_verify_names_an_event_edited_behind_mongodbs_back() {
    use mongodb::bson::{Document, doc};
    use std::process::Command;
    let Some(target) = common::mongo::Target::from_env() else { return };
    let bus = target.open_async().await;
    let p = producer(bus.clone());
    let stream = StreamId::new("account", "m1");
    for cents in 1..=3 {
        p.append(stream.clone(), ExpectedVersion::Any, vec![deposit("m1", cents)]).await.expect("append");
    }
    let url = target.url_with_database();
    let spec = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/streams/streams.yaml");
    let prom = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_prom"));
        let split = if args.first() == Some(&"stream") { 2 } else { 1 };
        command.args(&args[..split]).args(["--specs", spec, "--mongo", &url]).args(&args[split..]);
        command.env_remove("PROM_MONGO_URL").output().expect("run prom")
    };
    let out = prom(&["verify", "account"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let out = prom(&[
        "stream",
        "append",
        "account",
        "m1",
        "money.deposited",
        r#"{"accountId":"m1","cents":4}"#,
        "--expected-version",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("expected version 2, but the stream is at version 3"), "{stderr}");

    let entry: Document = bus
        .database()
        .collection::<Document>("prom_streams")
        .find_one(doc! { "aggregate": "account", "id": "m1", "version": 2_i64 })
        .await
        .expect("find")
        .expect("version 2 is stored");
    let off = entry.get_i64("off").expect("off");
    // The event lies in a chunk (one document per partition per transaction): edit it there.
    let chunk: Document = bus
        .database()
        .collection::<Document>("chunks")
        .find_one(doc! { "topic": "money.deposited", "off": { "$lte": off }, "last": { "$gte": off } })
        .await
        .expect("find")
        .expect("the chunk holding version 2");
    let at = off - chunk.get_i64("off").expect("off");
    let edited = bus
        .database()
        .collection::<Document>("chunks")
        .update_one(
            doc! { "_id": chunk.get("_id").expect("id") },
            doc! { "$set": { format!("evs.{at}.payload"): r#"{"accountId":"m1","cents":200}"# } },
        )
        .await
        .expect("update");
    assert_eq!(edited.modified_count, 1);
    let out = prom(&["verify", "account"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("stream `account/m1` breaks at version 2: the event was changed"), "{stderr}");
    target.drop_database().await;
}
