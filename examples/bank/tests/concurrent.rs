//! Concurrent withdrawals on the embedded store: the balance never goes below zero and no
//! update is lost, because each withdrawal is decided on the state it loaded and appended
//! expecting that state's version.

use bank::prom::account;
use bank::{Balance, Bank, BankError};
use prom_runtime::aggregate::HandleError;
use prom_runtime::{EventBus, SqliteBus};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_withdrawals_never_overdraw_and_lose_no_update() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bank = Bank::new(SqliteBus::open(dir.path()).expect("open store")).expect("wire");
    bank.open("acc-1", "ada").await.expect("open");
    bank.deposit("acc-1", 1_000).await.expect("deposit");

    // 16 writers × 10 withdrawals of 10 ask for 1,600 against 1,000.
    let mut writers = Vec::new();
    for _ in 0..16 {
        let bank = bank.clone();
        writers.push(tokio::spawn(async move {
            let (mut done, mut refused) = (0_u64, 0_u64);
            for _ in 0..10 {
                match bank.withdraw("acc-1", 10).await {
                    Ok(handled) => {
                        assert!(handled.appended.is_some(), "a withdrawal that succeeds appends");
                        done += 1;
                    }
                    Err(HandleError::Rejected(BankError::Insufficient { balance, asked, .. })) => {
                        assert!(balance < asked, "refused with {balance} cents for {asked}");
                        refused += 1;
                    }
                    Err(other) => panic!("unexpected failure: {other}"),
                }
            }
            (done, refused)
        }));
    }
    let (mut done, mut refused) = (0, 0);
    for writer in writers {
        let (d, r) = tokio::time::timeout(Duration::from_secs(120), writer)
            .await
            .expect("writers finish")
            .expect("writer did not panic");
        done += d;
        refused += r;
    }
    assert_eq!(done + refused, 160);
    assert_eq!(done, 100, "exactly the money there was is withdrawn");

    let (balance, version) = bank.balance("acc-1").await.expect("load");
    assert_eq!(balance.cents, 0);
    assert_eq!(version, 2 + done, "every successful withdrawal is one event: none lost, none doubled");

    // Replay the stream event by event: the running balance never dips below zero.
    let stream = prom_runtime::stream::StreamId::new(account::NAME, "acc-1");
    let stored = bank.producer().bus().read_stream(&stream, 0, 10_000).await.expect("read stream");
    let versions: Vec<u64> = stored.iter().map(|s| s.version).collect();
    assert_eq!(versions, (1..=version).collect::<Vec<_>>(), "versions are gap-free from 1");
    let mut running = Balance::default();
    let fold = account::STREAM.of::<Balance>();
    for record in stored {
        let event = <account::Event as prom_runtime::aggregate::AggregateEvent>::from_record(
            bank.producer().registry(),
            record.record,
        )
        .expect("decodes");
        fold.fold(&mut running, [&event]);
        assert!(running.cents >= 0, "balance went negative at version {}", record.version);
    }
}
