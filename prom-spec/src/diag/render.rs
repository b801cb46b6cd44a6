//! Human rendering: the offending YAML line with the span underlined, rustc-style.
//!
//! Everything rendered may come from hostile input, so control characters are escaped (a key
//! holding `ESC ]0;…` must not retitle the terminal) and the quoted line is cut to a window
//! around the span (a one-line file must not be echoed whole into a build log).

use super::{Diagnostic, Severity};
use crate::source::SourceMap;
use std::borrow::Cow;
use std::fmt::Write;

/// Longest part of a source line shown in a snippet, in characters.
pub const MAX_SNIPPET_CHARS: usize = 200;
/// Characters shown before the span when a long line is cut.
const CONTEXT_BEFORE: usize = 40;

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
    let _ = writeln!(out, "{level}[{}]: {}", diagnostic.code.id(), escape_controls(&diagnostic.message));
    let _ = writeln!(out, "{pad}--> {}", escape_controls(&span.to_string()));

    let line = sources.text(&span.file).and_then(|text| text.lines().nth(line_no.saturating_sub(1)));
    if let Some(line) = line {
        let start = span.start.column.max(1) as usize - 1;
        // A multi-line span is underlined to the end of its first line.
        let end =
            if span.end.line == span.start.line { span.end.column.max(1) as usize - 1 } else { usize::MAX };
        let (shown, offset, carets) = snippet(line, start, end);
        let _ = writeln!(out, "{pad} |");
        let _ = writeln!(out, "{line_no} | {shown}");
        let _ = write!(out, "{pad} | {}{}", " ".repeat(offset), "^".repeat(carets.max(1)));
        if let Some(label) = &diagnostic.label {
            let _ = write!(out, " {}", escape_controls(label));
        }
        out.push('\n');
    }
    if let Some(help) = &diagnostic.help {
        // A help may hold lines to write (YAML): continuation lines align under its first.
        for (i, line) in help.split('\n').enumerate() {
            let lead = if i == 0 { " = help: " } else { "         " };
            let _ = writeln!(out, "{pad}{lead}{}", escape_controls(line));
        }
    }
    out
}

/// The part of `line` to show (escaped, at most [`MAX_SNIPPET_CHARS`] source characters), the
/// display column where the span starts and how many carets underline it.
fn snippet(line: &str, start: usize, end: usize) -> (String, usize, usize) {
    let chars: Vec<char> = line.chars().collect();
    let end = end.min(chars.len());
    let window_start = if chars.len() > MAX_SNIPPET_CHARS { start.saturating_sub(CONTEXT_BEFORE) } else { 0 };
    let window_start = window_start.min(chars.len());
    let window_end = chars.len().min(window_start + MAX_SNIPPET_CHARS);
    let mut shown = String::new();
    if window_start > 0 {
        shown.push('…');
    }
    let mut offset = shown.chars().count();
    let mut carets = 0;
    for (i, c) in chars.iter().enumerate().take(window_end).skip(window_start) {
        let piece = if *c == '\t' { Cow::Borrowed(" ") } else { escape_char(*c) };
        let width = piece.chars().count();
        shown.push_str(&piece);
        if i < start {
            offset += width;
        } else if i < end {
            carets += width;
        }
    }
    if window_end < chars.len() {
        shown.push('…');
    }
    if start >= window_end {
        // The span starts past the cut (or past the end of the line): point just after it.
        offset = shown.chars().count();
    }
    (shown, offset, carets)
}

/// `text` with control and bidirectional-override characters written as escapes (`\u{1b}`),
/// so that rendering hostile text cannot drive the terminal.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(text.chars().map(escape_char).collect())
}

fn escape_char(c: char) -> Cow<'static, str> {
    if !needs_escape(c) {
        return Cow::Owned(c.to_string());
    }
    Cow::Owned(match c {
        '\n' => "\\n".to_owned(),
        '\r' => "\\r".to_owned(),
        '\t' => "\\t".to_owned(),
        other => format!("\\u{{{:x}}}", u32::from(other)),
    })
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

#[cfg(test)]
mod tests {
    use super::{escape_controls, snippet};

    #[test]
    fn escapes_terminal_controls() {
        assert_eq!(escape_controls("a\u{1b}]0;x\u{7}b"), "a\\u{1b}]0;x\\u{7}b");
        assert_eq!(escape_controls("plain"), "plain");
    }

    #[test]
    fn help_lines_align_and_stay_escaped() {
        use crate::diag::{Code, Diagnostic};
        use crate::source::{SourceMap, Span};
        let file: std::sync::Arc<std::path::Path> = std::path::Path::new("x.yaml").into();
        let diagnostic = Diagnostic::error(Code::IncompatibleChange, &Span::file_start(&file), "m")
            .with_help("add\n  key: \u{1b}[2J");
        let rendered = super::render(&diagnostic, &SourceMap::default());
        assert!(rendered.ends_with(" = help: add\n            key: \\u{1b}[2J\n"), "{rendered}");
    }

    #[test]
    fn long_lines_are_cut_around_the_span() {
        let line = "x".repeat(1000);
        let (shown, offset, carets) = snippet(&line, 500, 503);
        assert!(shown.chars().count() <= super::MAX_SNIPPET_CHARS + 2, "{}", shown.len());
        assert_eq!((offset, carets), (41, 3));
    }
}
