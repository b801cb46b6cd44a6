//! Strings: `minLength`, `maxLength`, `pattern`, `format`.
//!
//! Regexes are not compared symbolically. Instead the checker searches a small set of
//! candidate strings for a witness the writer accepts and the reader rejects (both checked
//! exactly); a witness proves the violation, no witness leaves it undecided.

use serde_json::Value;

use super::checker::{Checker, Loc};
use super::model::NodeId;
use super::report::Outcome;
use super::rule::Rule;
use super::writer::FlatWriter;

/// Patterns that match every string (ECMA-262 search semantics, no flags).
const UNIVERSAL_PATTERNS: &[&str] =
    &["", ".*", "^.*", ".*$", "[\\s\\S]*", "^[\\s\\S]*$", "(.*)", "^(.*)", "[^]*"];

/// Longest candidate the witness search builds.
const MAX_WITNESS_LEN: u64 = 4096;

const WITNESS_CHARS: &[char] = &['a', '0', 'A', ' ', '-', '_', '.', 'z', '9', '@', '\n', 'é', '#', '/'];

/// Format-shaped samples so that writers with a `format` can still yield witnesses.
const SAMPLES: &[&str] = &[
    "2024-01-01",
    "2024-01-01T00:00:00Z",
    "12:00:00Z",
    "a@example.com",
    "00000000-0000-0000-0000-000000000000",
    "https://example.com/x",
    "example.com",
    "127.0.0.1",
    "::1",
    "P1D",
];

impl Checker<'_> {
    /// A string the writer accepts whose length is in `lens` (or, with a pattern, that the
    /// pattern rejects).
    fn string_witness(&mut self, flat: &FlatWriter, lens: &[u64], pattern: Option<&str>) -> Option<String> {
        let mut candidates: Vec<String> = Vec::new();
        for &len in lens {
            if len > MAX_WITNESS_LEN {
                continue;
            }
            let n = usize::try_from(len).ok()?;
            for c in WITNESS_CHARS {
                candidates.push(std::iter::repeat_n(*c, n).collect());
            }
            candidates.push("a0".chars().cycle().take(n).collect());
        }
        for s in SAMPLES {
            let n = s.chars().count() as u64;
            let fits = if pattern.is_some() {
                n >= flat.string.min_len && flat.string.max_len.is_none_or(|m| n <= m)
            } else {
                lens.contains(&n)
            };
            if fits {
                candidates.push((*s).to_string());
            }
        }
        for s in candidates {
            if self.witness_budget == 0 {
                self.witness_exhausted = true;
                return None;
            }
            self.witness_budget -= 1;
            if let Some(p) = pattern
                && self.reader_oracle.matches(p, &s) != Some(false)
            {
                continue;
            }
            if self.writer_accepts(flat, &Value::String(s.clone())) == Some(true) {
                return Some(s);
            }
        }
        None
    }

    pub(super) fn check_string(&mut self, flat: &FlatWriter, reader_node: NodeId, loc: &Loc) -> Outcome {
        let rdoc = self.reader;
        let kw = rdoc.kw(reader_node);
        let mut out = Outcome::default();
        let shaped = !flat.string.patterns.is_empty() || !flat.string.formats.is_empty();
        if let Some(rmin) = kw.min_length
            && rmin > flat.string.min_len
        {
            let rule = self.pick(Rule::MinLengthRaised, Rule::MinLengthLowered);
            let (old, new) = self.old_new(flat.string.min_len, rmin);
            let lens: Vec<u64> = (flat.string.min_len..rmin).take(8).collect();
            let witness = if shaped { self.string_witness(flat, &lens, None) } else { Some(String::new()) };
            let verb = self.verb("raised", "lowered");
            out.extend(match witness {
                Some(_) => self.violation(
                    loc,
                    "minLength",
                    rule,
                    format!(
                        "minLength {verb} from {old} to {new}: {} as short as {} characters is rejected by {}",
                        self.wdata(),
                        flat.string.min_len,
                        self.rschema()
                    ),
                ),
                None => self.undecided(
                    loc,
                    "minLength",
                    rule,
                    format!(
                        "minLength {verb} from {old} to {new}; {} also has a pattern/format, so shorter strings may not exist",
                        self.wschema()
                    ),
                ),
            });
        }
        if let Some(rmax) = kw.max_length
            && flat.string.max_len.is_none_or(|m| m > rmax)
        {
            let rule = self.pick(Rule::MaxLengthLowered, Rule::MaxLengthRaised);
            let wdesc = flat.string.max_len.map_or("none".to_string(), |m| m.to_string());
            let (old, new) = self.old_new(wdesc, rmax.to_string());
            let first = rmax.saturating_add(1).max(flat.string.min_len);
            let lens: Vec<u64> = (first..first.saturating_add(8))
                .filter(|l| flat.string.max_len.is_none_or(|m| *l <= m))
                .collect();
            let witness = if shaped { self.string_witness(flat, &lens, None) } else { Some(String::new()) };
            let verb = self.verb("lowered", "raised");
            let span =
                flat.string.max_len.map_or("of any length".to_string(), |m| format!("up to {m} characters"));
            out.extend(match witness {
                Some(_) => self.violation(
                    loc,
                    "maxLength",
                    rule,
                    format!(
                        "maxLength {verb} from {old} to {new}: {} {span} is rejected by {}",
                        self.wdata(),
                        self.rschema()
                    ),
                ),
                None => self.undecided(
                    loc,
                    "maxLength",
                    rule,
                    format!(
                        "maxLength {verb} from {old} to {new}; {} also has a pattern/format, so longer strings may not exist",
                        self.wschema()
                    ),
                ),
            });
        }
        if let Some(p) = &kw.pattern
            && !flat.string.patterns.contains(p)
            && !UNIVERSAL_PATTERNS.contains(&p.as_str())
        {
            let upper = flat.string.max_len.unwrap_or(u64::MAX);
            let lens: Vec<u64> =
                (flat.string.min_len..=upper.min(flat.string.min_len.saturating_add(8))).collect();
            let witness = self.string_witness(flat, &lens, Some(p));
            let old_pat = flat.string.patterns.first().map_or("none".to_string(), |x| format!("{x:?}"));
            let (old, new) = self.old_new(old_pat, format!("{p:?}"));
            out.extend(match witness {
                Some(s) => {
                    let (rule, what) = if flat.string.patterns.is_empty() {
                        (
                            self.pick(Rule::PatternAdded, Rule::PatternRemoved),
                            format!("pattern {}", self.verb("added", "removed")),
                        )
                    } else {
                        (Rule::PatternChanged, format!("pattern changed from {old} to {new}"))
                    };
                    self.violation(
                        loc,
                        "pattern",
                        rule,
                        format!(
                            "{what}: {} requires {p:?}, but {} such as {s:?} does not match it",
                            self.rschema(),
                            self.wdata()
                        ),
                    )
                }
                None => {
                    let why = if self.witness_exhausted {
                        " (the search for a counter-example ran out of its budget: costly regexes)"
                    } else {
                        ""
                    };
                    self.undecided(
                        loc,
                        "pattern",
                        Rule::PatternChanged,
                        format!(
                            "pattern changed from {old} to {new}: the checker cannot decide whether every string {} allows matches {p:?}{why}",
                            self.wschema()
                        ),
                    )
                }
            });
        }
        if let Some(f) = &kw.format
            && !flat.string.formats.contains(f)
        {
            out.extend(match flat.string.formats.first() {
                None => {
                    let rule = self.pick(Rule::FormatAdded, Rule::FormatRemoved);
                    self.violation(
                        loc,
                        "format",
                        rule,
                        format!(
                            "format {f:?} {}: {} need not be a valid {f}, which {} requires",
                            self.verb("added", "removed"),
                            self.wdata(),
                            self.rschema()
                        ),
                    )
                }
                Some(wf) => {
                    let (old, new) = self.old_new(format!("{wf:?}"), format!("{f:?}"));
                    self.violation(
                        loc,
                        "format",
                        Rule::FormatChanged,
                        format!(
                            "format changed from {old} to {new}: {} is only known to be a valid {wf}",
                            self.wdata()
                        ),
                    )
                }
            });
        }
        out
    }
}
