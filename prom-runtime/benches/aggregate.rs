//! Aggregate benchmark: loading a 10,000-event stream from a snapshot (`snapshot: { every: 100 }`)
//! vs replaying all of it, on the embedded store (`cargo bench -p prom-runtime --bench aggregate`).
//!
//! Method as in the runtime bench: both sides run in alternating rounds after an untimed
//! warm-up, and each side's fastest round is reported (interference only ever adds time).
//! Two cases: the snapshot at the stream's last event (nothing to fold after it), and the worst
//! case for `every: 100`, 99 events after the newest snapshot.

use prom_runtime::aggregate::Stream;
use prom_runtime::stream::ExpectedVersion;
use prom_runtime::{EventBus, Pipeline, Producer, SqliteBus};
use std::time::{Duration, Instant};

/// `prom-codegen build --specs benches/support/ledger.yaml`, kept current by prom-codegen's
/// snapshot test.
#[allow(missing_docs, unreachable_pub)]
#[rustfmt::skip]
#[path = "support/ledger.rs"]
mod ledger;

use ledger::{ledger as account, ledger_credited, ledger_debited};

const EVENTS: u64 = 10_000;
const ROUNDS: usize = 9;

/// The fold: a balance and a count, touching every field of every event.
#[derive(Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Balance {
    balance: i64,
    entries: u64,
    memo_bytes: usize,
}

impl account::State for Balance {
    fn on_ledger_credited(&mut self, event: &ledger_credited::Latest) {
        self.balance += event.amount;
        self.entries += 1;
        self.memo_bytes += event.memo.len();
    }

    fn on_ledger_debited(&mut self, event: &ledger_debited::Latest) {
        self.balance -= event.amount;
        self.entries += 1;
        self.memo_bytes += event.memo.len();
    }
}

fn event(i: u64) -> account::Event {
    let memo = format!("entry {i} of the benchmark ledger");
    if i.is_multiple_of(3) {
        ledger_debited::Latest { ledger: "l-1".into(), amount: 7, memo }.into()
    } else {
        ledger_credited::Latest { ledger: "l-1".into(), amount: 10, memo }.into()
    }
}

/// Appends events `from..to` in batches of 100 through `stream`.
async fn append(
    producer: &Producer<SqliteBus>,
    stream: &Stream<account::Aggregate, Balance>,
    from: u64,
    to: u64,
) {
    let mut at = from;
    while at < to {
        let end = (at + 100).min(to);
        let expected = if at == 0 { ExpectedVersion::NoStream } else { ExpectedVersion::Exact(at) };
        stream.append(producer, "l-1", expected, (at..end).map(event).collect()).await.expect("append");
        at = end;
    }
}

/// Each side's fastest round, alternating which side goes first.
async fn compare(producer: &Producer<SqliteBus>, expected_version: u64) -> (Duration, Duration) {
    let replay = Stream::<account::Aggregate, Balance>::new(account::fold::<Balance>);
    let snapshotted = account::STREAM.of::<Balance>();
    let (mut full, mut snap) = (Duration::MAX, Duration::MAX);
    for round in 0..=ROUNDS {
        for side in [round % 2, 1 - round % 2] {
            let started = Instant::now();
            let loaded = if side == 0 {
                replay.load(producer, "l-1").await
            } else {
                snapshotted.load(producer, "l-1").await
            }
            .expect("load");
            let took = started.elapsed();
            assert_eq!(loaded.version, expected_version);
            assert_eq!(loaded.state.entries, expected_version);
            if round == 0 {
                continue; // warm-up
            }
            let best = if side == 0 { &mut full } else { &mut snap };
            *best = (*best).min(took);
        }
    }
    (full, snap)
}

/// Waits until the stored snapshot is at `version` (snapshots are written by a spawned task).
async fn snapshot_at(producer: &Producer<SqliteBus>, version: u64) {
    let stream = prom_runtime::stream::StreamId::new(account::NAME, "l-1");
    for _ in 0..500 {
        if producer
            .bus()
            .load_snapshot(&stream)
            .await
            .expect("snapshot")
            .is_some_and(|s| s.version == version)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no snapshot at version {version} after 5 s");
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let bus = SqliteBus::open(dir.path()).expect("open store");
        let producer = Pipeline::from_system(bus, ledger::spec::system()).expect("pipeline").producer().clone();
        let stream = account::STREAM.of::<Balance>();
        append(&producer, &stream, 0, EVENTS).await;
        snapshot_at(&producer, EVENTS).await;
        println!("aggregate load, {EVENTS}-event stream on the embedded store, snapshot every 100 (fastest of {ROUNDS} rounds)");
        let (full, snap) = compare(&producer, EVENTS).await;
        report("snapshot at the last event", full, snap);

        // Without snapshots on the way (`STREAM.append` writes none): 99 events past the newest.
        account::STREAM
            .append(&producer, "l-1", ExpectedVersion::Exact(EVENTS), (EVENTS..EVENTS + 99).map(event).collect())
            .await
            .expect("append");
        let (full, snap) = compare(&producer, EVENTS + 99).await;
        report("99 events after the snapshot (worst case)", full, snap);
    });
}

fn report(case: &str, full: Duration, snap: Duration) {
    println!(
        "  {case:<42}: full replay {:>8.2} ms, from snapshot {:>6.2} ms: {:>6.1}x faster",
        full.as_secs_f64() * 1e3,
        snap.as_secs_f64() * 1e3,
        full.as_secs_f64() / snap.as_secs_f64()
    );
}
