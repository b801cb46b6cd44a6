//! Numbers: bounds (inclusive/exclusive, draft-04 boolean forms were normalised by the model),
//! `multipleOf`, and integer-aware tightening (an integer above 1.5 is at least 2).
//!
//! The writer's numbers form either a continuum (plain `number`) or a lattice of multiples of
//! a step (integers and/or `multipleOf`); bounds are tightened onto the lattice before they
//! are compared, and the lowest/highest admissible point doubles as the witness.

use serde_json::Value;

use super::checker::{Checker, Loc};
use super::decimal::Dec;
use super::model::{Bound, Keywords, Kinds};
use super::report::Outcome;
use super::rule::Rule;
use super::writer::FlatWriter;

/// The numbers a writer may produce.
struct Domain {
    lo: Option<Bound>,
    hi: Option<Bound>,
    /// `Some(s)`: only multiples of `s`; `None`: any real in range.
    step: Option<Dec>,
}

/// How many writer numbers exist.
#[derive(Debug, PartialEq)]
enum Points {
    Empty,
    One(Dec),
    Many,
    Unknown,
}

fn domain(flat: &FlatWriter, kinds: Kinds) -> Domain {
    let integer = !kinds.has(Kinds::FRAC);
    let step = if integer {
        Some(match flat.numeric.multiple_of {
            // An integer that is a multiple of m is a multiple of lcm(m, 1).
            Some(m) => m.lcm(Dec::ONE).unwrap_or(Dec::ONE),
            None => Dec::ONE,
        })
    } else {
        flat.numeric.multiple_of
    };
    Domain { lo: flat.numeric.lower, hi: flat.numeric.upper, step }
}

/// Lowest lattice point satisfying a lower bound.
fn lattice_lo(b: Bound, step: Dec) -> Option<Dec> {
    let k =
        if b.exclusive { b.value.floor_index(step)?.checked_add(1)? } else { b.value.ceil_index(step)? };
    Dec::times(step, k)
}

/// Highest lattice point satisfying an upper bound.
fn lattice_hi(b: Bound, step: Dec) -> Option<Dec> {
    let k =
        if b.exclusive { b.value.ceil_index(step)?.checked_sub(1)? } else { b.value.floor_index(step)? };
    Dec::times(step, k)
}

fn points(d: &Domain) -> Points {
    match d.step {
        Some(s) => {
            let lo = match d.lo.map(|b| lattice_lo(b, s)) {
                Some(None) => return Points::Unknown,
                other => other.flatten(),
            };
            let hi = match d.hi.map(|b| lattice_hi(b, s)) {
                Some(None) => return Points::Unknown,
                other => other.flatten(),
            };
            match (lo, hi) {
                (Some(l), Some(h)) if l > h => Points::Empty,
                (Some(l), Some(h)) if l == h => Points::One(l),
                _ => Points::Many,
            }
        }
        None => match (d.lo, d.hi) {
            (Some(l), Some(h))
                if l.value > h.value || (l.value == h.value && (l.exclusive || h.exclusive)) =>
            {
                Points::Empty
            }
            (Some(l), Some(h)) if l.value == h.value => Points::One(l.value),
            _ => Points::Many,
        },
    }
}

/// Lowest writer number: the lattice point, or the continuum bound itself.
fn lowest(d: &Domain) -> Option<Option<Bound>> {
    match (d.step, d.lo) {
        (Some(s), Some(b)) => {
            Some(Some(Bound { value: lattice_lo(b, s)?, exclusive: false, keyword: b.keyword }))
        }
        (_, b) => Some(b),
    }
}

fn highest(d: &Domain) -> Option<Option<Bound>> {
    match (d.step, d.hi) {
        (Some(s), Some(b)) => {
            Some(Some(Bound { value: lattice_hi(b, s)?, exclusive: false, keyword: b.keyword }))
        }
        (_, b) => Some(b),
    }
}

fn show(b: Option<Bound>) -> String {
    match b {
        Some(b) => format!("{} {}", b.keyword, b.value),
        None => "none".into(),
    }
}

impl Checker<'_> {
    /// Number kinds (INT/FRAC) for which the merged writer has no value.
    pub(super) fn empty_numeric_kinds(&self, flat: &FlatWriter, k: Kinds) -> Kinds {
        let mut empty = Kinds::NONE;
        if points(&domain(flat, k)) == Points::Empty {
            return Kinds::NUM;
        }
        if k.has(Kinds::INT) && points(&domain(flat, Kinds::INT)) == Points::Empty {
            empty = empty.or(Kinds::INT);
        }
        if k.has(Kinds::FRAC) {
            let integral_step = flat.numeric.multiple_of.is_some_and(Dec::is_integer);
            let single_integer =
                matches!(points(&domain(flat, Kinds::NUM)), Points::One(x) if x.is_integer());
            if integral_step || single_integer {
                empty = empty.or(Kinds::FRAC);
            }
        }
        empty
    }

    /// All writer integers when there are at most `limit` of them.
    pub(super) fn small_integer_domain(&self, flat: &FlatWriter, limit: i128) -> Option<Vec<Value>> {
        let d = domain(flat, Kinds::INT);
        let step = d.step?;
        let lo = lattice_lo(d.lo?, step)?;
        let hi = lattice_hi(d.hi?, step)?;
        let (a, b) = (lo.ceil_index(step)?, hi.floor_index(step)?);
        if b.checked_sub(a)? >= limit {
            return None;
        }
        let mut out = Vec::new();
        for k in a..=b {
            let v = Dec::times(step, k)?.to_i128()?;
            out.push(Value::from(i64::try_from(v).ok()?));
        }
        Some(out)
    }

    /// Number of writer numbers: `None` unknown, `u128::MAX` for infinitely many.
    pub(super) fn numeric_count(&self, flat: &FlatWriter) -> Option<u128> {
        let d = domain(flat, flat.kinds);
        match points(&d) {
            Points::Empty => Some(0),
            Points::One(_) => Some(1),
            Points::Unknown => None,
            Points::Many => match (d.step, d.lo, d.hi) {
                (Some(s), Some(lo), Some(hi)) => {
                    let a = lattice_lo(lo, s)?.ceil_index(s)?;
                    let b = lattice_hi(hi, s)?.floor_index(s)?;
                    u128::try_from(b.checked_sub(a)?.checked_add(1)?).ok()
                }
                _ => Some(u128::MAX),
            },
        }
    }

    pub(super) fn check_numeric(&mut self, flat: &FlatWriter, reader_kw: &Keywords, loc: &Loc) -> Outcome {
        let mut out = Outcome::default();
        let d = domain(flat, flat.kinds);
        let pts = points(&d);
        if pts == Points::Empty {
            return out;
        }
        if let Some(mr) = reader_kw.multiple_of {
            out.extend(self.check_multiple_of(flat, &d, &pts, mr, loc));
        }
        let (Some(low), Some(high)) = (lowest(&d), highest(&d)) else {
            return self.undecided(
                loc,
                "",
                Rule::MultipleOfChanged,
                "numeric bounds overflow exact arithmetic".into(),
            );
        };
        if let Some(rl) = reader_kw.lower {
            let violated = match low {
                None => true,
                Some(wl) => wl.value < rl.value || (wl.value == rl.value && rl.exclusive && !wl.exclusive),
            };
            if violated {
                out.extend(self.bound_violation(true, flat.numeric.lower, rl, low, loc));
            }
        }
        if let Some(rh) = reader_kw.upper {
            let violated = match high {
                None => true,
                Some(wh) => wh.value > rh.value || (wh.value == rh.value && rh.exclusive && !wh.exclusive),
            };
            if violated {
                out.extend(self.bound_violation(false, flat.numeric.upper, rh, high, loc));
            }
        }
        out
    }

    fn bound_violation(
        &self,
        is_lower: bool,
        wdecl: Option<Bound>,
        rb: Bound,
        extreme: Option<Bound>,
        loc: &Loc,
    ) -> Outcome {
        // The keyword named is the one in the new schema (the reader backward, the writer forward).
        let new_kw = if self.perspective == super::checker::Perspective::Forward {
            wdecl.map_or(rb.keyword, |b| b.keyword)
        } else {
            rb.keyword
        };
        let exclusive_kw = new_kw.starts_with("exclusive");
        let rule = match (is_lower, exclusive_kw) {
            (true, false) => self.pick(Rule::MinimumRaised, Rule::MinimumLowered),
            (true, true) => self.pick(Rule::ExclusiveMinimumRaised, Rule::ExclusiveMinimumLowered),
            (false, false) => self.pick(Rule::MaximumLowered, Rule::MaximumRaised),
            (false, true) => self.pick(Rule::ExclusiveMaximumLowered, Rule::ExclusiveMaximumRaised),
        };
        let (old, new) = self.old_new(show(wdecl), show(Some(rb)));
        let witness = match extreme {
            Some(b) if b.exclusive => {
                format!("just {} {}", if is_lower { "above" } else { "below" }, b.value)
            }
            Some(b) => b.value.to_string(),
            None => format!("arbitrarily {}", if is_lower { "low" } else { "high" }),
        };
        let what = if is_lower { "lower" } else { "upper" };
        let verb = match (is_lower, self.perspective == super::checker::Perspective::Forward) {
            (true, false) | (false, true) => "raised",
            _ => "lowered",
        };
        let msg = format!(
            "{what} bound {verb} from {old} to {new}: {} with values {} {witness} is rejected by {}",
            self.wdata(),
            if is_lower { "as low as" } else { "as high as" },
            self.rschema()
        );
        let keyword = if self.perspective == super::checker::Perspective::Forward {
            wdecl.map_or(rb.keyword, |b| b.keyword)
        } else {
            rb.keyword
        };
        self.violation(loc, keyword, rule, msg)
    }

    fn check_multiple_of(&self, flat: &FlatWriter, d: &Domain, pts: &Points, mr: Dec, loc: &Loc) -> Outcome {
        let keyword = "multipleOf";
        let fits = d.step.map(|s| s.is_multiple_of(mr));
        if fits == Some(Some(true)) {
            return Outcome::default();
        }
        let wdesc = match (flat.numeric.multiple_of, d.step) {
            (Some(m), _) => m.to_string(),
            (None, Some(_)) => "none (integers)".into(),
            (None, None) => "none".into(),
        };
        let (old, new) = self.old_new(wdesc, mr.to_string());
        let proven = match pts {
            Points::Empty => return Outcome::default(),
            Points::One(x) => match x.is_multiple_of(mr) {
                Some(true) => return Outcome::default(),
                Some(false) => Some(format!("{x}")),
                None => None,
            },
            // Two consecutive multiples of the step cannot both be multiples of `mr` unless
            // the step itself is, so any range with two points contains a witness.
            Points::Many if fits == Some(Some(false)) || d.step.is_none() => Some(match (d.step, d.lo) {
                (Some(s), Some(lo)) => lattice_lo(lo, s)
                    .map(|l| format!("{l} or the next multiple of {s}"))
                    .unwrap_or_else(|| "some values".into()),
                (Some(s), None) => format!("{s} or {}", Dec::times(s, 2).unwrap_or(s)),
                (None, _) => "arbitrary fractions".into(),
            }),
            _ => None,
        };
        match proven {
            Some(witness) => self.violation(
                loc,
                keyword,
                Rule::MultipleOfChanged,
                format!(
                    "multipleOf changed from {old} to {new}: {} such as {witness} is not always a multiple of {mr} and is rejected by {}",
                    self.wdata(),
                    self.rschema()
                ),
            ),
            None => self.undecided(
                loc,
                keyword,
                Rule::MultipleOfChanged,
                format!("multipleOf changed from {old} to {new}; exact arithmetic overflowed, so the checker cannot decide"),
            ),
        }
    }
}
