//! Bank accounts as event-sourced aggregates: the `account` aggregate's typed API is generated
//! from `specs/bank.yaml` at build time; this crate adds the state (a [`Balance`] folded from an
//! account's events), the decide steps of its commands, and [`Bank`], which runs them with
//! optimistic concurrency. The invariant — a balance never goes below zero — is checked in the
//! decide step against the state as loaded, and the append expects the version loaded, so two
//! concurrent withdrawals cannot both spend the same money: the second one conflicts, loads the
//! new balance and decides again.

pub mod balances;
mod history;

pub use history::parse_time;

/// The code generated from `specs/bank.yaml`.
#[allow(missing_docs)]
pub mod prom {
    include!(concat!(env!("OUT_DIR"), "/prom_generated.rs"));
}

use prom::{account, account_opened, money_deposited, money_withdrawn};
use prom_runtime::aggregate::{ConflictRetry, HandleError, Handled, Stream, StreamError};
use prom_runtime::documents::{Documents, DocumentsExt};
use prom_runtime::stream::ExpectedVersion;
use prom_runtime::{EventBus, Producer, SqliteBus};

/// An account's state: the fold of its events.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Balance {
    /// The owner, once the account is opened.
    pub owner: Option<String>,
    /// The balance in cents.
    pub cents: i64,
}

impl account::State for Balance {
    fn on_account_opened(&mut self, event: &account_opened::Latest) {
        self.owner = Some(event.owner.clone());
    }

    fn on_money_deposited(&mut self, event: &money_deposited::Latest) {
        self.cents += event.amount_cents;
    }

    fn on_money_withdrawn(&mut self, event: &money_withdrawn::Latest) {
        self.cents -= event.amount_cents;
    }
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BankError {
    /// The account is already open.
    #[error("account `{0}` is already open")]
    AlreadyOpen(String),
    /// The account was never opened.
    #[error("account `{0}` is not open")]
    NotOpen(String),
    /// Amounts are positive.
    #[error("the amount must be positive, got {0} cents")]
    NotPositive(i64),
    /// The withdrawal would take the balance below zero.
    #[error("account `{account}` holds {balance} cents, cannot withdraw {asked}")]
    Insufficient {
        /// The account.
        account: String,
        /// Its balance when the command was decided.
        balance: i64,
        /// The amount asked for.
        asked: i64,
    },
}

/// Opens account `id` for `owner`.
pub fn open(state: &Balance, id: &str, owner: &str) -> Result<Vec<account::Event>, BankError> {
    if state.owner.is_some() {
        return Err(BankError::AlreadyOpen(id.to_owned()));
    }
    Ok(vec![account_opened::Latest { account_id: id.to_owned(), owner: owner.to_owned() }.into()])
}

/// Pays `cents` into account `id`.
pub fn deposit(state: &Balance, id: &str, cents: i64) -> Result<Vec<account::Event>, BankError> {
    check_open(state, id, cents)?;
    Ok(vec![money_deposited::Latest { account_id: id.to_owned(), amount_cents: cents }.into()])
}

/// Takes `cents` out of account `id`, unless the balance would go below zero.
pub fn withdraw(state: &Balance, id: &str, cents: i64) -> Result<Vec<account::Event>, BankError> {
    check_open(state, id, cents)?;
    if state.cents < cents {
        return Err(BankError::Insufficient { account: id.to_owned(), balance: state.cents, asked: cents });
    }
    Ok(vec![money_withdrawn::Latest { account_id: id.to_owned(), amount_cents: cents }.into()])
}

fn check_open(state: &Balance, id: &str, cents: i64) -> Result<(), BankError> {
    if state.owner.is_none() {
        return Err(BankError::NotOpen(id.to_owned()));
    }
    if cents <= 0 {
        return Err(BankError::NotPositive(cents));
    }
    Ok(())
}

/// What [`Bank::pay`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Paid {
    /// The payment was recorded and deposited; the account's version after it.
    Deposited(u64),
    /// This payment id was recorded before: nothing was deposited again.
    AlreadyPaid,
}

/// Why [`Bank::pay`] failed.
#[derive(Debug, thiserror::Error)]
pub enum PayError {
    /// The deposit was refused (account not open, amount not positive).
    #[error(transparent)]
    Rejected(#[from] BankError),
    /// Other writers kept appending to the account through every attempt.
    #[error("account `{0}` kept changing under the payment; try again")]
    Busy(String),
    /// The store failed, or a stored event does not fold.
    #[error(transparent)]
    Stream(#[from] StreamError),
    /// The store's transaction failed.
    #[error(transparent)]
    Store(#[from] prom_runtime::Error),
}

/// Attempts per command when other writers keep appending to the same account: a hot account
/// under many concurrent writers needs more than the default 10.
pub const ATTEMPTS: u32 = 64;

/// The bank's commands and queries over a producer (any bus).
#[derive(Debug, Clone)]
pub struct Bank<B: EventBus> {
    producer: Producer<B>,
    accounts: Stream<account::Aggregate, Balance>,
}

impl<B: EventBus> Bank<B> {
    /// The bank over `bus`, with the spec's schemas and aggregates.
    pub fn new(bus: B) -> Result<Bank<B>, prom_runtime::Error> {
        let accounts = account::STREAM
            .of::<Balance>()
            .with_retry(ConflictRetry { max_attempts: ATTEMPTS, ..ConflictRetry::default() });
        Ok(Bank { producer: prom::wire(bus)?.producer().clone(), accounts })
    }

    /// Opens account `id`.
    pub async fn open(&self, id: &str, owner: &str) -> Result<Handled, HandleError<BankError>> {
        self.accounts.handle(&self.producer, id, |state| open(state, id, owner)).await
    }

    /// Deposits into account `id`.
    pub async fn deposit(&self, id: &str, cents: i64) -> Result<Handled, HandleError<BankError>> {
        self.accounts.handle(&self.producer, id, |state| deposit(state, id, cents)).await
    }

    /// Withdraws from account `id`; refused when the balance would go below zero.
    pub async fn withdraw(&self, id: &str, cents: i64) -> Result<Handled, HandleError<BankError>> {
        self.accounts.handle(&self.producer, id, |state| withdraw(state, id, cents)).await
    }

    /// The balance of account `id` and the stream's version.
    pub async fn balance(&self, id: &str) -> Result<(Balance, u64), StreamError> {
        let loaded = self.accounts.load(&self.producer, id).await?;
        Ok((loaded.state, loaded.version))
    }

    /// The producer (to read streams or publish other events).
    pub fn producer(&self) -> &Producer<B> {
        &self.producer
    }
}

impl Bank<SqliteBus> {
    /// Pays `cents` into account `id` exactly once per `payment` id: the payment's record
    /// (collection `payments`) and the deposit event commit in one store transaction, the
    /// deposit appended expecting the version the decision was made on. A payment id seen before
    /// deposits nothing; a conflict (another writer appended in between) rolls the whole
    /// transaction back, and it is decided again on the new state.
    pub async fn pay(&self, id: &str, payment: &str, cents: i64) -> Result<Paid, PayError> {
        for _ in 0..ATTEMPTS {
            let loaded = self.accounts.load(&self.producer, id).await?;
            let events = deposit(&loaded.state, id, cents)?;
            let mut tx = self.producer.transaction()?;
            if tx.get("payments", payment).await?.is_some() {
                tx.rollback().await;
                return Ok(Paid::AlreadyPaid);
            }
            let record = serde_json::json!({ "account": id, "cents": cents });
            tx.put_as("payments", payment, &record).await?;
            let expected = ExpectedVersion::Exact(loaded.version);
            match account::STREAM.append_in(&mut tx, id, expected, events).await {
                Ok(appended) => {
                    tx.commit().await?;
                    return Ok(Paid::Deposited(appended.last_version));
                }
                // The transaction is doomed by the conflict; dropping it rolls it back.
                Err(StreamError::Conflict { .. }) => tx.rollback().await,
                Err(other) => return Err(other.into()),
            }
        }
        Err(PayError::Busy(id.to_owned()))
    }
}
