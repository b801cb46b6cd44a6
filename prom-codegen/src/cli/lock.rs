//! `prom-codegen lock` and the lock step of `build` and `check`: record every version's
//! fingerprint in `prom.lock`, or fail when it is not recorded yet.

use prom_spec::Linted;
use prom_spec::diag::escape_controls;
use prom_spec::lock::{self, Lock, Rewrite};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Records the versions of a clean spec in its lock (after `build` generated code, or for
/// `lock`); prints what changed and returns whether it wrote. Specs without a lock directory
/// are left alone.
pub fn record(linted: &Linted, rewrites: &[Rewrite]) -> Result<bool, ExitCode> {
    let Some(path) = &linted.lock_path else { return Ok(false) };
    let current = linted.lock.clone().unwrap_or_default();
    let updated = current.updated(&linted.spec, rewrites);
    let text = lock::render(&updated);
    match crate::write_if_changed(path, &text) {
        Ok(true) => {
            let added = lock::unlocked(&linted.spec, linted.lock.as_ref()).len();
            err!(
                "wrote {} ({} version(s) locked, {added} new{})",
                shown(path),
                count(&updated),
                if rewrites.is_empty() { String::new() } else { format!(", {} rewritten", rewrites.len()) }
            );
            Ok(true)
        }
        Ok(false) => Ok(false),
        Err(error) => {
            err!("error: cannot write the schema lock `{}`: {error}", shown(path));
            Err(ExitCode::from(2))
        }
    }
}

/// `check`'s lock step: exit 1 when a version of the spec is not locked yet.
pub fn stale(linted: &Linted, specs: &[PathBuf]) -> Option<ExitCode> {
    let path = linted.lock_path.as_ref()?;
    let missing = lock::unlocked(&linted.spec, linted.lock.as_ref());
    let (topic, number) = missing.first()?;
    let more = match missing.len() {
        1 => String::new(),
        n => format!(" and {} more", n - 1),
    };
    let what = if linted.lock.is_none() { "is missing" } else { "is stale" };
    let specs: String = specs.iter().map(|s| format!(" --specs {}", s.display())).collect();
    err!(
        "error: {} {what}: version {number} of topic `{}`{more} not locked\n  = help: run \
         `prom-codegen build{}` (or `prom-codegen lock{}`) and commit {}",
        shown(path),
        escape_controls(topic),
        escape_controls(&specs),
        escape_controls(&specs),
        shown(path)
    );
    Some(ExitCode::from(1))
}

/// `prom-codegen lock [--rewrite TOPIC[@VERSION]]...`.
pub fn run(specs: &[PathBuf], rewrites: &[Rewrite]) -> ExitCode {
    let linted = prom_spec::lint_paths_rewriting(specs, rewrites);
    let Some(path) = linted.lock_path.clone() else {
        err!(
            "error: the specs are named as files; prom.lock lives in a spec directory\n  = help: \
             name the directory that holds them, e.g. `prom-codegen lock --specs specs`"
        );
        return ExitCode::from(2);
    };
    let locked = linted.lock.clone().unwrap_or_default();
    for rewrite in rewrites {
        if !is_locked(&locked, rewrite) {
            err!(
                "error: nothing to rewrite: `{}` is not locked in {}\n  = help: --rewrite names a \
                 locked TOPIC@VERSION or TOPIC; new versions are locked without it",
                escape_controls(&rewrite.to_string()),
                shown(&path)
            );
            return ExitCode::from(2);
        }
    }
    if !linted.diagnostics.is_empty() {
        err_raw!("{}", linted.render());
    }
    if linted.has_errors() {
        err!("error: not writing {}: fix the errors above first", shown(&path));
        return ExitCode::from(1);
    }
    match record(&linted, rewrites) {
        Ok(wrote) => {
            if !wrote {
                err!("{} is up to date", shown(&path));
            }
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

fn is_locked(lock: &Lock, rewrite: &Rewrite) -> bool {
    lock.topics
        .get(&rewrite.topic)
        .is_some_and(|t| rewrite.version.is_none_or(|v| t.versions.contains_key(&v)))
}

fn count(lock: &Lock) -> usize {
    lock.topics.values().map(|t| t.versions.len()).sum()
}

fn shown(path: &Path) -> String {
    escape_controls(&path.display().to_string()).into_owned()
}
