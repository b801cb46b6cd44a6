//! The writer side's data: a writer schema as a conjunction of nodes, and one alternative of
//! it flattened into a single keyword set, grouped by the kind of instance each keyword
//! constrains.
//!
//! Pure data with a few shallow queries; the `merge` module builds it and the keyword modules
//! read it.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::decimal::Dec;
use super::model::{Bound, Doc, Kinds, NodeId};

/// A writer schema given as a conjunction of nodes (empty = accepts everything).
#[derive(Debug, Clone)]
pub(super) struct Conjunction {
    /// The nodes (of the writer document) all of which an instance satisfies.
    pub parts: Vec<NodeId>,
}

/// Flattened keywords of one writer alternative (one conjunction after the writer's
/// `$ref`/`allOf`/`anyOf`/`oneOf` were expanded).
#[derive(Debug, Clone)]
pub(super) struct FlatWriter {
    /// The writer nodes whose own keywords were merged here.
    pub parts: Vec<NodeId>,
    /// Kinds the writer can actually produce (empty domains removed).
    pub kinds: Kinds,
    /// `enum`/`const`.
    pub enumeration: Enumeration,
    /// Number keywords.
    pub numeric: NumericBounds,
    /// String keywords.
    pub string: StringConstraints,
    /// Array keywords.
    pub array: ArrayKeywords,
    /// Object keywords.
    pub object: ObjectKeywords,
    /// Schemas under the parts' `not`s.
    pub nots: Vec<NodeId>,
    /// Keywords the model does not know, with their values, from every part.
    pub unknown: Vec<(String, Value)>,
    /// Why this view over-approximates the writer (empty = exact): violations found against
    /// it are then only undecided.
    pub approx: Vec<String>,
}

/// The writer's finite value set, if it declares one.
#[derive(Debug, Clone, Default)]
pub(super) struct Enumeration {
    /// Intersection of the parts' `enum`/`const` values (`None` = not enumerated).
    pub values: Option<Vec<Value>>,
    /// Some part used `const` (for the wording of findings).
    pub has_const: bool,
}

/// `minimum`/`maximum` (inclusive or exclusive) and `multipleOf`, tightest over the parts.
#[derive(Debug, Clone, Default)]
pub(super) struct NumericBounds {
    /// Tightest lower bound (`minimum`/`exclusiveMinimum`).
    pub lower: Option<Bound>,
    /// Tightest upper bound (`maximum`/`exclusiveMaximum`).
    pub upper: Option<Bound>,
    /// Least common multiple of the parts' `multipleOf`s.
    pub multiple_of: Option<Dec>,
}

/// `minLength`/`maxLength`, `pattern` and `format`, over all parts.
#[derive(Debug, Clone, Default)]
pub(super) struct StringConstraints {
    /// Largest `minLength`.
    pub min_len: u64,
    /// Smallest `maxLength`.
    pub max_len: Option<u64>,
    /// Every part's `pattern` (all must match).
    pub patterns: Vec<String>,
    /// Every part's `format`.
    pub formats: Vec<String>,
}

/// Item schemas and array-size keywords, over all parts.
#[derive(Debug, Clone, Default)]
pub(super) struct ArrayKeywords {
    /// Per position, the conjunction the item there must satisfy (`prefixItems`, else `items`).
    pub prefix: Vec<Vec<NodeId>>,
    /// The conjunction items after the prefix must satisfy (`items`).
    pub rest: Vec<NodeId>,
    /// Largest `minItems`.
    pub min_items: u64,
    /// Smallest `maxItems`.
    pub max_items: Option<u64>,
    /// Some part has `uniqueItems: true`.
    pub unique: bool,
    /// Each part's `contains` with its `minContains`/`maxContains`.
    pub contains: Vec<(NodeId, Option<u64>, Option<u64>)>,
}

/// Property schemas and object-size keywords, over all parts.
#[derive(Debug, Clone, Default)]
pub(super) struct ObjectKeywords {
    /// Per property named in any part, the conjunction its value must satisfy.
    pub props: BTreeMap<String, Vec<NodeId>>,
    /// Every part's `patternProperties`.
    pub pattern_props: Vec<(String, NodeId)>,
    /// The parts' `additionalProperties` (a conjunction).
    pub addl: Vec<NodeId>,
    /// Union of the parts' `required`.
    pub required: BTreeSet<String>,
    /// Largest `minProperties`.
    pub min_props: u64,
    /// Smallest `maxProperties`.
    pub max_props: Option<u64>,
    /// The parts' `propertyNames` (a conjunction).
    pub property_names: Vec<NodeId>,
    /// Every part's `dependentRequired` object.
    pub dependent_required: Vec<Value>,
}

impl FlatWriter {
    /// The writer alternative before any part's keywords were merged: accepts everything.
    pub(super) fn unconstrained(parts: Vec<NodeId>, approx: Vec<String>) -> Self {
        FlatWriter {
            parts,
            kinds: Kinds::ALL,
            enumeration: Enumeration::default(),
            numeric: NumericBounds::default(),
            string: StringConstraints::default(),
            array: ArrayKeywords::default(),
            object: ObjectKeywords::default(),
            nots: Vec::new(),
            unknown: Vec::new(),
            approx,
        }
    }

    /// The same writer restricted to some kinds (used to split by type).
    pub(super) fn restrict(&self, kinds: Kinds) -> FlatWriter {
        let mut m = self.clone();
        m.kinds = m.kinds.and(kinds);
        m
    }

    /// Writer conjunction for the items at `index`.
    pub(super) fn item(&self, index: usize) -> &[NodeId] {
        self.array.prefix.get(index).map_or(&self.array.rest[..], |v| &v[..])
    }
}

/// A conjunction that admits nothing (shallowly: one of its parts is `false` or type-empty).
pub(super) fn conj_false(doc: &Doc, conj: &[NodeId]) -> bool {
    conj.iter().any(|p| doc.is_false(*p))
}

/// A conjunction that admits everything (every part trivially true).
pub(super) fn conj_true(doc: &Doc, conj: &[NodeId]) -> bool {
    conj.iter().all(|p| doc.is_true(*p))
}

/// The smaller of two optional upper limits (`None` = unlimited).
pub(super) fn min_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}
