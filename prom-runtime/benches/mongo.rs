//! MongoDB benchmarks: `MongoBus::publish` and the changelog projector's bulk write, each
//! printed as a ratio to a raw driver baseline measured in the same run (the projector's also
//! next to raw bulk writes with other forms of its version guard, for reference).
//!
//! `PROM_MONGO_URL=... cargo bench -p prom-runtime --features mongo --bench mongo [-- SECTION...]`,
//! sections `publish`, `read`, `concurrency`, `project` and `failover` (default: all; `failover` runs only
//! with `PROM_MONGO_RS3=1`, as it starts a three-member replica set of its own). Start a server with
//! `PROM_MONGO_STATE=$(mktemp -d) scripts/mongo.sh start` (it prints the URL).
//!
//! Method: every side has the same inputs, the same indexes and the same write concern
//! (majority, journaled). `publish` interleaves the sides batch by batch (the order rotated every
//! batch), each in a database of its own, and reports each side's median batch; `project` runs
//! them in alternating rounds, the order rotated every round, after an untimed warm-up, each
//! round in a fresh database (created, indexed and connected untimed, dropped after), and reports
//! each side's fastest round.

use prom_runtime::NewEvent;
use prom_runtime::bus::mongo::mongodb::bson::{self, Bson, Document, doc};
use prom_runtime::bus::mongo::mongodb::options::{
    Acknowledgment, ClientOptions, ReadConcern, TransactionOptions, WriteConcern,
};
use prom_runtime::bus::mongo::mongodb::{Client, ClientSession, Collection, Database, IndexModel};
use prom_runtime::bus::mongo::{MongoBus, layout};
use prom_runtime::project::plan::{self, Pointers};
use prom_runtime::project::write;
use prom_runtime::{EventBus, EventRecord};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

#[path = "mongo/concurrency.rs"]
mod concurrency;
#[path = "mongo/failover.rs"]
mod failover;
#[path = "mongo/read.rs"]
mod read;

/// Events per publish batch.
const PUBLISH_BATCH: usize = 500;
/// Timed batches per side (after [`PUBLISH_WARMUP`] untimed ones).
const PUBLISH_BATCHES: usize = 200;
/// Untimed batches per side first.
const PUBLISH_WARMUP: usize = 5;
/// Events per projector batch (distinct keys within a batch, so nothing collapses away).
const PROJECT_BATCH: usize = 1000;
/// Projector batches per round: the first `KEYS / PROJECT_BATCH` insert, the rest replace.
const PROJECT_BATCHES: usize = 10;
/// Distinct keys of the projected collection.
const KEYS: usize = 5000;
const ROUNDS: usize = 7;
/// Sides of the `project` section (see [`project_side`]).
const PROJECT_SIDES: usize = GUARDS.len() + 2;

fn main() {
    if let (Ok(spec), Ok(url)) = (std::env::var(concurrency::CHILD), std::env::var("PROM_MONGO_URL")) {
        concurrency::child(&spec, &url);
        return;
    }
    let Ok(url) = std::env::var("PROM_MONGO_URL") else {
        println!(
            "mongo benchmarks skipped: PROM_MONGO_URL is not set.\n\
             Start a one-node replica set and run them against it:\n  \
             export PROM_MONGO_STATE=$(mktemp -d)\n  \
             export PROM_MONGO_URL=$(scripts/mongo.sh start)\n  \
             cargo bench -p prom-runtime --features mongo --bench mongo\n  \
             scripts/mongo.sh stop"
        );
        return;
    };
    let sections: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let run = |name: &str| sections.is_empty() || sections.iter().any(|s| s == name);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    println!("prom-runtime MongoDB benchmarks (w: majority, j: true everywhere)\n");
    let mut bench = Bench { url, round: 0 };
    if run("publish") {
        runtime.block_on(bench.publish());
    }
    if run("read") {
        runtime.block_on(bench.read());
    }
    if run("concurrency") {
        runtime.block_on(bench.concurrency());
    }
    if run("project") {
        runtime.block_on(bench.project());
    }
    if run("failover") {
        runtime.block_on(failover::failover());
    }
}

fn rate(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

fn fastest(samples: &[Duration]) -> Duration {
    samples.iter().copied().min().unwrap_or_default()
}

fn durable() -> WriteConcern {
    WriteConcern::builder().w(Acknowledgment::Majority).journal(true).build()
}

struct Bench {
    url: String,
    round: usize,
}

impl Bench {
    /// A fresh database name (dropped by the caller after the round).
    fn fresh(&mut self) -> String {
        self.round += 1;
        format!("prom_bench_{}_{}", std::process::id(), self.round)
    }

    /// A raw driver client with the bus's write concern (majority, journaled).
    async fn raw_client(&self) -> Client {
        let mut options = ClientOptions::parse(&self.url).await.expect("PROM_MONGO_URL is a MongoDB URL");
        options.app_name = Some("prom-bench-raw".into());
        options.write_concern = Some(durable());
        Client::with_options(options).expect("MongoDB client")
    }

    /// A raw database with the bus's collections and indexes, per-event documents going to
    /// [`RAW_EVENTS`] (which also connects the client).
    async fn raw_database(&mut self) -> (Client, Database) {
        let client = self.raw_client().await;
        let db = client.database(&self.fresh());
        raw_events(&db).await;
        (client, db)
    }

    /// Every side publishes one batch in turn (the order rotated every batch), each into a
    /// database of its own, and reports the median time of its batches. Disk stalls, checkpoints
    /// and other load hit one batch of each side alike, which whole rounds side after side did
    /// not (their ratios moved by +-0.15 from run to run).
    async fn publish(&mut self) {
        let mut sides = vec![
            Side::raw(self).await,
            Side::transaction(self, Tx::Bare).await,
            Side::transaction(self, Tx::Counter).await,
            Side::transaction(self, Tx::Chunks).await,
            Side::bus(self).await,
        ];
        for b in 0..PUBLISH_WARMUP + PUBLISH_BATCHES {
            let n = sides.len();
            for i in 0..n {
                let side = &mut sides[(i + b) % n];
                let took = side.publish(publish_batch(b)).await;
                if b >= PUBLISH_WARMUP {
                    side.times.push(took);
                }
            }
        }
        let medians: Vec<Duration> = sides.iter_mut().map(|side| median(&mut side.times)).collect();
        let spreads: Vec<String> = sides.iter().map(|side| quartiles(&side.times)).collect();
        for side in sides {
            side.db.drop().await.expect("drop");
        }
        let per_second = |d: Duration| rate(PUBLISH_BATCH, d);
        let ratio = |i: usize| medians[0].as_secs_f64() / medians[i].as_secs_f64();
        println!(
            "publish ({PUBLISH_BATCHES} batches of {PUBLISH_BATCH} events per side, one batch of each side \
             in turn, each with the bus's indexes; median batch, quartiles in brackets)"
        );
        println!(
            "  raw insert_many of per-event documents (the layout before; one command)  : {:>9.0} ev/s (baseline) {}",
            per_second(medians[0]),
            spreads[0]
        );
        println!(
            "  raw transaction: insert_many + commit, no counter (for reference)       : {:>9.0} ev/s   {:.2}x {}",
            per_second(medians[1]),
            ratio(1),
            spreads[1]
        );
        println!(
            "  raw transaction: counter $inc + insert_many + commit (for reference)    : {:>9.0} ev/s   {:.2}x {}",
            per_second(medians[2]),
            ratio(2),
            spreads[2]
        );
        println!(
            "  raw transaction: counter $inc + one document per partition + commit     : {:>9.0} ev/s   {:.2}x {}\n    \
             (each partition's events in one document, as MongoBus stores them: for reference)",
            per_second(medians[3]),
            ratio(3),
            spreads[3]
        );
        println!(
            "  MongoBus::publish (offsets, dedup check, chunks, one transaction per batch): {:>9.0} ev/s   {:.2}x \
             the baseline's rate (target >= 0.9x); {:.2}x the raw chunk transaction's {}\n",
            per_second(medians[4]),
            ratio(4),
            medians[3].as_secs_f64() / medians[4].as_secs_f64(),
            spreads[4]
        );
    }

    async fn project(&mut self) {
        let guarded =
            Pointers { key: "/processId".into(), version: Some("/seq".into()), key_is_event_key: true };
        let unguarded = Pointers { version: None, ..guarded.clone() };
        let batches = project_batches();
        // Warm-up (untimed): each side once.
        for side in 0..PROJECT_SIDES {
            let (_c, db) = self.projection_database().await;
            project_side(side, &db, &guarded, &unguarded, &batches).await;
            db.drop().await.expect("drop");
        }
        let mut times: [Vec<Duration>; PROJECT_SIDES] = Default::default();
        for r in 0..ROUNDS {
            for side in 0..PROJECT_SIDES {
                let side = (side + r) % PROJECT_SIDES;
                let (_c, db) = self.projection_database().await;
                times[side].push(project_side(side, &db, &guarded, &unguarded, &batches).await);
                db.drop().await.expect("drop");
            }
        }
        let times = times.map(|t| fastest(&t));
        let raw = times[0];
        let n = PROJECT_BATCHES * PROJECT_BATCH;
        println!(
            "changelog projection ({n} events per round in batches of {PROJECT_BATCH} over {KEYS} keys, \
             versioned; an index on `status`; fastest of {ROUNDS} rounds)"
        );
        let line = |what: &str, d: Duration, note: &str| {
            let ratio = raw.as_secs_f64() / d.as_secs_f64();
            println!("  {what:<90}: {:>7.0} ev/s  {ratio:.2}x{note}", rate(n, d));
        };
        println!(
            "  {:<90}: {:>7.0} ev/s (baseline)",
            "raw bulk write: one unordered `update` of replace-upserts by _id, unguarded",
            rate(n, raw)
        );
        for (guard, d) in GUARDS.iter().zip(&times).skip(1) {
            line(&format!("raw, {}", guard.describe()), *d, " (for reference)");
        }
        let projector = &times[GUARDS.len()..];
        line(
            "projector write path without a version (change_of + collapse + apply)",
            projector[0],
            " (for reference)",
        );
        line(
            "projector: change_of + collapse + project::write::apply, version-guarded",
            projector[1],
            " the baseline's rate (target >= 0.7x)\n",
        );
    }

    /// A fresh database with the projected collection and its declared index.
    async fn projection_database(&mut self) -> (Client, Database) {
        let client = self.raw_client().await;
        let db = client.database(&self.fresh());
        let index = IndexModel::builder().keys(doc! { "status": 1 }).build();
        db.collection::<Document>(PROJECTION).create_index(index).await.expect("create the index");
        (client, db)
    }
}

const TOPIC: &str = "bench";
const PROJECTION: &str = "processes";

fn payload(n: usize) -> Value {
    json!({ "pid": n % 5000 + 1, "name": "api", "host": "host-1", "cpu_pct": 12.5, "mem_mib": 256.0, "region": "eu-west" })
}

fn publish_batch(b: usize) -> Vec<NewEvent> {
    (b * PUBLISH_BATCH..(b + 1) * PUBLISH_BATCH)
        .map(|n| {
            let mut e = NewEvent::new(TOPIC, payload(n)).keyed(format!("{}", n % 5000), (n % 8) as u32);
            e.headers.insert("x-schema-version".into(), "3".into());
            e
        })
        .collect()
}

/// The document `MongoBus` stores for `e` at `offset` (same fields, same types).
fn event_doc(e: &NewEvent, offset: i64) -> Document {
    let mut d = doc! {
        "_id": bson::Uuid::from_bytes(e.id.into_bytes()),
        "topic": &e.topic,
        "off": offset,
    };
    if let Some(key) = &e.key {
        d.insert("key", key);
    }
    d.insert("part", i64::from(e.partition));
    d.insert("ts", e.ts);
    d.insert("headers", serde_json::to_string(&e.headers).expect("headers as JSON"));
    d.insert("payload", serde_json::to_string(&e.payload).expect("payload as JSON"));
    d
}

/// What one side of the `publish` section writes with.
enum Sink {
    /// `insert_many`, one command per batch.
    Raw,
    /// A transaction like `MongoBus`'s (snapshot reads, majority commit).
    Transaction { tx: Tx, session: Box<ClientSession> },
    /// `MongoBus::publish`.
    Bus(MongoBus),
}

/// What a raw transaction of the `publish` section writes.
#[derive(Clone, Copy, PartialEq)]
enum Tx {
    /// The batch's documents (`insert_many`), nothing else.
    Bare,
    /// A counter bump (`$inc` on one document), then the batch's documents.
    Counter,
    /// A counter bump, then one document per partition holding that partition's events in an
    /// array, in `chunks` with the bus's indexes: the layout `MongoBus` writes, without its
    /// dedup check, per-partition counters and version counts.
    Chunks,
}

/// Where the raw sides store per-event documents (the bus's `events` refuses writes), with the
/// indexes the bus gives `events`.
const RAW_EVENTS: &str = "raw_events";

/// [`RAW_EVENTS`] of `db`, with the bus's indexes created on every collection (those of
/// `events` on [`RAW_EVENTS`]).
async fn raw_events(db: &Database) -> Collection<Document> {
    for (name, models) in layout::indexes() {
        let name = if name == layout::EVENTS { RAW_EVENTS } else { name };
        db.collection::<Document>(name).create_indexes(models).await.expect("create the bus's indexes");
    }
    db.collection::<Document>(RAW_EVENTS)
}

/// One side of the `publish` section, in a database of its own.
struct Side {
    sink: Sink,
    db: Database,
    /// Keeps the raw sides' client (and its connections) for the whole section.
    _client: Option<Client>,
    /// The last offset the raw sides gave.
    offset: i64,
    times: Vec<Duration>,
}

impl Side {
    fn new(sink: Sink, db: Database, client: Option<Client>) -> Side {
        Side { sink, db, _client: client, offset: 0, times: Vec::new() }
    }

    async fn raw(bench: &mut Bench) -> Side {
        let (client, db) = bench.raw_database().await;
        Side::new(Sink::Raw, db, Some(client))
    }

    async fn transaction(bench: &mut Bench, tx: Tx) -> Side {
        let (client, db) = bench.raw_database().await;
        let options = TransactionOptions::builder()
            .read_concern(ReadConcern::snapshot())
            .write_concern(durable())
            .build();
        let session = client.start_session().default_transaction_options(options).await.expect("session");
        Side::new(Sink::Transaction { tx, session: Box::new(session) }, db, Some(client))
    }

    async fn bus(bench: &mut Bench) -> Side {
        let name = bench.fresh();
        let bus = MongoBus::open_database(&bench.url, Some(&name)).await.expect("open MongoBus");
        let db = bus.database().clone();
        Side::new(Sink::Bus(bus), db, None)
    }

    /// Publishes `batch` (building its documents on the raw sides); returns how long it took.
    async fn publish(&mut self, batch: Vec<NewEvent>) -> Duration {
        let start = Instant::now();
        let events = self.db.collection::<Document>(RAW_EVENTS);
        match &mut self.sink {
            Sink::Bus(bus) => {
                let receipts = bus.publish(batch).await.expect("MongoBus::publish");
                assert_eq!(receipts.len(), PUBLISH_BATCH);
            }
            Sink::Raw => {
                let done =
                    events.insert_many(event_docs(&batch, &mut self.offset)).await.expect("insert_many");
                assert_eq!(done.inserted_ids.len(), PUBLISH_BATCH);
            }
            Sink::Transaction { tx, session } => {
                session.start_transaction().await.expect("start transaction");
                if *tx != Tx::Bare {
                    self.db
                        .collection::<Document>(layout::TOPICS)
                        .update_one(doc! { "_id": TOPIC }, doc! { "$inc": { "head": batch.len() as i64 } })
                        .upsert(true)
                        .session(&mut **session)
                        .await
                        .expect("counter");
                }
                let docs = event_docs(&batch, &mut self.offset);
                if *tx == Tx::Chunks {
                    let chunks = self.db.collection::<Document>(layout::CHUNKS);
                    chunks
                        .insert_many(chunk_docs(docs))
                        .session(&mut **session)
                        .await
                        .expect("insert chunks");
                } else {
                    events.insert_many(docs).session(&mut **session).await.expect("insert_many");
                }
                session.commit_transaction().await.expect("commit");
            }
        }
        start.elapsed()
    }
}

/// `docs` (event documents) as one document per partition: its first and last offsets (a
/// reader after an offset finds the documents whose `last` is past it), its count and its events
/// in offset order (the bench's events carry no dedup keys, so no `dedups` list).
fn chunk_docs(docs: Vec<Document>) -> Vec<Document> {
    let mut parts: std::collections::BTreeMap<i64, Vec<Document>> = std::collections::BTreeMap::new();
    for d in docs {
        parts.entry(d.get_i64("part").expect("part")).or_default().push(d);
    }
    parts
        .into_iter()
        .map(|(part, evs)| {
            let off = evs[0].get_i64("off").expect("off");
            let last = evs[evs.len() - 1].get_i64("off").expect("off");
            doc! { "topic": TOPIC, "part": part, "off": off, "last": last, "n": evs.len() as i64, "evs": evs }
        })
        .collect()
}

/// The documents `MongoBus` would store for `batch`, at the offsets after `offset` (advanced).
fn event_docs(batch: &[NewEvent], offset: &mut i64) -> Vec<Document> {
    batch
        .iter()
        .map(|e| {
            *offset += 1;
            event_doc(e, *offset)
        })
        .collect()
}

/// The median of `times` (sorts them).
fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

/// The first and third quartiles of sorted `times`, as rates.
fn quartiles(times: &[Duration]) -> String {
    let at = |q: usize| times.get(times.len() * q / 4).copied().unwrap_or_default();
    format!("[{:.0}-{:.0}]", rate(PUBLISH_BATCH, at(3)), rate(PUBLISH_BATCH, at(1)))
}

/// Batches of records over distinct keys; batch `b` carries version `b + 1`.
fn project_batches() -> Vec<Vec<EventRecord>> {
    let mut offset = 0;
    (0..PROJECT_BATCHES)
        .map(|b| {
            (0..PROJECT_BATCH)
                .map(|i| {
                    offset += 1;
                    let key = format!("p{}", (b * PROJECT_BATCH + i) % KEYS);
                    let status = if (b + i) % 3 == 0 { "down" } else { "up" };
                    let payload = json!({
                        "processId": key, "seq": b + 1, "status": status, "host": "host-1",
                        "cpu_pct": 12.5, "mem_mib": 256.0, "region": "eu-west",
                    });
                    EventRecord {
                        id: uuid::Uuid::now_v7(),
                        topic: "process.state".into(),
                        key: Some(key),
                        partition: (i % 8) as u32,
                        ts: 0,
                        headers: Default::default(),
                        payload: payload.into(),
                        caused_by: None,
                        sid: None,
                        offset,
                    }
                })
                .collect()
        })
        .collect()
}

async fn projector_write(db: &Database, pointers: &Pointers, batches: &[Vec<EventRecord>]) -> Duration {
    let start = Instant::now();
    for batch in batches {
        let changes: Vec<_> =
            batch.iter().map(|r| plan::change_of(r, pointers).expect("a projectable event")).collect();
        let changes = plan::collapse(changes);
        let outcome =
            write::apply(db, PROJECTION, Some("seq"), &changes).await.expect("project::write::apply");
        assert_eq!(outcome.upserted, PROJECT_BATCH as u64, "{outcome:?}");
    }
    start.elapsed()
}

/// The `project` section's sides, by index: the raw bulk write with each of [`GUARDS`] (the
/// first is the baseline), then the projector without and with a version.
async fn project_side(
    side: usize,
    db: &Database,
    guarded: &Pointers,
    unguarded: &Pointers,
    batches: &[Vec<EventRecord>],
) -> Duration {
    match GUARDS.get(side) {
        Some(guard) => raw_upserts(db, batches, *guard).await,
        None if side == GUARDS.len() => projector_write(db, unguarded, batches).await,
        None => projector_write(db, guarded, batches).await,
    }
}

/// The raw bulk write's guards, the baseline's (none) first.
const GUARDS: [Guard; 6] =
    [Guard::None, Guard::Or, Guard::Not, Guard::Lt, Guard::PipelineTyped, Guard::PipelineLt];

/// How a raw bulk write guards each replace-upsert by version.
#[derive(Clone, Copy)]
enum Guard {
    /// No guard: `q: {_id}`, `u: <doc>`.
    None,
    /// The projector's guard before: `$or` in the filter.
    Or,
    /// One clause in the filter (it would also overwrite a version of another type).
    Not,
    /// One clause in the filter (it would never overwrite a document without a version).
    Lt,
    /// `q: {_id}` and a pipeline update whose condition spells out the types.
    PipelineTyped,
    /// `q: {_id}` and a pipeline update comparing with `$lt` (what the projector sends).
    PipelineLt,
}

impl Guard {
    /// The guard as its report line names it.
    fn describe(self) -> &'static str {
        match self {
            Guard::None => "no guard: q {_id}",
            Guard::Or => {
                "guard in the filter: {_id, $or: [{seq: {$lt: v}}, {seq: {$exists: false}}]} (before)"
            }
            Guard::Not => "guard in the filter: {_id, seq: {$not: {$gte: v}}}",
            Guard::Lt => "guard in the filter: {_id, seq: {$lt: v}}",
            Guard::PipelineTyped => {
                "q {_id}, pipeline: $cond [{$or: [$type missing, {$and: [$isNumber, $lt]}]}, ..]"
            }
            Guard::PipelineLt => {
                "q {_id}, pipeline: $replaceWith $cond [{$lt: [$seq, v]}, $literal doc, $$ROOT]"
            }
        }
    }
}

/// `[{$replaceWith: {$cond: [newer, {$literal: doc}, "$$ROOT"]}}]`: replace only if `newer`.
fn pipeline(newer: Document, doc: Document) -> Bson {
    Bson::Array(vec![Bson::Document(doc! {
        "$replaceWith": { "$cond": [newer, { "$literal": doc }, "$$ROOT"] }
    })])
}

/// Replace-upserts by `_id`, guarded as `guard` says.
async fn raw_upserts(db: &Database, batches: &[Vec<EventRecord>], guard: Guard) -> Duration {
    let start = Instant::now();
    for batch in batches {
        let statements: Vec<Document> = batch
            .iter()
            .map(|r| {
                let key = r.payload["processId"].as_str().expect("a string key");
                let seq = r.payload["seq"].as_i64().expect("a numeric version");
                let mut u = bson::to_document(&r.payload).expect("payload as BSON");
                u.insert("_id", key);
                let mut q = doc! { "_id": key };
                let u = match guard {
                    Guard::None => Bson::Document(u),
                    Guard::Or => {
                        let older =
                            vec![doc! { "seq": { "$lt": seq } }, doc! { "seq": { "$exists": false } }];
                        q.insert("$or", older);
                        Bson::Document(u)
                    }
                    Guard::Not => {
                        q.insert("seq", doc! { "$not": { "$gte": seq } });
                        Bson::Document(u)
                    }
                    Guard::Lt => {
                        q.insert("seq", doc! { "$lt": seq });
                        Bson::Document(u)
                    }
                    Guard::PipelineTyped => pipeline(
                        doc! { "$or": [
                            { "$eq": [{ "$type": "$seq" }, "missing"] },
                            { "$and": [{ "$isNumber": "$seq" }, { "$lt": ["$seq", seq] }] },
                        ] },
                        u,
                    ),
                    Guard::PipelineLt => pipeline(doc! { "$lt": ["$seq", seq] }, u),
                };
                doc! { "q": q, "u": u, "upsert": true }
            })
            .collect();
        let command = doc! {
            "update": PROJECTION, "updates": statements, "ordered": false,
            "writeConcern": { "w": "majority", "j": true },
        };
        let reply = db.run_command(command).await.expect("update command");
        assert_eq!(reply.get("n"), Some(&Bson::Int32(PROJECT_BATCH as i32)), "{reply}");
    }
    start.elapsed()
}
