//! `prom-codegen build` and `prom-codegen check`.

use crate::generate::{Generated, generate, write_if_changed};
use prom_spec::diag::escape_controls;
use prom_spec::input::ReadError;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn lint_and_generate(specs: &[PathBuf]) -> Option<Generated> {
    let base = std::env::current_dir().ok();
    match generate(specs, base.as_deref()) {
        Ok(generated) => {
            if !generated.linted.diagnostics.is_empty() {
                err_raw!("{}", generated.linted.render());
            }
            Some(generated)
        }
        Err(linted) => {
            err_raw!("{}", linted.render());
            err!("error: not generating code: fix the errors above first");
            None
        }
    }
}

pub fn build(specs: &[PathBuf], out: &Path) -> ExitCode {
    let Some(generated) = lint_and_generate(specs) else { return ExitCode::from(1) };
    if let Err(code) = super::lock::record(&generated.linted, &[]) {
        return code;
    }
    let code = match write_if_changed(out, &generated.source) {
        Ok(true) => {
            err!("wrote {}", out.display());
            ExitCode::SUCCESS
        }
        Ok(false) => {
            err!("{} is up to date", out.display());
            ExitCode::SUCCESS
        }
        Err(error) => {
            err!("error: cannot write `{}`: {error}", out.display());
            ExitCode::from(2)
        }
    };
    // The process ends now: freeing the spec's many small allocations one by one would only
    // cost time, on one core (~3% of a 600-schema build's instructions).
    std::mem::forget(generated);
    code
}

pub fn check(specs: &[PathBuf], out: &Path) -> ExitCode {
    let Some(generated) = lint_and_generate(specs) else { return ExitCode::from(1) };
    // A missing, oversized or non-UTF-8 file is simply stale; a FIFO or device is bad input.
    let current = match prom_spec::input::read_text(out) {
        Ok(text) => text,
        Err(error @ ReadError::NotRegular { .. }) => {
            err!(
                "error: cannot read `{}`: {error}\n  = help: point --out at the generated Rust file",
                escape_controls(&out.display().to_string())
            );
            return ExitCode::from(2);
        }
        Err(_) => String::new(),
    };
    if current == generated.source {
        if let Some(code) = super::lock::stale(&generated.linted, specs) {
            return code;
        }
        err!("{} is up to date", out.display());
        return ExitCode::SUCCESS;
    }
    let first_difference = current
        .lines()
        .zip(generated.source.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| current.lines().count().min(generated.source.lines().count()));
    let specs: String = specs.iter().map(|s| format!(" --specs {}", s.display())).collect();
    err!(
        "error: {} is stale (first difference at line {}); run `prom-codegen build{} --out {}`",
        out.display(),
        first_difference + 1,
        escape_controls(&specs),
        out.display()
    );
    ExitCode::from(1)
}
