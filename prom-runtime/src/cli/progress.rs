//! Progress lines of `prom run`: one per running pipeline, with its counters and, when it reads
//! a topic as a consumer group, that group's lag.

use crate::bus::{AnyBus, GroupId};
use crate::consumer;

/// A running pipeline as its progress line shows it.
pub struct Running {
    /// Its name in the spec.
    pub name: String,
    /// The consumer group it reads with and the topic's partitions, when it reads a topic.
    pub group: Option<(GroupId, u32)>,
    /// Its counters now, as `name=value` pairs.
    pub counters: Box<dyn Fn() -> String + Send + Sync>,
}

/// Prints one line per pipeline on stderr: `[name] counters lag=N`.
pub async fn report(bus: &AnyBus, running: &[Running]) {
    for r in running {
        // Counters first: a task counts work once committed, so the lag read after them never
        // shows as pending what the counters already show as done.
        let counters = (r.counters)();
        let lag = match &r.group {
            None => String::new(),
            Some((group, partitions)) => match consumer::lag(bus, group, *partitions).await {
                Ok(lag) => format!(" lag={lag}"),
                Err(e) => format!(" lag=? ({e})"),
            },
        };
        eprintln!("[{}] {counters}{lag}", r.name);
    }
}
