//! Builds the located tree from saphyr-parser's event stream.

use super::scalar::resolve_plain;
use super::{Key, Node, Value};
use crate::diag::{Code, Diagnostic};
use crate::source::{Pos, Span};
use saphyr_parser::{Event, Marker, Parser, ScalarStyle, Tag};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// Upper bound on nodes after alias expansion, so an alias bomb cannot exhaust memory.
const MAX_NODES: usize = 1_000_000;

/// Mappings with more entries than this get a key index for the duplicate check; smaller ones
/// (nearly all) are scanned.
const INDEX_AFTER: usize = 16;

/// Parses one YAML document. Returns the tree (`None` when the file cannot be parsed at all)
/// and every problem found on the way (syntax errors, duplicate keys, unsupported features).
pub fn load(text: &str, file: &Arc<Path>) -> (Option<Node>, Vec<Diagnostic>) {
    let mut builder = Builder {
        file: file.clone(),
        stack: Vec::new(),
        anchors: HashMap::new(),
        root: None,
        documents: 0,
        nodes: 0,
        aborted: false,
        diagnostics: Vec::new(),
    };
    for event in Parser::new_from_str(text) {
        match event {
            Ok((event, span)) => {
                let span = builder.span(span.start, span.end);
                builder.event(event, span);
            }
            Err(error) => {
                let m = *error.marker();
                let span = builder.span(m, m);
                builder.diagnostics.push(
                    Diagnostic::error(Code::YamlSyntax, &span, format!("invalid YAML: {}", error.info()))
                        .with_help(
                            "check indentation, quoting and that `key: value` pairs are separated by `: `",
                        ),
                );
                return (None, builder.diagnostics);
            }
        }
        if builder.aborted {
            return (None, builder.diagnostics);
        }
    }
    (builder.root, builder.diagnostics)
}

enum Frame {
    Seq {
        items: Vec<Node>,
        start: Span,
        anchor: usize,
    },
    Map {
        entries: Vec<(Key, Node)>,
        key: Option<Key>,
        /// Entry index by key, built once the mapping is too large to scan for duplicates.
        index: Option<HashMap<String, usize>>,
        start: Span,
        anchor: usize,
    },
}

struct Builder {
    file: Arc<Path>,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    root: Option<Node>,
    documents: usize,
    nodes: usize,
    aborted: bool,
    diagnostics: Vec<Diagnostic>,
}

impl Builder {
    fn span(&self, start: Marker, end: Marker) -> Span {
        let pos = |m: Marker| Pos {
            line: u32::try_from(m.line()).unwrap_or(u32::MAX),
            column: u32::try_from(m.col() + 1).unwrap_or(u32::MAX),
        };
        Span { file: self.file.clone(), start: pos(start), end: pos(end) }
    }

    fn event(&mut self, event: Event<'_>, span: Span) {
        match event {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents == 2 {
                    self.diagnostics.push(
                        Diagnostic::error(
                            Code::UnsupportedYaml,
                            &span,
                            "a spec file holds one YAML document",
                        )
                        .with_help("split the documents into separate files in the spec directory"),
                    );
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                let at_key = matches!(self.stack.last(), Some(Frame::Map { key: None, .. }));
                if at_key
                    && anchor == 0
                    && tag.is_none()
                    && let Some(Frame::Map { key, .. }) = self.stack.last_mut()
                {
                    // A plain key needs only its text (anchored or tagged keys take the long way).
                    self.nodes += 1;
                    *key = Some(Key { text: text.into_owned(), span });
                    return;
                }
                let value = self.scalar(&text, style, tag.as_deref(), &span);
                self.complete(Node { value, span }, anchor, at_key.then(|| text.into_owned()));
            }
            Event::Alias(id) => match self.anchors.get(&id).cloned() {
                Some(node) => {
                    self.nodes += count(&node);
                    if self.nodes > MAX_NODES {
                        self.diagnostics.push(
                            Diagnostic::error(
                                Code::UnsupportedYaml,
                                &span,
                                "aliases expand to too many nodes",
                            )
                            .with_help("aliases may not expand to more than 1,000,000 nodes"),
                        );
                        self.aborted = true;
                        return;
                    }
                    let text = scalar_text(&node);
                    // The alias is where the user wrote it; keep that location on the copy.
                    self.complete(Node { span, ..node }, 0, text);
                }
                None => self.diagnostics.push(Diagnostic::error(Code::YamlSyntax, &span, "unknown alias")),
            },
            Event::SequenceStart(anchor, tag) => {
                self.reject_tag(tag.as_deref(), &span);
                self.stack.push(Frame::Seq { items: Vec::new(), start: span, anchor });
            }
            Event::MappingStart(anchor, tag) => {
                self.reject_tag(tag.as_deref(), &span);
                self.stack.push(Frame::Map {
                    entries: Vec::new(),
                    key: None,
                    index: None,
                    start: span,
                    anchor,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (value, start, anchor) = match self.stack.pop() {
                    Some(Frame::Seq { items, start, anchor }) => (Value::Seq(items), start, anchor),
                    Some(Frame::Map { entries, start, anchor, .. }) => (Value::Map(entries), start, anchor),
                    None => return,
                };
                let span = Span { end: span.end, ..start };
                self.complete(Node { value, span }, anchor, None);
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
    }

    fn scalar(&mut self, text: &str, style: ScalarStyle, tag: Option<&Tag>, span: &Span) -> Value {
        let Some(tag) = tag else {
            return match style {
                ScalarStyle::Plain => resolve_plain(text),
                _ => Value::Str(text.to_owned()),
            };
        };
        let resolved = resolve_plain(text);
        let value = match (tag.is_yaml_core_schema(), tag.suffix.as_str(), &resolved) {
            (true, "str", _) => Some(Value::Str(text.to_owned())),
            (true, "int", Value::Int(_))
            | (true, "float", Value::Float(_))
            | (true, "bool", Value::Bool(_))
            | (true, "null", Value::Null) => Some(resolved.clone()),
            (true, "float", Value::Int(i)) => Some(Value::Float(*i as f64)),
            _ => None,
        };
        value.unwrap_or_else(|| {
            self.diagnostics.push(
                Diagnostic::error(
                    Code::UnsupportedYaml,
                    span,
                    format!("unsupported or mismatched tag `{tag}`"),
                )
                .with_help("remove the tag; specs use plain YAML values"),
            );
            resolved
        })
    }

    fn reject_tag(&mut self, tag: Option<&Tag>, span: &Span) {
        if let Some(tag) = tag {
            let core = tag.is_yaml_core_schema() && matches!(tag.suffix.as_str(), "map" | "seq");
            if !core {
                self.diagnostics.push(
                    Diagnostic::error(Code::UnsupportedYaml, span, format!("unsupported tag `{tag}`"))
                        .with_help("remove the tag; specs use plain YAML values"),
                );
            }
        }
    }

    /// Places a finished node into its parent (or as the root).
    fn complete(&mut self, node: Node, anchor: usize, scalar_text: Option<String>) {
        self.nodes += 1;
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, index, .. }) => match key.take() {
                None => {
                    let text = match scalar_text {
                        Some(text) => text,
                        None => {
                            self.diagnostics.push(
                                Diagnostic::error(
                                    Code::UnsupportedYaml,
                                    &node.span,
                                    "mapping keys must be plain scalars",
                                )
                                .with_help("use a string key"),
                            );
                            format!("<{} key>", node.kind())
                        }
                    };
                    *key = Some(Key { text, span: node.span });
                }
                Some(k) => {
                    let first = match index {
                        Some(index) => index.get(&k.text).copied(),
                        None => entries.iter().position(|(e, _)| e.text == k.text),
                    };
                    if let Some(first) = first.and_then(|i| entries.get(i)).map(|(e, _)| &e.span) {
                        self.diagnostics.push(
                            Diagnostic::error(
                                Code::DuplicateKey,
                                &k.span,
                                format!("duplicate key `{}`", k.text),
                            )
                            .with_label(format!("first defined at line {}", first.start.line))
                            .with_help("remove one of the two entries or merge them"),
                        );
                    } else {
                        if let Some(index) = index {
                            index.insert(k.text.clone(), entries.len());
                        } else if entries.len() >= INDEX_AFTER {
                            let mut built: HashMap<String, usize> =
                                entries.iter().enumerate().map(|(i, (e, _))| (e.text.clone(), i)).collect();
                            built.insert(k.text.clone(), entries.len());
                            *index = Some(built);
                        }
                        entries.push((k, node));
                    }
                }
            },
        }
    }
}

fn count(node: &Node) -> usize {
    match &node.value {
        Value::Seq(items) => 1 + items.iter().map(count).sum::<usize>(),
        Value::Map(entries) => 1 + entries.iter().map(|(_, v)| 1 + count(v)).sum::<usize>(),
        _ => 1,
    }
}

fn scalar_text(node: &Node) -> Option<String> {
    match &node.value {
        Value::Str(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::Null => Some("~".to_owned()),
        Value::Seq(_) | Value::Map(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (Option<Node>, Vec<Diagnostic>) {
        load(text, &Arc::from(Path::new("t.yaml")))
    }

    #[test]
    fn locations_of_values() {
        let (node, diags) = parse("topics:\n  a.b:\n    partitions: 0\n");
        assert!(diags.is_empty(), "{diags:?}");
        let node = node.expect("tree");
        let p = node.pointer("/topics/a.b/partitions").expect("node");
        assert_eq!(p.value, Value::Int(0));
        assert_eq!((p.span.start.line, p.span.start.column), (3, 17));
        let key = node.key_span("/topics/a.b/partitions").expect("key");
        assert_eq!((key.start.line, key.start.column), (3, 5));
    }

    #[test]
    fn duplicate_keys_are_reported() {
        let (_, diags) = parse("a: 1\nb: 2\na: 3\n");
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].code, Code::DuplicateKey);
        assert_eq!(diags[0].span.start.line, 3);
    }

    #[test]
    fn duplicate_keys_are_reported_in_large_mappings() {
        let mut text: String = (0..40).map(|i| format!("k{i}: {i}\n")).collect();
        text.push_str("k3: again\nk39: again\n");
        let (node, diags) = parse(&text);
        let lines: Vec<u32> = diags.iter().map(|d| d.span.start.line).collect();
        assert_eq!(lines, vec![41, 42], "{diags:?}");
        assert_eq!(diags[0].label.as_deref(), Some("first defined at line 4"));
        assert_eq!(node.expect("tree").pointer("/k39").map(|n| &n.value), Some(&Value::Int(39)));
    }

    #[test]
    fn syntax_error_has_location() {
        let (node, diags) = parse("a: [1, 2\nb: 3\n");
        assert!(node.is_none());
        assert_eq!(diags[0].code, Code::YamlSyntax);
    }

    #[test]
    fn aliases_expand_and_bombs_stop() {
        let (node, _) = parse("a: &x {k: 1}\nb: *x\n");
        assert_eq!(node.expect("tree").pointer("/b/k").map(|n| &n.value), Some(&Value::Int(1)));
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let prev = format!("*a{}", i - 1);
            bomb.push_str(&format!("a{i}: &a{i} [{}]\n", vec![prev; 10].join(", ")));
        }
        let (node, diags) = parse(&bomb);
        assert!(node.is_none());
        assert!(diags.iter().any(|d| d.code == Code::UnsupportedYaml));
    }

    #[test]
    fn json_is_yaml() {
        let (node, diags) = parse("{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"integer\"}}}");
        assert!(diags.is_empty());
        let json = node.expect("tree").to_json().expect("json");
        assert_eq!(json["properties"]["a"]["type"], "integer");
    }
}
