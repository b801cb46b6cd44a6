//! Specs given as YAML text or paths: linted first, then converted to a [`System`].

use super::System;
use crate::error::{Error, Result};
use std::path::PathBuf;

/// Lints YAML text (`file` names it in diagnostics; `$ref`s resolve against the working
/// directory) and converts it; lint errors become [`Error::Spec`].
pub fn lint_yaml(file: &str, yaml: &str) -> Result<System> {
    finish(prom_spec::lint_str(file, yaml))
}

/// Lints spec files or directories and converts them; lint errors become [`Error::Spec`].
pub fn lint_paths(paths: &[PathBuf]) -> Result<System> {
    finish(prom_spec::lint_paths(paths))
}

fn finish(linted: prom_spec::Linted) -> Result<System> {
    if linted.has_errors() {
        return Err(Error::Spec { diagnostics: linted.render() });
    }
    Ok(System::from_spec(&linted.spec))
}
