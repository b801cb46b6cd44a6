//! The core relation "every instance valid under the writer is valid under the reader".
//!
//! The writer is expanded into a union of conjunctions (the `merge` module) and each conjunction
//! is compared against the reader node. Reader combinators are decomposed exactly where
//! possible; recursion through `$ref` is coinductive (a pair already under comparison is
//! assumed to hold), which is the standard sound treatment of recursive subtyping.

use std::collections::HashSet;

use serde_json::Value;

use super::checker::{Checker, Loc, Perspective};
use super::model::{Doc, Draft, Kinds, NodeId, RefTarget, json_eq, mentions_ref, plainly_accepts};
use super::report::{Outcome, Violation};
use super::rule::Rule;
use super::writer::{Conjunction, FlatWriter};

/// Unmodelled keywords whose meaning depends on their context (sibling keywords, the dynamic
/// scope), so the same keyword on the writer proves nothing about the reader's.
const CONTEXT_DEPENDENT: &[&str] =
    &["unevaluatedProperties", "unevaluatedItems", "$dynamicRef", "$recursiveRef"];

/// Whether the exact validator enforces `keyword` in documents of `draft`.
fn oracle_enforces(draft: Draft, keyword: &str) -> bool {
    let modern = matches!(draft, Draft::Draft201909 | Draft::Draft202012);
    match keyword {
        "if" | "then" | "else" => draft != Draft::Draft4 && draft != Draft::Draft6,
        "dependentSchemas" | "unevaluatedProperties" | "unevaluatedItems" => modern,
        "$recursiveRef" => draft == Draft::Draft201909,
        "$dynamicRef" => draft == Draft::Draft202012,
        "dependencies" => !modern,
        _ => false,
    }
}

impl<'a> Checker<'a> {
    /// Whether `b` (a node of the reader document) ⊆ `a` (a node of the writer document): the
    /// reverse relation, which `not A` (writer) ⊆ `not B` (reader) reduces to. Shares this
    /// check's work and witness budgets.
    pub(super) fn reverse_subset(&mut self, b: NodeId, a: NodeId) -> Outcome {
        let mut rev = Checker::new(self.reader, self.writer, Perspective::Subset);
        rev.witness_budget = self.witness_budget;
        rev.steps = self.steps;
        rev.depth = self.depth;
        let loc = Loc { writer: self.reader.node(b).ptr.clone(), reader: self.writer.node(a).ptr.clone() };
        let out = rev.sub(&Conjunction { parts: vec![b] }, a, &loc);
        self.witness_budget = rev.witness_budget;
        self.witness_exhausted |= rev.witness_exhausted;
        self.steps = rev.steps;
        if rev.budget_reported {
            self.budget_reported = true;
        }
        out
    }

    // ---- core recursion --------------------------------------------------------------

    /// A writer part textually equal to the reader node (and free of `$ref`s whose targets
    /// could differ) makes the comparison trivially hold.
    fn identical(&self, wp: NodeId, reader_node: NodeId) -> bool {
        match (self.writer.raw(wp), self.reader.raw(reader_node)) {
            (Some(a), Some(b)) => a == b && (self.same_document || !mentions_ref(a)),
            _ => false,
        }
    }

    /// Writer conjunction ⊆ reader node.
    pub(super) fn sub(&mut self, writer_conj: &Conjunction, reader_node: NodeId, loc: &Loc) -> Outcome {
        if self.reader.is_true(reader_node)
            || writer_conj.parts.iter().any(|p| self.identical(*p, reader_node))
        {
            return Outcome::default();
        }
        if let Some(o) = self.enter(loc) {
            return o;
        }
        let mut out = Outcome::default();
        for term in self.expand(writer_conj) {
            let merged = self.merge(&term);
            out.extend(self.sub_merged(&merged, reader_node, loc));
        }
        self.depth -= 1;
        out
    }

    /// One merged writer alternative ⊆ reader node.
    pub(super) fn sub_merged(&mut self, flat: &FlatWriter, reader_node: NodeId, loc: &Loc) -> Outcome {
        if flat.kinds.is_empty() || self.reader.is_true(reader_node) {
            return Outcome::default();
        }
        // Only an exact expansion guarantees the alternative lies inside each of its parts.
        if flat.approx.is_empty() && flat.parts.iter().any(|p| self.identical(*p, reader_node)) {
            return Outcome::default();
        }
        let mut parts = flat.parts.clone();
        parts.sort_unstable();
        parts.dedup();
        let key = (parts, flat.kinds.0, reader_node);
        if self.in_progress.contains(&key) {
            return Outcome::default();
        }
        if let Some(o) = self.enter(loc) {
            return o;
        }
        self.in_progress.insert(key.clone());
        let mut out = self.sub_merged_inner(flat, reader_node, loc);
        self.in_progress.remove(&key);
        self.depth -= 1;
        if let Some(why) = flat.approx.first() {
            out.downgrade(why);
        }
        out
    }

    fn sub_merged_inner(&mut self, flat: &FlatWriter, reader_node: NodeId, loc: &Loc) -> Outcome {
        let rdoc = self.reader;
        let kw = rdoc.kw(reader_node);
        if kw.boolean == Some(false) {
            return self.type_violation(flat.kinds, Kinds::NONE, loc);
        }
        if let Some(values) = self.writer_values(flat, reader_node) {
            return self.check_values(flat, &values, reader_node, loc);
        }
        let mut out = Outcome::default();
        match &kw.reference {
            Some(RefTarget::Local(t)) => {
                let tloc = loc.with_reader(&rdoc.node(*t).ptr);
                out.extend(self.sub_merged(flat, *t, &tloc));
            }
            Some(RefTarget::Remote(s)) => {
                let carried = flat
                    .parts
                    .iter()
                    .any(|p| self.writer.kw(*p).reference == Some(RefTarget::Remote(s.clone())));
                if !carried {
                    out.extend(self.undecided(
                        loc,
                        "$ref",
                        Rule::RefUnresolved,
                        format!(
                            "{} refers to {s:?} in another document, which the checker cannot fetch",
                            self.rschema()
                        ),
                    ));
                }
            }
            None => {}
        }
        for (i, b) in kw.all_of.iter().enumerate() {
            let bloc = loc.with_reader(&format!("{}/allOf/{i}", loc.reader));
            out.extend(self.sub_merged(flat, *b, &bloc));
        }
        if let Some(branches) = &kw.any_of {
            out.extend(self.reader_union(flat, branches, loc, false));
        }
        if let Some(branches) = &kw.one_of {
            out.extend(self.reader_union(flat, branches, loc, true));
        }
        if let Some(n) = kw.not {
            out.extend(self.reader_not(flat, n, loc));
        }
        out.extend(self.check_base(flat, reader_node, loc));
        out
    }

    /// Reports a writer type set the reader does not fully admit.
    pub(super) fn type_violation(&self, wk: Kinds, rk: Kinds, loc: &Loc) -> Outcome {
        let missing = wk.minus(rk);
        if missing.is_empty() {
            return Outcome::default();
        }
        let (old, new) = self.old_new(wk.describe(), rk.describe());
        let (rule, msg) = if wk.and(rk).is_empty() {
            (
                Rule::TypeChanged,
                format!(
                    "type changed from {old} to {new}: {} of type {} is rejected by {}",
                    self.wdata(),
                    missing.describe(),
                    self.rschema()
                ),
            )
        } else if missing == Kinds::FRAC {
            (
                self.pick(Rule::TypeNarrowed, Rule::TypeWidened),
                format!(
                    "type {} from {old} to {new}: {} may contain non-integer numbers, which {} rejects",
                    self.verb("narrowed", "widened"),
                    self.wdata(),
                    self.rschema()
                ),
            )
        } else {
            (
                self.pick(Rule::TypeNarrowed, Rule::TypeWidened),
                format!(
                    "type {} from {old} to {new}: {} of type {} is rejected by {}",
                    self.verb("narrowed", "widened"),
                    self.wdata(),
                    missing.describe(),
                    self.rschema()
                ),
            )
        };
        self.violation(loc, "type", rule, msg)
    }

    pub(super) fn verb(&self, backward: &'static str, forward: &'static str) -> &'static str {
        if self.perspective == Perspective::Forward { forward } else { backward }
    }

    /// The reader node's own (non-combinator) keywords.
    fn check_base(&mut self, flat: &FlatWriter, reader_node: NodeId, loc: &Loc) -> Outcome {
        let rdoc = self.reader;
        let kw = rdoc.kw(reader_node);
        let mut out = Outcome::default();
        for (k, v) in &kw.unknown {
            if !self.carried(flat, reader_node, k, v) {
                out.extend(self.undecided(
                    loc,
                    k,
                    Rule::UnknownKeyword,
                    format!(
                        "{} uses keyword `{k}`, which the checker does not analyse, and {} does not carry it identically",
                        self.rschema(),
                        self.wschema()
                    ),
                ));
            }
        }
        out.extend(self.type_violation(flat.kinds, kw.kinds, loc));
        let common = flat.kinds.and(kw.kinds);
        if common.is_empty() {
            return out;
        }
        let wc = flat.restrict(common);
        if let Some(values) = &kw.values {
            out.extend(self.reader_enum(&wc, values, kw.has_const, loc));
            return out;
        }
        if common.has(Kinds::NUM) {
            out.extend(self.check_numeric(&wc.restrict(common.and(Kinds::NUM)), kw, loc));
        }
        if common.has(Kinds::STR) {
            out.extend(self.check_string(&wc.restrict(Kinds::STR), reader_node, loc));
        }
        if common.has(Kinds::ARR) {
            out.extend(self.check_array(&wc.restrict(Kinds::ARR), reader_node, loc));
        }
        if common.has(Kinds::OBJ) {
            out.extend(self.check_object(&wc.restrict(Kinds::OBJ), reader_node, loc));
        }
        out
    }

    /// Whether the reader's unmodelled keyword `k: v` provably holds for all writer data because
    /// one writer part carries the same constraint. Sound only for keywords whose meaning
    /// depends on their own value alone: `unevaluated*` depend on their siblings and
    /// `$dynamicRef`/`$recursiveRef` on the dynamic scope, so those are never carried (two
    /// schemas with the same `unevaluatedItems` but different `prefixItems` differ), and
    /// `if`/`then`/`else` only as a whole from one writer part.
    fn carried(&self, flat: &FlatWriter, reader_node: NodeId, k: &str, v: &Value) -> bool {
        if CONTEXT_DEPENDENT.contains(&k) || mentions_ref(v) {
            return false;
        }
        let same = |part: NodeId, key: &str, value: Option<&Value>| {
            let found = self.writer.kw(part).unknown.iter().find(|(pk, _)| pk == key).map(|(_, pv)| pv);
            match (found, value) {
                (Some(a), Some(b)) => json_eq(a, b),
                (None, None) => true,
                _ => false,
            }
        };
        if matches!(k, "if" | "then" | "else") {
            let reader = &self.reader.kw(reader_node).unknown;
            let get = |key: &str| reader.iter().find(|(rk, _)| rk == key).map(|(_, rv)| rv);
            let (cond, then, other) = (get("if"), get("then"), get("else"));
            if cond.is_none() || then.is_some_and(mentions_ref) || other.is_some_and(mentions_ref) {
                // `then`/`else` without `if` assert nothing, but the writer must still agree.
                return flat.parts.iter().any(|p| same(*p, k, Some(v)));
            }
            // The writer part's (if → then) ∧ (¬if → else) must imply the reader's: same `if`,
            // and every branch the reader has, the part has identically.
            return flat.parts.iter().any(|p| {
                same(*p, "if", cond)
                    && then.is_none_or(|t| same(*p, "then", Some(t)))
                    && other.is_none_or(|e| same(*p, "else", Some(e)))
            });
        }
        flat.parts.iter().any(|p| same(*p, k, Some(v)))
    }

    // ---- enumerations ----------------------------------------------------------------

    /// Whether a value is valid under every writer part; `None` if the validator is unavailable.
    pub(super) fn writer_accepts(&mut self, flat: &FlatWriter, v: &Value) -> Option<bool> {
        if !flat.kinds.has(Kinds::of_value(v)) {
            return Some(false);
        }
        let wdoc = self.writer;
        for p in &flat.parts {
            if plainly_accepts(wdoc.kw(*p), v) {
                continue;
            }
            let ptr = &wdoc.node(*p).ptr;
            if !self.writer_oracle.valid_upper(ptr, v)? {
                return Some(false);
            }
        }
        Some(true)
    }

    /// The writer's values when it is a finite enumeration (its own `enum`/`const`, or a
    /// small null/boolean/integer domain when the reader enumerates); each flagged certain
    /// when the writer's validity was confirmed.
    fn writer_values(&mut self, flat: &FlatWriter, reader_node: NodeId) -> Option<Vec<(Value, bool)>> {
        let candidates: Vec<Value> = match &flat.enumeration.values {
            Some(v) => v.clone(),
            None => {
                let small = Kinds::NULL.or(Kinds::BOOL).or(Kinds::INT);
                if self.reader.kw(reader_node).values.is_none() || !flat.kinds.minus(small).is_empty() {
                    return None;
                }
                let mut vals = Vec::new();
                if flat.kinds.has(Kinds::NULL) {
                    vals.push(Value::Null);
                }
                if flat.kinds.has(Kinds::BOOL) {
                    vals.push(Value::Bool(false));
                    vals.push(Value::Bool(true));
                }
                if flat.kinds.has(Kinds::INT) {
                    vals.extend(self.small_integer_domain(flat, 64)?);
                }
                vals
            }
        };
        let mut out = Vec::new();
        for v in candidates {
            match self.writer_accepts(flat, &v) {
                Some(true) => out.push((v, true)),
                Some(false) => {}
                None => out.push((v, false)),
            }
        }
        Some(out)
    }

    fn check_values(
        &mut self,
        flat: &FlatWriter,
        values: &[(Value, bool)],
        reader_node: NodeId,
        loc: &Loc,
    ) -> Outcome {
        let rdoc = self.reader;
        let rptr = rdoc.node(reader_node).ptr.clone();
        let mut out = Outcome::default();
        // Findings past the first few are counted into one: removing 20k values of an enum
        // is one change, not 20k.
        let mut unlisted: Option<(Violation, bool, usize)> = None;
        for (v, certain) in values {
            // The common string enum needs no validator (building one is most of a comparison).
            let verdict = if plainly_accepts(rdoc.kw(reader_node), v) {
                Some(None)
            } else {
                self.reader_oracle.check(&rptr, v)
            };
            match verdict {
                Some(None) => {}
                Some(Some(keyword)) => {
                    let listed = out.violations.len() + out.undecided.len();
                    if listed >= MAX_VALUE_FINDINGS {
                        match &mut unlisted {
                            Some((_, all_certain, count)) => {
                                *count += 1;
                                *all_certain &= *certain;
                            }
                            None => {
                                let (rule, _) = self.value_rule(flat, &keyword, v, reader_node);
                                unlisted = Some((self.finding(loc, "", rule, String::new()), *certain, 1));
                            }
                        }
                        continue;
                    }
                    let (rule, msg) = self.value_rule(flat, &keyword, v, reader_node);
                    let f = self.finding(loc, "", rule, msg);
                    if *certain {
                        out.violations.push(f);
                    } else {
                        out.undecided.push(f);
                    }
                }
                None if self.reader_oracle.has_remote() => out.extend(self.undecided(
                    loc,
                    "",
                    Rule::RefUnresolved,
                    format!(
                        "whether {} accepts the value {v} depends on a schema in another document, which the checker cannot fetch",
                        self.rschema()
                    ),
                )),
                None => out.extend(self.undecided(
                    loc,
                    "",
                    Rule::ValueRejected,
                    format!(
                        "the exact validator could not compile {}, so the value {v} could not be checked",
                        self.rschema()
                    ),
                )),
            }
        }
        if let Some((mut f, all_certain, count)) = unlisted {
            f.message = format!(
                "{count} more value(s) {} allows are rejected by {} (the first {MAX_VALUE_FINDINGS} are listed)",
                self.wschema(),
                self.rschema()
            );
            if all_certain {
                out.violations.push(f);
            } else {
                out.undecided.push(f);
            }
        }
        for (ptr, k) in custom_keywords(rdoc, reader_node) {
            let carried = flat.unknown.iter().any(|(wk, _)| *wk == k);
            if !carried {
                out.undecided.push(Violation {
                    path: if self.perspective == Perspective::Forward {
                        self.path(loc, &k)
                    } else {
                        format!("{ptr}/{}", super::model::escape(&k))
                    },
                    rule: Rule::UnknownKeyword,
                    message: format!(
                        "{} uses keyword `{k}`, which the checker does not analyse",
                        self.rschema()
                    ),
                    direction: self.direction(),
                });
            }
        }
        out
    }

    fn value_rule(&self, flat: &FlatWriter, keyword: &str, v: &Value, reader_node: NodeId) -> (Rule, String) {
        let rkw = self.reader.kw(reader_node);
        let generic = format!(
            "{} allows the value {v} but {} rejects it (`{keyword}`)",
            self.wschema(),
            self.rschema()
        );
        let writer_enum = flat.enumeration.values.is_some();
        let rule = match keyword {
            "enum" if writer_enum => {
                let msg = format!(
                    "enum value {v} {}: {} may contain it, but {} rejects it",
                    self.verb("removed", "added"),
                    self.wdata(),
                    self.rschema()
                );
                return (self.pick(Rule::EnumNarrowed, Rule::EnumWidened), msg);
            }
            "enum" => self.pick(Rule::EnumAdded, Rule::EnumRemoved),
            "const" if flat.enumeration.has_const => {
                let msg = format!(
                    "const changed: {} may contain {v}, but {} requires {}",
                    self.wdata(),
                    self.rschema(),
                    rkw.values
                        .as_ref()
                        .and_then(|vs| vs.first())
                        .map(Value::to_string)
                        .unwrap_or_else(|| "another value".into())
                );
                return (Rule::ConstChanged, msg);
            }
            "const" if writer_enum => self.pick(Rule::EnumNarrowed, Rule::EnumWidened),
            "const" => self.pick(Rule::ConstAdded, Rule::ConstRemoved),
            "type" | "falseSchema" => self.pick(Rule::TypeNarrowed, Rule::TypeWidened),
            "minimum" => self.pick(Rule::MinimumRaised, Rule::MinimumLowered),
            "maximum" => self.pick(Rule::MaximumLowered, Rule::MaximumRaised),
            "exclusiveMinimum" => self.pick(Rule::ExclusiveMinimumRaised, Rule::ExclusiveMinimumLowered),
            "exclusiveMaximum" => self.pick(Rule::ExclusiveMaximumLowered, Rule::ExclusiveMaximumRaised),
            "multipleOf" => Rule::MultipleOfChanged,
            "minLength" => self.pick(Rule::MinLengthRaised, Rule::MinLengthLowered),
            "maxLength" => self.pick(Rule::MaxLengthLowered, Rule::MaxLengthRaised),
            "pattern" if flat.string.patterns.is_empty() => {
                self.pick(Rule::PatternAdded, Rule::PatternRemoved)
            }
            "pattern" => Rule::PatternChanged,
            "format" if flat.string.formats.is_empty() => self.pick(Rule::FormatAdded, Rule::FormatRemoved),
            "format" => Rule::FormatChanged,
            "minItems" => self.pick(Rule::MinItemsRaised, Rule::MinItemsLowered),
            "maxItems" => self.pick(Rule::MaxItemsLowered, Rule::MaxItemsRaised),
            "uniqueItems" => self.pick(Rule::UniqueItemsAdded, Rule::UniqueItemsRemoved),
            "additionalItems" | "items" => {
                self.pick(Rule::AdditionalItemsNarrowed, Rule::AdditionalItemsWidened)
            }
            "contains" => Rule::ContainsChanged,
            "minProperties" => self.pick(Rule::MinPropertiesRaised, Rule::MinPropertiesLowered),
            "maxProperties" => self.pick(Rule::MaxPropertiesLowered, Rule::MaxPropertiesRaised),
            "required" => self.pick(Rule::RequiredAdded, Rule::RequiredRemoved),
            "additionalProperties" => {
                self.pick(Rule::AdditionalPropertiesNarrowed, Rule::AdditionalPropertiesWidened)
            }
            "propertyNames" => Rule::PropertyNamesChanged,
            "anyOf" => self.pick(Rule::AnyOfBranchRemoved, Rule::AnyOfBranchAdded),
            "oneOf" => Rule::OneOfAmbiguous,
            "not" => Rule::NotChanged,
            _ => Rule::ValueRejected,
        };
        (rule, generic)
    }

    /// Reader restricts to an enumeration but the writer is not a (small) enumeration.
    fn reader_enum(&mut self, flat: &FlatWriter, values: &[Value], is_const: bool, loc: &Loc) -> Outcome {
        let keyword = if is_const { "const" } else { "enum" };
        let rule = if is_const {
            self.pick(Rule::ConstAdded, Rule::ConstRemoved)
        } else {
            self.pick(Rule::EnumAdded, Rule::EnumRemoved)
        };
        let list = short_list(values);
        if self.writer_has_more_values_than(flat, values.len()) {
            let msg = format!(
                "{keyword} {}: {} only accepts {list}, but {} may be any {}",
                self.verb("added", "removed"),
                self.rschema(),
                self.wdata(),
                flat.kinds.describe()
            );
            return self.violation(loc, keyword, rule, msg);
        }
        let msg = format!(
            "{} only accepts {list}; the checker cannot tell whether every value {} allows is among them",
            self.rschema(),
            self.wschema()
        );
        self.undecided(loc, keyword, rule, msg)
    }
}

/// Findings listed one by one per enumeration check; the rest are counted into one.
const MAX_VALUE_FINDINGS: usize = 20;

/// Values quoted in a message: a few, then how many more.
fn short_list(values: &[Value]) -> String {
    const SHOWN: usize = 10;
    let shown: Vec<String> = values
        .iter()
        .take(SHOWN)
        .map(|v| {
            let text = v.to_string();
            if text.chars().count() > 60 {
                format!("{}…", text.chars().take(60).collect::<String>())
            } else {
                text
            }
        })
        .collect();
    if values.len() > SHOWN {
        format!("[{}, … ({} values in all)]", shown.join(","), values.len())
    } else {
        format!("[{}]", shown.join(","))
    }
}

/// Keywords the exact validator ignores, reachable from a reader node.
fn custom_keywords(doc: &Doc, start: NodeId) -> Vec<(String, String)> {
    let mut seen = HashSet::new();
    let mut todo = vec![start];
    let mut out = Vec::new();
    while let Some(id) = todo.pop() {
        if !seen.insert(id) || seen.len() > 10_000 {
            continue;
        }
        let node = doc.node(id);
        let kw = &node.kw;
        for (k, _) in &kw.unknown {
            if !oracle_enforces(doc.draft, k) {
                out.push((node.ptr.clone(), k.clone()));
            }
        }
        todo.extend(kw.prefix_items.iter().copied());
        todo.extend(kw.items);
        todo.extend(kw.contains);
        todo.extend(kw.properties.iter().map(|(_, id)| *id));
        todo.extend(kw.pattern_properties.iter().map(|(_, id)| *id));
        todo.extend(kw.additional_properties);
        todo.extend(kw.property_names);
        todo.extend(kw.all_of.iter().copied());
        todo.extend(kw.any_of.iter().flatten().copied());
        todo.extend(kw.one_of.iter().flatten().copied());
        todo.extend(kw.not);
        if let Some(RefTarget::Local(t)) = kw.reference {
            todo.push(t);
        }
    }
    out
}
