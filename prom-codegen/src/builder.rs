//! The `build.rs` front end: generate into `OUT_DIR` and fail the build on lint errors.

use crate::emit::Origin;
use crate::generate::{generate_as, write_if_changed};
use std::path::{Path, PathBuf};

/// Generates code from specs in a build script.
///
/// ```no_run
/// // build.rs: on spec errors, prints them as `prom-codegen lint` does and exits 1.
/// prom_codegen::Builder::new().with_specs("specs").run();
/// // src/lib.rs:
/// // include!(concat!(env!("OUT_DIR"), "/prom_generated.rs"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct Builder {
    specs: Vec<PathBuf>,
    out_file: Option<PathBuf>,
}

/// Why a build could not generate code.
#[derive(Debug)]
pub enum BuildError {
    /// The spec has lint errors; the text is rendered like `prom-codegen lint`.
    Lint(String),
    /// Writing the output failed.
    Io(PathBuf, std::io::Error),
    /// `OUT_DIR` is not set (not running in a build script) and no output file was given.
    NoOutDir,
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildError::Lint(rendered) => write!(f, "the Prom specs have errors:\n\n{rendered}"),
            BuildError::Io(path, error) => write!(f, "cannot write `{}`: {error}", path.display()),
            BuildError::NoOutDir => {
                write!(f, "OUT_DIR is not set: call the Builder from build.rs or use `with_out_file`")
            }
        }
    }
}

impl std::error::Error for BuildError {}

impl Builder {
    /// A builder reading `specs/` unless told otherwise.
    pub fn new() -> Self {
        Builder::default()
    }

    /// Adds a spec file or directory (relative paths resolve against the crate root).
    pub fn with_specs(mut self, path: impl Into<PathBuf>) -> Self {
        self.specs.push(path.into());
        self
    }

    /// Writes to this file instead of `$OUT_DIR/prom_generated.rs`.
    pub fn with_out_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.out_file = Some(path.into());
        self
    }

    /// Lints and generates, for a build script's `main`: on failure prints the rendered
    /// diagnostics (or the I/O error) to stderr, coloured when `CARGO_TERM_COLOR=always` or
    /// `CLICOLOR_FORCE` ask for it, and exits with status 1 instead of panicking.
    /// Prints `cargo:rerun-if-changed` for every spec and schema file read.
    pub fn run(self) {
        if let Err(error) = self.generate() {
            let text = match &error {
                BuildError::Lint(rendered) => {
                    format!("{rendered}error: not generating code: fix the errors above first\n")
                }
                other => format!("error: {other}\n"),
            };
            let text = if color_requested(|name| std::env::var(name).ok()) { colorize(&text) } else { text };
            use std::io::Write as _;
            let mut stderr = std::io::stderr().lock();
            let _ = stderr.write_all(text.as_bytes());
            let _ = stderr.flush();
            std::process::exit(1);
        }
    }

    /// Lints and generates; prints `cargo:rerun-if-changed` for every spec and schema file read.
    pub fn generate(self) -> Result<PathBuf, BuildError> {
        let root = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
        let resolve = |p: &Path| match &root {
            Some(root) if p.is_relative() => root.join(p),
            _ => p.to_path_buf(),
        };
        let mut specs: Vec<PathBuf> = self.specs.iter().map(|p| resolve(p)).collect();
        if specs.is_empty() {
            specs.push(resolve(Path::new("specs")));
        }
        let out = match self.out_file {
            Some(out) => out,
            None => PathBuf::from(std::env::var_os("OUT_DIR").ok_or(BuildError::NoOutDir)?)
                .join("prom_generated.rs"),
        };
        // Rerun when a spec directory gains a file, not only when a known file changes.
        for spec in &specs {
            println!("cargo:rerun-if-changed={}", spec.display());
        }
        let generated = generate_as(&specs, root.as_deref(), &Origin::BuildScript);
        let linted = match &generated {
            Ok(g) => &g.linted,
            Err(linted) => linted,
        };
        for file in linted.spec.sources.files() {
            println!("cargo:rerun-if-changed={}", file.path.display());
        }
        let generated = generated.map_err(|linted| BuildError::Lint(linted.render()))?;
        for warning in &generated.linted.diagnostics {
            println!("cargo:warning={warning}");
        }
        write_if_changed(&out, &generated.source).map_err(|e| BuildError::Io(out.clone(), e))?;
        Ok(out)
    }
}

/// Whether the environment asks for colour though stderr is not a terminal (cargo captures a
/// build script's output): `NO_COLOR` wins, then `CLICOLOR_FORCE`, then `CARGO_TERM_COLOR`.
fn color_requested(var: impl Fn(&str) -> Option<String>) -> bool {
    if var("NO_COLOR").is_some_and(|v| !v.is_empty()) {
        return false;
    }
    if var("CLICOLOR_FORCE").is_some_and(|v| !v.is_empty() && v != "0") {
        return true;
    }
    var("CARGO_TERM_COLOR").is_some_and(|v| v == "always")
}

/// Colours the severity heads (`error[P101]:`, `warning[...]:`) and `help:` lines of rendered
/// diagnostics the way rustc does; the text is otherwise unchanged.
fn colorize(rendered: &str) -> String {
    const RED: &str = "\x1b[1;31m";
    const YELLOW: &str = "\x1b[1;33m";
    const CYAN: &str = "\x1b[1;36m";
    const RESET: &str = "\x1b[0m";
    let mut out = String::with_capacity(rendered.len() + 64);
    for line in rendered.split_inclusive('\n') {
        let colour = if line.starts_with("error") {
            Some(RED)
        } else if line.starts_with("warning") {
            Some(YELLOW)
        } else if line.trim_start().starts_with("= help") {
            Some(CYAN)
        } else {
            None
        };
        match (colour, line.find(':')) {
            (Some(colour), Some(colon)) => {
                out.push_str(colour);
                out.push_str(&line[..=colon]);
                out.push_str(RESET);
                out.push_str(&line[colon + 1..]);
            }
            _ => out.push_str(line),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_string())
    }

    #[test]
    fn colour_only_when_asked() {
        assert!(!color_requested(env(&[])));
        assert!(color_requested(env(&[("CARGO_TERM_COLOR", "always")])));
        assert!(!color_requested(env(&[("CARGO_TERM_COLOR", "auto")])));
        assert!(color_requested(env(&[("CLICOLOR_FORCE", "1")])));
        assert!(!color_requested(env(&[("CLICOLOR_FORCE", "0")])));
        assert!(!color_requested(env(&[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")])));
    }

    #[test]
    fn colour_marks_only_the_heads() {
        let text = "error[P101]: bad\n --> a.yaml:1:2\n  = help: fix it\n";
        assert_eq!(
            colorize(text),
            "\x1b[1;31merror[P101]:\x1b[0m bad\n --> a.yaml:1:2\n\x1b[1;36m  = help:\x1b[0m fix it\n"
        );
    }
}
