//! Payments on the embedded store: the payment's record and the deposit commit in one store
//! transaction (the deposit appended with an expected version through the generated
//! `account::STREAM.append_in`), so a payment id is deposited exactly once, even when the same
//! payment is submitted concurrently and other writers append to the account meanwhile.

use bank::{Bank, BankError, Paid, PayError};
use prom_runtime::documents::Documents;
use prom_runtime::{EventBus, SqliteBus};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_payment_is_deposited_exactly_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bank = Bank::new(SqliteBus::open(dir.path()).expect("open store")).expect("wire");
    bank.open("acc-1", "ada").await.expect("open");

    // 8 tasks submit the same 10 payments (a client retrying), while withdrawals run.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let bank = bank.clone();
        tasks.push(tokio::spawn(async move {
            let mut deposited = 0;
            for n in 0..10 {
                match bank.pay("acc-1", &format!("pay-{n}"), 100).await.expect("pay") {
                    Paid::Deposited(_) => deposited += 1,
                    Paid::AlreadyPaid => {}
                }
            }
            deposited
        }));
    }
    let withdrawals = {
        let bank = bank.clone();
        tokio::spawn(async move {
            for _ in 0..5 {
                // Refused while the balance is short; either way it appends concurrently.
                let _ = bank.withdraw("acc-1", 10).await;
            }
        })
    };
    let mut deposited = 0;
    for task in tasks {
        deposited += task.await.expect("payer");
    }
    withdrawals.await.expect("withdrawals");
    assert_eq!(deposited, 10, "each payment id deposited once");

    let records = bank
        .producer()
        .bus()
        .read_topic("money.deposited", &prom_runtime::TopicPosition::start(), 1_000)
        .await
        .expect("read");
    assert_eq!(records.len(), 10);
    let withdrawn = bank
        .producer()
        .bus()
        .read_topic("money.withdrawn", &prom_runtime::TopicPosition::start(), 1_000)
        .await
        .expect("read")
        .len();
    let (balance, _) = bank.balance("acc-1").await.expect("balance");
    assert_eq!(balance.cents, 1_000 - 10 * i64::try_from(withdrawn).expect("small"));
    let mut tx = bank.producer().transaction().expect("transaction");
    for n in 0..10 {
        assert!(tx.get("payments", &format!("pay-{n}")).await.expect("get").is_some());
    }
    tx.rollback().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_payment_stores_no_record() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bank = Bank::new(SqliteBus::open(dir.path()).expect("open store")).expect("wire");
    let refused = bank.pay("nobody", "pay-x", 100).await;
    assert!(matches!(refused, Err(PayError::Rejected(BankError::NotOpen(_)))), "{refused:?}");
    bank.open("acc-2", "bob").await.expect("open");
    assert_eq!(
        bank.pay("acc-2", "pay-x", 100).await.expect("pay"),
        Paid::Deposited(2),
        "the id is still free"
    );
}
