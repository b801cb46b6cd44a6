//! Source files and positions, so every spec element can be traced back to file:line:col.

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A loaded source file: its display path and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Path as shown to users (relative when the user passed a relative path).
    pub path: PathBuf,
    /// Full text of the file.
    pub text: Arc<str>,
}

/// A 1-based line and column (in characters) inside a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pos {
    /// 1-based line.
    pub line: u32,
    /// 1-based column, counted in characters.
    pub column: u32,
}

/// A range inside one source file (`end` is exclusive and may equal `start`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span {
    /// File the span points into.
    pub file: Arc<Path>,
    /// First character.
    pub start: Pos,
    /// One past the last character.
    pub end: Pos,
}

impl Span {
    /// A zero-width span at the start of `file`, for problems with a whole file.
    pub fn file_start(file: &Arc<Path>) -> Span {
        let start = Pos { line: 1, column: 1 };
        Span { file: file.clone(), start, end: start }
    }
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.start.line, self.start.column)
    }
}

/// A value together with where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Located<T> {
    /// The value.
    pub value: T,
    /// Where it came from.
    pub span: Span,
}

impl<T> Located<T> {
    /// Wraps `value` with `span`.
    pub fn new(value: T, span: Span) -> Self {
        Located { value, span }
    }
}

impl AsRef<str> for Located<String> {
    fn as_ref(&self) -> &str {
        &self.value
    }
}

impl<T> std::ops::Deref for Located<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

/// Every file read while loading a spec, for rendering snippets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

impl SourceMap {
    /// Records a file and returns the shared path used in spans.
    pub fn add(&mut self, path: PathBuf, text: Arc<str>) -> Arc<Path> {
        let shared: Arc<Path> = Arc::from(path.as_path());
        self.files.push(SourceFile { path, text });
        shared
    }

    /// The text of `path`, if it was loaded.
    pub fn text(&self, path: &Path) -> Option<&str> {
        self.files.iter().find(|f| f.path == path).map(|f| &*f.text)
    }

    /// All loaded files, in load order.
    pub fn files(&self) -> &[SourceFile] {
        &self.files
    }
}
