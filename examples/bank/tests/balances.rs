//! The balances projection on the embedded store: the three transactional projectors run the
//! document handlers of `src/balances.rs` in `Pipeline::run`, every event counts exactly once
//! (also across a restart, which delivers nothing twice), `find` works by the declared `owner`
//! field and refuses an undeclared one.

use bank::Bank;
use bank::balances::{self, AccountBalance};
use prom_runtime::documents::{Declared, Documents, TxOptions};
use prom_runtime::{Error, SqliteBus};
use std::time::{Duration, Instant};

/// The projected row of `account`, read in a store transaction (rolled back: a read).
async fn row(bank: &Bank<SqliteBus>, account: &str) -> Option<AccountBalance> {
    let mut tx = bank.producer().transaction().expect("transaction");
    let row = balances::balance(&mut tx, account).await.expect("read");
    tx.rollback().await;
    row
}

/// Waits (60 s at most, against hangs) until `account`'s row is `want`.
async fn wait_for(bank: &Bank<SqliteBus>, account: &str, want: &AccountBalance) {
    let started = Instant::now();
    loop {
        let got = row(bank, account).await;
        if got.as_ref() == Some(want) {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{account}: {got:?}, want {want:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

type Running = (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<Result<(), Error>>);

/// Runs the wired pipeline (the three projectors) until [`stop`].
fn start(bus: &SqliteBus) -> Running {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let wiring = bank::prom::wire(bus.clone()).expect("wire");
    let task = tokio::spawn(wiring.run(async move {
        let _ = stopped.await;
    }));
    (stop, task)
}

async fn stop((stop, task): Running) {
    let _ = stop.send(());
    task.await.expect("join").expect("the pipeline ran without error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balances_project_every_event_exactly_once_and_find_by_owner() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bus = SqliteBus::open(dir.path()).expect("open");
    let bank = Bank::new(bus.clone()).expect("bank");
    bank.open("a1", "ada").await.expect("open a1");
    bank.open("a2", "ada").await.expect("open a2");
    bank.open("b1", "bob").await.expect("open b1");
    for _ in 0..5 {
        bank.deposit("a1", 1_000).await.expect("deposit");
    }
    bank.withdraw("a1", 1_500).await.expect("withdraw");
    bank.deposit("b1", 700).await.expect("deposit");

    let running = start(&bus);
    let a1 = AccountBalance { owner: Some("ada".into()), cents: 3_500, events: 7 };
    wait_for(&bank, "a1", &a1).await;
    let b1 = AccountBalance { owner: Some("bob".into()), cents: 700, events: 2 };
    wait_for(&bank, "b1", &b1).await;
    wait_for(&bank, "a2", &AccountBalance { owner: Some("ada".into()), cents: 0, events: 1 }).await;
    stop(running).await;

    // A restart delivers nothing twice: the cursors committed with the rows.
    bank.deposit("a1", 250).await.expect("deposit");
    let running = start(&bus);
    let a1 = AccountBalance { cents: 3_750, events: 8, ..a1 };
    wait_for(&bank, "a1", &a1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(row(&bank, "a1").await, Some(a1), "no event applied twice after the restart");
    assert_eq!(row(&bank, "b1").await, Some(b1));
    stop(running).await;

    // The fields the spec's projectors declare in their indexes (`owner` on `balances`).
    let declared = Declared::of_system(&bank::prom::spec::system());
    let mut tx = bank
        .producer()
        .transaction_with(TxOptions { declared, ..TxOptions::default() })
        .expect("transaction");
    let ada = balances::of_owner(&mut tx, "ada").await.expect("find by owner");
    assert_eq!(ada.iter().map(|b| b.cents).collect::<Vec<_>>(), [3_750, 0], "key order: a1, a2");
    let refused = tx.find(balances::COLLECTION, "cents", 700.into()).await.expect_err("undeclared field");
    match refused {
        Error::UndeclaredField { collection, field, declared } => {
            assert_eq!((collection.as_str(), field.as_str()), ("balances", "cents"));
            assert_eq!(declared, ["owner"]);
        }
        other => panic!("expected UndeclaredField, got {other}"),
    }
    tx.rollback().await;
}
