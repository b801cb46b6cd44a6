//! Finds and lints the user crate's specs, once per change (proc-macro processes outlive one
//! expansion, and every derive in a crate reads the same specs).

use prom_spec::Linted;
use prom_spec::source::Span;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

/// The linted specs of the crate being compiled.
pub struct Specs {
    /// The crate root (`CARGO_MANIFEST_DIR`).
    pub root: PathBuf,
    /// Where the specs are (for messages), relative to the crate root when possible.
    pub shown: String,
    /// Path prefix of the generated module (`crate::prom`).
    pub module: String,
    /// The lint result.
    pub linted: Linted,
}

impl Specs {
    /// `file:line:col` of a span, relative to the crate root.
    pub fn at(&self, span: &Span) -> String {
        let file = span.file.strip_prefix(&self.root).unwrap_or(&span.file);
        format!("{}:{}:{}", file.display(), span.start.line, span.start.column)
    }

    /// `const _: &[u8] = include_bytes!(...)` for every file read, so editing a spec rebuilds.
    pub fn tracking(&self) -> proc_macro2::TokenStream {
        let files = self.linted.spec.sources.files().iter().filter_map(|f| {
            let absolute = if f.path.is_absolute() { f.path.clone() } else { self.root.join(&f.path) };
            absolute.to_str().map(str::to_owned)
        });
        quote::quote!(#(const _: &[u8] = include_bytes!(#files);)*)
    }

    /// One line summarising the spec's errors, for macros that need a clean spec.
    pub fn error_summary(&self) -> Option<String> {
        let errors: Vec<_> = self
            .linted
            .diagnostics
            .iter()
            .filter(|d| d.severity == prom_spec::diag::Severity::Error)
            .collect();
        let first = errors.first()?;
        Some(format!(
            "the Prom specs in `{}` have {} error(s); first: {}: {} (run `prom-codegen lint {}` for all)",
            self.shown,
            errors.len(),
            self.at(&first.span),
            prom_spec::diag::escape_controls(&first.message),
            self.shown
        ))
    }
}

type Cache = Mutex<HashMap<PathBuf, (Vec<(PathBuf, Option<SystemTime>)>, Arc<Specs>)>>;

/// Loads the specs named by `explicit`, else `[package.metadata.prom] specs`, else `specs/`.
pub fn load(explicit: Option<&str>) -> Result<Arc<Specs>, String> {
    // trybuild compiles cases in a copy of the crate under target/; its test points us back.
    let root = std::env::var_os("PROM_MANIFEST_DIR_OVERRIDE")
        .or_else(|| std::env::var_os("CARGO_MANIFEST_DIR"))
        .map(PathBuf::from)
        .ok_or("CARGO_MANIFEST_DIR is not set; Prom's macros run inside cargo builds")?;
    let metadata = metadata(&root)?;
    let shown = explicit.map(str::to_owned).or(metadata.specs).unwrap_or_else(|| "specs".to_owned());
    let path = root.join(&shown);
    if !path.exists() {
        return Err(format!(
            "no Prom specs at `{}`: create `{shown}/` next to Cargo.toml, or point \
             `[package.metadata.prom] specs = \"...\"` at them",
            path.display()
        ));
    }
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Cache::default);
    if let Ok(cache) = cache.lock()
        && let Some((stamps, specs)) = cache.get(&path)
        && stamps.iter().all(|(file, stamp)| modified(file) == *stamp)
        && listing(&path) == listing_of(stamps)
    {
        return Ok(specs.clone());
    }
    let linted = prom_spec::lint_paths(std::slice::from_ref(&path));
    let stamps = linted.spec.sources.files().iter().map(|f| (f.path.clone(), modified(&f.path))).collect();
    let module = metadata.module.unwrap_or_else(|| "crate::prom".to_owned());
    let specs = Arc::new(Specs { root, shown, module, linted });
    if let Ok(mut cache) = cache.lock() {
        cache.insert(path, (stamps, specs.clone()));
    }
    Ok(specs)
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The spec files a directory holds now (a new file must invalidate the cache).
fn listing(path: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(path) else { return vec![path.to_path_buf()] };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    files
}

fn listing_of(stamps: &[(PathBuf, Option<SystemTime>)]) -> Vec<PathBuf> {
    let Some((first, _)) = stamps.first() else { return Vec::new() };
    let dir = first.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut files: Vec<PathBuf> = stamps
        .iter()
        .map(|(p, _)| p.clone())
        .filter(|p| {
            p.parent() == Some(dir.as_path()) && p.extension().is_some_and(|e| e == "yaml" || e == "yml")
        })
        .collect();
    files.sort();
    files
}

#[derive(Default)]
struct Metadata {
    specs: Option<String>,
    module: Option<String>,
}

/// Reads `[package.metadata.prom]` from the crate's Cargo.toml.
fn metadata(root: &Path) -> Result<Metadata, String> {
    let manifest = root.join("Cargo.toml");
    let text = match prom_spec::input::read_text(&manifest) {
        Ok(text) => text,
        Err(error) if error.is_not_found() => return Ok(Metadata::default()),
        Err(error) => return Err(format!("cannot read {}: {error}", manifest.display())),
    };
    let table: toml::Table = text.parse().map_err(|e| format!("cannot parse {}: {e}", manifest.display()))?;
    let prom = table.get("package").and_then(|p| p.get("metadata")).and_then(|m| m.get("prom"));
    let Some(prom) = prom else { return Ok(Metadata::default()) };
    let string = |key: &str| -> Result<Option<String>, String> {
        match prom.get(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => {
                Err(format!("`[package.metadata.prom] {key}` in {} must be a string", manifest.display()))
            }
        }
    };
    Ok(Metadata { specs: string("specs")?, module: string("module")? })
}
