//! `prom-codegen alerts`: Prometheus alert rules and a Grafana dashboard for the declared topology.

use crate::alerts::{self, DASHBOARD_FILE, RULES_FILE};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub fn run(specs: &[PathBuf], out: &Path) -> ExitCode {
    let linted = prom_spec::lint_paths(specs);
    if !linted.diagnostics.is_empty() {
        err_raw!("{}", linted.render());
    }
    if linted.has_errors() {
        err!("error: not writing alert rules and dashboard: fix the errors above first");
        return ExitCode::from(1);
    }
    if let Err(error) = std::fs::create_dir_all(out) {
        err!("error: cannot create `{}`: {error}", out.display());
        return ExitCode::from(2);
    }
    let files =
        [(RULES_FILE, alerts::rules(&linted.spec)), (DASHBOARD_FILE, alerts::dashboard(&linted.spec))];
    for (name, text) in files {
        let path = out.join(name);
        match crate::write_if_changed(&path, &text) {
            Ok(true) => err!("wrote {}", path.display()),
            Ok(false) => err!("{} is up to date", path.display()),
            Err(error) => {
                err!("error: cannot write `{}`: {error}", path.display());
                return ExitCode::from(2);
            }
        }
    }
    ExitCode::SUCCESS
}
