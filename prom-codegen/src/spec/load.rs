//! Finds spec files, reads them and their `$ref`'d schemas, and merges them into one spec.

use super::model::Spec;
use super::parse;
use super::read::Reader;
use crate::diag::{self, Code, Diagnostic};
use crate::source::Span;
use crate::yaml::{self, Node};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A loaded spec and every problem found while reading it (lint rules not yet applied).
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// The merged spec.
    pub spec: Spec,
    /// Syntax and structure problems.
    pub diagnostics: Vec<Diagnostic>,
}

/// Loads spec files and directories (all `*.yaml`/`*.yml` below a directory, except in
/// hidden directories and directories named `schemas`, which hold referenced JSON Schemas).
pub fn load_paths(paths: &[PathBuf]) -> Loaded {
    let mut r = Reader::default();
    let mut spec = Spec::default();
    for path in paths {
        let files = if path.is_dir() {
            let mut files = Vec::new();
            collect_yaml(path, &mut files, &mut r);
            files.sort();
            if files.is_empty() {
                let at: Arc<Path> = Arc::from(path.as_path());
                r.push(
                    Diagnostic::warning(
                        Code::Io,
                        &Span::file_start(&at),
                        "no spec files (*.yaml, *.yml) found",
                    )
                    .with_help("put the specs in this directory or pass the spec file itself"),
                );
            }
            files
        } else {
            vec![path.clone()]
        };
        for file in files {
            let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
            if let Some(text) = r.read_file(&file, None) {
                load_text(&mut r, &file, &text, &dir, &mut spec);
            }
        }
    }
    finish(r, spec)
}

/// Loads one spec from text; `$ref`s resolve against `dir`.
pub fn load_str(name: &Path, text: &str, dir: &Path) -> Loaded {
    let mut r = Reader::default();
    let mut spec = Spec::default();
    r.sources.add(name.to_path_buf(), Arc::from(text));
    load_text(&mut r, name, text, dir, &mut spec);
    finish(r, spec)
}

/// Loads a spec embedded as text: `documents` are the spec files (in order) and `files` holds
/// every file by path, spec files and `$ref`'d schemas alike (what generated code embeds).
pub fn load_embedded(documents: &[&str], files: &[(&str, &str)]) -> Loaded {
    let memory = files.iter().map(|(path, text)| (normalize(Path::new(path)), Arc::from(*text))).collect();
    let mut r = Reader { memory: Some(memory), ..Reader::default() };
    let mut spec = Spec::default();
    for document in documents {
        let path = Path::new(document);
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        if let Some(text) = r.read_file(path, None) {
            load_text(&mut r, path, &text, &dir, &mut spec);
        }
    }
    finish(r, spec)
}

/// `a/./b/../c` → `a/c`, so embedded `$ref` targets match however they were spelt.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

fn finish(r: Reader, mut spec: Spec) -> Loaded {
    let mut diagnostics = r.diagnostics;
    diag::sort(&mut diagnostics);
    spec.sources = r.sources;
    Loaded { spec, diagnostics }
}

fn load_text(r: &mut Reader, file: &Path, text: &str, dir: &Path, spec: &mut Spec) {
    spec.documents.push(file.to_path_buf());
    let shared: Arc<Path> = Arc::from(file);
    let (root, diagnostics) = yaml::load(text, &shared);
    r.diagnostics.extend(diagnostics);
    if let Some(root) = root {
        parse::document(r, &root, dir, spec);
    }
}

fn collect_yaml(dir: &Path, out: &mut Vec<PathBuf>, r: &mut Reader) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) => {
            let at: Arc<Path> = Arc::from(dir);
            r.push(Diagnostic::error(
                Code::Io,
                &Span::file_start(&at),
                format!("cannot read directory: {error}"),
            ));
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if !name.starts_with('.') && name != "schemas" {
                collect_yaml(&path, out, r);
            }
        } else if name.ends_with(".yaml") || name.ends_with(".yml") {
            out.push(path);
        }
    }
}

impl Reader {
    /// Reads a file into the source map; `referenced_at` is the `$ref` that named it.
    fn read_file(&mut self, path: &Path, referenced_at: Option<&Span>) -> Option<Arc<str>> {
        let read = match &self.memory {
            Some(files) => files.get(&normalize(path)).map(|text| text.to_string()).ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, "not among the embedded files")
            }),
            None => read_regular_file(path),
        };
        match read {
            Ok(text) => {
                let text: Arc<str> = Arc::from(text);
                self.sources.add(path.to_path_buf(), text.clone());
                Some(text)
            }
            Err(error) => {
                let own: Arc<Path> = Arc::from(path);
                let span = referenced_at.cloned().unwrap_or_else(|| Span::file_start(&own));
                self.push(
                    Diagnostic::error(Code::Io, &span, format!("cannot read `{}`: {error}", path.display()))
                        .with_help("check the path; `$ref` paths are relative to the spec file"),
                );
                None
            }
        }
    }

    /// Loads a `$ref`'d JSON Schema file (JSON or YAML) as a located tree.
    pub fn load_ref(&mut self, path: &Path, referenced_at: &Span) -> Option<Node> {
        let text = self.read_file(path, Some(referenced_at))?;
        let shared: Arc<Path> = Arc::from(path);
        let (root, diagnostics) = yaml::load(&text, &shared);
        self.diagnostics.extend(diagnostics);
        root
    }
}

/// Largest spec or schema file read; anything bigger is almost surely not a spec.
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Reads a regular file of sane size (never a device or FIFO that could block forever).
fn read_regular_file(path: &Path) -> std::io::Result<String> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "larger than 16 MiB"));
    }
    std::fs::read_to_string(path)
}
