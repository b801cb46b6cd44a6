//! `prom-alerts.yml`: Prometheus alerting rules (the rule file format `promtool check rules`
//! reads), written as YAML with every string double-quoted.

use super::{dlq_topics, label};
use prom_spec::metrics::{
    CHANGEFEED_TOKEN_AGE, CONSUMER_LAG, DLQ_DEPTH, DLQ_OLDEST_AGE, MONGO_OPLOG_WINDOW, PROJECTOR_APPLIED,
    PROJECTOR_LAG,
};
use prom_spec::spec::Spec;
use std::fmt::Write as _;

/// The fraction of the oplog window a resume point may age before its alert fires.
pub const OPLOG_FRACTION: f64 = 0.5;

/// One alerting rule.
struct Rule {
    alert: &'static str,
    expr: String,
    for_: &'static str,
    severity: &'static str,
    labels: Vec<(&'static str, String)>,
    summary: String,
    description: String,
}

/// The rule file for `spec`.
pub fn rules(spec: &Spec) -> String {
    let mut groups: Vec<(&str, Vec<Rule>)> = Vec::new();
    let consumers = spec.consumers.values().map(|c| {
        let name = &c.name.value;
        let lag = format!("sum({}{{consumer=\"{}\"}})", CONSUMER_LAG.name, label(name));
        Rule {
            alert: "PromConsumerLagGrowing",
            expr: format!("{lag} > 0 and sum(delta({}{{consumer=\"{}\"}}[10m])) > 0", CONSUMER_LAG.name, label(name)),
            for_: "10m",
            severity: "warning",
            labels: vec![("consumer", name.clone()), ("topic", c.topic.value.clone())],
            summary: format!("consumer `{name}` is falling behind on `{}`", c.topic.value),
            description: format!(
                "The lag of consumer `{name}` has grown for 10 minutes and is {{{{ $value }}}} events behind. Check \
                 that its service runs (`prom status` lists live members) and is not slowed by retries."
            ),
        }
    });
    groups.push(("prom-consumers", consumers.collect()));
    let mut dlqs = Vec::new();
    for topic in dlq_topics(spec) {
        let depth = format!("{}{{topic=\"{}\"}}", DLQ_DEPTH.name, label(&topic));
        dlqs.push(Rule {
            alert: "PromDlqNotEmpty",
            expr: format!("max({depth}) > 0"),
            for_: "5m",
            severity: "warning",
            labels: vec![("topic", topic.clone())],
            summary: format!("dead letters are waiting on `dlq.{topic}`"),
            description: format!(
                "{{{{ $value }}}} dead letters of `{topic}` are not replayed. `prom dlq list {topic}` shows them; \
                 fix the cause, then `prom dlq replay {topic}`."
            ),
        });
        dlqs.push(Rule {
            alert: "PromDlqGrowing",
            expr: format!(
                "sum(delta({depth}[15m])) > 0 and max({}{{topic=\"{}\"}}) > 0",
                DLQ_OLDEST_AGE.name,
                label(&topic)
            ),
            for_: "15m",
            severity: "critical",
            labels: vec![("topic", topic.clone())],
            summary: format!("dead letters of `{topic}` keep arriving"),
            description: format!(
                "The DLQ of `{topic}` grew by {{{{ $value }}}} in the last 15 minutes: events keep failing."
            ),
        });
    }
    groups.push(("prom-dlqs", dlqs));
    let projectors = spec.projectors.values().map(|p| {
        let name = &p.name.value;
        Rule {
            alert: "PromProjectorStalled",
            expr: format!(
                "sum({}{{projector=\"{n}\"}}) > 0 and on() sum(increase({}{{projector=\"{n}\"}}[10m])) == 0",
                PROJECTOR_LAG.name,
                PROJECTOR_APPLIED.name,
                n = label(name)
            ),
            for_: "10m",
            severity: "critical",
            labels: vec![("projector", name.clone()), ("topic", p.topic.value.clone())],
            summary: format!("projector `{name}` is stalled"),
            description: format!(
                "Projector `{name}` is {{{{ $value }}}} events behind `{}` and applied nothing for 10 minutes. \
                 Check that `prom run` or `prom serve` runs it and can reach the store.",
                p.topic.value
            ),
        }
    });
    groups.push(("prom-projectors", projectors.collect()));
    let feeds = spec.changefeeds.values().map(|f| {
        let name = &f.name.value;
        Rule {
            alert: "PromChangefeedResumeTokenOld",
            expr: format!(
                "max({}{{changefeed=\"{}\"}}) > {OPLOG_FRACTION} * min({})",
                CHANGEFEED_TOKEN_AGE.name,
                label(name),
                MONGO_OPLOG_WINDOW.name
            ),
            for_: "5m",
            severity: "critical",
            labels: vec![("changefeed", name.clone())],
            summary: format!("changefeed `{name}`'s resume point will fall out of the oplog"),
            description: format!(
                "The resume point of changefeed `{name}` is {{{{ $value }}}}s old, more than {OPLOG_FRACTION} of the \
                 oplog window: once the oplog rolls past it the resume point is lost. Make sure the changefeed \
                 runs, or grow the oplog."
            ),
        }
    });
    groups.push(("prom-changefeeds", feeds.collect()));
    let mut out = String::from(
        "# Generated by `prom-codegen alerts` from the spec: do not edit (regenerate instead).\n\
         # Check with: promtool check rules prom-alerts.yml\ngroups:\n",
    );
    for (name, rules) in groups {
        let _ = writeln!(out, "  - name: {}", quoted(name));
        if rules.is_empty() {
            out.push_str("    rules: []\n");
            continue;
        }
        out.push_str("    rules:\n");
        for r in rules {
            let _ = writeln!(out, "      - alert: {}", r.alert);
            let _ = writeln!(out, "        expr: {}", quoted(&r.expr));
            let _ = writeln!(out, "        for: {}", r.for_);
            out.push_str("        labels:\n");
            let _ = writeln!(out, "          severity: {}", quoted(r.severity));
            for (k, v) in &r.labels {
                let _ = writeln!(out, "          {k}: {}", quoted(v));
            }
            out.push_str("        annotations:\n");
            let _ = writeln!(out, "          summary: {}", quoted(&r.summary));
            let _ = writeln!(out, "          description: {}", quoted(&r.description));
        }
    }
    out
}

/// A YAML double-quoted scalar (JSON string syntax is valid YAML).
fn quoted(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}
