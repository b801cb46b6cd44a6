//! Metrics through the [`metrics`] facade, so any exporter the program installs sees them (the
//! `prom` CLI installs a Prometheus one and serves `/metrics`).
//!
//! The names, kinds and labels are [`prom_spec::metrics::ALL`], the list `prom-codegen alerts`
//! reads too. Label values come only from the spec, so the number of series is bounded.
//!
//! Counters and the handler histogram are recorded on the hot path through handles registered
//! once per topic, consumer and projector ([`handles`]): an event costs an atomic add, never a
//! label lookup or a string. Gauges that need store queries (lag, DLQ depth and age, resume
//! token age, the oplog window) are set by [`sampler`] every [`SAMPLE_EVERY`], from the same
//! read-only [`inspect::Status`] that `prom status` prints.
//!
//! Handles bind to the recorder installed when they are created: install a recorder before
//! building a [`crate::Producer`], [`crate::Pipeline`] or runner.

pub mod handles;
pub mod inspect;
#[cfg(feature = "cli")]
pub mod prometheus;
pub mod sampler;
mod store;

pub use handles::{ConsumerMetrics, ProjectorMetrics, PublishCounters};
pub use prom_spec::metrics::{ALL, Metric, MetricKind, OUTCOMES, PROJECTOR_OUTCOMES};
pub use sampler::{SAMPLE_EVERY, run_sampler, sample};

/// Registers the help text and unit of every metric with the installed recorder (once, at start).
pub fn describe() {
    for metric in ALL {
        let help = metric.help;
        match metric.kind {
            MetricKind::Counter => metrics::describe_counter!(metric.name, help),
            MetricKind::Gauge => metrics::describe_gauge!(metric.name, help),
            MetricKind::Histogram => {
                metrics::describe_histogram!(metric.name, metrics::Unit::Seconds, help)
            }
        }
    }
}
