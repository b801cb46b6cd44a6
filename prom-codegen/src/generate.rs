//! The one entry point every front end calls: lint, lower, emit.

use crate::emit::Origin;
use crate::{emit, ir};
use prom_spec::check::{Linted, lint_paths};
use std::path::{Path, PathBuf};

/// Generated code for a spec that linted clean.
#[derive(Debug)]
pub struct Generated {
    /// Formatted source with the `@generated` header, for files.
    pub source: String,
    /// The lint result (warnings may be present).
    pub linted: Linted,
}

/// Lints the specs at `paths` and generates code as `prom-codegen build --specs PATHS` does; on
/// lint errors returns the lint result. `base` makes the paths in the header relative, so output
/// is identical on every machine.
pub fn generate(paths: &[PathBuf], base: Option<&Path>) -> Result<Generated, Box<Linted>> {
    let specs = paths.iter().map(|p| slashed(relative(p, base))).collect();
    generate_as(paths, base, &Origin::Cli { specs })
}

/// Like [`generate`], with a header naming `origin` as what generated the file.
pub fn generate_as(
    paths: &[PathBuf],
    base: Option<&Path>,
    origin: &Origin,
) -> Result<Generated, Box<Linted>> {
    let linted = lint_paths(paths);
    if linted.has_errors() {
        return Err(Box::new(linted));
    }
    let model = ir::lower(&linted.spec);
    // The lock is read with the specs, but it is no input of the code: `build` rewrites it after
    // generating, and listing it would make the first `check` after that see a stale header.
    let inputs: Vec<String> = linted
        .spec
        .sources
        .files()
        .iter()
        .filter(|f| !prom_spec::lock::is_lock_file(&f.path))
        .map(|f| slashed(relative(&f.path, base)))
        .collect();
    let source = match emit::source(&model, &inputs, origin) {
        Ok(source) => source,
        // The emitter builds its tokens from valid identifiers, so this is a bug in Prom itself.
        Err(error) => {
            format!("compile_error!({:?});\n", format!("prom-codegen emitted invalid Rust: {error}"))
        }
    };
    Ok(Generated { source, linted })
}

/// A path as the header shows it: `/`-separated on every platform.
fn slashed(path: &Path) -> String {
    path.display().to_string().replace('\\', "/")
}

fn relative<'a>(path: &'a Path, base: Option<&Path>) -> &'a Path {
    base.and_then(|b| path.strip_prefix(b).ok()).unwrap_or(path)
}

/// Writes `text` to `path` unless it already holds exactly that; returns whether it wrote.
pub fn write_if_changed(path: &Path, text: &str) -> std::io::Result<bool> {
    match prom_spec::input::read_text(path) {
        Ok(current) if current == text => return Ok(false),
        // Writing into a FIFO or device would block or vanish: refuse it.
        Err(error @ prom_spec::input::ReadError::NotRegular { .. }) => {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, error.to_string()));
        }
        _ => {}
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text)?;
    Ok(true)
}
