//! Findings: what one directed comparison yields ([`Outcome`]) and what a check reports.

use super::rule::Rule;

/// Which directed check produced a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Old data read with the new schema.
    Backward,
    /// New data read with the old schema.
    Forward,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Violation {
    /// JSON pointer into the new schema ("" = root).
    pub path: String,
    /// Stable rule id.
    pub rule: Rule,
    /// Human sentence naming old/new and the values.
    pub message: String,
    /// Which check found it.
    pub direction: Direction,
}

/// Result of a compatibility check.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Report {
    /// Proven incompatibilities.
    pub violations: Vec<Violation>,
    /// Places where the checker cannot decide (it says so instead of guessing).
    pub undecided: Vec<Violation>,
}

impl Report {
    /// No violations and nothing undecided.
    pub fn is_compatible(&self) -> bool {
        self.violations.is_empty() && self.undecided.is_empty()
    }

    /// Adds the findings not already present (hashed: a big enum can yield many).
    pub(super) fn absorb(&mut self, o: Outcome) {
        fn key(v: &Violation) -> (String, Rule, String, Direction) {
            (v.path.clone(), v.rule, v.message.clone(), v.direction)
        }
        fn merge(list: &mut Vec<Violation>, new: Vec<Violation>) {
            let mut seen: std::collections::HashSet<_> = list.iter().map(key).collect();
            list.extend(new.into_iter().filter(|v| seen.insert(key(v))));
        }
        merge(&mut self.violations, o.violations);
        merge(&mut self.violations, o.proven);
        merge(&mut self.undecided, o.undecided);
    }
}

/// Findings of one comparison.
#[derive(Debug, Default, Clone)]
pub(super) struct Outcome {
    pub violations: Vec<Violation>,
    pub undecided: Vec<Violation>,
    /// Violations proven with the writer's approximations already accounted for (a writer
    /// `not A` against a reader `not B`), which [`Outcome::downgrade`] keeps.
    pub proven: Vec<Violation>,
}

impl Outcome {
    pub(super) fn is_clean(&self) -> bool {
        self.violations.is_empty() && self.undecided.is_empty() && self.proven.is_empty()
    }
    pub(super) fn extend(&mut self, o: Outcome) {
        self.violations.extend(o.violations);
        self.undecided.extend(o.undecided);
        self.proven.extend(o.proven);
    }
    /// Turns proven violations into undecided ones, explaining why the proof does not hold.
    pub(super) fn downgrade(&mut self, why: &str) {
        for mut v in self.violations.drain(..) {
            v.message = format!("{} (not proven: {why})", v.message);
            self.undecided.push(v);
        }
    }
}
