//! "What was the balance at T" on a real embedded store: open, deposit and withdraw at
//! successive times, then ask at times before, between and after them — through the library
//! and through the `bank balance-at` command.

use bank::Bank;
use prom_runtime::SqliteBus;
use prom_runtime::record::{format_ts, now_ms};
use std::time::Duration;

/// A time strictly after everything before it and strictly before everything after it.
async fn tick() -> i64 {
    tokio::time::sleep(Duration::from_millis(5)).await;
    let t = now_ms();
    tokio::time::sleep(Duration::from_millis(5)).await;
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_balance_at_a_time_counts_only_what_happened_by_then() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bank = Bank::new(SqliteBus::open(dir.path()).expect("store")).expect("bank");
    let before = tick().await;
    bank.open("a", "ada").await.expect("open");
    let opened = tick().await;
    bank.deposit("a", 10_000).await.expect("deposit");
    let deposited = tick().await;
    bank.withdraw("a", 2_500).await.expect("withdraw");
    let withdrawn = tick().await;

    let at = |t: i64| {
        let bank = bank.clone();
        async move { bank.balance_at("a", t).await.expect("balance at") }
    };
    let (state, version) = at(before).await;
    assert_eq!((state.owner, state.cents, version), (None, 0, 0), "before the account was opened");
    let (state, version) = at(opened).await;
    assert_eq!((state.owner.as_deref(), state.cents, version), (Some("ada"), 0, 1));
    assert_eq!(at(deposited).await.0.cents, 10_000);
    assert_eq!((at(withdrawn).await.0.cents, at(withdrawn).await.1), (7_500, 3));
    assert_eq!(bank.balance("a").await.expect("balance"), at(withdrawn).await, "now equals the latest time");

    // The command, on the same store (read-only: it writes nothing).
    drop(bank);
    let ask = |t: String| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_bank"))
            .args(["balance-at", "a", &t])
            .arg(dir.path())
            .output()
            .expect("run bank");
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        (output.status.code(), String::from_utf8_lossy(&output.stdout).into_owned(), stderr)
    };
    let (code, stdout, stderr) = ask(format_ts(deposited));
    assert_eq!(code, Some(0), "{stderr}");
    let answer: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(answer["cents"], 10_000, "{answer}");
    assert_eq!((answer["owner"].as_str(), answer["version"].as_u64()), (Some("ada"), Some(2)), "{answer}");
    let (code, stdout, _) = ask(before.to_string());
    assert_eq!(code, Some(0));
    assert_eq!(serde_json::from_str::<serde_json::Value>(&stdout).expect("JSON")["version"], 0);
    let (code, _, stderr) = ask("yesterday".into());
    assert_eq!(code, Some(1));
    assert!(stderr.contains("RFC 3339"), "{stderr}");
}

/// With the spec's snapshots (`every: 100`): an answer for a time after the snapshot was taken
/// starts from it, one for a time before it folds from the first event, and both equal the fold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_the_same_with_and_without_the_snapshot() {
    use prom_runtime::EventBus;
    let dir = tempfile::tempdir().expect("tempdir");
    let bank = Bank::new(SqliteBus::open(dir.path()).expect("store")).expect("bank");
    bank.open("b", "bob").await.expect("open");
    let mut marks = Vec::new();
    for i in 1..=120_i64 {
        bank.deposit("b", 1).await.expect("deposit");
        if i % 30 == 0 {
            marks.push((tick().await, i));
        }
    }
    let stream = prom_runtime::stream::StreamId::new("account", "b");
    let mut snapshot = None;
    for _ in 0..200 {
        snapshot = bank.producer().bus().load_snapshot(&stream).await.expect("snapshot");
        if snapshot.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let snapshot = snapshot.expect("the snapshot at version 100 was written");
    assert!(snapshot.version >= 100, "{snapshot:?}");
    let after = tick().await;
    for (t, deposits) in marks {
        let (state, version) = bank.balance_at("b", t).await.expect("balance at");
        assert_eq!((state.cents, version), (deposits, u64::try_from(deposits).expect("count") + 1), "at {t}");
    }
    assert_eq!(bank.balance_at("b", after).await.expect("balance at"), bank.balance("b").await.expect("now"));
}
