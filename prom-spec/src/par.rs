//! Independent work items spread over the machine's cores (lint, schema loading, and
//! `prom-codegen`'s lowering and emitting). Results come back in item order, so output never
//! depends on scheduling.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Stack of every worker: the schema comparison recurses with schema depth, and a worker's
/// stack must not depend on the caller's (2 MiB on test threads).
pub const STACK_BYTES: usize = 64 * 1024 * 1024;

/// A work item that panicked (a bug in Prom), with the panic's message when it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Panicked(pub String);

/// `f` applied to every item on worker threads with [`STACK_BYTES`] of stack: as many workers
/// as cores (never more than items). Items are handed out one at a time, so a slow item does
/// not hold up a whole share. A panic is caught per item and returned as [`Panicked`].
pub fn map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<Result<R, Panicked>> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = cores.min(items.len());
    if workers == 0 {
        return Vec::new();
    }
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let index = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(index) else { return done };
            done.push((index, catch_unwind(AssertUnwindSafe(|| f(item))).map_err(panic_message)));
        }
    };
    let mut results: Vec<(usize, Result<R, Panicked>)> = Vec::with_capacity(items.len());
    std::thread::scope(|scope| {
        let spawned: Vec<_> = (0..workers)
            .map(|_| {
                std::thread::Builder::new()
                    .name("prom-worker".into())
                    .stack_size(STACK_BYTES)
                    .spawn_scoped(scope, work)
            })
            .collect();
        for handle in spawned {
            // A worker that cannot start leaves its items to the others (or to this thread, below).
            if let Ok(handle) = handle
                && let Ok(done) = handle.join()
            {
                results.extend(done);
            }
        }
    });
    // Only when no worker could start: do the rest here rather than fail.
    results.extend(work());
    let mut slots: Vec<Option<Result<R, Panicked>>> = items.iter().map(|_| None).collect();
    for (index, result) in results {
        if let Some(slot) = slots.get_mut(index) {
            *slot = Some(result);
        }
    }
    // Every item has a result, even if a worker died (items' panics are caught, so only an
    // abort-like failure could lose its finished items).
    let lost = || Err(Panicked("a worker thread failed".to_owned()));
    slots.into_iter().map(|slot| slot.unwrap_or_else(lost)).collect()
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> Panicked {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    Panicked(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_item_order() {
        let items: Vec<u32> = (0..100).collect();
        let squares: Vec<u32> = map(&items, |n| n * n).into_iter().map(|r| r.unwrap_or(0)).collect();
        assert_eq!(squares, items.iter().map(|n| n * n).collect::<Vec<_>>());
    }

    #[test]
    fn a_panicking_item_is_reported_alone() {
        let items = [1, 2, 3];
        let out = map(&items, |n| if *n == 2 { panic!("two") } else { *n });
        assert_eq!(out, vec![Ok(1), Err(Panicked("two".into())), Ok(3)]);
    }
}
