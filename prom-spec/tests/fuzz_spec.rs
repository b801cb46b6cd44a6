//! Property tests: no input, however mangled, makes the spec parser or lint panic, and every
//! diagnostic points inside the file it names.

use proptest::prelude::*;
use std::path::Path;

const SNIPPETS: &[&str] = &[
    ": ",
    "- ",
    "{",
    "}",
    "[",
    "]",
    ",",
    "&a ",
    "*a",
    "!!str ",
    "!!int ",
    "!tag ",
    "\n",
    "\n  ",
    "\n    ",
    "\t",
    "~",
    "'",
    "\"",
    "#",
    "0",
    "-1",
    "1.5",
    "99999999999999999999",
    ".nan",
    ".inf",
    "é",
    "💥",
    "versions:",
    "upcast:",
    "rename: { a: b }",
    "set_default: { x: 1 }",
    "remove: [a]",
    "with: a::b",
    "schema: ",
    "$ref: '#/$defs/x'",
    "type: object",
    "type: [string, 'null']",
    "required: [a]",
    "properties: { a: {} }",
    "additionalProperties: false",
    "compat: full_transitive",
    "dual_write: true",
    "key: /a",
    "partitions: 0",
    "topic: a.b",
    "kind: changelog",
    "---\n",
    "...\n",
    "? ",
    "|\n  x",
    ">\n  x",
    "<<: *a",
];

fn seeds() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut texts = Vec::new();
    for dir in ["specs", "tests/corpus/lint"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else { continue };
        for entry in entries.flatten() {
            if let Ok(text) = std::fs::read_to_string(entry.path()) {
                texts.push(text);
            }
        }
    }
    texts.sort();
    texts
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize, usize),
    Insert(usize, usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    Indent(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0..40usize).prop_map(|(a, n)| Mutation::Delete(a, n)),
        (any::<usize>(), 0..SNIPPETS.len()).prop_map(|(a, s)| Mutation::Insert(a, s)),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        (any::<usize>(), 0..6usize).prop_map(|(a, n)| Mutation::Indent(a, n)),
    ]
}

fn apply(text: &str, m: &Mutation) -> String {
    let chars: Vec<char> = text.chars().collect();
    let at = |a: usize| if chars.is_empty() { 0 } else { a % (chars.len() + 1) };
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let line = |a: usize, lines: &Vec<String>| if lines.is_empty() { 0 } else { a % lines.len() };
    match *m {
        Mutation::Delete(a, n) => {
            let start = at(a);
            let end = (start + n).min(chars.len());
            chars[..start].iter().chain(&chars[end..]).collect()
        }
        Mutation::Insert(a, s) => {
            let i = at(a);
            chars[..i].iter().collect::<String>() + SNIPPETS[s] + &chars[i..].iter().collect::<String>()
        }
        Mutation::DuplicateLine(a) if !lines.is_empty() => {
            let i = line(a, &lines);
            let copy = lines[i].clone();
            lines.insert(i, copy);
            lines.join("\n")
        }
        Mutation::SwapLines(a, b) if !lines.is_empty() => {
            let (i, j) = (line(a, &lines), line(b, &lines));
            lines.swap(i, j);
            lines.join("\n")
        }
        Mutation::Indent(a, n) if !lines.is_empty() => {
            let i = line(a, &lines);
            lines[i] = " ".repeat(n) + lines[i].trim_start();
            lines.join("\n")
        }
        _ => text.to_owned(),
    }
}

fn lint_never_panics(text: &str) {
    let linted = prom_spec::lint_str("fuzz.yaml", text);
    let line_count = text.lines().count() as u32 + 1;
    for d in &linted.diagnostics {
        if d.span.file.as_ref() == Path::new("fuzz.yaml") {
            assert!(d.span.start.line >= 1 && d.span.start.line <= line_count, "{d} outside the file");
        }
    }
    let _ = linted.render();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn mutated_specs_never_panic(seed in any::<usize>(), mutations in prop::collection::vec(mutation(), 1..6)) {
        let seeds = seeds();
        let mut text = seeds[seed % seeds.len()].clone();
        for m in &mutations {
            text = apply(&text, m);
        }
        lint_never_panics(&text);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
        lint_never_panics(&text);
    }

    #[test]
    fn yaml_shaped_text_never_panics(parts in prop::collection::vec(0..SNIPPETS.len(), 0..40)) {
        let text: String = parts.iter().map(|&i| SNIPPETS[i]).collect();
        lint_never_panics(&text);
    }
}
