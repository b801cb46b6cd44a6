//! The state of one directed comparison and the wording of its findings.
//!
//! Lower than every keyword module: they all extend [`Checker`] with `impl` blocks, and none
//! of them needs another's module to name the state.

use std::collections::HashSet;
use std::fmt::Display;

use super::model::{Doc, NodeId};
use super::oracle::Oracle;
use super::report::{Direction, Outcome, Violation};
use super::rule::Rule;

/// Work budget: node comparisons before giving up with an undecided finding.
const STEP_BUDGET: usize = 20_000;
/// Candidate strings the regex witness search tests per check run (one `compat` run, or all
/// version pairs of one topic in lint), over all properties.
pub const WITNESS_BUDGET: usize = 1_000;
/// Recursion depth of the comparison itself.
const MAX_CHECK_DEPTH: usize = 400;

/// Spec keywords the structural comparison does not model; on a writer they shrink the
/// instance set in unmodelled ways.
pub(super) const SPEC_UNSUPPORTED: &[&str] = &[
    "if",
    "then",
    "else",
    "dependentSchemas",
    "dependencies",
    "unevaluatedProperties",
    "unevaluatedItems",
    "$dynamicRef",
    "$recursiveRef",
];

/// Who is the writer and who the reader, for wording and rule choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Perspective {
    /// writer = old, reader = new.
    Backward,
    /// writer = new, reader = old.
    Forward,
    /// writer/reader with no history (the `subset` entry point).
    Subset,
}

/// Location of the comparison on each side.
#[derive(Debug, Clone)]
pub(super) struct Loc {
    /// Logical pointer into the writer.
    pub writer: String,
    /// Pointer into the reader.
    pub reader: String,
}

impl Loc {
    /// One level down on both sides (each segment starts with `/`).
    pub(super) fn child(&self, writer_segment: &str, reader_segment: &str) -> Loc {
        Loc {
            writer: format!("{}{writer_segment}", self.writer),
            reader: format!("{}{reader_segment}", self.reader),
        }
    }
    /// The same writer location with another reader pointer.
    pub(super) fn with_reader(&self, reader: &str) -> Loc {
        Loc { writer: self.writer.clone(), reader: reader.to_string() }
    }
}

/// State of one directed comparison.
pub(super) struct Checker<'a> {
    /// The schema whose instances are produced (old data for backward, new for forward).
    pub writer: &'a Doc<'a>,
    /// The schema that must accept them.
    pub reader: &'a Doc<'a>,
    /// Exact validator of the writer document (value membership, regex evaluation).
    pub writer_oracle: Oracle<'a>,
    /// Exact validator of the reader document.
    pub reader_oracle: Oracle<'a>,
    /// Which of writer/reader is old and new, for wording and rule choice.
    pub perspective: Perspective,
    /// (writer parts, writer kinds, reader node) pairs under comparison: met again, they are
    /// assumed to hold (coinduction through recursive `$ref`s).
    pub(super) in_progress: HashSet<(Vec<NodeId>, u8, NodeId)>,
    /// Node comparisons so far (against [`STEP_BUDGET`]).
    pub(super) steps: usize,
    /// Current recursion depth (against [`MAX_CHECK_DEPTH`]).
    pub(super) depth: usize,
    /// The budget finding was already reported (it is reported once).
    pub(super) budget_reported: bool,
    /// Candidate strings the regex witness search may still test in this check run (shared by
    /// every property, so many costly patterns cannot add up).
    pub witness_budget: usize,
    /// Whether the witness search stopped for lack of budget.
    pub witness_exhausted: bool,
    /// Same document on both sides: textually equal subschemas are then equal even with `$ref`s.
    pub(super) same_document: bool,
}

impl<'a> Checker<'a> {
    pub(super) fn new(writer: &'a Doc<'a>, reader: &'a Doc<'a>, perspective: Perspective) -> Self {
        Checker {
            writer,
            reader,
            writer_oracle: Oracle::new(writer),
            reader_oracle: Oracle::new(reader),
            perspective,
            in_progress: HashSet::new(),
            steps: 0,
            depth: 0,
            budget_reported: false,
            witness_budget: WITNESS_BUDGET,
            witness_exhausted: false,
            same_document: writer.root == reader.root,
        }
    }

    // ---- wording helpers -------------------------------------------------------------

    pub(super) fn direction(&self) -> Direction {
        match self.perspective {
            Perspective::Forward => Direction::Forward,
            _ => Direction::Backward,
        }
    }
    /// Rule for the backward reading (writer = old) or the forward one (writer = new).
    pub(super) fn pick(&self, backward: Rule, forward: Rule) -> Rule {
        if self.perspective == Perspective::Forward { forward } else { backward }
    }
    /// Orders a (writer, reader) pair as (old, new).
    pub(super) fn old_new<T: Display>(&self, writer_value: T, reader_value: T) -> (String, String) {
        if self.perspective == Perspective::Forward {
            (reader_value.to_string(), writer_value.to_string())
        } else {
            (writer_value.to_string(), reader_value.to_string())
        }
    }
    pub(super) fn wdata(&self) -> &'static str {
        match self.perspective {
            Perspective::Backward => "old data",
            Perspective::Forward => "new data",
            Perspective::Subset => "writer data",
        }
    }
    pub(super) fn rschema(&self) -> &'static str {
        match self.perspective {
            Perspective::Backward => "the new schema",
            Perspective::Forward => "the old schema",
            Perspective::Subset => "the reader schema",
        }
    }
    pub(super) fn wschema(&self) -> &'static str {
        match self.perspective {
            Perspective::Backward => "the old schema",
            Perspective::Forward => "the new schema",
            Perspective::Subset => "the writer schema",
        }
    }
    /// Pointer into the new schema (the reader for backward/subset, the writer for forward).
    pub(super) fn path(&self, loc: &Loc, keyword: &str) -> String {
        let base = if self.perspective == Perspective::Forward { &loc.writer } else { &loc.reader };
        if keyword.is_empty() { base.clone() } else { format!("{base}/{}", super::model::escape(keyword)) }
    }
    pub(super) fn finding(&self, loc: &Loc, keyword: &str, rule: Rule, message: String) -> Violation {
        Violation { path: self.path(loc, keyword), rule, message, direction: self.direction() }
    }
    pub(super) fn violation(&self, loc: &Loc, keyword: &str, rule: Rule, message: String) -> Outcome {
        Outcome { violations: vec![self.finding(loc, keyword, rule, message)], ..Outcome::default() }
    }
    pub(super) fn undecided(&self, loc: &Loc, keyword: &str, rule: Rule, message: String) -> Outcome {
        Outcome { undecided: vec![self.finding(loc, keyword, rule, message)], ..Outcome::default() }
    }

    /// Counts one comparison step and enters one level; `Some` (a budget finding, reported
    /// once) when the budget is spent.
    pub(super) fn enter(&mut self, loc: &Loc) -> Option<Outcome> {
        self.steps += 1;
        if self.steps > STEP_BUDGET || self.depth >= MAX_CHECK_DEPTH {
            if self.budget_reported {
                return Some(Outcome::default());
            }
            self.budget_reported = true;
            return Some(self.undecided(
                loc,
                "",
                Rule::ComplexityLimit,
                "the comparison exceeded the checker's depth/work budget here and was not finished".into(),
            ));
        }
        self.depth += 1;
        None
    }
}
