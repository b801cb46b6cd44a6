//! The metrics the runtime registers: one list, read by `prom-runtime` (which records them) and
//! by `prom-codegen alerts` (whose rules and dashboard query them), so the two cannot drift.
//!
//! Every label value comes from the spec (topic, consumer, projector and changefeed names,
//! partition numbers below the declared count, a fixed set of outcomes), never from payloads, so
//! the number of series is bounded when the spec is written.

/// What kind of series a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Only goes up (exported with a `_total` name).
    Counter,
    /// A sampled value.
    Gauge,
    /// Observations in buckets (exported as `_bucket`, `_sum` and `_count`).
    Histogram,
}

/// One metric: its exported name, kind, label names and help text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    /// The Prometheus name.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: MetricKind,
    /// Its label names, in order.
    pub labels: &'static [&'static str],
    /// The `# HELP` text.
    pub help: &'static str,
}

/// Events stored on a declared topic (dual-write copies and dead letters not included).
pub const EVENTS_PUBLISHED: Metric = Metric {
    name: "prom_events_published_total",
    kind: MetricKind::Counter,
    labels: &["topic"],
    help: "Events published on a declared topic (duplicates of a dedup key not counted).",
};
/// Events a consumer finished with, by outcome ([`OUTCOMES`]).
pub const EVENTS_HANDLED: Metric = Metric {
    name: "prom_events_handled_total",
    kind: MetricKind::Counter,
    labels: &["consumer", "outcome"],
    help: "Handler outcomes: ok, retried (one per retry), dead_lettered, failed (no DLQ; redelivered later).",
};
/// How long one handler attempt took.
pub const HANDLER_DURATION: Metric = Metric {
    name: "prom_handler_duration_seconds",
    kind: MetricKind::Histogram,
    labels: &["consumer"],
    help: "Duration of one handler attempt in seconds.",
};
/// Events of a partition a consumer's group has not consumed yet.
pub const CONSUMER_LAG: Metric = Metric {
    name: "prom_consumer_lag_events",
    kind: MetricKind::Gauge,
    labels: &["consumer", "topic", "partition"],
    help: "Events of the partition after the consumer group's committed cursor (sampled).",
};
/// Dead letters not replayed yet.
pub const DLQ_DEPTH: Metric = Metric {
    name: "prom_dlq_depth_events",
    kind: MetricKind::Gauge,
    labels: &["topic"],
    help: "Dead letters of the topic not replayed yet (sampled).",
};
/// Age of the oldest dead letter not replayed yet.
pub const DLQ_OLDEST_AGE: Metric = Metric {
    name: "prom_dlq_oldest_age_seconds",
    kind: MetricKind::Gauge,
    labels: &["topic"],
    help: "Seconds since the oldest dead letter not replayed yet was written; 0 when none (sampled).",
};
/// Events a projector has not applied yet.
pub const PROJECTOR_LAG: Metric = Metric {
    name: "prom_projector_lag_events",
    kind: MetricKind::Gauge,
    labels: &["projector"],
    help: "Events of the projector's topic after its checkpoint (sampled).",
};
/// Events a projector applied, by outcome ([`PROJECTOR_OUTCOMES`]).
pub const PROJECTOR_APPLIED: Metric = Metric {
    name: "prom_projector_applied_total",
    kind: MetricKind::Counter,
    labels: &["projector", "outcome"],
    help: "Projector outcomes per event: upserted, deleted, skipped, dead_lettered.",
};
/// Age of a changefeed's stored resume point (MongoDB).
pub const CHANGEFEED_TOKEN_AGE: Metric = Metric {
    name: "prom_changefeed_resume_token_age_seconds",
    kind: MetricKind::Gauge,
    labels: &["changefeed"],
    help: "Seconds between the server's clock and the cluster time of the changefeed's stored resume point (sampled; MongoDB).",
};
/// Time span the MongoDB oplog covers.
pub const MONGO_OPLOG_WINDOW: Metric = Metric {
    name: "prom_mongo_oplog_window_seconds",
    kind: MetricKind::Gauge,
    labels: &[],
    help: "Seconds between the oldest and the newest oplog entry: a resume point older than this is lost (sampled; MongoDB).",
};

/// Every metric, in the order `/metrics` documents them.
pub const ALL: &[Metric] = &[
    EVENTS_PUBLISHED,
    EVENTS_HANDLED,
    HANDLER_DURATION,
    CONSUMER_LAG,
    DLQ_DEPTH,
    DLQ_OLDEST_AGE,
    PROJECTOR_LAG,
    PROJECTOR_APPLIED,
    CHANGEFEED_TOKEN_AGE,
    MONGO_OPLOG_WINDOW,
];

/// The `outcome` values of [`EVENTS_HANDLED`].
pub const OUTCOMES: [&str; 4] = ["ok", "retried", "dead_lettered", "failed"];

/// The `outcome` values of [`PROJECTOR_APPLIED`].
pub const PROJECTOR_OUTCOMES: [&str; 4] = ["upserted", "deleted", "skipped", "dead_lettered"];

/// The metric named `name`, if the runtime registers it.
pub fn by_name(name: &str) -> Option<&'static Metric> {
    ALL.iter().find(|m| m.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_counters_end_in_total() {
        for (i, m) in ALL.iter().enumerate() {
            assert!(ALL[i + 1..].iter().all(|o| o.name != m.name), "{} twice", m.name);
            assert_eq!(m.kind == MetricKind::Counter, m.name.ends_with("_total"), "{}", m.name);
            assert!(m.name.starts_with("prom_"), "{}", m.name);
        }
        assert_eq!(by_name("prom_dlq_depth_events"), Some(&DLQ_DEPTH));
        assert_eq!(by_name("prom_nothing"), None);
    }
}
