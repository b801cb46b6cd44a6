//! Diagnostics: every problem found in a spec, with a stable code, a location and a fix.

mod code;
mod render;

pub use code::Code;
pub use render::{MAX_SNIPPET_CHARS, escape_controls, render};

use crate::source::Span;
use serde::Serialize;

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The spec is wrong; builds stop.
    Error,
    /// Suspicious but usable.
    Warning,
}

/// One problem found in a spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    /// Stable identifier of the rule that fired.
    pub code: Code,
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong.
    pub message: String,
    /// Where it is (the file start when the whole file is at fault).
    pub span: Span,
    /// Short text placed under the underlined span.
    pub label: Option<String>,
    /// How to fix it.
    pub help: Option<String>,
}

impl Diagnostic {
    /// An error of `code` at `span`.
    pub fn error(code: Code, span: &Span, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            severity: Severity::Error,
            message: cap(message.into(), MAX_MESSAGE_CHARS),
            span: span.clone(),
            label: None,
            help: None,
        }
    }

    /// A warning of `code` at `span`.
    pub fn warning(code: Code, span: &Span, message: impl Into<String>) -> Self {
        Diagnostic { severity: Severity::Warning, ..Diagnostic::error(code, span, message) }
    }

    /// Adds the text shown under the underline.
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Adds a help line.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// The flat JSON form printed by `lint --format json`.
    pub fn to_json(&self) -> JsonDiagnostic<'_> {
        JsonDiagnostic {
            code: self.code.id(),
            name: self.code.name(),
            severity: self.severity,
            message: &self.message,
            file: self.span.file.display().to_string(),
            line: self.span.start.line,
            column: self.span.start.column,
            end_line: self.span.end.line,
            end_column: self.span.end.column,
            help: self.help.as_deref(),
        }
    }
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let span = self.span.to_string();
        write!(
            f,
            "{}: {level}[{}]: {}",
            escape_controls(&span),
            self.code.id(),
            escape_controls(&self.message)
        )?;
        if let Some(help) = &self.help {
            write!(f, " (help: {})", escape_controls(help))?;
        }
        Ok(())
    }
}

/// Serialised shape of a diagnostic (`{code, severity, message, file, line, column, help}`).
#[derive(Debug, Serialize)]
pub struct JsonDiagnostic<'a> {
    /// Stable code such as `P101`.
    pub code: &'static str,
    /// Stable rule name such as `topic-name`.
    pub name: &'static str,
    /// `error` or `warning`.
    pub severity: Severity,
    /// What is wrong.
    pub message: &'a str,
    /// File path as given.
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
    /// 1-based line where the span ends.
    pub end_line: u32,
    /// 1-based column one past the span's end.
    pub end_column: u32,
    /// How to fix it.
    pub help: Option<&'a str>,
}

/// Longest message kept, in characters: messages quote values from the input, and a quoted
/// file must not end up whole in a build log.
pub const MAX_MESSAGE_CHARS: usize = 1000;

/// `text` cut to `max` characters, with `…` marking the cut.
pub fn cap(mut text: String, max: usize) -> String {
    if let Some((at, _)) = text.char_indices().nth(max) {
        text.truncate(at);
        text.push('…');
    }
    text
}

/// Whether any diagnostic is an error.
pub fn has_errors(diagnostics: &[Diagnostic]) -> bool {
    diagnostics.iter().any(|d| d.severity == Severity::Error)
}

/// Orders diagnostics by file, position and code, and drops exact repeats.
pub fn sort(diagnostics: &mut Vec<Diagnostic>) {
    diagnostics.sort_by(|a, b| (&a.span, a.code, &a.message).cmp(&(&b.span, b.code, &b.message)));
    diagnostics.dedup_by(|a, b| a.span == b.span && a.code == b.code && a.message == b.message);
}
