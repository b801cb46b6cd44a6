//! The writer side: expansion of `$ref`/`allOf`/`anyOf`/`oneOf` into a union of conjunctions
//! and merging of each conjunction into one flat view.
//!
//! Whenever the flat view has to over-approximate the writer (a `not`, an unsupported
//! keyword, an unprovably-disjoint `oneOf`, ...) that is recorded in `approx`: conclusions of
//! compatibility stay sound because the writer only grew, but violations found against the
//! enlarged writer are not proofs and get downgraded to undecided.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::decimal::Dec;
use super::model::{Bound, Kinds, NodeId, RefTarget, intersect_values};
use super::subset::{Checker, SPEC_UNSUPPORTED};

/// Most alternatives a writer may expand into before it is treated as unconstrained.
const MAX_TERMS: usize = 64;

/// A writer schema given as a conjunction of nodes (empty = accepts everything).
#[derive(Debug, Clone)]
pub(super) struct WRef {
    pub parts: Vec<NodeId>,
}

/// One alternative of an expanded writer: the conjunction of the parts' own keywords.
#[derive(Debug, Clone, Default)]
pub(super) struct Term {
    pub parts: Vec<NodeId>,
    pub approx: Vec<String>,
}

/// Flattened keywords of one writer alternative.
#[derive(Debug, Clone)]
pub(super) struct Merged {
    pub parts: Vec<NodeId>,
    /// Kinds the writer can actually produce (empty domains removed).
    pub kinds: Kinds,
    pub values: Option<Vec<Value>>,
    pub has_const: bool,
    pub lower: Option<Bound>,
    pub upper: Option<Bound>,
    pub multiple_of: Option<Dec>,
    pub min_len: u64,
    pub max_len: Option<u64>,
    pub patterns: Vec<String>,
    pub formats: Vec<String>,
    pub prefix: Vec<Vec<NodeId>>,
    pub rest: Vec<NodeId>,
    pub min_items: u64,
    pub max_items: Option<u64>,
    pub unique: bool,
    pub contains: Vec<(NodeId, Option<u64>, Option<u64>)>,
    pub props: BTreeMap<String, Vec<NodeId>>,
    pub pattern_props: Vec<(String, NodeId)>,
    pub addl: Vec<NodeId>,
    pub required: BTreeSet<String>,
    pub min_props: u64,
    pub max_props: Option<u64>,
    pub property_names: Vec<NodeId>,
    pub dependent_required: Vec<Value>,
    pub nots: Vec<NodeId>,
    pub unknown: Vec<(String, Value)>,
    pub approx: Vec<String>,
}

impl Merged {
    /// The same writer restricted to some kinds (used to split by type).
    pub(super) fn restrict(&self, kinds: Kinds) -> Merged {
        let mut m = self.clone();
        m.kinds = m.kinds.and(kinds);
        m
    }

    /// Writer conjunction for the items at `index`.
    pub(super) fn item(&self, index: usize) -> &[NodeId] {
        self.prefix.get(index).map_or(&self.rest[..], |v| &v[..])
    }
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
    pub(super) fn expand(&mut self, w: &WRef) -> Vec<Term> {
        let mut terms = vec![Term::default()];
        for p in &w.parts {
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
        let wdoc = self.w;
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
    pub(super) fn merge(&mut self, term: &Term) -> Merged {
        let wdoc = self.w;
        let mut m = Merged {
            parts: term.parts.clone(),
            kinds: Kinds::ALL,
            values: None,
            has_const: false,
            lower: None,
            upper: None,
            multiple_of: None,
            min_len: 0,
            max_len: None,
            patterns: Vec::new(),
            formats: Vec::new(),
            prefix: Vec::new(),
            rest: Vec::new(),
            min_items: 0,
            max_items: None,
            unique: false,
            contains: Vec::new(),
            props: BTreeMap::new(),
            pattern_props: Vec::new(),
            addl: Vec::new(),
            required: BTreeSet::new(),
            min_props: 0,
            max_props: None,
            property_names: Vec::new(),
            dependent_required: Vec::new(),
            nots: Vec::new(),
            unknown: Vec::new(),
            approx: term.approx.clone(),
        };
        let max_prefix = term.parts.iter().map(|p| wdoc.kw(*p).prefix_items.len()).max().unwrap_or(0);
        m.prefix = vec![Vec::new(); max_prefix];
        let names: BTreeSet<String> =
            term.parts.iter().flat_map(|p| wdoc.kw(*p).properties.iter().map(|(n, _)| n.clone())).collect();
        for p in &term.parts {
            let kw = wdoc.kw(*p);
            m.kinds = m.kinds.and(kw.kinds);
            if let Some(v) = &kw.values {
                m.values = Some(intersect_values(m.values.take(), v.clone()));
            }
            m.has_const |= kw.has_const;
            m.lower = Bound::tighter_lower(m.lower, kw.lower);
            m.upper = Bound::tighter_upper(m.upper, kw.upper);
            if let Some(k) = kw.multiple_of {
                m.multiple_of = match m.multiple_of {
                    None => Some(k),
                    Some(prev) => match prev.lcm(k) {
                        Some(l) => Some(l),
                        None => {
                            m.approx.push("two multipleOf values could not be combined exactly".into());
                            Some(prev.max(k))
                        }
                    },
                };
            }
            m.min_len = m.min_len.max(kw.min_length.unwrap_or(0));
            m.max_len = min_opt(m.max_len, kw.max_length);
            if let Some(pat) = &kw.pattern
                && !m.patterns.contains(pat)
            {
                m.patterns.push(pat.clone());
            }
            if let Some(f) = &kw.format
                && !m.formats.contains(f)
            {
                m.formats.push(f.clone());
            }
            for (i, slot) in m.prefix.iter_mut().enumerate() {
                match kw.prefix_items.get(i) {
                    Some(id) => slot.push(*id),
                    None => slot.extend(kw.items),
                }
            }
            m.rest.extend(kw.items);
            m.min_items = m.min_items.max(kw.min_items.unwrap_or(0));
            m.max_items = min_opt(m.max_items, kw.max_items);
            m.unique |= kw.unique_items;
            if let Some(c) = kw.contains {
                m.contains.push((c, kw.min_contains, kw.max_contains));
            }
            for n in &names {
                let mut schemas: Vec<NodeId> = kw.property(n).into_iter().collect();
                for (pat, id) in &kw.pattern_properties {
                    match self.wo.matches(pat, n) {
                        Some(true) => schemas.push(*id),
                        Some(false) => {}
                        None => m.approx.push(format!(
                            "the writer's patternProperties regex {pat:?} could not be evaluated"
                        )),
                    }
                }
                if schemas.is_empty() {
                    schemas.extend(kw.additional_properties);
                }
                m.props.entry(n.clone()).or_default().extend(schemas);
            }
            m.pattern_props.extend(kw.pattern_properties.iter().cloned());
            m.addl.extend(kw.additional_properties);
            m.required.extend(kw.required.iter().cloned());
            m.min_props = m.min_props.max(kw.min_properties.unwrap_or(0));
            m.max_props = min_opt(m.max_props, kw.max_properties);
            m.property_names.extend(kw.property_names);
            m.dependent_required.extend(kw.dependent_required.iter().cloned());
            if let Some(n) = kw.not {
                m.nots.push(n);
                m.approx
                    .push("the writer's `not` constrains it in ways the checker only partly models".into());
            }
            for (k, v) in &kw.unknown {
                m.unknown.push((k.clone(), v.clone()));
                if SPEC_UNSUPPORTED.contains(&k.as_str()) {
                    m.approx.push(format!(
                        "the writer's `{k}` further restricts it in ways the checker does not model"
                    ));
                }
            }
            if kw.dependent_required.is_some() {
                m.approx.push(
                    "the writer's dependentRequired further restricts it in ways the checker does not model"
                        .into(),
                );
            }
        }
        m.kinds = self.effective_kinds(&m);
        m
    }

    /// Removes kinds for which the merged writer admits no value.
    fn effective_kinds(&mut self, m: &Merged) -> Kinds {
        let wdoc = self.w;
        let mut k = m.kinds;
        if let Some(values) = &m.values {
            let mut vk = Kinds::NONE;
            for v in values {
                vk = vk.or(Kinds::of_value(v));
            }
            k = k.and(vk);
        }
        if k.has(Kinds::NUM) {
            k = k.minus(self.empty_numeric_kinds(m, k));
        }
        if m.max_len.is_some_and(|x| x < m.min_len) {
            k = k.minus(Kinds::STR);
        }
        if k.has(Kinds::ARR) {
            let max = self.max_items_eff(m);
            if max.is_some_and(|x| x < m.min_items)
                || (0..usize::try_from(m.min_items).unwrap_or(usize::MAX).min(m.prefix.len() + 1))
                    .any(|i| conj_false(wdoc, m.item(i)))
            {
                k = k.minus(Kinds::ARR);
            }
        }
        if k.has(Kinds::OBJ) {
            let closed = self.object_closed(m);
            let impossible_required = m.required.iter().any(|n| match m.props.get(n) {
                Some(c) => conj_false(wdoc, c),
                None => closed,
            });
            if impossible_required
                || m.max_props.is_some_and(|x| x < m.min_props)
                || m.max_props.is_some_and(|x| (m.required.len() as u64) > x)
            {
                k = k.minus(Kinds::OBJ);
            }
        }
        k
    }

    /// Most items a writer array can have.
    pub(super) fn max_items_eff(&self, m: &Merged) -> Option<u64> {
        let wdoc = self.w;
        let mut max = m.max_items;
        for i in 0..=m.prefix.len() {
            if conj_false(wdoc, m.item(i)) {
                max = min_opt(max, Some(i as u64));
                break;
            }
        }
        max
    }

    /// The writer admits no property names beyond the declared ones.
    pub(super) fn object_closed(&self, m: &Merged) -> bool {
        m.pattern_props.is_empty() && conj_false(self.w, &m.addl)
    }
}

/// A conjunction that admits nothing (shallowly: one of its parts is `false` or type-empty).
pub(super) fn conj_false(doc: &super::model::Doc, conj: &[NodeId]) -> bool {
    conj.iter().any(|p| doc.is_false(*p))
}

/// A conjunction that admits everything (every part trivially true).
pub(super) fn conj_true(doc: &super::model::Doc, conj: &[NodeId]) -> bool {
    conj.iter().all(|p| doc.is_true(*p))
}

pub(super) fn min_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}
