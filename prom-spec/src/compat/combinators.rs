//! Reader-side `anyOf`/`oneOf`/`not`, and the disjointness reasoning they (and writer
//! `oneOf`) rely on.
//!
//! Disjointness is proven only by cheap, sound arguments: disjoint JSON types, disjoint
//! enumerations, or a discriminator property whose finite value sets are disjoint.

use std::collections::{BTreeMap, HashSet};

use serde_json::Value;

use super::checker::{Checker, Loc};
use super::model::{Doc, Kinds, NodeId, RefTarget, json_eq, mentions_ref};
use super::report::Outcome;
use super::rule::Rule;
use super::writer::{FlatWriter, conj_false, conj_true};

/// What a schema is known to admit, shallowly.
#[derive(Debug, Clone)]
struct Shape {
    kinds: Kinds,
    values: Option<Vec<Value>>,
    required: Vec<String>,
    /// Finite value sets of properties.
    prop_values: BTreeMap<String, Vec<Value>>,
}

fn values_disjoint(a: &[Value], b: &[Value]) -> bool {
    !a.iter().any(|x| b.iter().any(|y| json_eq(x, y)))
}

fn shapes_disjoint(a: &Shape, b: &Shape) -> bool {
    let common = a.kinds.and(b.kinds);
    if common.is_empty() {
        return true;
    }
    let filter = |vals: &Option<Vec<Value>>, other: Kinds| {
        vals.as_ref().map(|v| v.iter().filter(|x| other.has(Kinds::of_value(x))).cloned().collect::<Vec<_>>())
    };
    let (av, bv) = (filter(&a.values, b.kinds), filter(&b.values, a.kinds));
    if av.as_ref().is_some_and(Vec::is_empty) || bv.as_ref().is_some_and(Vec::is_empty) {
        return true;
    }
    if let (Some(x), Some(y)) = (&av, &bv)
        && values_disjoint(x, y)
    {
        return true;
    }
    // A discriminator only separates objects.
    if common.minus(Kinds::OBJ).is_empty() {
        for (name, xs) in &a.prop_values {
            if let Some(ys) = b.prop_values.get(name)
                && (a.required.contains(name) || b.required.contains(name))
                && values_disjoint(xs, ys)
            {
                return true;
            }
        }
    }
    false
}

/// Follows `$ref` chains and `allOf` to collect what a node is known to admit; property
/// value sets are only looked up one level down (`with_props`), which is all a
/// discriminator needs. `seen` is shared by the whole walk so each node is visited once
/// (a revisited node reads as unconstrained, which only loses precision).
fn shape_of_node(doc: &Doc, id: NodeId, depth: usize, seen: &mut HashSet<NodeId>, with_props: bool) -> Shape {
    let mut s = Shape { kinds: Kinds::ALL, values: None, required: Vec::new(), prop_values: BTreeMap::new() };
    if depth > 16 || !seen.insert(id) {
        return s;
    }
    let kw = doc.kw(id);
    s.kinds = kw.kinds;
    s.values.clone_from(&kw.values);
    s.required.clone_from(&kw.required);
    if with_props {
        for (name, pid) in &kw.properties {
            let ps = shape_of_node(doc, *pid, depth + 1, &mut HashSet::new(), false);
            if let Some(v) = ps.values {
                s.prop_values.insert(name.clone(), v);
            }
        }
    }
    let mut children: Vec<NodeId> = kw.all_of.clone();
    if let Some(RefTarget::Local(t)) = kw.reference {
        children.push(t);
    }
    for c in children {
        let cs = shape_of_node(doc, c, depth + 1, seen, with_props);
        s.kinds = s.kinds.and(cs.kinds);
        if let Some(v) = cs.values {
            s.values = Some(super::model::intersect_values(s.values.take(), v));
        }
        s.required.extend(cs.required);
        for (k, v) in cs.prop_values {
            s.prop_values.entry(k).or_insert(v);
        }
    }
    if let Some(branches) = kw.any_of.as_ref().or(kw.one_of.as_ref()) {
        let mut k = Kinds::NONE;
        for b in branches {
            k = k.or(shape_of_node(doc, *b, depth + 1, seen, false).kinds);
        }
        s.kinds = s.kinds.and(k);
    }
    s
}

/// Kinds a reader node can accept at all.
pub(super) fn node_kinds(doc: &Doc, id: NodeId) -> Kinds {
    let s = shape_of_node(doc, id, 0, &mut HashSet::new(), false);
    match &s.values {
        Some(v) => v.iter().fold(Kinds::NONE, |k, x| k.or(Kinds::of_value(x))).and(s.kinds),
        None => s.kinds,
    }
}

impl Checker<'_> {
    fn shape_of_merged(&mut self, flat: &FlatWriter) -> Shape {
        let wdoc = self.writer;
        let mut prop_values = BTreeMap::new();
        for (name, conj) in &flat.object.props {
            let mut vals: Option<Vec<Value>> = None;
            for p in conj {
                let ps = shape_of_node(wdoc, *p, 0, &mut HashSet::new(), false);
                if let Some(v) = ps.values {
                    vals = Some(super::model::intersect_values(vals.take(), v));
                }
            }
            if let Some(v) = vals {
                prop_values.insert(name.clone(), v);
            }
        }
        Shape {
            kinds: flat.kinds,
            values: flat.enumeration.values.clone(),
            required: flat.object.required.iter().cloned().collect(),
            prop_values,
        }
    }

    /// Whether no value satisfies both the writer and the reader node.
    pub(super) fn disjoint(&mut self, flat: &FlatWriter, reader_node: NodeId) -> bool {
        let a = self.shape_of_merged(flat);
        let b = shape_of_node(self.reader, reader_node, 0, &mut HashSet::new(), true);
        shapes_disjoint(&a, &b)
    }

    /// Whether a writer `oneOf` can be read as `anyOf` without enlarging it.
    pub(super) fn writer_branches_disjoint(&self, branches: &[NodeId]) -> bool {
        let wdoc = self.writer;
        let shapes: Vec<Shape> =
            branches.iter().map(|b| shape_of_node(wdoc, *b, 0, &mut HashSet::new(), true)).collect();
        shapes.iter().enumerate().all(|(i, a)| shapes[i + 1..].iter().all(|b| shapes_disjoint(a, b)))
    }

    /// Writer ⊆ anyOf/oneOf of the reader, splitting the writer by JSON type first.
    pub(super) fn reader_union(
        &mut self,
        flat: &FlatWriter,
        branches: &[NodeId],
        loc: &Loc,
        one_of: bool,
    ) -> Outcome {
        let rdoc = self.reader;
        let keyword = if one_of { "oneOf" } else { "anyOf" };
        let mut out = Outcome::default();
        for unit in Kinds::UNITS {
            let k = flat.kinds.and(unit);
            if k.is_empty() {
                continue;
            }
            let wu = flat.restrict(k);
            let admitting: Vec<(usize, NodeId)> =
                branches.iter().copied().enumerate().filter(|(_, b)| node_kinds(rdoc, *b).has(k)).collect();
            if admitting.is_empty() {
                let rule = match one_of {
                    false => self.pick(Rule::AnyOfBranchRemoved, Rule::AnyOfBranchAdded),
                    true => self.pick(Rule::OneOfBranchRemoved, Rule::OneOfBranchAdded),
                };
                out.extend(self.violation(
                    loc,
                    keyword,
                    rule,
                    format!(
                        "no branch of the {keyword} in {} accepts {}, which {} may contain",
                        self.rschema(),
                        k.describe(),
                        self.wdata()
                    ),
                ));
                continue;
            }
            let mut results = Vec::new();
            for (i, b) in &admitting {
                let bloc = loc.with_reader(&format!("{}/{keyword}/{i}", loc.reader));
                let o = self.sub_merged(&wu, *b, &bloc);
                results.push((*i, *b, o));
            }
            let clean: Vec<usize> =
                results.iter().filter(|(_, _, o)| o.is_clean()).map(|(i, _, _)| *i).collect();
            if clean.is_empty() {
                if results.len() == 1 {
                    // The only branch that can hold this type decides it exactly.
                    if let Some((_, _, o)) = results.pop() {
                        out.extend(o);
                    }
                } else {
                    let idx: Vec<String> = admitting.iter().map(|(i, _)| i.to_string()).collect();
                    out.extend(self.undecided(
                        loc,
                        keyword,
                        if one_of { Rule::OneOfAmbiguous } else { Rule::AnyOfAmbiguous },
                        format!(
                            "{} of type {} fits no single branch of the {keyword} in {} (branches {} overlap), so the checker cannot decide whether their union covers it",
                            self.wdata(),
                            k.describe(),
                            self.rschema(),
                            idx.join(", ")
                        ),
                    ));
                }
                continue;
            }
            if !one_of {
                continue;
            }
            if clean.len() >= 2 {
                out.extend(self.violation(
                    loc,
                    keyword,
                    Rule::OneOfAmbiguous,
                    format!(
                        "{} of type {} matches both branch {} and branch {} of the oneOf in {}, so oneOf rejects it",
                        self.wdata(),
                        k.describe(),
                        clean[0],
                        clean[1],
                        self.rschema()
                    ),
                ));
                continue;
            }
            for (i, b) in &admitting {
                if *i == clean[0] || self.disjoint(&wu, *b) {
                    continue;
                }
                out.extend(self.undecided(
                    loc,
                    keyword,
                    Rule::OneOfAmbiguous,
                    format!(
                        "{} fits branch {} of the oneOf in {}, but the checker cannot show it never also matches branch {i}",
                        self.wdata(),
                        clean[0],
                        self.rschema()
                    ),
                ));
            }
        }
        out
    }

    /// Writer ⊆ not(n), i.e. writer ∩ n = ∅.
    pub(super) fn reader_not(&mut self, flat: &FlatWriter, n: NodeId, loc: &Loc) -> Outcome {
        let (wdoc, rdoc) = (self.writer, self.reader);
        if let Some(rn) = rdoc.raw(n)
            && !mentions_ref(rn)
            && flat.nots.iter().any(|x| wdoc.raw(*x) == Some(rn))
        {
            return Outcome::default();
        }
        if rdoc.is_false(n) || self.disjoint(flat, n) {
            return Outcome::default();
        }
        // Writer `not A`, reader `not B`: every value outside A is outside B iff B ⊆ A.
        let mut refuted = None;
        for a in flat.nots.clone() {
            let rev = self.reverse_subset(n, a);
            if rev.is_clean() {
                return Outcome::default();
            }
            if !rev.violations.is_empty() && self.only_not(flat, a) {
                refuted = Some(a);
            }
        }
        if refuted.is_some() {
            // The writer is exactly `not A` and some value of B lies outside A: the writer
            // accepts it and the reader's `not B` rejects it.
            let f = self.finding(
                loc,
                "not",
                Rule::NotChanged,
                format!(
                    "the `not` in {} rejects values that {} allows: its negated schema is not contained in the one {} negates",
                    self.rschema(),
                    self.wschema(),
                    self.wschema()
                ),
            );
            return Outcome { proven: vec![f], ..Outcome::default() };
        }
        let nloc = loc.with_reader(&format!("{}/not", loc.reader));
        if flat.approx.is_empty() && self.sub_merged(flat, n, &nloc).is_clean() {
            return self.violation(
                loc,
                "not",
                Rule::NotChanged,
                format!("the `not` in {} rejects everything {} allows here", self.rschema(), self.wschema()),
            );
        }
        self.undecided(
            loc,
            "not",
            Rule::NotChanged,
            format!(
                "the checker cannot decide whether {} overlaps the `not` of {}",
                self.wdata(),
                self.rschema()
            ),
        )
    }

    /// Whether the merged writer is exactly `not a`: a single part whose only constraint is
    /// that `not`, over every JSON type.
    fn only_not(&self, flat: &FlatWriter, a: NodeId) -> bool {
        let [part] = flat.parts[..] else { return false };
        let kw = self.writer.kw(part);
        let only_keyword = self
            .writer
            .raw(part)
            .and_then(Value::as_object)
            .is_some_and(|map| map.keys().all(|k| k == "not" || super::model::is_annotation(k)));
        kw.not == Some(a) && only_keyword && flat.kinds == Kinds::ALL && flat.approx.len() == 1
    }

    /// Whether the writer provably has more than `n` distinct values.
    pub(super) fn writer_has_more_values_than(&mut self, flat: &FlatWriter, n: usize) -> bool {
        let wdoc = self.writer;
        let mut total: u128 = 0;
        let infinite = u128::MAX;
        let mut add = |c: u128| total = total.saturating_add(c);
        if flat.kinds.has(Kinds::NULL) {
            add(1);
        }
        if flat.kinds.has(Kinds::BOOL) {
            add(2);
        }
        if flat.kinds.has(Kinds::NUM)
            && let Some(c) = self.numeric_count(flat)
        {
            add(c);
        }
        if flat.kinds.has(Kinds::STR) && flat.string.patterns.is_empty() && flat.string.formats.is_empty() {
            add(if flat.string.max_len == Some(0) { 1 } else { infinite });
        }
        if flat.kinds.has(Kinds::ARR)
            && self.max_items_eff(flat).is_none_or(|m| m >= 1)
            && conj_true(wdoc, flat.item(0))
        {
            add(infinite);
        }
        if flat.kinds.has(Kinds::OBJ)
            && flat.object.pattern_props.is_empty()
            && flat.object.property_names.is_empty()
            && conj_true(wdoc, &flat.object.addl)
            && flat.object.max_props.is_none()
            && !conj_false(wdoc, &flat.object.addl)
        {
            add(infinite);
        }
        total > n as u128
    }
}
