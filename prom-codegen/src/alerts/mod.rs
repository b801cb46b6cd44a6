//! Prometheus alert rules and a Grafana dashboard derived from the declared topology: one rule
//! set per consumer, DLQ, projector and changefeed, one dashboard row per consumer, projector and
//! DLQ. Every metric name comes from [`prom_spec::metrics`], the list the runtime registers, so
//! the rules cannot query a series the runtime does not export. Output is deterministic: the
//! spec's maps are sorted, and nothing depends on time or randomness.

mod dashboard;
mod rules;

pub use dashboard::dashboard;
pub use rules::rules;

use prom_spec::spec::Spec;

/// The file the rules are written to.
pub const RULES_FILE: &str = "prom-alerts.yml";
/// The file the dashboard is written to.
pub const DASHBOARD_FILE: &str = "prom-dashboard.json";

/// The topics that have a DLQ: those read by a consumer with `dlq: true` or by a projector
/// (projectors dead-letter what they cannot apply), sorted.
pub fn dlq_topics(spec: &Spec) -> Vec<String> {
    let mut topics: Vec<String> = spec
        .consumers
        .values()
        .filter(|c| c.dlq.as_ref().is_some_and(|d| d.value))
        .map(|c| c.topic.value.clone())
        .chain(spec.projectors.values().map(|p| p.topic.value.clone()))
        .collect();
    topics.sort();
    topics.dedup();
    topics
}

/// `value` as a PromQL string literal's contents (backslashes and quotes escaped).
pub(crate) fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"")
}
