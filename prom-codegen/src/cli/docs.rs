//! `prom-codegen docs`: the topology site of the specs.

use crate::docs;
use prom_spec::diag::escape_controls;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub fn run(specs: &[PathBuf], out: &Path, check: bool) -> ExitCode {
    let linted = prom_spec::lint_paths(specs);
    if !linted.diagnostics.is_empty() {
        err_raw!("{}", linted.render());
    }
    if linted.has_errors() {
        err!("error: not writing the site: fix the errors above first");
        return ExitCode::from(1);
    }
    let shown = escape_controls(&out.display().to_string()).into_owned();
    let site = match docs::site(&linted.spec) {
        Ok(site) => site,
        Err(error) => {
            err!("error: {error}");
            return ExitCode::from(2);
        }
    };
    if check {
        return match site.check(out) {
            Ok(differences) if differences.is_empty() => {
                err!("{shown} is up to date ({} files)", site.files().len());
                ExitCode::SUCCESS
            }
            Ok(differences) => {
                for difference in &differences {
                    err!("{shown}/{}", escape_controls(&difference.to_string()));
                }
                let args: String = specs.iter().map(|s| format!(" --specs {}", s.display())).collect();
                err!(
                    "error: the site in {shown} is stale ({} file(s) differ); run `prom-codegen docs{} --out {shown}`",
                    differences.len(),
                    escape_controls(&args)
                );
                ExitCode::from(1)
            }
            Err(error) => {
                err!("error: {error}");
                ExitCode::from(2)
            }
        };
    }
    match site.write(out) {
        Ok(report) => {
            for removed in &report.removed {
                err!("removed {shown}/{}", escape_controls(removed));
            }
            err!(
                "wrote {} file(s) to {shown} ({} up to date, {} removed)",
                report.written.len(),
                report.unchanged,
                report.removed.len()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            err!("error: {error}");
            ExitCode::from(2)
        }
    }
}
