//! `prom-codegen breaking --against REF`.

use super::Format;
use crate::breaking;
use prom_spec::diag::{self, escape_controls};
use prom_spec::source::SourceMap;
use std::path::PathBuf;
use std::process::ExitCode;

pub fn run(specs: &[PathBuf], reference: &str, format: Format) -> ExitCode {
    let new = prom_spec::lint_paths(specs);
    if new.has_errors() {
        err_raw!("{}", new.render());
        err!("error: not comparing with `{}`: fix the errors above first", escape_controls(reference));
        return ExitCode::from(1);
    }
    let snapshot = match breaking::snapshot(reference, specs) {
        Ok(snapshot) => snapshot,
        Err(error) => {
            err!("error: {error}");
            return ExitCode::from(2);
        }
    };
    let old_paths: Vec<PathBuf> = snapshot.paths.iter().flatten().cloned().collect();
    let short = snapshot.commit.get(..12).unwrap_or(&snapshot.commit).to_owned();
    let mut findings = Vec::new();
    let mut sources = SourceMap::default();
    for file in new.spec.sources.files() {
        sources.add(file.path.clone(), file.text.clone());
    }
    if old_paths.is_empty() {
        err!("note: no specs at `{}` ({short}): nothing existed to break", escape_controls(reference));
    } else {
        let old = prom_spec::lint_paths(&old_paths);
        findings = breaking::compare(&old.spec, &new.spec, reference);
        let old_sources = breaking::relocate(&mut findings, &old.spec.sources, &snapshot.dir, reference);
        for file in old_sources.files() {
            sources.add(file.path.clone(), file.text.clone());
        }
    }
    match format {
        Format::Human => {
            let mut text: String = findings.iter().map(|d| diag::render(d, &sources) + "\n").collect();
            text.push_str(&format!(
                "{} breaking change(s) against {} ({short})\n",
                findings.len(),
                escape_controls(reference)
            ));
            err_raw!("{text}");
        }
        Format::Json => {
            let items: Vec<_> = findings.iter().map(|d| d.to_json()).collect();
            match serde_json::to_string_pretty(&items) {
                Ok(text) => out!("{text}"),
                Err(error) => {
                    err!("error: cannot serialise diagnostics: {error}");
                    return ExitCode::from(2);
                }
            }
        }
    }
    if findings.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) }
}
