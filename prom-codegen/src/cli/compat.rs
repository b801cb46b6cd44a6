//! `prom-codegen compat OLD NEW --mode MODE`.

use super::Format;
use crate::compat::{self, PairMode, Report};
use crate::diag;
use crate::source::SourceMap;
use serde_json::{Value, json};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

pub fn run(old: &Path, new: &Path, mode: &str, format: Format) -> ExitCode {
    let pair = match mode.trim_end_matches("_transitive") {
        "none" => None,
        "backward" => Some(PairMode::Backward),
        "forward" => Some(PairMode::Forward),
        "full" => Some(PairMode::Full),
        _ => {
            let modes = [
                "none",
                "backward",
                "forward",
                "full",
                "backward_transitive",
                "forward_transitive",
                "full_transitive",
            ];
            let hint = crate::suggest::did_you_mean(mode, modes);
            eprintln!("error: unknown mode `{mode}` {hint}\n  = help: use one of {}", modes.join(", "));
            return ExitCode::from(2);
        }
    };
    let (Some(old), Some(new)) = (read_schema(old), read_schema(new)) else { return ExitCode::from(2) };
    let report = match pair {
        None => Report { violations: Vec::new(), undecided: Vec::new() },
        Some(pair) => match compat::check(&old, &new, pair) {
            Ok(report) => report,
            Err(error) => {
                eprintln!("error: not a valid JSON Schema at `{}`: {}", error.path, error.message);
                return ExitCode::from(2);
            }
        },
    };
    let compatible = report.violations.is_empty() && report.undecided.is_empty();
    match format {
        Format::Json => {
            let out = json!({
                "compatible": compatible,
                "decided": report.undecided.is_empty(),
                "mode": mode,
                "violations": report.violations,
                "undecided": report.undecided,
            });
            println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        }
        Format::Human => {
            for v in &report.violations {
                println!("incompatible: {} [{}] {}", display_path(&v.path), v.rule.as_str(), v.message);
            }
            for v in &report.undecided {
                println!("undecided:    {} [{}] {}", display_path(&v.path), v.rule.as_str(), v.message);
            }
            let verdict = if compatible {
                "compatible"
            } else if report.violations.is_empty() {
                "not proven compatible (undecided)"
            } else {
                "incompatible"
            };
            println!(
                "{verdict} under `{mode}`: {} violation(s), {} undecided",
                report.violations.len(),
                report.undecided.len()
            );
        }
    }
    if compatible { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

fn display_path(path: &str) -> &str {
    if path.is_empty() { "/" } else { path }
}

/// Reads a JSON or YAML schema file, printing located errors on failure.
fn read_schema(path: &Path) -> Option<Value> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) => {
            eprintln!("error: cannot read `{}`: {error}", path.display());
            return None;
        }
    };
    let mut sources = SourceMap::default();
    let shared = sources.add(path.to_path_buf(), Arc::from(text.as_str()));
    let (node, diagnostics) = crate::yaml::load(&text, &shared);
    for d in &diagnostics {
        eprint!("{}", diag::render(d, &sources));
    }
    if diag::has_errors(&diagnostics) {
        return None;
    }
    let Some(node) = node else {
        eprintln!("error: `{}` is empty", path.display());
        return None;
    };
    match node.to_json() {
        Ok(json) => Some(json),
        Err(span) => {
            eprintln!("error: {span}: JSON Schemas cannot hold NaN or infinite numbers");
            None
        }
    }
}
