//! Lint: every rule over a loaded spec, all problems reported in one pass.

mod aggregates;
mod names;
mod open_fix;
mod readable;
mod refs;
mod schemas;
mod versions;

pub use crate::schema::FieldError;
pub use aggregates::is_aggregate_name;
pub use names::{RESERVED_HEADERS, is_header_name, is_topic_name, topic_name_error};
pub use refs::derived_topics;
pub use versions::upcast_proven;

use crate::diag::{self, Diagnostic};
use crate::spec::{self, Spec, Topic};
use crate::{input, lock, par};
use std::path::PathBuf;

/// Runs every lint rule on a loaded spec.
pub fn check(spec: &Spec) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    names::check(spec, &mut out);
    // Topics are checked independently (their schemas, versions and compatibility: most of
    // the work), on every core.
    let topics: Vec<&Topic> = spec.topics.values().collect();
    let checked = par::map(&topics, |topic| {
        let mut out = Vec::new();
        let usable = schemas::check_topic(topic, &mut out);
        versions::check_topic(topic, &usable, &mut out);
        readable::check_topic(topic, &usable, &mut out);
        (usable, out)
    });
    let mut usable = schemas::Usable::default();
    for (topic, result) in topics.iter().zip(checked) {
        match result {
            Ok((topic_usable, diagnostics)) => {
                usable.insert_topic(topic, &topic_usable);
                out.extend(diagnostics);
            }
            Err(par::Panicked(why)) => out.push(Diagnostic::error(
                diag::Code::InvalidSchema,
                &topic.name.span,
                format!("internal error while checking topic `{}`: {why}", topic.name.value),
            )),
        }
    }
    refs::check(spec, &usable, &mut out);
    aggregates::check(spec, &usable, &mut out);
    diag::sort(&mut out);
    out
}

/// Most diagnostics kept; a spec with more has one root cause repeated, and rendering
/// (or buffering) every repeat only buries it.
pub const MAX_DIAGNOSTICS: usize = 1000;

/// A spec with all its diagnostics: load problems and lint findings, sorted.
#[derive(Debug, Clone)]
pub struct Linted {
    /// The spec (usable for generation only when there are no errors).
    pub spec: Spec,
    /// Every problem, sorted by location (the first [`MAX_DIAGNOSTICS`]).
    pub diagnostics: Vec<Diagnostic>,
    /// Errors beyond [`MAX_DIAGNOSTICS`], counted but not kept.
    pub omitted_errors: usize,
    /// Warnings beyond [`MAX_DIAGNOSTICS`], counted but not kept.
    pub omitted_warnings: usize,
    /// Where the schema lock of these specs lives (`prom.lock` in the spec directory; none for
    /// specs named only as files, or given as text).
    pub lock_path: Option<PathBuf>,
    /// The lock read from [`Linted::lock_path`], when it exists and parses.
    pub lock: Option<lock::Lock>,
}

impl Linted {
    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.omitted_errors > 0 || diag::has_errors(&self.diagnostics)
    }

    /// All diagnostics rendered for a terminal, followed by a summary line.
    pub fn render(&self) -> String {
        let mut text: String =
            self.diagnostics.iter().map(|d| diag::render(d, &self.spec.sources) + "\n").collect();
        let shown_errors = self.diagnostics.iter().filter(|d| d.severity == diag::Severity::Error).count();
        let errors = shown_errors + self.omitted_errors;
        let warnings = self.diagnostics.len() - shown_errors + self.omitted_warnings;
        if let Some(note) = self.omitted_note() {
            text.push_str(&note);
            text.push('\n');
        }
        text.push_str(&format!("{errors} error(s), {warnings} warning(s)\n"));
        text
    }

    /// "… and N more" when diagnostics were left out.
    pub fn omitted_note(&self) -> Option<String> {
        let omitted = self.omitted_errors + self.omitted_warnings;
        (omitted > 0).then(|| {
            format!(
                "... and {omitted} more diagnostic(s) not shown ({} error(s), {} warning(s)); only the first {MAX_DIAGNOSTICS} are kept: fix those and run again",
                self.omitted_errors, self.omitted_warnings
            )
        })
    }
}

/// Loads spec files or directories and lints them, against their schema lock when they have
/// one (see [`lock`]).
pub fn lint_paths(paths: &[PathBuf]) -> Linted {
    lint_paths_rewriting(paths, &[])
}

/// Like [`lint_paths`], with the locked entries `rewrites` names released: they may differ
/// from the lock or be gone (`prom-codegen lock --rewrite`).
pub fn lint_paths_rewriting(paths: &[PathBuf], rewrites: &[lock::Rewrite]) -> Linted {
    finish(spec::load_paths(paths), lock::path_for(paths), rewrites)
}

/// Loads a spec from text (for tests, fuzzing and editors) and lints it.
pub fn lint_str(name: &str, text: &str) -> Linted {
    finish(spec::load_str(std::path::Path::new(name), text, std::path::Path::new(".")), None, &[])
}

/// Loads and lints a spec embedded as text (see [`spec::load_embedded`]).
pub fn lint_embedded(documents: &[&str], files: &[(&str, &str)]) -> Linted {
    finish(spec::load_embedded(documents, files), None, &[])
}

/// Reads the lock at `path` into the spec's sources (so its diagnostics render with snippets and
/// build scripts rerun when it changes); a missing lock is no error.
fn read_lock(path: &std::path::Path, loaded: &mut spec::Loaded) -> Option<lock::Lock> {
    match input::read_text(path) {
        Ok(text) => {
            let file = loaded.spec.sources.add(path.to_path_buf(), std::sync::Arc::from(text.as_str()));
            match lock::parse(&text, &file) {
                Ok(parsed) => Some(parsed),
                Err(error) => {
                    loaded.diagnostics.extend(error.diagnostics);
                    None
                }
            }
        }
        Err(error) if error.is_not_found() => None,
        Err(error) => {
            let file: std::sync::Arc<std::path::Path> = std::sync::Arc::from(path);
            loaded.diagnostics.push(
                Diagnostic::error(
                    diag::Code::Io,
                    &crate::source::Span::file_start(&file),
                    format!("cannot read the schema lock: {error}"),
                )
                .with_help("prom.lock must be the regular UTF-8 file `prom-codegen build` writes"),
            );
            None
        }
    }
}

fn finish(mut loaded: spec::Loaded, lock_path: Option<PathBuf>, rewrites: &[lock::Rewrite]) -> Linted {
    // Spec files that did not load would look like removed topics: the lock is compared only
    // with a spec that loaded whole.
    let load_failed = diag::has_errors(&loaded.diagnostics);
    let lock = lock_path.as_deref().and_then(|path| read_lock(path, &mut loaded));
    let mut diagnostics = loaded.diagnostics;
    diagnostics.extend(check(&loaded.spec));
    if let (Some(lock), false) = (&lock, load_failed) {
        lock::check(&loaded.spec, lock, rewrites, &mut diagnostics);
    }
    diag::sort(&mut diagnostics);
    let (mut omitted_errors, mut omitted_warnings) = (0, 0);
    for dropped in diagnostics.drain(diagnostics.len().min(MAX_DIAGNOSTICS)..) {
        match dropped.severity {
            diag::Severity::Error => omitted_errors += 1,
            diag::Severity::Warning => omitted_warnings += 1,
        }
    }
    Linted { spec: loaded.spec, diagnostics, omitted_errors, omitted_warnings, lock_path, lock }
}
