//! Generates the `prom` module for `specs/` and compiles every ```rust block of README.md as part
//! of this crate (see `src/render.rs` for how each block is wrapped). A README problem is reported
//! with its README line and the build fails with status 1, without a panic.

#[path = "src/readme.rs"]
mod readme;
#[path = "src/render.rs"]
mod render;

use std::path::PathBuf;

fn main() {
    // The module snippets call `prom::...` on: what `<!-- snippet: build.rs -->` blocks show.
    prom_codegen::Builder::new().with_specs("specs").run();
    if let Err(message) = snippets() {
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}

/// Writes `OUT_DIR/README.md.rs` from the workspace's README.md.
fn snippets() -> Result<(), String> {
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").ok_or("CARGO_MANIFEST_DIR is not set")?);
    let out = PathBuf::from(std::env::var_os("OUT_DIR").ok_or("OUT_DIR is not set")?);
    let path = root.join("../../README.md");
    println!("cargo:rerun-if-changed={}", path.display());
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let blocks = readme::blocks(&text).map_err(|e| e.to_string())?;
    let rendered = render::render(text.lines().count(), &blocks, |code| syn::parse_file(code).is_ok())
        .map_err(|e| e.to_string())?;
    let target = out.join("README.md.rs");
    // Unchanged output keeps its timestamp, so an unrelated README edit recompiles nothing.
    if std::fs::read_to_string(&target).ok().as_deref() != Some(rendered.as_str()) {
        std::fs::write(&target, rendered).map_err(|e| format!("cannot write {}: {e}", target.display()))?;
    }
    Ok(())
}
