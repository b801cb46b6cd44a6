//! P202 for a property added to an open schema names two fixes as YAML to write; applying
//! either one, exactly as the help says, makes the spec lint clean.

use prom_spec::diag::{Code, Diagnostic};
use prom_spec::lint_str;
use std::path::Path;

/// The help's fixes: each is (the line number it names, the lines to add).
fn fixes(help: &str) -> Vec<(usize, Vec<String>)> {
    let mut out: Vec<(usize, Vec<String>)> = Vec::new();
    for line in help.lines() {
        if let Some(block) = line.strip_prefix("  ").filter(|_| !out.is_empty()) {
            out.last_mut().expect("a fix is open").1.push(block.to_owned());
        } else if let Some(head) = line.strip_suffix(") add") {
            let (_, number) = head.rsplit_once("(line ").expect("the fix names its line");
            out.push((number.parse().expect("line number"), Vec::new()));
        }
    }
    out
}

/// Adds `block` where the help says: among the entries of the mapping named at `line` (after a
/// `key:` line, at its children's indentation; else before the entry, at its indentation).
fn apply(text: &str, line: usize, block: &[String]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let at = &lines[line - 1];
    let (index, width) =
        if at.trim_end().ends_with(':') { (line, indent(&lines[line])) } else { (line - 1, indent(at)) };
    for (i, added) in block.iter().enumerate() {
        lines.insert(index + i, format!("{}{added}", " ".repeat(width)));
    }
    lines.join("\n") + "\n"
}

fn p202(text: &str) -> Diagnostic {
    let linted = lint_str("specs/orders.yaml", text);
    let found: Vec<&Diagnostic> =
        linted.diagnostics.iter().filter(|d| d.code == Code::IncompatibleChange).collect();
    assert_eq!(found.len(), 1, "{}", linted.render());
    found[0].clone()
}

/// Applies each fix of the one P202 in `text` and asserts the result lints clean; returns the help.
fn every_fix_lints_clean(text: &str, expected_fixes: usize) -> String {
    let help = p202(text).help.expect("P202 has a help");
    let fixes = fixes(&help);
    assert_eq!(fixes.len(), expected_fixes, "{help}");
    for (line, block) in fixes {
        let fixed = apply(text, line, &block);
        let linted = lint_str("specs/orders.yaml", &fixed);
        assert!(linted.diagnostics.is_empty(), "fix {block:?} at line {line}:\n{fixed}\n{}", linted.render());
    }
    help
}

fn spec(compat: &str, added: &str) -> String {
    format!(
        "topics:
  orders.placed:
    compat: {compat}
    versions:
      1:
        schema:
          type: object
          required: [id]
          properties:
            id: {{ type: string }}
      2:
        schema:
          type: object
          required: [id]
          properties:
            id: {{ type: string }}
            note: {added}
"
    )
}

#[test]
fn the_corpus_case_names_both_fixes_and_both_lint_clean() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus/lint/P202-open-property-added.yaml");
    let text = std::fs::read_to_string(path).expect("corpus file");
    let help = every_fix_lints_clean(&text, 2);
    assert_eq!(
        help,
        "either close version 1 so its payloads never carry `note` (only if no stored v1 payload has undeclared properties) — in specs/orders.yaml under versions.1.schema (line 8) add
  additionalProperties: false
or give version 2 an upcast that sets it — in specs/orders.yaml under versions.2 (line 12) add
  upcast:
    set_default: { note: \"\" }"
    );
}

#[test]
fn the_default_is_a_valid_literal_of_the_property_type() {
    for (schema, literal) in [
        ("{ type: integer }", "0"),
        ("{ type: number }", "0"),
        ("{ type: boolean }", "false"),
        ("{ type: array, items: { type: string } }", "[]"),
        ("{ type: [string, \"null\"] }", "null"),
        ("{ type: object }", "{}"),
        ("{ type: string, enum: [low, high] }", "\"low\""),
    ] {
        let help = every_fix_lints_clean(&spec("backward", schema), 2);
        assert!(help.ends_with(&format!("set_default: {{ note: {literal} }}")), "{schema}: {help}");
    }
}

#[test]
fn without_a_valid_literal_the_help_says_what_to_pick() {
    let help = p202(&spec("backward", "{ type: object, required: [x] }")).help.expect("help");
    assert!(
        help.contains("set_default: { note: <a value valid under versions.2.schema.properties.note> }"),
        "{help}"
    );
    assert!(help.contains("additionalProperties: false"), "{help}");
}

#[test]
fn in_full_mode_only_the_upcast_is_offered() {
    // Closing v1 would break the forward direction: v2 payloads may carry anything.
    let help = every_fix_lints_clean(&spec("full", "{ type: string }"), 1);
    assert!(help.starts_with("give version 2 an upcast"), "{help}");
}

#[test]
fn a_nested_object_is_closed_where_it_is_declared() {
    let text = "topics:
  orders.placed:
    versions:
      1:
        schema:
          type: object
          properties:
            ship:
              type: object
              properties: { city: { type: string } }
      2:
        schema:
          type: object
          properties:
            ship:
              type: object
              properties: { city: { type: string }, zip: { type: string } }
";
    let help = every_fix_lints_clean(text, 1);
    assert!(help.contains("under versions.1.schema.properties.ship (line 9)"), "{help}");
}

#[test]
fn closing_is_not_offered_when_it_would_break_the_hop_before() {
    let text = "topics:
  orders.placed:
    versions:
      1:
        schema: { type: object, properties: { id: { type: string } } }
      2:
        schema: { type: object, properties: { id: { type: string }, a: { type: integer } } }
        upcast: { set_default: { a: 1 } }
      3:
        schema:
          type: object
          properties: { id: { type: string }, a: { type: integer }, b: { type: integer } }
";
    // v2 has an upcast, so closing it is fine for v1 payloads (they are converted first): offered.
    let help = p202(text).help.expect("help");
    assert!(help.contains("close version 2"), "{help}");
    let without_upcast = text.replace("        upcast: { set_default: { a: 1 } }\n", "");
    let linted = lint_str("specs/orders.yaml", &without_upcast);
    let v3 = linted
        .diagnostics
        .iter()
        .find(|d| d.code == Code::IncompatibleChange && d.message.contains("v3"))
        .expect("v2→v3 is P202");
    let help = v3.help.as_deref().expect("help");
    assert!(!help.contains("close version 2"), "closing v2 would reject v1 payloads: {help}");
    assert!(help.starts_with("give version 3 an upcast"), "{help}");
}

#[test]
fn other_p202_causes_keep_the_general_help() {
    let text = spec("backward", "{ type: string }")
        .replace("id: { type: string }\n            note", "id: { type: integer }\n            note");
    let linted = lint_str("specs/orders.yaml", &text);
    let type_change = linted
        .diagnostics
        .iter()
        .find(|d| d.code == Code::IncompatibleChange && d.label.as_deref() == Some("type-changed"))
        .expect("type change is P202");
    assert!(type_change.help.as_deref().is_some_and(|h| h.starts_with("make the change compatible")));
}
