//! Readers always see the latest version: a hop without an `upcast` block is read by moving
//! the older payload's fields across unchanged, so the older schema must fit inside the newer
//! one whatever the topic's `compat` mode says (P208).

use crate::compat;
use crate::diag::{Code, Diagnostic};
use crate::spec::{CompatMode, Topic, Version};
use serde_json::Value;

/// Checks every hop without an `upcast` block whose backward compatibility the topic's `compat`
/// mode does not already check (P202 covers those). Runs on a [`crate::par`] worker.
pub fn check_topic(topic: &Topic, usable: &[bool], out: &mut Vec<Diagnostic>) {
    if matches!(
        topic.compat_mode(),
        CompatMode::Backward | CompatMode::Full | CompatMode::BackwardTransitive | CompatMode::FullTransitive
    ) {
        return;
    }
    let versions = &topic.versions;
    let mut witness_budget = compat::WITNESS_BUDGET;
    for j in 1..versions.len() {
        let (from, to) = (&versions[j - 1], &versions[j]);
        if to.upcast.is_some() || !usable[j - 1] || !usable[j] {
            continue;
        }
        // Schema errors are reported by the per-version checks; nothing to add here.
        let Ok(report) = compat::check_on_worker(
            &from.schema.json,
            &to.schema.json,
            compat::PairMode::Backward,
            &mut witness_budget,
        ) else {
            continue;
        };
        if let Some(first) = report.violations.first() {
            out.push(missing_upcast(topic, from, to, &first.message, report.violations.len()));
        } else if let Some(first) = report.undecided.first() {
            out.push(
                Diagnostic::warning(
                    Code::CompatUndecided,
                    &to.number.span,
                    format!(
                        "cannot decide whether `{}` v{} payloads are valid v{} payloads, which readers need because v{} has no `upcast` block: {}",
                        topic.name.value, from.number.value, to.number.value, to.number.value, first.message
                    ),
                )
                .with_label(first.rule.as_str())
                .with_help(format!("add to version {}: {}", to.number.value, suggestion(topic, from, to))),
            );
        }
    }
}

fn missing_upcast(topic: &Topic, from: &Version, to: &Version, first: &str, count: usize) -> Diagnostic {
    let (f, t) = (from.number.value, to.number.value);
    let more = if count > 1 { format!(" (and {} more finding(s))", count - 1) } else { String::new() };
    Diagnostic::error(
        Code::UpcastMissing,
        &to.number.span,
        format!(
            "`{}` v{t} has no `upcast` block, so readers move v{f} payloads across unchanged, but not every v{f} payload is a valid v{t} payload: {first}{more}",
            topic.name.value
        ),
    )
    .with_label(format!("stored v{f} events would fail to decode as v{t}"))
    .with_help(format!(
        "add to version {t} (next to `schema:`): {} — readers then convert v{f} payloads instead of failing at run time",
        suggestion(topic, from, to)
    ))
}

/// The `upcast` block to write: `set_default` for fields v{t} requires that v{f} may lack,
/// `remove` for fields a closed v{t} no longer declares, else a `with:` function.
fn suggestion(topic: &Topic, from: &Version, to: &Version) -> String {
    let (src, tgt) = (&from.schema.json, &to.schema.json);
    let required = |s: &Value| -> Vec<String> {
        s.get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    let props = |s: &Value| s.get("properties").and_then(Value::as_object).cloned().unwrap_or_default();
    let (src_required, src_props, tgt_props) = (required(src), props(src), props(tgt));
    let defaults: Vec<String> = required(tgt)
        .into_iter()
        .filter(|name| !src_required.contains(name))
        .map(|name| {
            let value = tgt_props.get(&name).map_or("null", placeholder);
            format!("{}: {value}", yaml_key(&name))
        })
        .collect();
    let closed = tgt.get("additionalProperties") == Some(&Value::Bool(false));
    let removed: Vec<String> = if closed {
        src_props.keys().filter(|name| !tgt_props.contains_key(*name)).map(|n| yaml_key(n)).collect()
    } else {
        Vec::new()
    };
    let mut steps = Vec::new();
    if !removed.is_empty() {
        steps.push(format!("remove: [{}]", removed.join(", ")));
    }
    if !defaults.is_empty() {
        steps.push(format!("set_default: {{ {} }}", defaults.join(", ")));
    }
    if steps.is_empty() {
        let name: String =
            topic.name.value.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
        let (f, t) = (from.number.value, to.number.value);
        return format!("`upcast: {{ with: crate::upcast::{name}_v{f}_to_v{t} }}`");
    }
    format!("`upcast: {{ {} }}`", steps.join(", "))
}

/// A placeholder default of the field's declared type.
fn placeholder(schema: &Value) -> &'static str {
    let ty = schema.get("type").and_then(|t| t.as_str().or_else(|| t.get(0).and_then(Value::as_str)));
    match ty {
        Some("string") => "\"\"",
        Some("integer" | "number") => "0",
        Some("boolean") => "false",
        Some("array") => "[]",
        Some("object") => "{}",
        _ => "null",
    }
}

/// A property name as a YAML flow key (quoted unless plainly safe).
fn yaml_key(name: &str) -> String {
    if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        name.to_owned()
    } else {
        Value::String(name.to_owned()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use crate::diag::Code;

    fn codes(spec: &str) -> Vec<Code> {
        super::super::lint_str("spec.yaml", spec).diagnostics.iter().map(|d| d.code).collect()
    }

    const BREAKING: &str = "
topics:
  a.b:
    compat: none
    versions:
      1: { schema: { type: object, properties: { id: { type: integer } } } }
      2:
        schema: { type: object, required: [name], properties: { id: { type: integer }, name: { type: string } } }
";

    #[test]
    fn an_incompatible_hop_without_upcast_is_an_error_even_with_compat_none() {
        assert_eq!(codes(BREAKING), vec![Code::UpcastMissing]);
    }

    #[test]
    fn the_suggested_upcast_block_makes_the_spec_clean() {
        let linted = super::super::lint_str("spec.yaml", BREAKING);
        let help = linted.diagnostics[0].help.clone().unwrap_or_default();
        assert!(help.contains("`upcast: { set_default: { name: \"\" } }`"), "{help}");
        let fixed =
            BREAKING.replace("      2:\n", "      2:\n        upcast: { set_default: { name: \"\" } }\n");
        assert_eq!(codes(&fixed), vec![]);
    }

    #[test]
    fn a_compatible_hop_without_upcast_is_clean_under_every_mode() {
        for mode in ["none", "forward", "forward_transitive", "backward"] {
            let spec = format!(
                "
topics:
  a.b:
    compat: {mode}
    versions:
      1: {{ schema: {{ type: object, properties: {{ id: {{ type: integer }} }} }} }}
      2: {{ schema: {{ type: object, properties: {{ id: {{ type: number }} }} }} }}
"
            );
            let found = codes(&spec);
            assert!(!found.contains(&Code::UpcastMissing), "{mode}: {found:?}");
        }
    }
}
