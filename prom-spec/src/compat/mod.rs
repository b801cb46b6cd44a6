//! JSON Schema compatibility checking of the kind a schema registry runs.
//!
//! The core relation is [`subset`]: every instance valid under the writer schema is valid
//! under the reader schema. [`check`] applies it per [`PairMode`]. Findings are split into
//! proven incompatibilities (`violations`) and places where the checker cannot decide
//! (`undecided`); it never guesses.

mod array;
mod checker;
mod combinators;
mod decimal;
mod error;
mod merge;
mod model;
mod numeric;
mod object;
mod oracle;
mod report;
mod rule;
mod string;
mod subset;
mod writer;

pub use checker::WITNESS_BUDGET;
pub use error::SchemaError;
pub use report::{Direction, Report, Violation};
pub use rule::Rule;

use serde_json::Value;

use checker::{Checker, Loc, Perspective};
use model::Doc;
use report::Outcome;
use writer::Conjunction;

/// Pairwise compatibility mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PairMode {
    /// Every instance valid under the old schema is valid under the new one.
    Backward,
    /// Every instance valid under the new schema is valid under the old one.
    Forward,
    /// Both backward and forward.
    Full,
}

/// Runs `f` on a scoped thread with a known, generous stack.
fn with_stack<T: Send>(f: impl FnOnce() -> Result<T, SchemaError> + Send) -> Result<T, SchemaError> {
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("prom-compat".into())
            .stack_size(crate::par::STACK_BYTES)
            .spawn_scoped(scope, f);
        match handle {
            Ok(h) => h.join().unwrap_or_else(|_| Err(internal_error())),
            Err(_) => Err(SchemaError::new("", "could not start the comparison thread")),
        }
    })
}

fn internal_error() -> SchemaError {
    SchemaError::new("", "internal error while comparing the schemas")
}

/// [`check`] on the current thread, which must be a [`crate::par`] worker (the comparison
/// needs its stack); saves a thread per comparison when linting many versions.
/// `witness_budget` is shared by the caller's comparisons (lint: all of one topic's version
/// pairs), so many pairs with costly regexes cannot add up either.
pub(crate) fn check_on_worker(
    old: &Value,
    new: &Value,
    mode: PairMode,
    witness_budget: &mut usize,
) -> Result<Report, SchemaError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check_inline(old, new, mode, witness_budget)))
        .unwrap_or_else(|_| Err(internal_error()))
}

/// [`subset`] on the current thread, which must be a [`crate::par`] worker.
pub(crate) fn subset_on_worker(writer: &Value, reader: &Value) -> Result<Report, SchemaError> {
    std::panic::catch_unwind(|| subset_inline(writer, reader)).unwrap_or_else(|_| Err(internal_error()))
}

/// One directed comparison; `witness_budget` is what the check run has left for the regex
/// witness search, and is updated.
fn run(writer: &Doc, reader: &Doc, perspective: Perspective, witness_budget: &mut usize) -> Outcome {
    let mut checker = Checker::new(writer, reader, perspective);
    checker.witness_budget = *witness_budget;
    let root = Conjunction { parts: vec![0] };
    let outcome = checker.sub(&root, 0, &Loc { writer: String::new(), reader: String::new() });
    *witness_budget = checker.witness_budget;
    outcome
}

/// Checks `new` against `old` under `mode`:
/// backward = every instance valid under `old` is valid under `new` (new readers read old data);
/// forward  = every instance valid under `new` is valid under `old` (old readers read new data);
/// full = both.
pub fn check(old: &Value, new: &Value, mode: PairMode) -> Result<Report, SchemaError> {
    with_stack(|| check_inline(old, new, mode, &mut WITNESS_BUDGET.clone()))
}

fn check_inline(old: &Value, new: &Value, mode: PairMode, budget: &mut usize) -> Result<Report, SchemaError> {
    let old_doc =
        Doc::parse(old).map_err(|e| SchemaError { message: format!("old schema: {}", e.message), ..e })?;
    let new_doc =
        Doc::parse(new).map_err(|e| SchemaError { message: format!("new schema: {}", e.message), ..e })?;
    let mut report = Report { violations: Vec::new(), undecided: Vec::new() };
    if matches!(mode, PairMode::Backward | PairMode::Full) {
        report.absorb(run(&old_doc, &new_doc, Perspective::Backward, budget));
    }
    if matches!(mode, PairMode::Forward | PairMode::Full) {
        report.absorb(run(&new_doc, &old_doc, Perspective::Forward, budget));
    }
    Ok(report)
}

/// Every instance valid under `writer` is valid under `reader` (the core relation; also used to
/// check that an upcaster's output schema satisfies the target version).
pub fn subset(writer: &Value, reader: &Value) -> Result<Report, SchemaError> {
    with_stack(|| subset_inline(writer, reader))
}

fn subset_inline(writer: &Value, reader: &Value) -> Result<Report, SchemaError> {
    let writer_doc = Doc::parse(writer)
        .map_err(|e| SchemaError { message: format!("writer schema: {}", e.message), ..e })?;
    let reader_doc = Doc::parse(reader)
        .map_err(|e| SchemaError { message: format!("reader schema: {}", e.message), ..e })?;
    let mut report = Report { violations: Vec::new(), undecided: Vec::new() };
    report.absorb(run(&writer_doc, &reader_doc, Perspective::Subset, &mut WITNESS_BUDGET.clone()));
    Ok(report)
}

#[cfg(test)]
mod tests;
