//! The writer side: expansion of `$ref`/`allOf`/`anyOf`/`oneOf` into a union of conjunctions
//! and merging of each conjunction into one flat view.
//!
//! Whenever the flat view has to over-approximate the writer (a `not`, an unsupported
//! keyword, an unprovably-disjoint `oneOf`, ...) that is recorded in `approx`: conclusions of
//! compatibility stay sound because the writer only grew, but violations found against the
//! enlarged writer are not proofs and get downgraded to undecided.

use std::collections::BTreeSet;

use super::checker::{Checker, SPEC_UNSUPPORTED};
use super::model::{Bound, Kinds, NodeId, RefTarget, intersect_values};
use super::writer::{Conjunction, FlatWriter, conj_false, min_opt};

/// Most alternatives a writer may expand into before it is treated as unconstrained.
const MAX_TERMS: usize = 64;

/// One alternative of an expanded writer: the conjunction of the parts' own keywords.
#[derive(Debug, Clone, Default)]
pub(super) struct Term {
    pub parts: Vec<NodeId>,
    pub approx: Vec<String>,
}

fn product(a: Vec<Term>, b: Vec<Term>) -> Vec<Term> {
    let mut out = Vec::with_capacity(a.len() * b.len());
    for x in &a {
        for y in &b {
            let mut parts = x.parts.clone();
            parts.extend(y.parts.iter().copied());
            let mut approx = x.approx.clone();
            approx.extend(y.approx.iter().cloned());
            out.push(Term { parts, approx });
        }
    }
    out
}

fn too_many() -> Vec<Term> {
    vec![Term {
        parts: Vec::new(),
        approx: vec!["the writer has too many alternatives and was treated as unconstrained".into()],
    }]
}

impl Checker<'_> {
    /// The writer as a union of conjunctions.
    pub(super) fn expand(&mut self, writer_conj: &Conjunction) -> Vec<Term> {
        let mut terms = vec![Term::default()];
        for p in &writer_conj.parts {
            let e = self.expand_node(*p, &mut Vec::new());
            terms = product(terms, e);
            if terms.len() > MAX_TERMS {
                return too_many();
            }
        }
        terms
    }

    fn expand_node(&mut self, id: NodeId, visiting: &mut Vec<NodeId>) -> Vec<Term> {
        if visiting.contains(&id) || visiting.len() > 32 {
            return vec![Term {
                parts: Vec::new(),
                approx: vec![
                    "the writer's combinators refer to themselves and were not expanded further".into(),
                ],
            }];
        }
        visiting.push(id);
        let wdoc = self.writer;
        let kw = wdoc.kw(id);
        let mut terms = vec![Term { parts: vec![id], approx: Vec::new() }];
        match &kw.reference {
            Some(RefTarget::Local(t)) => {
                let e = self.expand_node(*t, visiting);
                terms = product(terms, e);
            }
            Some(RefTarget::Remote(s)) => {
                for t in &mut terms {
                    t.approx.push(format!("the writer's `$ref` {s:?} points to another document"));
                }
            }
            None => {}
        }
        for b in &kw.all_of {
            let e = self.expand_node(*b, visiting);
            terms = product(terms, e);
            if terms.len() > MAX_TERMS {
                visiting.pop();
                return too_many();
            }
        }
        for (list, is_one_of) in [(&kw.any_of, false), (&kw.one_of, true)] {
            let Some(list) = list else { continue };
            let mut union = Vec::new();
            for b in list {
                union.extend(self.expand_node(*b, visiting));
            }
            if is_one_of && !self.writer_branches_disjoint(list) {
                for t in &mut union {
                    t.approx.push("the writer's oneOf branches may overlap, so it was read as anyOf".into());
                }
            }
            terms = product(terms, union);
            if terms.len() > MAX_TERMS {
                visiting.pop();
                return too_many();
            }
        }
        visiting.pop();
        terms
    }

    /// Flattens one alternative into a single keyword set.
    pub(super) fn merge(&mut self, term: &Term) -> FlatWriter {
        let wdoc = self.writer;
        let mut flat = FlatWriter::unconstrained(term.parts.clone(), term.approx.clone());
        let max_prefix = term.parts.iter().map(|p| wdoc.kw(*p).prefix_items.len()).max().unwrap_or(0);
        flat.array.prefix = vec![Vec::new(); max_prefix];
        let names: BTreeSet<String> =
            term.parts.iter().flat_map(|p| wdoc.kw(*p).properties.iter().map(|(n, _)| n.clone())).collect();
        for p in &term.parts {
            let kw = wdoc.kw(*p);
            flat.kinds = flat.kinds.and(kw.kinds);
            if let Some(v) = &kw.values {
                flat.enumeration.values = Some(intersect_values(flat.enumeration.values.take(), v.clone()));
            }
            flat.enumeration.has_const |= kw.has_const;
            flat.numeric.lower = Bound::tighter_lower(flat.numeric.lower, kw.lower);
            flat.numeric.upper = Bound::tighter_upper(flat.numeric.upper, kw.upper);
            if let Some(k) = kw.multiple_of {
                flat.numeric.multiple_of = match flat.numeric.multiple_of {
                    None => Some(k),
                    Some(prev) => match prev.lcm(k) {
                        Some(l) => Some(l),
                        None => {
                            flat.approx.push("two multipleOf values could not be combined exactly".into());
                            Some(prev.max(k))
                        }
                    },
                };
            }
            flat.string.min_len = flat.string.min_len.max(kw.min_length.unwrap_or(0));
            flat.string.max_len = min_opt(flat.string.max_len, kw.max_length);
            if let Some(pat) = &kw.pattern
                && !flat.string.patterns.contains(pat)
            {
                flat.string.patterns.push(pat.clone());
            }
            if let Some(f) = &kw.format
                && !flat.string.formats.contains(f)
            {
                flat.string.formats.push(f.clone());
            }
            for (i, slot) in flat.array.prefix.iter_mut().enumerate() {
                match kw.prefix_items.get(i) {
                    Some(id) => slot.push(*id),
                    None => slot.extend(kw.items),
                }
            }
            flat.array.rest.extend(kw.items);
            flat.array.min_items = flat.array.min_items.max(kw.min_items.unwrap_or(0));
            flat.array.max_items = min_opt(flat.array.max_items, kw.max_items);
            flat.array.unique |= kw.unique_items;
            if let Some(c) = kw.contains {
                flat.array.contains.push((c, kw.min_contains, kw.max_contains));
            }
            for n in &names {
                let mut schemas: Vec<NodeId> = kw.property(n).into_iter().collect();
                for (pat, id) in &kw.pattern_properties {
                    match self.writer_oracle.matches(pat, n) {
                        Some(true) => schemas.push(*id),
                        Some(false) => {}
                        None => flat.approx.push(format!(
                            "the writer's patternProperties regex {pat:?} could not be evaluated"
                        )),
                    }
                }
                if schemas.is_empty() {
                    schemas.extend(kw.additional_properties);
                }
                flat.object.props.entry(n.clone()).or_default().extend(schemas);
            }
            flat.object.pattern_props.extend(kw.pattern_properties.iter().cloned());
            flat.object.addl.extend(kw.additional_properties);
            flat.object.required.extend(kw.required.iter().cloned());
            flat.object.min_props = flat.object.min_props.max(kw.min_properties.unwrap_or(0));
            flat.object.max_props = min_opt(flat.object.max_props, kw.max_properties);
            flat.object.property_names.extend(kw.property_names);
            flat.object.dependent_required.extend(kw.dependent_required.iter().cloned());
            if let Some(n) = kw.not {
                flat.nots.push(n);
                flat.approx
                    .push("the writer's `not` constrains it in ways the checker only partly models".into());
            }
            for (k, v) in &kw.unknown {
                flat.unknown.push((k.clone(), v.clone()));
                if SPEC_UNSUPPORTED.contains(&k.as_str()) {
                    flat.approx.push(format!(
                        "the writer's `{k}` further restricts it in ways the checker does not model"
                    ));
                }
            }
            if kw.dependent_required.is_some() {
                flat.approx.push(
                    "the writer's dependentRequired further restricts it in ways the checker does not model"
                        .into(),
                );
            }
        }
        flat.kinds = self.effective_kinds(&flat);
        flat
    }

    /// Removes kinds for which the merged writer admits no value.
    fn effective_kinds(&mut self, flat: &FlatWriter) -> Kinds {
        let wdoc = self.writer;
        let mut k = flat.kinds;
        if let Some(values) = &flat.enumeration.values {
            let mut vk = Kinds::NONE;
            for v in values {
                vk = vk.or(Kinds::of_value(v));
            }
            k = k.and(vk);
        }
        if k.has(Kinds::NUM) {
            k = k.minus(self.empty_numeric_kinds(flat, k));
        }
        if flat.string.max_len.is_some_and(|x| x < flat.string.min_len) {
            k = k.minus(Kinds::STR);
        }
        if k.has(Kinds::ARR) {
            let max = self.max_items_eff(flat);
            if max.is_some_and(|x| x < flat.array.min_items)
                || (0..usize::try_from(flat.array.min_items)
                    .unwrap_or(usize::MAX)
                    .min(flat.array.prefix.len() + 1))
                    .any(|i| conj_false(wdoc, flat.item(i)))
            {
                k = k.minus(Kinds::ARR);
            }
        }
        if k.has(Kinds::OBJ) {
            let closed = self.object_closed(flat);
            let impossible_required = flat.object.required.iter().any(|n| match flat.object.props.get(n) {
                Some(c) => conj_false(wdoc, c),
                None => closed,
            });
            if impossible_required
                || flat.object.max_props.is_some_and(|x| x < flat.object.min_props)
                || flat.object.max_props.is_some_and(|x| (flat.object.required.len() as u64) > x)
            {
                k = k.minus(Kinds::OBJ);
            }
        }
        k
    }

    /// Most items a writer array can have.
    pub(super) fn max_items_eff(&self, flat: &FlatWriter) -> Option<u64> {
        let wdoc = self.writer;
        let mut max = flat.array.max_items;
        for i in 0..=flat.array.prefix.len() {
            if conj_false(wdoc, flat.item(i)) {
                max = min_opt(max, Some(i as u64));
                break;
            }
        }
        max
    }

    /// The writer admits no property names beyond the declared ones.
    pub(super) fn object_closed(&self, flat: &FlatWriter) -> bool {
        flat.object.pattern_props.is_empty() && conj_false(self.writer, &flat.object.addl)
    }
}
