//! The clients a process opened, remembered on request so a program can shut them all down
//! before its async runtime stops.
//!
//! A `mongodb::Client` runs background tasks (server monitors, connection pools) on the tokio
//! runtime. Dropping the runtime while they run drops them half-way, and their clean-up then
//! finds no runtime and panics (the `prom` CLI printed such a panic now and then on exit).
//! [`mongodb::Client::shutdown`] stops them in order; the CLI turns tracking on at start and
//! calls [`shutdown_tracked`] before its runtime ends. Library users, who own their runtime and
//! their buses, never turn it on, so nothing here keeps their clients alive.

use mongodb::Client;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// The tracked clients; `None` while tracking is off.
static TRACKED: Mutex<Option<Vec<Client>>> = Mutex::new(None);

fn tracked() -> MutexGuard<'static, Option<Vec<Client>>> {
    // The list is only pushed to and taken; a poisoned lock still holds a sound list.
    TRACKED.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// From now on, remembers every client a [`super::MongoBus`] opens, for [`shutdown_tracked`].
pub fn track() {
    tracked().get_or_insert_with(Vec::new);
}

/// Remembers `client` when tracking is on.
pub(super) fn opened(client: &Client) {
    if let Some(clients) = tracked().as_mut() {
        clients.push(client.clone());
    }
}

/// Shuts every tracked client down (and forgets it): each gets `grace` to let its sessions and
/// cursors finish, then it is closed at once.
pub async fn shutdown_tracked(grace: Duration) {
    let clients = tracked().as_mut().map(std::mem::take).unwrap_or_default();
    for client in clients {
        if tokio::time::timeout(grace, client.clone().shutdown()).await.is_err() {
            client.shutdown().immediate(true).await;
        }
    }
}
