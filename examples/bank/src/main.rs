//! `cargo run -p bank [-- STORE_DIR]`: opens an account on the embedded store (default
//! `.prom/bank`), deposits, withdraws, is refused an overdraft, then runs 20 concurrent
//! withdrawals of 10.00 against 100.00 and prints the balance: exactly ten succeed. Run it again
//! and it opens the next account in the same store.
//!
//! `cargo run -p bank -- balance-at ACCOUNT TIME [STORE_DIR]`: the balance of ACCOUNT as it was
//! at TIME (RFC 3339 or ms since the epoch), as JSON.

use bank::{Bank, BankError};
use prom_runtime::aggregate::HandleError;
use prom_runtime::{EventBus, SqliteBus};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("balance-at") {
        return balance_at(&args[1..]).await;
    }
    let dir = args.first().cloned().unwrap_or_else(|| ".prom/bank".to_owned());
    let bank = Bank::new(SqliteBus::open(&dir)?)?;

    // A fresh account id per run: the next number after the accounts this store holds.
    let id = format!("acc-{}", count_accounts(&bank).await? + 1);
    bank.open(&id, "ada").await?;
    bank.deposit(&id, 15_000).await?;
    bank.withdraw(&id, 3_000).await?;
    match bank.withdraw(&id, 50_000).await {
        Err(HandleError::Rejected(BankError::Insufficient { balance, asked, .. })) => {
            println!("{id}: refused to withdraw {asked} cents from {balance}");
        }
        other => return Err(format!("an overdraft was not refused: {other:?}").into()),
    }
    bank.withdraw(&id, 2_000).await?;
    let (balance, version) = bank.balance(&id).await?;
    println!(
        "{id}: owner {:?}, balance {} cents at version {version}",
        balance.owner.unwrap_or_default(),
        balance.cents
    );

    // Twenty withdrawals of 10.00 race for 100.00: each decides on the balance it loaded and
    // appends expecting that version; a loser reloads and decides again.
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (bank, id) = (bank.clone(), id.clone());
        tasks.push(tokio::spawn(async move { bank.withdraw(&id, 1_000).await }));
    }
    let (mut done, mut refused) = (0, 0);
    for task in tasks {
        match task.await? {
            Ok(_) => done += 1,
            Err(HandleError::Rejected(BankError::Insufficient { .. })) => refused += 1,
            Err(other) => return Err(other.into()),
        }
    }
    let (balance, version) = bank.balance(&id).await?;
    println!(
        "{id}: ask what it held at a time with `cargo run -p bank -- balance-at {id} {} {dir}`",
        prom_runtime::record::format_ts(prom_runtime::record::now_ms())
    );
    println!(
        "{id}: {done} concurrent withdrawals succeeded, {refused} were refused; balance {} cents at version {version}",
        balance.cents
    );

    // The balances projection (src/balances.rs) catches up: its transactional projectors run in
    // the wired pipeline on the same store, each event counted exactly once.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let pipeline = tokio::spawn(bank::prom::wire(bank.producer().bus().clone())?.run(async move {
        let _ = stopped.await;
    }));
    let projected = loop {
        let mut tx = bank.producer().transaction()?;
        let row = bank::balances::balance(&mut tx, &id).await?;
        tx.rollback().await;
        match row {
            Some(row) if row.cents == balance.cents => break row,
            _ if pipeline.is_finished() => return Err("the pipeline stopped".into()),
            _ => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    };
    let _ = stop.send(());
    pipeline.await??;
    println!("{id}: projected balance {} cents from {} events", projected.cents, projected.events);
    Ok(())
}

/// `balance-at ACCOUNT TIME [STORE_DIR]`: prints `{"account","at","owner","cents","version"}`.
async fn balance_at(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let (Some(id), Some(time)) = (args.first(), args.get(1)) else {
        return Err(
            "usage: bank balance-at ACCOUNT TIME [STORE_DIR] (TIME: RFC 3339 or ms since the epoch)".into()
        );
    };
    let at = bank::parse_time(time)?;
    let dir = args.get(2).map_or(".prom/bank", String::as_str);
    let bank = Bank::new(SqliteBus::open_read_only(dir)?)?;
    let (balance, version) = bank.balance_at(id, at).await?;
    let answer = serde_json::json!({
        "account": id,
        "at": prom_runtime::record::format_ts(at),
        "owner": balance.owner,
        "cents": balance.cents,
        "version": version,
    });
    println!("{answer}");
    Ok(())
}

/// How many account streams the store holds, read a page at a time.
async fn count_accounts(bank: &Bank<SqliteBus>) -> Result<usize, prom_runtime::Error> {
    let (mut count, mut after) = (0, None);
    loop {
        let page = bank.producer().bus().stream_ids(bank::prom::account::NAME, after, 1_000).await?;
        count += page.len();
        match page.last() {
            Some(last) if page.len() == 1_000 => after = Some(last.clone()),
            _ => return Ok(count),
        }
    }
}
