//! `prom-dashboard.json`: a Grafana dashboard (schema 39) with one row per consumer, projector and
//! DLQ; its Prometheus data source is a dashboard variable, chosen on import.

use super::{dlq_topics, label};
use prom_spec::metrics::{
    CHANGEFEED_TOKEN_AGE, CONSUMER_LAG, DLQ_DEPTH, DLQ_OLDEST_AGE, EVENTS_HANDLED, EVENTS_PUBLISHED,
    HANDLER_DURATION, MONGO_OPLOG_WINDOW, PROJECTOR_APPLIED, PROJECTOR_LAG,
};
use prom_spec::spec::Spec;
use serde_json::{Value, json};

/// Panels per row side by side (each 8 of Grafana's 24 columns).
const WIDTH: u64 = 8;
const HEIGHT: u64 = 8;

/// A panel: its title, its queries as `(expr, legend)`, and its unit.
type Panel = (String, Vec<(String, String)>, &'static str);

/// Lays panels out row by row and numbers them.
struct Layout {
    panels: Vec<Value>,
    y: u64,
    next_id: u64,
}

impl Layout {
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn row(&mut self, title: String, panels: Vec<Panel>) {
        let id = self.id();
        self.panels.push(json!({
            "type": "row", "id": id, "title": title, "collapsed": false,
            "gridPos": { "h": 1, "w": 24, "x": 0, "y": self.y }, "panels": []
        }));
        self.y += 1;
        for (i, (title, targets, unit)) in panels.into_iter().enumerate() {
            let id = self.id();
            let targets: Vec<Value> = targets
                .into_iter()
                .enumerate()
                .map(|(n, (expr, legend))| {
                    json!({
                        "refId": ((b'A' + n as u8) as char).to_string(),
                        "datasource": { "type": "prometheus", "uid": "${datasource}" },
                        "expr": expr, "legendFormat": legend
                    })
                })
                .collect();
            self.panels.push(json!({
                "type": "timeseries", "id": id, "title": title,
                "datasource": { "type": "prometheus", "uid": "${datasource}" },
                "gridPos": { "h": HEIGHT, "w": WIDTH, "x": WIDTH * i as u64, "y": self.y },
                "fieldConfig": { "defaults": { "unit": unit }, "overrides": [] },
                "options": { "legend": { "displayMode": "list", "placement": "bottom", "showLegend": true } },
                "targets": targets
            }));
        }
        self.y += HEIGHT;
    }
}

/// The dashboard for `spec`, as pretty-printed JSON.
pub fn dashboard(spec: &Spec) -> String {
    let mut layout = Layout { panels: Vec::new(), y: 0, next_id: 0 };
    let publish = (
        "Published events/s by topic".to_owned(),
        vec![(format!("sum by (topic) (rate({}[5m]))", EVENTS_PUBLISHED.name), "{{topic}}".to_owned())],
        "ops",
    );
    let oplog = (
        "MongoDB oplog window and resume token ages".to_owned(),
        vec![
            (format!("min({})", MONGO_OPLOG_WINDOW.name), "oplog window".to_owned()),
            (format!("max by (changefeed) ({})", CHANGEFEED_TOKEN_AGE.name), "{{changefeed}}".to_owned()),
        ],
        "s",
    );
    layout.row("Overview".to_owned(), vec![publish, oplog]);
    for c in spec.consumers.values() {
        let n = label(&c.name.value);
        layout.row(
            format!("Consumer {} ({})", c.name.value, c.topic.value),
            vec![
                (
                    "Lag by partition".to_owned(),
                    vec![(
                        format!("max by (partition) ({}{{consumer=\"{n}\"}})", CONSUMER_LAG.name),
                        "partition {{partition}}".to_owned(),
                    )],
                    "short",
                ),
                (
                    "Handled events/s by outcome".to_owned(),
                    vec![(
                        format!("sum by (outcome) (rate({}{{consumer=\"{n}\"}}[5m]))", EVENTS_HANDLED.name),
                        "{{outcome}}".to_owned(),
                    )],
                    "ops",
                ),
                (
                    "Handler duration p50 / p99".to_owned(),
                    vec![
                        (
                            format!(
                                "histogram_quantile(0.5, sum by (le) (rate({}_bucket{{consumer=\"{n}\"}}[5m])))",
                                HANDLER_DURATION.name
                            ),
                            "p50".to_owned(),
                        ),
                        (
                            format!(
                                "histogram_quantile(0.99, sum by (le) (rate({}_bucket{{consumer=\"{n}\"}}[5m])))",
                                HANDLER_DURATION.name
                            ),
                            "p99".to_owned(),
                        ),
                    ],
                    "s",
                ),
            ],
        );
    }
    for p in spec.projectors.values() {
        let n = label(&p.name.value);
        layout.row(
            format!("Projector {} ({})", p.name.value, p.topic.value),
            vec![
                (
                    "Lag".to_owned(),
                    vec![(format!("max({}{{projector=\"{n}\"}})", PROJECTOR_LAG.name), "lag".to_owned())],
                    "short",
                ),
                (
                    "Applied events/s by outcome".to_owned(),
                    vec![(
                        format!(
                            "sum by (outcome) (rate({}{{projector=\"{n}\"}}[5m]))",
                            PROJECTOR_APPLIED.name
                        ),
                        "{{outcome}}".to_owned(),
                    )],
                    "ops",
                ),
            ],
        );
    }
    for topic in dlq_topics(spec) {
        let t = label(&topic);
        layout.row(
            format!("DLQ dlq.{topic}"),
            vec![
                (
                    "Dead letters not replayed".to_owned(),
                    vec![(format!("max({}{{topic=\"{t}\"}})", DLQ_DEPTH.name), "depth".to_owned())],
                    "short",
                ),
                (
                    "Oldest dead letter's age".to_owned(),
                    vec![(format!("max({}{{topic=\"{t}\"}})", DLQ_OLDEST_AGE.name), "age".to_owned())],
                    "s",
                ),
            ],
        );
    }
    let document = json!({
        "title": "Prom system",
        "uid": "prom-system",
        "description": "Generated by `prom-codegen alerts` from the spec: regenerate instead of editing.",
        "tags": ["prom"],
        "schemaVersion": 39,
        "version": 1,
        "editable": true,
        "time": { "from": "now-6h", "to": "now" },
        "refresh": "30s",
        "templating": { "list": [{
            "name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus",
            "current": {}, "hide": 0
        }] },
        "annotations": { "list": [] },
        "panels": layout.panels
    });
    let mut text = serde_json::to_string_pretty(&document).unwrap_or_default();
    text.push('\n');
    text
}
