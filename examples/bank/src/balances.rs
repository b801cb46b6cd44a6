//! The balances projection: per account, its owner, balance and how many events made it, in
//! collection `balances`. Three transactional projectors (`specs/bank.yaml`) call these
//! handlers; each change is a read-modify-write through the document API inside the
//! projector's transaction, which commits together with the projector's cursor — so an event
//! counts exactly once even across crashes, and the same handlers run on the embedded store and
//! on MongoDB. Increments commute, so the three topics may be applied in any relative order.

use crate::prom::{account_opened, money_deposited, money_withdrawn};
use prom_runtime::EventRecord;
use prom_runtime::documents::{Documents, DocumentsExt};
use prom_runtime::project::{DocHandlerError, DocTxFuture};

/// The collection the projectors maintain.
pub const COLLECTION: &str = "balances";

/// One account's row of the projection.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AccountBalance {
    /// The owner, once the opening was projected.
    pub owner: Option<String>,
    /// The balance in cents.
    pub cents: i64,
    /// Events applied (each exactly once).
    pub events: u64,
}

/// `account.opened`: records the owner.
pub fn on_opened<'a>(
    event: account_opened::Latest,
    _record: &'a EventRecord,
    docs: &'a mut dyn Documents,
) -> DocTxFuture<'a> {
    Box::pin(async move { change(docs, &event.account_id, |b| b.owner = Some(event.owner.clone())).await })
}

/// `money.deposited`: adds the amount.
pub fn on_deposited<'a>(
    event: money_deposited::Latest,
    _record: &'a EventRecord,
    docs: &'a mut dyn Documents,
) -> DocTxFuture<'a> {
    Box::pin(async move { change(docs, &event.account_id, |b| b.cents += event.amount_cents).await })
}

/// `money.withdrawn`: subtracts the amount.
pub fn on_withdrawn<'a>(
    event: money_withdrawn::Latest,
    _record: &'a EventRecord,
    docs: &'a mut dyn Documents,
) -> DocTxFuture<'a> {
    Box::pin(async move { change(docs, &event.account_id, |b| b.cents -= event.amount_cents).await })
}

/// Reads the account's row (a new one if none), applies `f`, counts the event, writes it back.
async fn change(
    docs: &mut dyn Documents,
    account: &str,
    f: impl FnOnce(&mut AccountBalance) + Send,
) -> Result<(), DocHandlerError> {
    let mut balance = docs.get_as::<AccountBalance>(COLLECTION, account).await?.unwrap_or_default();
    f(&mut balance);
    balance.events += 1;
    docs.put_as(COLLECTION, account, &balance).await?;
    Ok(())
}

/// The projected row of `account`.
pub async fn balance(
    docs: &mut dyn Documents,
    account: &str,
) -> Result<Option<AccountBalance>, prom_runtime::Error> {
    docs.get_as(COLLECTION, account).await
}

/// The rows of the accounts `owner` holds (`owner` is a declared index field of `balances`).
pub async fn of_owner(
    docs: &mut dyn Documents,
    owner: &str,
) -> Result<Vec<AccountBalance>, prom_runtime::Error> {
    docs.find_as(COLLECTION, "owner", owner.into()).await
}
