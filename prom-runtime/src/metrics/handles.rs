//! Metric handles registered once per topic, consumer or projector, so recording an event is an
//! atomic add on a handle the recorder already resolved (no labels built per event).

use crate::registry::Registry;
use metrics::{Counter, Histogram};
use prom_spec::metrics::{EVENTS_HANDLED, EVENTS_PUBLISHED, HANDLER_DURATION, PROJECTOR_APPLIED};
use std::collections::HashMap;
use std::time::Duration;

/// `prom_events_published_total` per declared topic.
#[derive(Debug, Clone, Default)]
pub struct PublishCounters {
    /// A fast hash: looked up on every publish, keyed by the spec's topic names.
    by_topic: HashMap<String, Counter, foldhash::fast::RandomState>,
}

impl PublishCounters {
    /// One counter per topic of `registry`.
    pub fn new(registry: &Registry) -> PublishCounters {
        let by_topic = registry
            .topics()
            .map(|t| (t.name.clone(), metrics::counter!(EVENTS_PUBLISHED.name, "topic" => t.name.clone())))
            .collect();
        PublishCounters { by_topic }
    }

    /// Counts one stored event on `topic` (a topic the spec does not declare is not counted).
    pub fn published(&self, topic: &str) {
        if let Some(counter) = self.by_topic.get(topic) {
            counter.increment(1);
        }
    }
}

/// `prom_events_handled_total` by outcome and `prom_handler_duration_seconds` of one consumer.
#[derive(Debug, Clone)]
pub struct ConsumerMetrics {
    ok: Counter,
    retried: Counter,
    dead_lettered: Counter,
    failed: Counter,
    duration: Histogram,
}

impl ConsumerMetrics {
    /// The handles of consumer `name`.
    pub fn new(name: &str) -> ConsumerMetrics {
        let outcome = |outcome: &'static str| metrics::counter!(EVENTS_HANDLED.name, "consumer" => name.to_owned(), "outcome" => outcome);
        ConsumerMetrics {
            ok: outcome("ok"),
            retried: outcome("retried"),
            dead_lettered: outcome("dead_lettered"),
            failed: outcome("failed"),
            duration: metrics::histogram!(HANDLER_DURATION.name, "consumer" => name.to_owned()),
        }
    }

    /// An event handled successfully.
    pub fn ok(&self) {
        self.ok.increment(1);
    }

    /// A failed attempt that will be retried.
    pub fn retried(&self) {
        self.retried.increment(1);
    }

    /// An event written to the DLQ.
    pub fn dead_lettered(&self) {
        self.dead_lettered.increment(1);
    }

    /// An event that exhausted its attempts without a DLQ (redelivered later).
    pub fn failed(&self) {
        self.failed.increment(1);
    }

    /// How long one handler attempt took.
    pub fn attempt_took(&self, took: Duration) {
        self.duration.record(took.as_secs_f64());
    }
}

/// `prom_projector_applied_total` by outcome of one projector.
#[derive(Debug, Clone)]
pub struct ProjectorMetrics {
    upserted: Counter,
    deleted: Counter,
    skipped: Counter,
    dead_lettered: Counter,
}

impl ProjectorMetrics {
    /// The handles of projector `name`.
    pub fn new(name: &str) -> ProjectorMetrics {
        let outcome = |outcome: &'static str| metrics::counter!(PROJECTOR_APPLIED.name, "projector" => name.to_owned(), "outcome" => outcome);
        ProjectorMetrics {
            upserted: outcome("upserted"),
            deleted: outcome("deleted"),
            skipped: outcome("skipped"),
            dead_lettered: outcome("dead_lettered"),
        }
    }

    /// Counts one committed batch: rows upserted, deleted, events skipped and dead-lettered.
    pub fn applied(&self, upserted: u64, deleted: u64, skipped: u64, dead_lettered: u64) {
        self.upserted.increment(upserted);
        self.deleted.increment(deleted);
        self.skipped.increment(skipped);
        self.dead_lettered.increment(dead_lettered);
    }
}
