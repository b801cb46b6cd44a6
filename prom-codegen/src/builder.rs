//! The `build.rs` front end: generate into `OUT_DIR` and fail the build on lint errors.

use crate::generate::{generate, write_if_changed};
use std::path::{Path, PathBuf};

/// Generates code from specs in a build script.
///
/// ```no_run
/// // In build.rs's `main`; then in src/lib.rs:
/// // include!(concat!(env!("OUT_DIR"), "/prom_generated.rs"));
/// if let Err(error) = prom_codegen::Builder::new().with_specs("specs").generate() {
///     panic!("{error}");
/// }
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
        let generated = generate(&specs, root.as_deref());
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
