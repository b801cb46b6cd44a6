//! Finds spec files, reads them and their `$ref`'d schemas, and merges them into one spec.

use super::model::Spec;
use super::parse;
use super::read::{Memory, Reader};
use crate::diag::{self, Code, Diagnostic};
use crate::input::{self, ReadError};
use crate::source::{Pos, Span};
use crate::yaml::{self, Node};
use std::collections::{HashMap, HashSet};
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
/// Each real directory is read once, however many symlinks lead to it; `$ref`s stay inside
/// the directory given (or the directory of the file given).
pub fn load_paths(paths: &[PathBuf]) -> Loaded {
    let mut r = Reader::default();
    let mut documents = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut walk = Walk::default();
            walk.root(path, &mut r);
            let mut files = walk.files;
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
            let root = canonical_dir(path);
            documents.extend(files.into_iter().map(|file| (file, root.clone())));
        } else {
            let root = canonical_dir(path.parent().unwrap_or(Path::new("")));
            documents.push((path.clone(), root));
        }
    }
    load_documents(r, &documents)
}

/// The canonical form of a directory (`""` is the current one), the root `$ref`s must stay in.
fn canonical_dir(dir: &Path) -> Option<PathBuf> {
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    std::fs::canonicalize(dir).ok()
}

/// Loads one spec from text; `$ref`s resolve against `dir`.
pub fn load_str(name: &Path, text: &str, dir: &Path) -> Loaded {
    let mut r = Reader::default();
    let mut spec = Spec::default();
    r.sources.add(name.to_path_buf(), Arc::from(text));
    let one = read_document(&r.memory, name, text, dir, canonical_dir(dir));
    absorb(&mut r, &mut spec, one);
    finish(r, spec)
}

/// Loads a spec embedded as text: `documents` are the spec files (in order) and `files` holds
/// every file by path, spec files and `$ref`'d schemas alike (what generated code embeds).
pub fn load_embedded(documents: &[&str], files: &[(&str, &str)]) -> Loaded {
    let memory = files.iter().map(|(path, text)| (normalize(Path::new(path)), Arc::from(*text))).collect();
    let r = Reader { memory: Some(Arc::new(memory)), ..Reader::default() };
    // Embedded specs read only embedded files, so there is no directory to confine `$ref`s to.
    let documents: Vec<(PathBuf, Option<PathBuf>)> =
        documents.iter().map(|d| (PathBuf::from(d), None)).collect();
    load_documents(r, &documents)
}

/// Reads and loads spec documents. Each document is parsed and read on its own, on every core;
/// the results join the spec in document order, so the source map lists files as a one-by-one
/// load would, and a name declared again in a later file is reported there (its body is read
/// too, so its own problems are reported as well).
fn load_documents(mut r: Reader, documents: &[(PathBuf, Option<PathBuf>)]) -> Loaded {
    let texts: Vec<Fetched<'_>> = documents.iter().map(|(file, root)| (file, root, r.fetch(file))).collect();
    let memory = &r.memory;
    let read = crate::par::map(&texts, |(file, root, text)| {
        let dir = file.parent().unwrap_or(Path::new(""));
        text.as_ref().ok().map(|text| read_document(memory, file, text, dir, Option::clone(root)))
    });
    let mut spec = Spec::default();
    for ((file, root, text), one) in texts.into_iter().zip(read) {
        let Some(text) = r.accept(file, text, None) else { continue };
        let one = match one {
            Ok(Some(one)) => one,
            // Reading panicked (a bug): repeat it here, where the panic surfaces as usual.
            _ => read_document(&r.memory, file, &text, file.parent().unwrap_or(Path::new("")), root.clone()),
        };
        absorb(&mut r, &mut spec, one);
    }
    finish(r, spec)
}

/// A document's path, its spec root and its text (or why it could not be read).
type Fetched<'a> = (&'a PathBuf, &'a Option<PathBuf>, Result<Arc<str>, ReadError>);

/// One document read on its own: its declarations, and what its own reader collected
/// (diagnostics, `$ref`'d files).
struct Document {
    path: PathBuf,
    declarations: parse::Declarations,
    reader: Reader,
}

/// Parses and reads one document; `$ref`s resolve against `dir` and must stay inside `root`.
fn read_document(
    memory: &Option<Arc<Memory>>,
    file: &Path,
    text: &str,
    dir: &Path,
    root: Option<PathBuf>,
) -> Document {
    let mut reader = Reader { memory: memory.clone(), root, ..Reader::default() };
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

/// Where a file lives on disk, independent of the path that led to it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Identity {
    /// Device and inode.
    #[cfg_attr(not(unix), allow(dead_code))]
    Inode(u64, u64),
    /// The canonical path, where inodes are not available.
    #[cfg_attr(unix, allow(dead_code))]
    Path(PathBuf),
}

fn identity(path: &Path, meta: &std::fs::Metadata) -> Option<Identity> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let _ = path;
        Some(Identity::Inode(meta.dev(), meta.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        std::fs::canonicalize(path).ok().map(Identity::Path)
    }
}

/// A walk over a spec directory that reads every real directory and file once: symlinks to a
/// parent would otherwise make the walk visit exponentially many paths.
#[derive(Default)]
struct Walk {
    /// Spec files found, by the first path that led to each.
    files: Vec<PathBuf>,
    /// Directories read so far, with the path they were first read under.
    dirs: HashMap<Identity, PathBuf>,
    /// Files found so far (two links to one file would declare everything twice).
    seen_files: HashSet<Identity>,
    /// The directories being read, outermost first: reaching one of them again is a loop.
    ancestors: Vec<Identity>,
}

impl Walk {
    fn root(&mut self, dir: &Path, r: &mut Reader) {
        if let Some(id) = std::fs::metadata(dir).ok().and_then(|meta| identity(dir, &meta)) {
            self.dirs.insert(id.clone(), dir.to_path_buf());
            self.ancestors.push(id);
        }
        self.dir(dir, r);
    }

    fn dir(&mut self, dir: &Path, r: &mut Reader) {
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
        let mut entries: Vec<(PathBuf, std::ffi::OsString)> =
            entries.flatten().map(|entry| (entry.path(), entry.file_name())).collect();
        // Sorted, so which of two links to a directory counts as the repeat is deterministic.
        entries.sort();
        for (path, name) in entries {
            let name = name.to_string_lossy();
            let is_spec = name.ends_with(".yaml") || name.ends_with(".yml");
            let Ok(meta) = std::fs::metadata(&path) else {
                // A dangling link named like a spec: reading it reports why it cannot be read.
                if is_spec {
                    self.files.push(path);
                }
                continue;
            };
            if meta.is_dir() {
                if !name.starts_with('.') && name != "schemas" {
                    self.subdir(&path, &meta, r);
                }
            } else if is_spec {
                let first_time = identity(&path, &meta).is_none_or(|id| self.seen_files.insert(id));
                if first_time {
                    self.files.push(path);
                }
            }
        }
    }

    fn subdir(&mut self, path: &Path, meta: &std::fs::Metadata, r: &mut Reader) {
        let Some(id) = identity(path, meta) else { return self.dir(path, r) };
        if let Some(first) = self.dirs.get(&id) {
            let at: Arc<Path> = Arc::from(path);
            let diagnostic = if self.ancestors.contains(&id) {
                Diagnostic::error(
                    Code::SymlinkLoop,
                    &Span::file_start(&at),
                    format!(
                        "`{}` leads back to `{}`, which contains it: a symlink loop",
                        path.display(),
                        first.display()
                    ),
                )
                .with_help("remove the link; every directory of a spec is read once")
            } else {
                Diagnostic::warning(
                    Code::SymlinkLoop,
                    &Span::file_start(&at),
                    format!(
                        "`{}` is the directory `{}` again; it is read once",
                        path.display(),
                        first.display()
                    ),
                )
                .with_help("remove one of the two paths to the directory")
            };
            r.push(diagnostic);
            return;
        }
        self.dirs.insert(id.clone(), path.to_path_buf());
        self.ancestors.push(id);
        self.dir(path, r);
        self.ancestors.pop();
    }
}

impl Reader {
    /// Reads a file into the source map; `referenced_at` is the `$ref` that named it.
    fn read_file(&mut self, path: &Path, referenced_at: Option<&Span>) -> Option<Arc<str>> {
        let read = self.fetch(path);
        self.accept(path, read, referenced_at)
    }

    /// A file's text, from memory for embedded specs, else from the file system.
    fn fetch(&self, path: &Path) -> Result<Arc<str>, ReadError> {
        match &self.memory {
            Some(files) => files.get(&normalize(path)).cloned().ok_or_else(|| {
                ReadError::Io(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "not among the embedded files",
                ))
            }),
            None => input::read_text(path).map(Arc::from),
        }
    }

    /// Records a fetched file in the source map, or why it could not be read.
    fn accept(
        &mut self,
        path: &Path,
        read: Result<Arc<str>, ReadError>,
        referenced_at: Option<&Span>,
    ) -> Option<Arc<str>> {
        let error = match read {
            Ok(text) => {
                self.sources.add(path.to_path_buf(), text.clone());
                return Some(text);
            }
            Err(error) => error,
        };
        let own: Arc<Path> = Arc::from(path);
        if let ReadError::NotUtf8 { line, column, byte, lossy } = error {
            // Point at the byte itself; the line is shown with the bad bytes replaced.
            self.sources.add(path.to_path_buf(), Arc::from(lossy));
            let start = Pos { line, column };
            let span = Span { file: own, start, end: Pos { line, column: column.saturating_add(1) } };
            self.push(
                Diagnostic::error(
                    Code::YamlSyntax,
                    &span,
                    format!(
                        "`{}` is not valid UTF-8: byte 0x{byte:02X} cannot start or continue a character",
                        path.display()
                    ),
                )
                .with_label("invalid byte here")
                .with_help("save the file as UTF-8 (specs and schemas must be UTF-8 text)"),
            );
            return None;
        }
        let span = referenced_at.cloned().unwrap_or_else(|| Span::file_start(&own));
        let help = match (&error, referenced_at) {
            (_, Some(_)) => "check the path; `$ref` paths are relative to the spec file",
            (ReadError::NotRegular { .. }, None) => "pass a spec file (*.yaml, *.yml) or a directory of them",
            (ReadError::TooLarge, None) => "split the spec into several files in a spec directory",
            _ => "check the path and its permissions",
        };
        self.push(
            Diagnostic::error(Code::Io, &span, format!("cannot read `{}`: {error}", path.display()))
                .with_help(help),
        );
        None
    }

    /// Loads a `$ref`'d JSON Schema file (JSON or YAML) as a located tree; `reference` is the
    /// `$ref` text, relative to `dir`, and must stay inside the spec root.
    pub fn load_ref(&mut self, reference: &str, dir: &Path, referenced_at: &Span) -> Option<Node> {
        let path = self.confine(reference, dir, referenced_at)?;
        let text = self.read_file(&path, Some(referenced_at))?;
        let shared: Arc<Path> = Arc::from(path.as_path());
        let (root, diagnostics) = yaml::load(&text, &shared);
        self.diagnostics.extend(diagnostics);
        root
    }

    /// The path a `$ref` names, if it stays inside the spec root: otherwise a CI run could be
    /// made to read (and quote) any file the build can, such as `/proc/self/environ`.
    fn confine(&mut self, reference: &str, dir: &Path, at: &Span) -> Option<PathBuf> {
        let target = Path::new(reference);
        if target.has_root() || target.is_absolute() {
            self.outside(reference, at, "it is an absolute path".to_owned());
            return None;
        }
        let joined = dir.join(target);
        // Embedded specs read only embedded files: nothing outside can be reached.
        let (None, Some(root)) = (&self.memory, self.root.clone()) else { return Some(joined) };
        let base = canonical_dir(dir).unwrap_or_else(|| dir.to_path_buf());
        // Lexically first, so a `..` escape is refused even when its target does not exist.
        if !normalize(&base.join(target)).starts_with(&root) {
            self.outside(reference, at, "`..` leads out of it".to_owned());
            return None;
        }
        if let Ok(real) = std::fs::canonicalize(&joined)
            && !real.starts_with(&root)
        {
            self.outside(reference, at, "a symlink on the way leads out of it".to_owned());
            return None;
        }
        Some(joined)
    }

    fn outside(&mut self, reference: &str, at: &Span, why: String) {
        self.push(
            Diagnostic::error(
                Code::RefOutsideRoot,
                at,
                format!("`$ref: {reference}` points outside the spec directory: {why}"),
            )
            .with_label("must stay inside the spec directory")
            .with_help("keep referenced schemas inside the spec directory (e.g. `schemas/x.json`) and use a relative path"),
        );
    }
}
