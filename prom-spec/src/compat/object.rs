//! Objects: `required`, `properties` under open and closed content models,
//! `additionalProperties`, `patternProperties`, `minProperties`/`maxProperties`,
//! `propertyNames`, `dependentRequired`.

use std::collections::BTreeSet;

use serde_json::Value;

use super::checker::{Checker, Loc};
use super::model::{NodeId, escape, json_eq};
use super::report::Outcome;
use super::rule::Rule;
use super::writer::{Conjunction, FlatWriter, conj_false, conj_true};

/// Where the writer's schema for one property name comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Declared,
    Pattern,
    Additional,
    /// Nothing constrains the name: any value may appear under it.
    Open,
}

impl Checker<'_> {
    fn writer_prop(&mut self, flat: &FlatWriter, name: &str) -> (Vec<NodeId>, Source) {
        if let Some(c) = flat.object.props.get(name) {
            return (c.clone(), Source::Declared);
        }
        let mut matched = Vec::new();
        for (pat, id) in &flat.object.pattern_props {
            match self.writer_oracle.matches(pat, name) {
                Some(true) => matched.push(*id),
                Some(false) => {}
                // Unknown: dropping every constraint over-approximates the writer soundly.
                None => return (Vec::new(), Source::Open),
            }
        }
        if !matched.is_empty() {
            return (matched, Source::Pattern);
        }
        if flat.object.addl.is_empty() || conj_true(self.writer, &flat.object.addl) {
            (Vec::new(), Source::Open)
        } else {
            (flat.object.addl.clone(), Source::Additional)
        }
    }

    /// Reader schemas applying to a property name (empty = unconstrained); `None` when a
    /// pattern could not be evaluated.
    fn reader_prop(&mut self, reader_node: NodeId, name: &str) -> Option<(Vec<(NodeId, String)>, bool)> {
        let rdoc = self.reader;
        let kw = rdoc.kw(reader_node);
        let mut out = Vec::new();
        let mut declared = false;
        if let Some(id) = kw.property(name) {
            out.push((id, format!("/properties/{}", escape(name))));
            declared = true;
        }
        for (pat, id) in &kw.pattern_properties {
            if self.reader_oracle.matches(pat, name)? {
                out.push((*id, format!("/patternProperties/{}", escape(pat))));
            }
        }
        if out.is_empty()
            && let Some(a) = kw.additional_properties
        {
            out.push((a, "/additionalProperties".to_string()));
        }
        Some((out, declared))
    }

    pub(super) fn check_object(&mut self, flat: &FlatWriter, reader_node: NodeId, loc: &Loc) -> Outcome {
        let (wdoc, rdoc) = (self.writer, self.reader);
        let kw = rdoc.kw(reader_node);
        let mut out = Outcome::default();
        for name in &kw.required {
            if flat.object.required.contains(name) {
                continue;
            }
            let rule = self.pick(Rule::RequiredAdded, Rule::RequiredRemoved);
            let msg = if self.perspective == super::checker::Perspective::Forward {
                format!(
                    "required property `{name}` removed: new data may lack it, but the old schema requires it"
                )
            } else {
                format!(
                    "required property `{name}` added: {} may lack it, but {} requires it",
                    self.wdata(),
                    self.rschema()
                )
            };
            out.extend(self.violation(loc, "required", rule, msg));
        }
        let names: BTreeSet<String> =
            flat.object.props.keys().cloned().chain(kw.properties.iter().map(|(n, _)| n.clone())).collect();
        for name in &names {
            out.extend(self.check_property(flat, reader_node, name, loc));
        }
        out.extend(self.check_other_names(flat, reader_node, loc));
        // Counts.
        let wmin = flat.object.min_props.max(flat.object.required.len() as u64);
        if let Some(rmin) = kw.min_properties
            && rmin > wmin
        {
            let (old, new) = self.old_new(wmin, rmin);
            out.extend(self.violation(
                loc,
                "minProperties",
                self.pick(Rule::MinPropertiesRaised, Rule::MinPropertiesLowered),
                format!(
                    "minProperties {} from {old} to {new}: {} with {wmin} properties is rejected by {}",
                    self.verb("raised", "lowered"),
                    self.wdata(),
                    self.rschema()
                ),
            ));
        }
        let wmax = if self.object_closed(flat) {
            let declared = flat.object.props.values().filter(|c| !conj_false(wdoc, c)).count() as u64;
            Some(flat.object.max_props.map_or(declared, |m| m.min(declared)))
        } else {
            flat.object.max_props
        };
        if let Some(rmax) = kw.max_properties
            && wmax.is_none_or(|m| m > rmax)
        {
            let (old, new) = self.old_new(wmax.map_or("none".into(), |m| m.to_string()), rmax.to_string());
            out.extend(self.violation(
                loc,
                "maxProperties",
                self.pick(Rule::MaxPropertiesLowered, Rule::MaxPropertiesRaised),
                format!(
                    "maxProperties {} from {old} to {new}: {} with more than {rmax} properties is rejected by {}",
                    self.verb("lowered", "raised"),
                    self.wdata(),
                    self.rschema()
                ),
            ));
        }
        if let Some(pn) = kw.property_names
            && !rdoc.is_true(pn)
        {
            out.extend(self.check_property_names(flat, pn, loc));
        }
        if let Some(dr) = &kw.dependent_required
            && !flat.object.dependent_required.iter().any(|v| json_eq(v, dr))
        {
            out.extend(self.check_dependent_required(flat, dr, loc));
        }
        out
    }

    fn check_property(&mut self, flat: &FlatWriter, reader_node: NodeId, name: &str, loc: &Loc) -> Outcome {
        let (wdoc, rdoc) = (self.writer, self.reader);
        let (wconj, source) = self.writer_prop(flat, name);
        if conj_false(wdoc, &wconj) {
            return Outcome::default();
        }
        let Some((rschemas, declared)) = self.reader_prop(reader_node, name) else {
            return self.undecided(
                loc,
                "patternProperties",
                Rule::PatternPropertiesChanged,
                format!(
                    "a patternProperties regex of {} could not be evaluated against `{name}`",
                    self.rschema()
                ),
            );
        };
        let pseg = format!("/properties/{}", escape(name));
        let mut out = Outcome::default();
        for (rid, rseg) in rschemas {
            if rdoc.is_true(rid) {
                continue;
            }
            let ploc = loc.child(&pseg, &rseg);
            if rdoc.is_false(rid) {
                let rule = self.pick(Rule::PropertyRemovedClosedModel, Rule::PropertyAddedClosedModel);
                let msg = if self.perspective == super::checker::Perspective::Forward {
                    format!(
                        "property `{name}` added, but the old schema does not allow it (closed content model), so old readers reject new data carrying it"
                    )
                } else {
                    format!(
                        "property `{name}` is not allowed by {} (closed content model), but {} may carry it",
                        self.rschema(),
                        self.wdata()
                    )
                };
                out.extend(self.violation(&ploc, "", rule, msg));
                continue;
            }
            let child = Conjunction { parts: wconj.clone() };
            let sub = self.sub(&child, rid, &ploc);
            if source == Source::Open && declared && !sub.violations.is_empty() {
                let rule = self.pick(Rule::PropertyAddedOpenModel, Rule::PropertyRemovedOpenModel);
                let msg = format!(
                    "property `{name}` {} while {} is open: {} may carry `{name}` with any value, but {} constrains it",
                    self.verb("added", "removed"),
                    if self.perspective == super::checker::Perspective::Forward {
                        "the new schema"
                    } else {
                        self.wschema()
                    },
                    self.wdata(),
                    self.rschema()
                );
                let mut o = self.violation(&ploc, "", rule, msg);
                o.undecided.extend(sub.undecided);
                out.extend(o);
            } else {
                out.extend(sub);
            }
        }
        out
    }

    /// Names declared on neither side.
    fn check_other_names(&mut self, flat: &FlatWriter, reader_node: NodeId, loc: &Loc) -> Outcome {
        let (wdoc, rdoc) = (self.writer, self.reader);
        let kw = rdoc.kw(reader_node);
        let mut out = Outcome::default();
        let writer_open = !conj_false(wdoc, &flat.object.addl);
        if !writer_open && flat.object.pattern_props.is_empty() {
            return out;
        }
        let same_patterns = {
            let a: BTreeSet<&str> = flat.object.pattern_props.iter().map(|(p, _)| p.as_str()).collect();
            let b: BTreeSet<&str> = kw.pattern_properties.iter().map(|(p, _)| p.as_str()).collect();
            a == b
        };
        if !kw.pattern_properties.is_empty() {
            if !same_patterns {
                return self.undecided(
                    loc,
                    "patternProperties",
                    Rule::PatternPropertiesChanged,
                    format!(
                        "{} constrains undeclared properties with patternProperties that differ from {}; the checker does not compare regex languages",
                        self.rschema(),
                        self.wschema()
                    ),
                );
            }
            for (pat, rid) in &kw.pattern_properties {
                let parts: Vec<NodeId> =
                    flat.object.pattern_props.iter().filter(|(p, _)| p == pat).map(|(_, id)| *id).collect();
                let seg = format!("/patternProperties/{}", escape(pat));
                let child = Conjunction { parts };
                out.extend(self.sub(&child, *rid, &loc.child(&seg, &seg)));
            }
        }
        let Some(ra) = kw.additional_properties else {
            return out;
        };
        if rdoc.is_true(ra) {
            return out;
        }
        // Writer pattern schemas reach the reader's additionalProperties when the reader has
        // no patterns of its own.
        let mut sources: Vec<(Vec<NodeId>, String)> = Vec::new();
        if kw.pattern_properties.is_empty() {
            for (pat, id) in &flat.object.pattern_props {
                sources.push((vec![*id], format!("/patternProperties/{}", escape(pat))));
            }
        }
        if writer_open {
            sources.push((flat.object.addl.clone(), "/additionalProperties".into()));
        }
        for (parts, wseg) in sources {
            if conj_false(wdoc, &parts) {
                continue;
            }
            if rdoc.is_false(ra) {
                let rule = self.pick(Rule::AdditionalPropertiesNarrowed, Rule::AdditionalPropertiesWidened);
                let msg = format!(
                    "additionalProperties {}: {} may carry undeclared properties, which {} rejects",
                    self.verb("narrowed to false", "widened"),
                    self.wdata(),
                    self.rschema()
                );
                out.extend(self.violation(loc, "additionalProperties", rule, msg));
                break;
            }
            let child = Conjunction { parts };
            out.extend(self.sub(&child, ra, &loc.child(&wseg, "/additionalProperties")));
        }
        out
    }

    fn check_property_names(&mut self, flat: &FlatWriter, pn: NodeId, loc: &Loc) -> Outcome {
        let (wdoc, rdoc) = (self.writer, self.reader);
        let ploc = loc.child("/propertyNames", "/propertyNames");
        for c in flat.object.property_names.clone() {
            let child = Conjunction { parts: vec![c] };
            if self.sub(&child, pn, &ploc).is_clean() {
                return Outcome::default();
            }
        }
        if self.object_closed(flat) {
            let rptr = rdoc.node(pn).ptr.clone();
            let mut out = Outcome::default();
            let names: Vec<String> = flat
                .object
                .props
                .iter()
                .filter(|(_, c)| !conj_false(wdoc, c))
                .map(|(n, _)| n.clone())
                .collect();
            for n in names {
                match self.reader_oracle.check(&rptr, &Value::String(n.clone())) {
                    Some(None) => {}
                    Some(Some(_)) => out.extend(self.violation(
                        loc,
                        "propertyNames",
                        Rule::PropertyNamesChanged,
                        format!(
                            "property name `{n}` is allowed by {} but rejected by the propertyNames of {}",
                            self.wschema(),
                            self.rschema()
                        ),
                    )),
                    None => out.extend(self.undecided(
                        loc,
                        "propertyNames",
                        Rule::PropertyNamesChanged,
                        "propertyNames could not be evaluated".into(),
                    )),
                }
            }
            return out;
        }
        self.undecided(
            loc,
            "propertyNames",
            Rule::PropertyNamesChanged,
            format!(
                "{} restricts property names and {} does not carry a propertyNames it can be compared with",
                self.rschema(),
                self.wschema()
            ),
        )
    }

    fn check_dependent_required(&mut self, flat: &FlatWriter, dr: &Value, loc: &Loc) -> Outcome {
        let wdoc = self.writer;
        let Some(map) = dr.as_object() else {
            return Outcome::default();
        };
        let closed = self.object_closed(flat);
        for (trigger, deps) in map {
            let never = match flat.object.props.get(trigger) {
                Some(c) => conj_false(wdoc, c),
                None => closed,
            };
            let satisfied = deps
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .all(|d| flat.object.required.contains(d));
            if !never && !satisfied {
                return self.undecided(
                    loc,
                    "dependentRequired",
                    Rule::DependentRequiredChanged,
                    format!(
                        "dependentRequired differs: {} requires {deps} whenever `{trigger}` is present, which the checker cannot confirm for {}",
                        self.rschema(),
                        self.wdata()
                    ),
                );
            }
        }
        Outcome::default()
    }
}
