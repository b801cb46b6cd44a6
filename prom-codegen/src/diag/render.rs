//! Human rendering: the offending YAML line with the span underlined, rustc-style.

use super::{Diagnostic, Severity};
use crate::source::SourceMap;
use std::fmt::Write;

/// Renders `diagnostic` with a snippet of its source (when the file is in `sources`).
pub fn render(diagnostic: &Diagnostic, sources: &SourceMap) -> String {
    let level = match diagnostic.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    let span = &diagnostic.span;
    let line_no = span.start.line as usize;
    let gutter = line_no.to_string().len();
    let pad = " ".repeat(gutter);
    let mut out = String::new();
    let _ = writeln!(out, "{level}[{}]: {}", diagnostic.code.id(), diagnostic.message);
    let _ = writeln!(out, "{pad}--> {span}");

    let line = sources.text(&span.file).and_then(|text| text.lines().nth(line_no.saturating_sub(1)));
    if let Some(line) = line {
        let line = line.replace('\t', " ");
        let start = span.start.column.max(1) as usize - 1;
        let width = line.chars().count();
        // A multi-line span is underlined to the end of its first line.
        let end = if span.end.line == span.start.line { span.end.column.max(1) as usize - 1 } else { width };
        let carets = end.saturating_sub(start).max(1);
        let _ = writeln!(out, "{pad} |");
        let _ = writeln!(out, "{line_no} | {line}");
        let _ = write!(out, "{pad} | {}{}", " ".repeat(start), "^".repeat(carets));
        if let Some(label) = &diagnostic.label {
            let _ = write!(out, " {label}");
        }
        out.push('\n');
    }
    if let Some(help) = &diagnostic.help {
        let _ = writeln!(out, "{pad} = help: {help}");
    }
    out
}
