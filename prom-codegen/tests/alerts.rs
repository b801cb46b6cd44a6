//! `prom-codegen alerts` on the workspace's specs: deterministic files, metric names only from
//! the list the runtime registers, a Grafana dashboard with one row per component, and rules
//! that `promtool check rules` accepts and that fire in `promtool test rules` (skipped without
//! promtool unless `PROM_REQUIRE_PROMTOOL=1`; `scripts/promtool.sh` installs it).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn specs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs")
}

fn alerts(out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_prom-codegen"))
        .args(["alerts", "--specs"])
        .arg(specs())
        .arg("--out")
        .arg(out)
        .output()
        .expect("run prom-codegen")
}

fn generated() -> (tempfile::TempDir, String, serde_json::Value) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = alerts(dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rules = std::fs::read_to_string(dir.path().join("prom-alerts.yml")).expect("rules");
    let dashboard = std::fs::read_to_string(dir.path().join("prom-dashboard.json")).expect("dashboard");
    (dir, rules, serde_json::from_str(&dashboard).expect("the dashboard is JSON"))
}

/// Every `prom_…` identifier in `text`.
fn metric_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("prom_") {
        let tail = &rest[at..];
        let end = tail.find(|c: char| !(c.is_ascii_lowercase() || c == '_')).unwrap_or(tail.len());
        names.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

#[test]
fn rules_and_dashboard_are_deterministic_and_query_only_registered_metrics() {
    let (dir, rules, dashboard) = generated();
    let again = alerts(dir.path());
    assert!(String::from_utf8_lossy(&again.stderr).contains("prom-alerts.yml is up to date"));
    let (_, rules_again, dashboard_again) = generated();
    assert_eq!((&rules, &dashboard), (&rules_again, &dashboard_again));

    let text = format!("{rules}\n{dashboard}");
    let names = metric_names(&text);
    assert!(names.len() > 10, "{names:?}");
    for name in names {
        let base =
            ["_bucket", "_sum", "_count"].iter().fold(name.as_str(), |n, s| n.strip_suffix(s).unwrap_or(n));
        assert!(
            prom_spec::metrics::by_name(base).is_some(),
            "`{name}` is not a metric the runtime registers"
        );
    }
    // specs/: consumer hb-analyzers (dlq), projectors processes and process-stats, changefeed
    // processes-changed.
    for alert in [
        "PromConsumerLagGrowing",
        "PromDlqNotEmpty",
        "PromDlqGrowing",
        "PromProjectorStalled",
        "PromChangefeedResumeTokenOld",
    ] {
        assert!(rules.contains(&format!("- alert: {alert}")), "{alert} missing:\n{rules}");
    }
    assert!(rules.contains(r#"consumer: "hb-analyzers""#), "{rules}");
    assert!(rules.contains(r#"projector: "process-stats""#), "{rules}");
    let rows: Vec<&str> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .filter(|p| p["type"] == "row")
        .filter_map(|p| p["title"].as_str())
        .collect();
    assert_eq!(rows.first(), Some(&"Overview"));
    assert!(rows.contains(&"Consumer hb-analyzers (heartbeat.received)"), "{rows:?}");
    assert!(rows.contains(&"Projector processes (process.state)"), "{rows:?}");
    assert!(rows.iter().any(|r| r.starts_with("DLQ dlq.")), "{rows:?}");
    let ids: Vec<u64> =
        dashboard["panels"].as_array().expect("panels").iter().filter_map(|p| p["id"].as_u64()).collect();
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(ids, unique, "panel ids are distinct and ordered");
}

/// `promtool`, if installed; `None` skips the test unless `PROM_REQUIRE_PROMTOOL=1`.
fn promtool() -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|p| p.join("promtool")).find(|p| p.is_file()));
    if found.is_none() {
        assert!(
            std::env::var("PROM_REQUIRE_PROMTOOL").as_deref() != Ok("1"),
            "PROM_REQUIRE_PROMTOOL=1 but promtool is not installed (run scripts/promtool.sh)"
        );
        eprintln!("skipping: promtool is not installed (scripts/promtool.sh installs it)");
    }
    found
}

#[test]
fn promtool_accepts_the_rules_and_they_fire_on_a_growing_dlq_and_a_stalled_projector() {
    let Some(promtool) = promtool() else { return };
    let (dir, _, _) = generated();
    let check = Command::new(&promtool)
        .args(["check", "rules"])
        .arg(dir.path().join("prom-alerts.yml"))
        .output()
        .expect("promtool");
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    // The DLQ of heartbeat.received fills at minute 1 and keeps growing; the projector
    // `processes` has lag and applies nothing; consumer lag grows every minute.
    let tests = r#"rule_files: [prom-alerts.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'prom_dlq_depth_events{topic="heartbeat.received"}'
        values: '0 1+1x40'
      - series: 'prom_dlq_oldest_age_seconds{topic="heartbeat.received"}'
        values: '0 60+60x40'
      - series: 'prom_projector_lag_events{projector="processes"}'
        values: '5x40'
      - series: 'prom_projector_applied_total{projector="processes",outcome="upserted"}'
        values: '0x40'
      - series: 'prom_consumer_lag_events{consumer="hb-analyzers",topic="heartbeat.received",partition="0"}'
        values: '0+10x40'
    alert_rule_test:
      - eval_time: 30m
        alertname: PromDlqNotEmpty
        exp_alerts:
          - exp_labels: { severity: warning, topic: heartbeat.received }
            exp_annotations:
              summary: "dead letters are waiting on `dlq.heartbeat.received`"
              description: "30 dead letters of `heartbeat.received` are not replayed. `prom dlq list heartbeat.received` shows them; fix the cause, then `prom dlq replay heartbeat.received`."
      - eval_time: 30m
        alertname: PromProjectorStalled
        exp_alerts:
          - exp_labels: { severity: critical, projector: processes, topic: process.state }
            exp_annotations:
              summary: "projector `processes` is stalled"
              description: "Projector `processes` is 5 events behind `process.state` and applied nothing for 10 minutes. Check that `prom run` or `prom serve` runs it and can reach the store."
      - eval_time: 30m
        alertname: PromConsumerLagGrowing
        exp_alerts:
          - exp_labels: { severity: warning, consumer: hb-analyzers, topic: heartbeat.received }
            exp_annotations:
              summary: "consumer `hb-analyzers` is falling behind on `heartbeat.received`"
              description: "The lag of consumer `hb-analyzers` has grown for 10 minutes and is 300 events behind. Check that its service runs (`prom status` lists live members) and is not slowed by retries."
"#;
    std::fs::write(dir.path().join("tests.yml"), tests).expect("write");
    let test = Command::new(&promtool)
        .current_dir(dir.path())
        .args(["test", "rules", "tests.yml"])
        .output()
        .expect("promtool");
    assert!(
        test.status.success(),
        "{}{}",
        String::from_utf8_lossy(&test.stdout),
        String::from_utf8_lossy(&test.stderr)
    );
}
