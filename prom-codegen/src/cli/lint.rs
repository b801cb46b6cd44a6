//! `prom-codegen lint`.

use super::Format;
use prom_spec::diag::Severity;
use std::path::PathBuf;
use std::process::ExitCode;

pub fn run(paths: &[PathBuf], format: Format, deny_warnings: bool) -> ExitCode {
    let linted = prom_spec::lint_paths(paths);
    match format {
        Format::Human => err_raw!("{}", linted.render()),
        Format::Json => {
            let items: Vec<_> = linted.diagnostics.iter().map(|d| d.to_json()).collect();
            if let Some(note) = linted.omitted_note() {
                err!("{note}");
            }
            match serde_json::to_string_pretty(&items) {
                Ok(text) => out!("{text}"),
                Err(error) => {
                    err!("error: cannot serialise diagnostics: {error}");
                    return ExitCode::from(2);
                }
            }
        }
    }
    let failed = linted.has_errors()
        || (deny_warnings
            && (linted.omitted_warnings > 0
                || linted.diagnostics.iter().any(|d| d.severity == Severity::Warning)));
    if failed { ExitCode::from(1) } else { ExitCode::SUCCESS }
}
