//! `prom-codegen asyncapi`: the AsyncAPI 3.0.0 document of the specs.

use crate::asyncapi::{self, Info};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub fn run(specs: &[PathBuf], out: Option<&Path>, title: Option<String>) -> ExitCode {
    let linted = prom_spec::lint_paths(specs);
    if !linted.diagnostics.is_empty() {
        err_raw!("{}", linted.render());
    }
    if linted.has_errors() {
        err!("error: not writing the AsyncAPI document: fix the errors above first");
        return ExitCode::from(1);
    }
    let mut info = Info::default();
    if let Some(title) = title {
        info.title = title;
    }
    let text = asyncapi::render(&asyncapi::document(&linted.spec, &info));
    match out {
        None => {
            out!("{}", text.trim_end());
            ExitCode::SUCCESS
        }
        Some(path) => match crate::write_if_changed(path, &text) {
            Ok(true) => {
                err!("wrote {}", path.display());
                ExitCode::SUCCESS
            }
            Ok(false) => {
                err!("{} is up to date", path.display());
                ExitCode::SUCCESS
            }
            Err(error) => {
                err!("error: cannot write `{}`: {error}", path.display());
                ExitCode::from(2)
            }
        },
    }
}
