//! The outbox on a real MongoDB: publishes and stream appends inside the caller's own session
//! and transaction (`Producer::publish_in`, `MongoTx`) commit or abort together with the
//! caller's writes; offsets stay gap-free and unique next to the group committer; conflicts,
//! invalid payloads and sessions without a transaction fail with typed errors.
#![cfg(feature = "mongo")]

mod common;

use common::mongo::Target;
use futures_util::TryStreamExt;
use prom_runtime::bus::mongo::MongoBus;
use prom_runtime::bus::mongo::mongodb::ClientSession;
use prom_runtime::bus::mongo::mongodb::bson::{Document, doc};
use prom_runtime::consumer::{SubscribeOptions, Subscription};
use prom_runtime::outbox::Outbox;
use prom_runtime::stream::{ExpectedVersion, StreamId};
use prom_runtime::{Error, EventBus, Producer, PublishOptions, Registry};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

const SPEC: &str = include_str!("streams/streams.yaml");

fn producer(bus: MongoBus) -> Producer<MongoBus> {
    Producer::new(bus, Arc::new(Registry::from_yaml("streams.yaml", SPEC).expect("spec")))
}

fn opened(id: &str) -> Value {
    json!({ "accountId": id, "owner": "ada" })
}

async fn session(bus: &MongoBus) -> ClientSession {
    let mut session = bus.client().start_session().await.expect("session");
    session.start_transaction().await.expect("start a transaction");
    session
}

/// The user's own document, written in the session.
async fn put_account(bus: &MongoBus, session: &mut ClientSession, id: &str) {
    bus.database()
        .collection::<Document>("accounts")
        .insert_one(doc! { "_id": id, "owner": "ada" })
        .session(&mut *session)
        .await
        .expect("the user's own write");
}

async fn accounts(bus: &MongoBus) -> BTreeSet<String> {
    let docs: Vec<Document> = bus
        .database()
        .collection::<Document>("accounts")
        .find(doc! {})
        .await
        .expect("find")
        .try_collect()
        .await
        .expect("collect");
    docs.iter().filter_map(|d| d.get_str("_id").ok().map(str::to_owned)).collect()
}

async fn offsets(bus: &MongoBus, topic: &str) -> Vec<i64> {
    bus.read_topic(topic, &prom_runtime::TopicPosition::start(), 100_000)
        .await
        .expect("read")
        .iter()
        .map(|r| r.offset)
        .collect()
}

async fn ids_on(bus: &MongoBus, topic: &str) -> Vec<String> {
    let records = bus.read_topic(topic, &prom_runtime::TopicPosition::start(), 100_000).await.expect("read");
    records.iter().filter_map(|r| r.payload["accountId"].as_str().map(str::to_owned)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_transaction_stores_the_users_write_and_the_event() {
    let Some(target) = Target::from_env() else { return };
    let bus = target.open_async().await;
    let p = producer(bus.clone());

    let mut s = session(&bus).await;
    put_account(&bus, &mut s, "a1").await;
    let receipt = p
        .publish_in(&mut s, "account.opened", opened("a1"), PublishOptions::default())
        .await
        .expect("publish in the session");
    assert_eq!((receipt.offset, receipt.duplicate), (1, false));
    // Not visible outside the transaction before the commit.
    assert!(offsets(&bus, "account.opened").await.is_empty());
    assert!(accounts(&bus).await.is_empty());
    s.commit_transaction().await.expect("commit");

    assert_eq!(accounts(&bus).await, BTreeSet::from(["a1".to_owned()]));
    let stored =
        bus.read_topic("account.opened", &prom_runtime::TopicPosition::start(), 10).await.expect("read");
    assert_eq!(stored.len(), 1);
    assert_eq!((stored[0].offset, stored[0].id, &*stored[0].payload), (1, receipt.id, &opened("a1")));
    assert_eq!(stored[0].headers.get("x-schema-version").map(String::as_str), Some("1"));

    // A batch and a dual-written topic: every event and copy in the same transaction.
    let mut s = session(&bus).await;
    let receipts = p
        .publish_all_in(
            &mut s,
            vec![
                ("account.opened".into(), opened("a2"), PublishOptions::default()),
                (
                    "money.deposited".into(),
                    json!({ "accountId": "a2", "cents": 5 }),
                    PublishOptions::default(),
                ),
            ],
        )
        .await
        .expect("publish_all in the session");
    assert_eq!(receipts.iter().map(|r| r.offset).collect::<Vec<_>>(), [2, 1]);
    s.commit_transaction().await.expect("commit");
    assert_eq!(offsets(&bus, "money.deposited").await, [1]);
    assert_eq!(offsets(&bus, "money.deposited.v2").await, [1], "the dual-write copy committed with it");
    target.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_transaction_leaves_nothing_and_no_gap() {
    let Some(target) = Target::from_env() else { return };
    let bus = target.open_async().await;
    let p = producer(bus.clone());
    p.publish("account.opened", opened("before"), PublishOptions::default()).await.expect("publish");

    // A consumer subscribed before the aborted transaction.
    let options =
        SubscribeOptions { poll_timeout: Duration::from_millis(200), ..SubscribeOptions::default() };
    let mut sub = Subscription::new(bus.clone(), "account.opened", "watchers", options).expect("subscribe");
    let mut seen = Vec::new();
    seen.extend(sub.poll().await.expect("poll"));

    let mut s = session(&bus).await;
    put_account(&bus, &mut s, "gone").await;
    let receipt = p
        .publish_in(&mut s, "account.opened", opened("gone"), PublishOptions::default())
        .await
        .expect("publish in the session");
    assert_eq!(receipt.offset, 2, "offset 2 is reserved inside the transaction");
    s.abort_transaction().await.expect("abort");

    // A dropped session with an open transaction is aborted too.
    let mut dropped = session(&bus).await;
    p.publish_in(&mut dropped, "account.opened", opened("dropped"), PublishOptions::default())
        .await
        .expect("publish in the session");
    drop(dropped);

    for id in ["after-1", "after-2"] {
        p.publish("account.opened", opened(id), PublishOptions::default()).await.expect("publish");
    }
    let mut s = session(&bus).await;
    p.publish_in(&mut s, "account.opened", opened("after-3"), PublishOptions::default())
        .await
        .expect("in session");
    s.commit_transaction().await.expect("commit");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while seen.len() < 4 && tokio::time::Instant::now() < deadline {
        seen.extend(sub.poll().await.expect("poll"));
    }
    let seen: Vec<(i64, String)> = seen
        .iter()
        .map(|d| (d.record.offset, d.record.payload["accountId"].as_str().unwrap_or_default().to_owned()))
        .collect();
    assert_eq!(
        seen,
        [(1, "before".into()), (2, "after-1".into()), (3, "after-2".into()), (4, "after-3".into())],
        "the consumer never sees an aborted event, and offsets stay gap-free"
    );
    assert!(accounts(&bus).await.is_empty(), "the user's write was aborted with the event");
    assert_eq!(bus.heads("account.opened").await.expect("head").total(), 4);
    target.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_payloads_and_sessions_without_a_transaction_are_refused() {
    let Some(target) = Target::from_env() else { return };
    let bus = target.open_async().await;
    let p = producer(bus.clone());

    // Invalid: refused before anything reaches the server; the transaction stays usable.
    let mut s = session(&bus).await;
    put_account(&bus, &mut s, "kept").await;
    let invalid = p
        .publish_in(&mut s, "account.opened", json!({ "accountId": "kept" }), PublishOptions::default())
        .await
        .expect_err("no owner");
    assert!(
        matches!(&invalid, Error::Invalid { errors, .. } if errors.iter().any(|e| e.contains("owner"))),
        "{invalid}"
    );
    let unknown = p.publish_in(&mut s, "no.such", json!({}), PublishOptions::default()).await;
    assert!(matches!(unknown, Err(Error::UnknownTopic { .. })), "{unknown:?}");
    let wrong_stream = p
        .append_in(
            &mut s,
            StreamId::new("account", "x"),
            ExpectedVersion::Any,
            vec![("account.opened".into(), opened("y"))],
        )
        .await;
    assert!(matches!(wrong_stream, Err(Error::StreamIdMismatch { .. })), "{wrong_stream:?}");
    p.publish_in(&mut s, "account.opened", opened("kept"), PublishOptions::default())
        .await
        .expect("the transaction is still usable");
    s.commit_transaction().await.expect("commit");
    assert_eq!(accounts(&bus).await, BTreeSet::from(["kept".to_owned()]));
    assert_eq!(ids_on(&bus, "account.opened").await, ["kept"]);

    // No transaction started, or one already committed: refused, nothing written.
    let mut bare = bus.client().start_session().await.expect("session");
    let refused = p.publish_in(&mut bare, "account.opened", opened("bare"), PublishOptions::default()).await;
    let Err(error @ Error::NoTransaction { .. }) = refused else { panic!("{refused:?}") };
    assert!(error.to_string().contains("start_transaction"), "{error}");
    bare.start_transaction().await.expect("start");
    bare.commit_transaction().await.expect("commit an empty transaction");
    let refused = p.publish_in(&mut bare, "account.opened", opened("bare"), PublishOptions::default()).await;
    assert!(matches!(refused, Err(Error::NoTransaction { .. })), "{refused:?}");

    // A session of another client cannot join the bus's writes.
    let other = target.open_async().await;
    let mut foreign = session(&other).await;
    let refused =
        p.publish_in(&mut foreign, "account.opened", opened("foreign"), PublishOptions::default()).await;
    let Err(error) = refused else { panic!("a foreign session was accepted") };
    assert!(error.to_string().contains("bus.client().start_session()"), "{error}");
    drop(foreign);

    // A producer on another bus has no session to join.
    let memory = Producer::new(prom_runtime::MemoryBus::new(), p.registry().clone());
    let mut s = session(&bus).await;
    let refused = memory.publish_in(&mut s, "account.opened", opened("m"), PublishOptions::default()).await;
    assert!(matches!(refused, Err(Error::NotMongo { .. })), "{refused:?}");
    drop(s);
    assert_eq!(ids_on(&bus, "account.opened").await, ["kept"]);
    target.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedup_keys_hold_inside_and_across_transactions() {
    let Some(target) = Target::from_env() else { return };
    let bus = target.open_async().await;
    let p = producer(bus.clone());
    let keyed = || PublishOptions { dedup: Some("open-d1".into()), ..Default::default() };

    let mut s = session(&bus).await;
    let first = p.publish_in(&mut s, "account.opened", opened("d1"), keyed()).await.expect("first");
    let again = p.publish_in(&mut s, "account.opened", opened("d1"), keyed()).await.expect("again");
    assert_eq!((again.id, again.offset, again.duplicate), (first.id, first.offset, true));
    s.commit_transaction().await.expect("commit");

    // Stored: a later transaction and a plain publish get the stored event's receipt.
    let mut s = session(&bus).await;
    let later = p.publish_in(&mut s, "account.opened", opened("d1"), keyed()).await.expect("later");
    s.commit_transaction().await.expect("commit");
    let plain = p.publish("account.opened", opened("d1"), keyed()).await.expect("plain");
    assert_eq!((later.id, later.duplicate, plain.id, plain.duplicate), (first.id, true, first.id, true));

    // An aborted transaction's key is free again.
    let key = || PublishOptions { dedup: Some("open-d2".into()), ..Default::default() };
    let mut s = session(&bus).await;
    p.publish_in(&mut s, "account.opened", opened("d2"), key()).await.expect("in session");
    s.abort_transaction().await.expect("abort");
    let stored = p.publish("account.opened", opened("d2"), key()).await.expect("plain");
    assert!(!stored.duplicate);
    assert_eq!(offsets(&bus, "account.opened").await, [1, 2]);
    target.drop_database().await;
}

/// Runs one in-session publish with the user's write, retrying the whole transaction on
/// conflicts as the error's help says; returns the attempts it took.
async fn place_in_session(bus: &MongoBus, p: &Producer<MongoBus>, id: &str) -> u32 {
    let mut attempts = 0;
    loop {
        attempts += 1;
        assert!(attempts < 1_000, "{id}: no attempt ever committed");
        let mut s = session(bus).await;
        put_account(bus, &mut s, id).await;
        match p.publish_in(&mut s, "account.opened", opened(id), PublishOptions::default()).await {
            Ok(_) => {}
            Err(e) if e.is_transient_transaction_error() => {
                assert!(matches!(e, Error::TransactionConflict { .. }), "{e}");
                let label = e.mongo_error().expect("the driver error").labels().clone();
                assert!(label.contains("TransientTransactionError"), "{e}: {label:?}");
                continue;
            }
            Err(e) => panic!("{id}: {e}"),
        }
        match s.commit_transaction().await {
            Ok(()) => return attempts,
            Err(e) if e.contains_label("TransientTransactionError") => {}
            Err(e) => panic!("{id}: commit: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_session_and_group_committed_publishers_share_gap_free_unique_offsets() {
    let Some(target) = Target::from_env() else { return };
    let bus = target.open_async().await;
    let p = producer(bus.clone());
    // Created before the transactions start, as in a real service: a collection created inside
    // one of several concurrent transactions fails the others with `SnapshotUnavailable`.
    bus.database().create_collection("accounts").await.expect("create the user's collection");
    const WRITERS: usize = 4;
    const EACH: usize = 25;
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (bus, in_session) = (bus.clone(), p.clone());
        tasks.push(tokio::spawn(async move {
            let p = in_session;
            let mut attempts = 0;
            for i in 0..EACH {
                attempts += place_in_session(&bus, &p, &format!("s{w}-{i}")).await;
            }
            attempts
        }));
        let p = p.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..EACH {
                p.publish("account.opened", opened(&format!("g{w}-{i}")), PublishOptions::default())
                    .await
                    .expect("group-committed publish");
            }
            0
        }));
    }
    let mut attempts = 0;
    for task in tasks {
        attempts += task.await.expect("writer");
    }
    let total = WRITERS * EACH * 2;
    let offs = offsets(&bus, "account.opened").await;
    assert_eq!(
        offs,
        (1..=i64::try_from(total).expect("small")).collect::<Vec<_>>(),
        "gap-free, no duplicate"
    );
    let ids = ids_on(&bus, "account.opened").await;
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), total, "every event exactly once");
    let in_session: BTreeSet<String> = ids.into_iter().filter(|id| id.starts_with('s')).collect();
    assert_eq!(accounts(&bus).await, in_session, "a user's write exactly when its event");
    eprintln!("{} in-session transactions took {attempts} attempts", WRITERS * EACH);
    target.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_in_a_session_check_the_version_in_the_transaction() {
    let Some(target) = Target::from_env() else { return };
    let bus = target.open_async().await;
    let p = producer(bus.clone());
    let stream = StreamId::new("account", "s1");
    let deposit = |cents: i64| ("money.deposited".to_owned(), json!({ "accountId": "s1", "cents": cents }));

    let mut s = session(&bus).await;
    put_account(&bus, &mut s, "s1").await;
    let mut tx = p.in_session(&mut s).expect("a MongoDB producer");
    let appended = tx
        .append(
            stream.clone(),
            ExpectedVersion::NoStream,
            vec![("account.opened".into(), opened("s1")), deposit(5)],
        )
        .await
        .expect("append in the session");
    assert_eq!((appended.first_version, appended.last_version), (1, 2));
    // Through the trait, as generated code calls it.
    let more = Outbox::append(&mut tx, stream.clone(), ExpectedVersion::Exact(2), vec![deposit(7)])
        .await
        .expect("append again in the same transaction");
    assert_eq!(more.last_version, 3);
    assert_eq!(bus.stream_version(&stream).await.expect("version"), None, "nothing visible yet");
    s.commit_transaction().await.expect("commit");
    assert_eq!(bus.stream_version(&stream).await.expect("version"), Some(3));
    let report = prom_runtime::stream::verify(&bus, "account", Some("s1")).await.expect("verify");
    assert!(report.broken.is_none(), "the chain holds: {report:?}");

    // A stale expected version: a typed conflict, nothing written, the transaction usable.
    let mut s = session(&bus).await;
    let conflict = p.append_in(&mut s, stream.clone(), ExpectedVersion::Exact(2), vec![deposit(1)]).await;
    assert!(matches!(&conflict, Err(Error::StreamConflict { actual: Some(3), .. })), "{conflict:?}");
    put_account(&bus, &mut s, "after-conflict").await;
    s.commit_transaction().await.expect("commit the rest");
    assert_eq!(bus.stream_version(&stream).await.expect("version"), Some(3));

    // Two transactions expecting the same version: exactly one stores it.
    let mut first = session(&bus).await;
    let mut second = session(&bus).await;
    p.append_in(&mut first, stream.clone(), ExpectedVersion::Exact(3), vec![deposit(10)])
        .await
        .expect("the first takes version 4 in its transaction");
    let raced = p.append_in(&mut second, stream.clone(), ExpectedVersion::Exact(3), vec![deposit(20)]).await;
    let Err(raced) = raced else { panic!("two open transactions both wrote version 4") };
    assert!(raced.is_transient_transaction_error(), "{raced}");
    drop(second);
    first.commit_transaction().await.expect("commit the first");
    // Run again, as the error says: now the version check sees the winner.
    let mut again = session(&bus).await;
    let retried = p.append_in(&mut again, stream.clone(), ExpectedVersion::Exact(3), vec![deposit(20)]).await;
    assert!(matches!(retried, Err(Error::StreamConflict { actual: Some(4), .. })), "{retried:?}");
    drop(again);
    let cents: Vec<i64> = p
        .read_stream(&stream, 0, 100)
        .await
        .expect("read")
        .iter()
        .filter_map(|r| r.record.payload["cents"].as_i64())
        .collect();
    assert_eq!(cents, [5, 7, 10]);
    target.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drivers_and_run_retries_a_conflicting_callback() {
    use prom_runtime::bus::mongo::mongodb::error::Error as DriverError;
    let Some(target) = Target::from_env() else { return };
    let bus = target.open_async().await;
    let p = producer(bus.clone());
    // Hold the topic's counter in an open transaction, so the callback's first attempt conflicts.
    let mut holder = session(&bus).await;
    p.publish_in(&mut holder, "account.opened", opened("holder"), PublishOptions::default())
        .await
        .expect("hold the counter");
    let releaser = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        holder.commit_transaction().await.expect("commit the holder");
    });
    let mut s = bus.client().start_session().await.expect("session");
    let calls = std::sync::atomic::AtomicU32::new(0);
    let receipt = s
        .start_transaction()
        .and_run((&p, &calls), |session, (p, calls)| {
            Box::pin(async move {
                calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let receipt = p
                    .publish_in(session, "account.opened", opened("callback"), PublishOptions::default())
                    .await
                    .map_err(DriverError::from)?;
                Ok(receipt)
            })
        })
        .await
        .expect("and_run commits after retrying");
    releaser.await.expect("releaser");
    assert!(calls.load(std::sync::atomic::Ordering::Relaxed) >= 2, "the first attempt conflicted");
    assert_eq!(receipt.offset, 2);
    assert_eq!(ids_on(&bus, "account.opened").await, ["holder", "callback"]);
    target.drop_database().await;
}
