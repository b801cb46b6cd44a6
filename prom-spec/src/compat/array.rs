//! Arrays: `items`/`prefixItems` (and draft-07 array `items` + `additionalItems`),
//! `minItems`, `maxItems`, `uniqueItems`, `contains`.

use serde_json::Value;

use super::checker::{Checker, Loc};
use super::model::{Doc, NodeId};
use super::report::Outcome;
use super::rule::Rule;
use super::writer::{Conjunction, FlatWriter, conj_false};

/// Whether a node spells its tuple the draft-07 way (`items: [...]` + `additionalItems`).
fn legacy_tuple(doc: &Doc, id: NodeId) -> bool {
    doc.raw(id).and_then(|v| v.get("items")).is_some_and(Value::is_array)
}

/// Pointer segment for item `i` (`None` = the items after the tuple).
fn seg(legacy: bool, i: Option<usize>) -> String {
    match (legacy, i) {
        (true, Some(i)) => format!("/items/{i}"),
        (false, Some(i)) => format!("/prefixItems/{i}"),
        (true, None) => "/additionalItems".into(),
        (false, None) => "/items".into(),
    }
}

impl Checker<'_> {
    pub(super) fn check_array(&mut self, flat: &FlatWriter, reader_node: NodeId, loc: &Loc) -> Outcome {
        let (wdoc, rdoc) = (self.writer, self.reader);
        let kw = rdoc.kw(reader_node);
        let mut out = Outcome::default();
        let wlegacy = flat.parts.iter().any(|p| legacy_tuple(wdoc, *p));
        let rlegacy = legacy_tuple(rdoc, reader_node);
        let wmax = self.max_items_eff(flat);
        let n = flat.array.prefix.len().max(kw.prefix_items.len());
        let mut closed_reported = false;
        let closed = |this: &Self, count: usize, out: &mut Outcome| {
            let rule = this.pick(Rule::AdditionalItemsNarrowed, Rule::AdditionalItemsWidened);
            let msg = format!(
                "{} accepts at most {count} item(s) here, but {} may have more",
                this.rschema(),
                this.wdata()
            );
            let keyword = if rlegacy { "additionalItems" } else { "items" };
            out.extend(this.violation(loc, keyword, rule, msg));
        };
        for i in 0..n {
            if wmax.is_some_and(|m| (i as u64) >= m) || conj_false(wdoc, flat.item(i)) {
                break;
            }
            let (ri, rseg) = match kw.prefix_items.get(i) {
                Some(id) => (Some(*id), seg(rlegacy, Some(i))),
                None => (kw.items, seg(rlegacy, None)),
            };
            let Some(ri) = ri else { continue };
            if rdoc.is_false(ri) {
                closed(self, i, &mut out);
                closed_reported = true;
                break;
            }
            let wseg = seg(wlegacy, (i < flat.array.prefix.len()).then_some(i));
            let child = Conjunction { parts: flat.item(i).to_vec() };
            out.extend(self.sub(&child, ri, &loc.child(&wseg, &rseg)));
        }
        let longer = wmax.is_none_or(|m| m > n as u64) && !conj_false(wdoc, &flat.array.rest);
        if longer
            && !closed_reported
            && let Some(rr) = kw.items
        {
            if rdoc.is_false(rr) {
                closed(self, n, &mut out);
            } else {
                let wseg = seg(wlegacy, None);
                let child = Conjunction { parts: flat.array.rest.clone() };
                out.extend(self.sub(&child, rr, &loc.child(&wseg, &seg(rlegacy, None))));
            }
        }
        if let Some(rm) = kw.min_items
            && rm > flat.array.min_items
        {
            let (old, new) = self.old_new(flat.array.min_items, rm);
            out.extend(self.violation(
                loc,
                "minItems",
                self.pick(Rule::MinItemsRaised, Rule::MinItemsLowered),
                format!(
                    "minItems {} from {old} to {new}: {} with {} item(s) is rejected by {}",
                    self.verb("raised", "lowered"),
                    self.wdata(),
                    flat.array.min_items,
                    self.rschema()
                ),
            ));
        }
        if let Some(rmax) = kw.max_items
            && wmax.is_none_or(|m| m > rmax)
        {
            let wdesc = wmax.map_or("none".to_string(), |m| m.to_string());
            let (old, new) = self.old_new(wdesc, rmax.to_string());
            out.extend(self.violation(
                loc,
                "maxItems",
                self.pick(Rule::MaxItemsLowered, Rule::MaxItemsRaised),
                format!(
                    "maxItems {} from {old} to {new}: {} with more than {rmax} item(s) is rejected by {}",
                    self.verb("lowered", "raised"),
                    self.wdata(),
                    self.rschema()
                ),
            ));
        }
        if kw.unique_items
            && !flat.array.unique
            && wmax.is_none_or(|m| m >= 2)
            && !conj_false(wdoc, flat.item(0))
            && !conj_false(wdoc, flat.item(1))
        {
            let rule = self.pick(Rule::UniqueItemsAdded, Rule::UniqueItemsRemoved);
            let msg = format!(
                "uniqueItems {}: {} may repeat an item, which {} rejects",
                self.verb("added", "removed"),
                self.wdata(),
                self.rschema()
            );
            // Equal neighbours need one value fitting both positions; with identical
            // position schemas any value does.
            out.extend(if flat.item(0) == flat.item(1) {
                self.violation(loc, "uniqueItems", rule, msg)
            } else {
                self.undecided(loc, "uniqueItems", rule, msg)
            });
        }
        if let Some(rc) = kw.contains
            && !rdoc.is_true(rc)
        {
            out.extend(self.check_contains(flat, reader_node, rc, loc));
        }
        out
    }

    fn check_contains(&mut self, flat: &FlatWriter, reader_node: NodeId, rc: NodeId, loc: &Loc) -> Outcome {
        let (wdoc, rdoc) = (self.writer, self.reader);
        let kw = rdoc.kw(reader_node);
        let rmin = kw.min_contains.unwrap_or(1);
        let cloc = loc.child("/contains", "/contains");
        if kw.max_contains.is_some() {
            let same = flat.array.contains.iter().any(|(c, mn, mx)| {
                *mn == kw.min_contains
                    && *mx == kw.max_contains
                    && wdoc.raw(*c).is_some_and(|x| Some(x) == rdoc.raw(rc))
                    && !super::model::mentions_ref(x_or_null(wdoc.raw(*c)))
            });
            if same {
                return Outcome::default();
            }
            return self.undecided(
                loc,
                "maxContains",
                Rule::ContainsChanged,
                format!("{} bounds how many items match `contains`; the checker only accepts an identical constraint", self.rschema()),
            );
        }
        if rmin == 0 {
            return Outcome::default();
        }
        let candidates: Vec<(NodeId, u64)> =
            flat.array.contains.iter().map(|(c, mn, _)| (*c, mn.unwrap_or(1))).collect();
        for (c, wmin) in candidates {
            if wmin >= rmin {
                let child = Conjunction { parts: vec![c] };
                if self.sub(&child, rc, &cloc).is_clean() {
                    return Outcome::default();
                }
            }
        }
        if flat.array.prefix.is_empty() && flat.array.min_items >= rmin {
            let child = Conjunction { parts: flat.array.rest.clone() };
            if self.sub(&child, rc, &cloc).is_clean() {
                return Outcome::default();
            }
        }
        if flat.array.contains.is_empty() && flat.array.min_items == 0 {
            return self.violation(
                loc,
                "contains",
                Rule::ContainsChanged,
                format!(
                    "{} requires an item matching `contains`, but {} may be an empty array",
                    self.rschema(),
                    self.wdata()
                ),
            );
        }
        self.undecided(
            loc,
            "contains",
            Rule::ContainsChanged,
            format!(
                "the checker cannot decide whether arrays {} allows always contain an item matching the `contains` of {}",
                self.wschema(),
                self.rschema()
            ),
        )
    }
}

fn x_or_null(v: Option<&Value>) -> &Value {
    v.unwrap_or(&Value::Null)
}
