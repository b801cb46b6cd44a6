//! `prom-codegen compat OLD NEW --mode MODE`.

use super::Format;
use prom_spec::compat::{self, PairMode, Report};
use prom_spec::diag::{self, escape_controls};
use prom_spec::input::ReadError;
use prom_spec::source::SourceMap;
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
            let hint = prom_spec::suggest::did_you_mean(mode, modes);
            let mode = escape_controls(mode);
            err!("error: unknown mode `{mode}` {hint}\n  = help: use one of {}", modes.join(", "));
            return ExitCode::from(2);
        }
    };
    let (Some(old), Some(new)) = (read_schema(old), read_schema(new)) else { return ExitCode::from(2) };
    let report = match pair {
        None => Report { violations: Vec::new(), undecided: Vec::new() },
        Some(pair) => match compat::check(&old, &new, pair) {
            Ok(report) => report,
            Err(error) => {
                err!(
                    "error: not a valid JSON Schema at `{}`: {}",
                    escape_controls(&error.path),
                    escape_controls(&error.message)
                );
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
            out!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        }
        Format::Human => {
            for v in &report.violations {
                out!(
                    "incompatible: {} [{}] {}",
                    escape_controls(display_path(&v.path)),
                    v.rule.as_str(),
                    escape_controls(&v.message)
                );
            }
            for v in &report.undecided {
                out!(
                    "undecided:    {} [{}] {}",
                    escape_controls(display_path(&v.path)),
                    v.rule.as_str(),
                    escape_controls(&v.message)
                );
            }
            let verdict = if compatible {
                "compatible"
            } else if report.violations.is_empty() {
                "not proven compatible (undecided)"
            } else {
                "incompatible"
            };
            out!(
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
    let shown = escape_controls(&path.display().to_string()).into_owned();
    let mut sources = SourceMap::default();
    let text = match prom_spec::input::read_text(path) {
        Ok(text) => text,
        Err(ReadError::NotUtf8 { line, column, byte, .. }) => {
            err!(
                "error: {shown}:{line}:{column}: not valid UTF-8 (byte 0x{byte:02X})\n  = help: save the schema as UTF-8"
            );
            return None;
        }
        Err(error) => {
            err!("error: cannot read `{shown}`: {error}\n  = help: pass a JSON or YAML schema file");
            return None;
        }
    };
    let shared = sources.add(path.to_path_buf(), Arc::from(text.as_str()));
    let (node, diagnostics) = prom_spec::yaml::load(&text, &shared);
    for d in &diagnostics {
        err_raw!("{}", diag::render(d, &sources));
    }
    if diag::has_errors(&diagnostics) {
        return None;
    }
    let Some(node) = node else {
        err!("error: `{shown}` is empty");
        return None;
    };
    let json = match node.to_json() {
        Ok(json) => json,
        Err(span) => {
            err!(
                "error: {}: JSON Schemas cannot hold NaN or infinite numbers",
                escape_controls(&span.to_string())
            );
            return None;
        }
    };
    // A regex the validator cannot compile makes the schema invalid input, not an
    // incompatibility: say where, and exit 2.
    if let Some((pointer, message)) = invalid_regex(&json, &mut String::new()) {
        let at = node.nearest_span(&pointer);
        err!(
            "error: {}: invalid regex at `{}`: {}\n  = help: write an ECMA-262 regular expression",
            escape_controls(&at.to_string()),
            escape_controls(&pointer),
            escape_controls(&message)
        );
        return None;
    }
    Some(json)
}

/// The JSON pointer and error of the first `pattern` or `patternProperties` key that does not
/// compile; `at` is the pointer of `json` (restored on return).
fn invalid_regex(json: &Value, at: &mut String) -> Option<(String, String)> {
    let compile = |pattern: &str| jsonschema::options().build(&json!({ "pattern": pattern })).err();
    let len = at.len();
    let found = match json {
        Value::Object(map) => map.iter().find_map(|(key, value)| {
            at.truncate(len);
            at.push('/');
            at.push_str(&key.replace('~', "~0").replace('/', "~1"));
            match (key.as_str(), value) {
                ("pattern", Value::String(p)) => compile(p).map(|e| (at.clone(), e.to_string())),
                ("enum" | "const" | "default" | "examples", _) => None,
                ("patternProperties", Value::Object(props)) => props
                    .keys()
                    .find_map(|p| {
                        let key = format!("{at}/{}", p.replace('~', "~0").replace('/', "~1"));
                        compile(p).map(|e| (key, e.to_string()))
                    })
                    .or_else(|| invalid_regex(value, at)),
                _ => invalid_regex(value, at),
            }
        }),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
            at.truncate(len);
            at.push_str(&format!("/{i}"));
            invalid_regex(item, at)
        }),
        _ => None,
    };
    at.truncate(len);
    found
}
