//! Data-driven corpus: every `tests/corpus/compat/<topic>/*.json` file is one case.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use prom_spec::compat::{PairMode, check};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    description: String,
    old: Value,
    new: Value,
    mode: PairMode,
    #[serde(default)]
    compatible: bool,
    #[serde(default)]
    rules: Vec<String>,
    /// `true`: only undecided findings expected; `false`: none expected; absent: not checked.
    undecided: Option<bool>,
    /// The input is not a schema: `check` must return an error.
    #[serde(default)]
    error: bool,
}

fn case_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            case_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "json") {
            out.push(p);
        }
    }
}

fn run_case(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let case: Case = serde_json::from_str(&text).map_err(|e| format!("bad case file: {e}"))?;
    let result = check(&case.old, &case.new, case.mode);
    if case.error {
        return match result {
            Err(_) => Ok(()),
            Ok(r) => Err(format!("{}: expected a SchemaError, got {r:?}", case.description)),
        };
    }
    let report = result.map_err(|e| format!("{}: unexpected error: {e}", case.description))?;
    let mut problems = Vec::new();
    if report.is_compatible() != case.compatible {
        problems.push(format!("expected compatible={}, got {}", case.compatible, report.is_compatible()));
    }
    let got: BTreeSet<String> =
        report.violations.iter().chain(&report.undecided).map(|v| v.rule.to_string()).collect();
    let want: BTreeSet<String> = case.rules.iter().cloned().collect();
    if got != want {
        problems.push(format!("expected rules {want:?}, got {got:?}"));
    }
    match case.undecided {
        Some(true) if !report.violations.is_empty() || report.undecided.is_empty() => {
            problems.push("expected only undecided findings".into())
        }
        Some(false) if !report.undecided.is_empty() => problems.push("expected no undecided findings".into()),
        _ => {}
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}\n    report: {}",
            case.description,
            problems.join("; "),
            serde_json::to_string(&report).unwrap_or_default()
        ))
    }
}

#[test]
fn compat_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus/compat");
    let mut files = Vec::new();
    case_files(&root, &mut files);
    files.sort();
    assert!(!files.is_empty(), "no corpus cases found under {}", root.display());
    let mut failures = Vec::new();
    for f in &files {
        if let Err(e) = run_case(f) {
            let name = f.strip_prefix(&root).unwrap_or(f).display().to_string();
            failures.push(format!("{name}: {e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} corpus cases failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
    eprintln!("{} corpus cases passed", files.len());
}
