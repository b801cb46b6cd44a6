//! Version numbering, compatibility between versions, and upcast blocks.

use super::open_fix::{self, Hop};
use crate::compat::{self, PairMode, Report};
use crate::diag::{Code, Diagnostic};
use crate::schema::Schema;
use crate::source::Located;
use crate::spec::{CompatMode, Topic, Upcast, Version};
use crate::suggest::did_you_mean;
use crate::upcast;
use crate::yaml::Node;
use serde_json::{Value, json};

/// Checks one topic's versions; `usable[i]` tells whether `topic.versions[i]` has a valid
/// schema. Runs on a [`crate::par`] worker (the compatibility checks need its stack).
pub fn check_topic(topic: &Topic, usable: &[bool], out: &mut Vec<Diagnostic>) {
    numbering(topic, out);
    for (j, version) in topic.versions.iter().enumerate() {
        let Some(upcast) = &version.upcast else { continue };
        if j == 0 {
            out.push(
                Diagnostic::error(
                    Code::UpcastMisplaced,
                    &upcast.span,
                    format!("version {} has no earlier version to upcast from", version.number.value),
                )
                .with_help("move the `upcast` block to the version it produces (v2 upcasts from v1)"),
            );
            continue;
        }
        let declarative = !upcast.steps.is_empty();
        if let (Some(with), true) = (&upcast.with, declarative) {
            out.push(
                Diagnostic::error(
                    Code::UpcastMisplaced,
                    &with.span,
                    "`with` cannot be combined with declarative steps",
                )
                .with_help(
                    "do the whole conversion in the `with` function, or only use rename/remove/set_default",
                ),
            );
        } else if usable[j - 1] && usable[j] && upcast.with.is_none() {
            check_upcast(topic, &topic.versions[j - 1], version, upcast, out);
        }
    }
    compatibility(topic, usable, out);
}

fn numbering(topic: &Topic, out: &mut Vec<Diagnostic>) {
    if topic.versions_incomplete {
        return;
    }
    if topic.versions.is_empty() {
        out.push(
            Diagnostic::error(
                Code::VersionNumbering,
                &topic.versions_span,
                format!("topic `{}` declares no versions", topic.name.value),
            )
            .with_help("declare `versions: { 1: { schema: ... } }`"),
        );
        return;
    }
    let mut expected = 1;
    for version in &topic.versions {
        let n = version.number.value;
        if n != expected {
            let message = if expected == 1 {
                format!("versions start at 1, but the first is {n}")
            } else {
                format!("version {n} follows version {}: version {expected} is missing", expected - 1)
            };
            out.push(
                Diagnostic::error(Code::VersionNumbering, &version.number.span, message)
                    .with_help("number versions 1, 2, 3, ... without gaps; never delete a published version"),
            );
        }
        expected = n + 1;
    }
}

fn compatibility(topic: &Topic, usable: &[bool], out: &mut Vec<Diagnostic>) {
    let (pair_mode, transitive) = match topic.compat_mode() {
        CompatMode::None => return,
        CompatMode::Backward => (PairMode::Backward, false),
        CompatMode::Forward => (PairMode::Forward, false),
        CompatMode::Full => (PairMode::Full, false),
        CompatMode::BackwardTransitive => (PairMode::Backward, true),
        CompatMode::ForwardTransitive => (PairMode::Forward, true),
        CompatMode::FullTransitive => (PairMode::Full, true),
    };
    let versions = &topic.versions;
    let mut findings = Findings::default();
    // What each hop `j-1 → j` showed: proven compatible, or proven incompatible.
    let mut hop_clean = vec![false; versions.len()];
    let mut hop_broken = vec![false; versions.len()];
    let mut witness_budget = compat::WITNESS_BUDGET;
    let mut compare = |k: usize, j: usize, findings: &mut Findings| -> Option<Report> {
        // An upcast between the two means readers never see the older shape.
        let upcast_between = versions[k + 1..=j].iter().any(|v| v.upcast.is_some());
        if upcast_between || !usable[k] || !usable[j] {
            return None;
        }
        let (old, new) = (&versions[k].schema.json, &versions[j].schema.json);
        match compat::check_on_worker(old, new, pair_mode, &mut witness_budget) {
            Ok(report) => {
                // Closing `versions[k]` must keep the hop into it readable, unless an upcast
                // converts what came before.
                let before = k.checked_sub(1).filter(|_| versions[k].upcast.is_none()).map(|i| &versions[i]);
                let hop = Hop {
                    before,
                    old: &versions[k],
                    new: &versions[j],
                    adjacent: j == k + 1,
                    mode: pair_mode,
                    report: &report,
                };
                findings.add_pair(topic, &hop);
                Some(report)
            }
            Err(error) => {
                out.push(Diagnostic::error(
                    Code::InvalidSchema,
                    versions[j].schema.span_at(&error.path),
                    format!("cannot compare schemas: {}", error.message),
                ));
                None
            }
        }
    };
    for j in 1..versions.len() {
        if let Some(report) = compare(j - 1, j, &mut findings) {
            hop_clean[j] = report.is_compatible();
            hop_broken[j] = !report.violations.is_empty();
        }
    }
    // The first span left out, and how many were.
    let (mut first_unchecked, mut unchecked) = (None, 0);
    if transitive {
        let mut spans_checked = 0;
        for j in 2..versions.len() {
            for k in 0..j - 1 {
                let hops = k + 1..=j;
                // Subset is transitive: proven hops make the whole span compatible. A broken
                // hop is already an error at its root cause; the span is checked again once
                // it is fixed (reporting it across every span grows with the cube of the
                // version count).
                if hops.clone().all(|h| hop_clean[h]) || hops.clone().any(|h| hop_broken[h]) {
                    continue;
                }
                if spans_checked == MAX_SPAN_CHECKS {
                    first_unchecked.get_or_insert((k, j));
                    unchecked += 1;
                    continue;
                }
                spans_checked += 1;
                compare(k, j, &mut findings);
            }
        }
    }
    findings.finish(out);
    if let Some((k, j)) = first_unchecked {
        out.push(
            Diagnostic::warning(
                Code::CompatUndecided,
                &topic.versions_span,
                format!(
                    "`{}`: {} version pair(s) spanning undecided changes were not compared, from v{}→v{} on (at most {MAX_SPAN_CHECKS} per topic)",
                    topic.name.value,
                    unchecked,
                    versions[k].number.value,
                    versions[j].number.value
                ),
            )
            .with_help("resolve the undecided (P203) changes between adjacent versions, or add `upcast` blocks"),
        );
    }
}

/// Non-adjacent version pairs a transitive mode compares per topic (only spans whose hops
/// are undecided need it); the rest are reported as not compared.
const MAX_SPAN_CHECKS: usize = 1000;

/// Version pairs named in full on an aggregated finding; the rest are counted.
const PAIRS_NAMED: usize = 5;

/// Compatibility findings of one topic, the same finding (code, rule and place) across
/// several version pairs merged into one diagnostic that names the pairs.
#[derive(Default)]
struct Findings {
    list: Vec<Finding>,
    index: std::collections::HashMap<(Code, &'static str, String), usize>,
    /// Findings whose fixes [`open_fix`] verified so far (at most [`open_fix::MAX_VERIFIED`]).
    verified: usize,
}

struct Finding {
    diagnostic: Diagnostic,
    /// Further pairs with the same finding (at most [`PAIRS_NAMED`] kept).
    more: Vec<(u32, u32)>,
    more_count: usize,
}

impl Findings {
    fn add(
        &mut self,
        key: (Code, &'static str, String),
        pair: (u32, u32),
        make: impl FnOnce() -> Diagnostic,
    ) {
        if let Some(&i) = self.index.get(&key) {
            let finding = &mut self.list[i];
            finding.more_count += 1;
            if finding.more.len() < PAIRS_NAMED {
                finding.more.push(pair);
            }
            return;
        }
        self.index.insert(key, self.list.len());
        self.list.push(Finding { diagnostic: make(), more: Vec::new(), more_count: 0 });
    }

    fn add_pair(&mut self, topic: &Topic, hop: &Hop<'_>) {
        let (old, new, report) = (hop.old, hop.new, hop.report);
        let mode_name = match hop.mode {
            PairMode::Backward => "backward",
            PairMode::Forward => "forward",
            PairMode::Full => "fully",
        };
        let (name, o, n) = (&topic.name.value, old.number.value, new.number.value);
        for violation in &report.violations {
            let key = (Code::IncompatibleChange, violation.rule.as_str(), violation.path.clone());
            let mut verified = self.verified;
            self.add(key, (o, n), || {
                // Verifying a fix costs comparisons: only the first few findings get one.
                let help = if open_fix::applies(violation) && verified < open_fix::MAX_VERIFIED {
                    verified += 1;
                    open_fix::help(hop, violation)
                } else {
                    None
                };
                let span = new
                    .schema
                    .node
                    .key_span(&violation.path)
                    .unwrap_or_else(|| new.schema.span_at(&violation.path));
                Diagnostic::error(
                    Code::IncompatibleChange,
                    span,
                    format!("`{name}` v{n} is not {mode_name} compatible with v{o}: {}", violation.message),
                )
                .with_label(violation.rule.as_str())
                .with_help(help.unwrap_or_else(|| format!(
                    "make the change compatible, add an `upcast` block to version {n} that converts v{o} payloads, or change `compat` (now `{}`)",
                    topic.compat_mode().name()
                )))
            });
            self.verified = verified;
        }
        for undecided in &report.undecided {
            let key = (Code::CompatUndecided, undecided.rule.as_str(), undecided.path.clone());
            self.add(key, (o, n), || {
                Diagnostic::warning(
                    Code::CompatUndecided,
                    new.schema.span_at(&undecided.path),
                    format!(
                        "cannot decide whether `{name}` v{n} is {mode_name} compatible with v{o}: {}",
                        undecided.message
                    ),
                )
                .with_label(undecided.rule.as_str())
                .with_help("simplify the construct, or add an `upcast` block so compatibility is not needed")
            });
        }
    }

    fn finish(self, out: &mut Vec<Diagnostic>) {
        for Finding { mut diagnostic, more, more_count } in self.list {
            if more_count > 0 {
                let named: Vec<String> = more.iter().map(|(o, n)| format!("v{o}→v{n}")).collect();
                let rest = more_count - more.len();
                let tail = if rest > 0 { format!(" and {rest} more") } else { String::new() };
                diagnostic.message.push_str(&format!(
                    " (the same finding for {more_count} more version pair(s): {}{tail})",
                    named.join(", ")
                ));
            }
            out.push(diagnostic);
        }
    }
}

fn check_upcast(topic: &Topic, from: &Version, to: &Version, upcast: &Upcast, out: &mut Vec<Diagnostic>) {
    let (src, tgt) = (&from.schema.json, &to.schema.json);
    let src_fields = Schema::root(src).property_names();
    let tgt_fields = Schema::root(tgt).property_names();
    let (f, t) = (from.number.value, to.number.value);
    let steps_checked_from = out.len();
    let unknown = |field: &Located<String>, step: &str| {
        let hint = did_you_mean(&field.value, src_fields.iter().copied());
        Diagnostic::error(
            Code::UpcastUnknownField,
            &field.span,
            format!("`{step}` names `{}`, which `{}` v{f} does not have", field.value, topic.name.value),
        )
        .with_help(if hint.is_empty() {
            format!("v{f} fields: {}", src_fields.join(", "))
        } else {
            hint
        })
    };
    for (old, new) in &upcast.steps.rename {
        if !src_fields.contains(&old.as_str()) {
            out.push(unknown(old, "rename"));
        }
        if !tgt_fields.contains(&new.as_str()) {
            let hint = did_you_mean(&new.value, tgt_fields.iter().copied());
            out.push(
                Diagnostic::error(
                    Code::UpcastOutput,
                    &new.span,
                    format!("renamed field `{}` is not declared in v{t}", new.value),
                )
                .with_help(if hint.is_empty() {
                    format!("v{t} fields: {}", tgt_fields.join(", "))
                } else {
                    hint
                }),
            );
        }
    }
    for field in &upcast.steps.remove {
        if !src_fields.contains(&field.as_str()) {
            out.push(unknown(field, "remove"));
        }
    }
    for (field, value) in &upcast.steps.set_default {
        check_default(topic, to, field, value, out);
    }
    // A broken step already explains why the output is wrong; don't repeat it as P206.
    if out.len() > steps_checked_from {
        return;
    }
    let output = upcast_output(src, upcast);
    match compat::subset_on_worker(&output, tgt) {
        Ok(report) => {
            for violation in &report.violations {
                out.push(
                    Diagnostic::error(
                        Code::UpcastOutput,
                        &upcast.span,
                        format!("upcast output from v{f} does not satisfy v{t}: {}", violation.message),
                    )
                    .with_label(format!("at `{}`", violation.path))
                    .with_help(format!(
                        "add `rename`, `remove` or `set_default` steps so every v{f} payload becomes a valid v{t} payload, or use `with:`"
                    )),
                );
            }
            for undecided in &report.undecided {
                out.push(
                    Diagnostic::warning(
                        Code::CompatUndecided,
                        &upcast.span,
                        format!(
                            "cannot decide whether the upcast output from v{f} satisfies v{t}: {}",
                            undecided.message
                        ),
                    )
                    .with_help("test this upcast with a fixture"),
                );
            }
        }
        Err(error) => out.push(Diagnostic::error(
            Code::InvalidSchema,
            to.schema.span_at(&error.path),
            format!("cannot compare schemas: {}", error.message),
        )),
    }
}

fn check_default(
    topic: &Topic,
    to: &Version,
    field: &Located<String>,
    value: &Node,
    out: &mut Vec<Diagnostic>,
) {
    let tgt = &to.schema.json;
    let t = to.number.value;
    let Some(prop) = Schema::root(tgt).property(&field.value).map(|p| p.json()) else {
        let hint = did_you_mean(&field.value, Schema::root(tgt).property_names());
        out.push(
            Diagnostic::error(
                Code::UpcastDefaultType,
                &field.span,
                format!(
                    "`set_default` names `{}`, which `{}` v{t} does not declare",
                    field.value, topic.name.value
                ),
            )
            .with_help(if hint.is_empty() {
                format!("declare `{}` in v{t}'s properties", field.value)
            } else {
                hint
            }),
        );
        return;
    };
    let Ok(value_json) = value.to_json() else {
        out.push(Diagnostic::error(
            Code::UpcastDefaultType,
            &value.span,
            "defaults cannot be NaN or infinite",
        ));
        return;
    };
    // The property schema may use `#/$defs/...`; validate it with the root's definitions in scope.
    let mut wrapper = match prop {
        Value::Object(map) => Value::Object(map.clone()),
        other => other.clone(),
    };
    if let Value::Object(map) = &mut wrapper {
        for defs in ["$defs", "definitions"] {
            if let Some(d) = tgt.get(defs) {
                map.entry(defs).or_insert_with(|| d.clone());
            }
        }
    }
    let Ok(validator) = jsonschema::validator_for(&wrapper) else { return };
    if let Err(error) = validator.validate(&value_json) {
        out.push(
            Diagnostic::error(
                Code::UpcastDefaultType,
                &value.span,
                format!("default for `{}` does not fit its v{t} schema: {error}", field.value),
            )
            .with_label(format!("v{t} declares {}", json_short(prop)))
            .with_help("give a default of the field's type that satisfies its constraints"),
        );
    }
}

/// Whether the hop `from → to` provably turns every valid `from` payload into a valid `to` one:
/// no `with:` function, and the compatibility checker decided that the declarative steps' output
/// (or, with no `upcast:`, the `from` payload itself) fits `to`, with nothing left undecided.
/// Readers skip validating the result of proven hops.
pub fn upcast_proven(from: &Version, to: &Version) -> bool {
    let output = match &to.upcast {
        Some(upcast) if upcast.with.is_some() => return false,
        Some(upcast) => upcast_output(&from.schema.json, upcast),
        None => from.schema.json.clone(),
    };
    compat::subset(&output, &to.schema.json)
        .is_ok_and(|report| report.violations.is_empty() && report.undecided.is_empty())
}

/// The schema of what the declarative steps produce from a source-version payload: the steps
/// run over the source schema's properties (see [`upcast::Steps::run`]).
fn upcast_output(src: &Value, upcast: &Upcast) -> Value {
    let mut out = src.clone();
    let Value::Object(root) = &mut out else { return out };
    let properties = root.get("properties").and_then(Value::as_object).cloned().unwrap_or_default();
    let required: Vec<String> = root
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    let mut fields = SchemaFields { properties, required: required.into_iter().map(Some).collect() };
    upcast.steps.run(&mut fields);
    let required: Vec<String> = fields.required.into_iter().flatten().collect();
    root.insert("properties".to_owned(), Value::Object(fields.properties));
    root.insert("required".to_owned(), Value::from(required));
    out
}

/// Every payload of a version, symbolically: each property's schema and the `required` list
/// (a slot emptied by a step keeps its place, so a renamed entry stays where it was).
struct SchemaFields {
    properties: serde_json::Map<String, Value>,
    required: Vec<Option<String>>,
}

impl upcast::Fields<Node> for SchemaFields {
    /// The property's schema (if declared) and the `required` slots that named it.
    type Item = (Option<Value>, Vec<usize>);

    fn take(&mut self, name: &str) -> Option<Self::Item> {
        let mut slots = Vec::new();
        for (i, slot) in self.required.iter_mut().enumerate() {
            if slot.as_deref() == Some(name) {
                *slot = None;
                slots.push(i);
            }
        }
        let schema = self.properties.remove(name);
        (schema.is_some() || !slots.is_empty()).then_some((schema, slots))
    }

    fn put(&mut self, name: &str, (schema, slots): Self::Item) {
        if let Some(schema) = schema {
            self.properties.insert(name.to_owned(), schema);
        }
        for i in slots {
            self.required[i] = Some(name.to_owned());
        }
    }

    fn fill(&mut self, name: &str, default: &Node) {
        // A default lint could not read as JSON was reported by `check_default`.
        let Ok(value) = default.to_json() else { return };
        // Present fields keep their value; absent ones get the default.
        let schema = match self.properties.remove(name) {
            Some(existing) => json!({ "anyOf": [existing, { "const": value }] }),
            None => json!({ "const": value }),
        };
        self.properties.insert(name.to_owned(), schema);
        if !self.required.iter().any(|r| r.as_deref() == Some(name)) {
            self.required.push(Some(name.to_owned()));
        }
    }
}

fn json_short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 60 { format!("{}…", text.chars().take(60).collect::<String>()) } else { text }
}
