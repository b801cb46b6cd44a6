//! Finds spec files, reads them and their `$ref`'d schemas, and merges them into one spec.

use super::model::Spec;
use super::parse;
use super::read::{Memory, Reader};
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
    let mut documents = Vec::new();
    for path in paths {
        if path.is_dir() {
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
            documents.extend(files);
        } else {
            documents.push(path.clone());
        }
    }
    load_documents(r, &documents)
}

/// Loads one spec from text; `$ref`s resolve against `dir`.
pub fn load_str(name: &Path, text: &str, dir: &Path) -> Loaded {
    let mut r = Reader::default();
    let mut spec = Spec::default();
    r.sources.add(name.to_path_buf(), Arc::from(text));
    let one = read_document(&r.memory, name, text, dir);
    absorb(&mut r, &mut spec, one);
    finish(r, spec)
}

/// Loads a spec embedded as text: `documents` are the spec files (in order) and `files` holds
/// every file by path, spec files and `$ref`'d schemas alike (what generated code embeds).
pub fn load_embedded(documents: &[&str], files: &[(&str, &str)]) -> Loaded {
    let memory = files.iter().map(|(path, text)| (normalize(Path::new(path)), Arc::from(*text))).collect();
    let r = Reader { memory: Some(Arc::new(memory)), ..Reader::default() };
    let documents: Vec<PathBuf> = documents.iter().map(PathBuf::from).collect();
    load_documents(r, &documents)
}

/// Reads and loads spec documents. Each document is parsed and read on its own, on every core;
/// the results join the spec in document order, so the source map lists files as a one-by-one
/// load would, and a name declared again in a later file is reported there (its body is read
/// too, so its own problems are reported as well).
fn load_documents(mut r: Reader, documents: &[PathBuf]) -> Loaded {
    let texts: Vec<(&PathBuf, std::io::Result<Arc<str>>)> =
        documents.iter().map(|file| (file, r.fetch(file))).collect();
    let memory = &r.memory;
    let read = crate::par::map(&texts, |(file, text)| {
        let dir = file.parent().unwrap_or(Path::new(""));
        text.as_ref().ok().map(|text| read_document(memory, file, text, dir))
    });
    let mut spec = Spec::default();
    for ((file, text), one) in texts.into_iter().zip(read) {
        let Some(text) = r.accept(file, text, None) else { continue };
        let one = match one {
            Ok(Some(one)) => one,
            // Reading panicked (a bug): repeat it here, where the panic surfaces as usual.
            _ => read_document(&r.memory, file, &text, file.parent().unwrap_or(Path::new(""))),
        };
        absorb(&mut r, &mut spec, one);
    }
    finish(r, spec)
}

/// One document read on its own: its declarations, and what its own reader collected
/// (diagnostics, `$ref`'d files).
struct Document {
    path: PathBuf,
    declarations: parse::Declarations,
    reader: Reader,
}

/// Parses and reads one document; `$ref`s resolve against `dir`.
fn read_document(memory: &Option<Arc<Memory>>, file: &Path, text: &str, dir: &Path) -> Document {
    let mut reader = Reader { memory: memory.clone(), ..Reader::default() };
    let (root, diagnostics) = yaml::load(text, &Arc::from(file));
    reader.diagnostics.extend(diagnostics);
    let declarations = match root {
        Some(root) => parse::document(&mut reader, &root, dir),
        None => parse::Declarations::default(),
    };
    Document { path: file.to_path_buf(), declarations, reader }
}

/// Adds a document read on its own to the spec (after the document itself was recorded).
fn absorb(r: &mut Reader, spec: &mut Spec, one: Document) {
    spec.documents.push(one.path);
    r.diagnostics.extend(one.reader.diagnostics);
    for file in one.reader.sources.files() {
        r.sources.add(file.path.clone(), file.text.clone());
    }
    parse::merge(r, one.declarations, spec);
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
        let read = self.fetch(path);
        self.accept(path, read, referenced_at)
    }

    /// A file's text, from memory for embedded specs, else from the file system.
    fn fetch(&self, path: &Path) -> std::io::Result<Arc<str>> {
        match &self.memory {
            Some(files) => files.get(&normalize(path)).cloned().ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, "not among the embedded files")
            }),
            None => read_regular_file(path).map(Arc::from),
        }
    }

    /// Records a fetched file in the source map, or why it could not be read.
    fn accept(
        &mut self,
        path: &Path,
        read: std::io::Result<Arc<str>>,
        referenced_at: Option<&Span>,
    ) -> Option<Arc<str>> {
        match read {
            Ok(text) => {
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
