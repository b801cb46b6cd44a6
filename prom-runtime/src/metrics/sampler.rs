//! Gauges that need store queries, set every [`SAMPLE_EVERY`] from [`inspect::collect`]: consumer
//! and projector lag, DLQ depth and oldest age, resume token age and the oplog window. A
//! sample never runs per event, so the hot path pays nothing for them.

use super::inspect::{self, Status};
use crate::bus::AnyBus;
use crate::error::Result;
use crate::system::System;
use prom_spec::metrics::{
    CHANGEFEED_TOKEN_AGE, CONSUMER_LAG, DLQ_DEPTH, DLQ_OLDEST_AGE, MONGO_OPLOG_WINDOW, PROJECTOR_LAG,
};
use std::future::Future;
use std::time::Duration;

/// How often the sampled gauges are refreshed by default (`prom run` and `prom serve`).
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// Reads the status once and sets every sampled gauge; returns what was read.
pub async fn sample(bus: &AnyBus, system: &System) -> Result<Status> {
    let status = inspect::collect(bus, system).await?;
    record(&status);
    Ok(status)
}

/// Sets the gauges from a status already read.
pub fn record(status: &Status) {
    for c in &status.consumers {
        for p in &c.partitions {
            metrics::gauge!(CONSUMER_LAG.name, "consumer" => c.name.clone(), "topic" => c.topic.clone(),
                "partition" => p.partition.to_string())
            .set(p.lag as f64);
        }
    }
    for d in &status.dlqs {
        metrics::gauge!(DLQ_DEPTH.name, "topic" => d.topic.clone()).set(d.depth as f64);
        metrics::gauge!(DLQ_OLDEST_AGE.name, "topic" => d.topic.clone())
            .set(d.oldest_age_seconds.unwrap_or(0.0));
    }
    for p in &status.projectors {
        metrics::gauge!(PROJECTOR_LAG.name, "projector" => p.name.clone()).set(p.lag as f64);
    }
    for f in &status.changefeeds {
        if let Some(age) = f.resume_token_age_seconds {
            metrics::gauge!(CHANGEFEED_TOKEN_AGE.name, "changefeed" => f.name.clone()).set(age);
        }
    }
    if let Some(window) = status.oplog_window_seconds {
        metrics::gauge!(MONGO_OPLOG_WINDOW.name).set(window);
    }
}

/// Samples every `every` until `shutdown` completes. A failed sample (the store is away) leaves
/// the gauges at their last values; it is logged through `tracing` once when sampling starts
/// failing and once when it works again, not on every tick.
pub async fn run_sampler(bus: AnyBus, system: System, every: Duration, shutdown: impl Future<Output = ()>) {
    let (mut failing, mut told_oplog) = (false, false);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = shutdown.as_mut() => return,
            _ = tick.tick() => {}
        }
        match sample(&bus, &system).await {
            Ok(status) => {
                if failing {
                    failing = false;
                    tracing::info!("metrics sampling works again");
                }
                if let Some(why) = status.oplog_unreadable.filter(|_| !told_oplog) {
                    told_oplog = true;
                    tracing::warn!("no {} gauge: {why}", MONGO_OPLOG_WINDOW.name);
                }
            }
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "cannot sample the store for metrics (the gauges keep their last values): {e}");
            }
            Err(_) => {}
        }
    }
}
