//! A rendered site in memory: writing it (only what changed, removing pages it no longer has)
//! and comparing it with a directory (`--check`).

use super::DocsError;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path};

/// The list of files the site wrote, one relative path a line, kept in the output directory:
/// pages of removed topics are deleted on the next write, and nothing else ever is.
pub const MANIFEST: &str = ".prom-docs";

/// Every file of a site by its relative path (`/`-separated), sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    files: BTreeMap<String, String>,
}

/// What `write` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteReport {
    /// Files written because they were missing or different.
    pub written: Vec<String>,
    /// Files already up to date.
    pub unchanged: usize,
    /// Files of an earlier site that this one no longer has, deleted.
    pub removed: Vec<String>,
}

/// How a directory differs from the site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DifferenceKind {
    /// The site has it; the directory does not.
    Missing,
    /// Both have it, with different contents.
    Stale,
    /// An earlier site wrote it; this one would delete it.
    Extra,
}

/// One file that `--check` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// Its path relative to the output directory.
    pub path: String,
    /// How it differs.
    pub kind: DifferenceKind,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            DifferenceKind::Missing => "missing",
            DifferenceKind::Stale => "stale",
            DifferenceKind::Extra => "left over (the site no longer has it)",
        };
        write!(f, "{}: {kind}", self.path)
    }
}

/// Whether a manifest line names a file inside the output directory (never `..`, absolute
/// paths or the manifest itself): a tampered manifest must not delete anything else.
fn safe_relative(line: &str) -> bool {
    !line.is_empty()
        && line != MANIFEST
        && !line.contains('\\')
        && Path::new(line).components().all(|c| matches!(c, Component::Normal(_)))
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> DocsError + 'a {
    move |source| DocsError::Io { action, path: path.to_owned(), source }
}

impl Site {
    pub(super) fn new(mut files: BTreeMap<String, String>) -> Site {
        let manifest: String = files.keys().map(|path| format!("{path}\n")).collect();
        files.insert(MANIFEST.to_owned(), manifest);
        Site { files }
    }

    /// Every file: relative path → contents.
    pub fn files(&self) -> &BTreeMap<String, String> {
        &self.files
    }

    /// The files an earlier site recorded in `dir`'s manifest (none when there is none).
    fn previous(dir: &Path) -> BTreeSet<String> {
        match prom_spec::input::read_text(&dir.join(MANIFEST)) {
            Ok(text) => text.lines().filter(|l| safe_relative(l)).map(str::to_owned).collect(),
            Err(_) => BTreeSet::new(),
        }
    }

    fn ensure_dir(dir: &Path) -> Result<(), DocsError> {
        match std::fs::metadata(dir) {
            Ok(meta) if !meta.is_dir() => Err(DocsError::NotADirectory(dir.to_owned())),
            _ => Ok(()),
        }
    }

    /// Writes the files that are missing or differ under `dir`, and deletes the files an
    /// earlier site wrote that this one no longer has.
    pub fn write(&self, dir: &Path) -> Result<WriteReport, DocsError> {
        Self::ensure_dir(dir)?;
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
        let mut report = WriteReport::default();
        for old in Self::previous(dir) {
            if self.files.contains_key(&old) {
                continue;
            }
            let path = dir.join(&old);
            match std::fs::remove_file(&path) {
                Ok(()) => report.removed.push(old),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(DocsError::Io { action: "remove", path, source }),
            }
        }
        // The manifest last: an interrupted write leaves the old one, which still lists
        // every file this run may have written.
        let (manifest, pages): (Vec<_>, Vec<_>) = self.files.iter().partition(|(path, _)| *path == MANIFEST);
        for (relative, text) in pages.into_iter().chain(manifest) {
            let path = dir.join(relative);
            let changed = crate::write_if_changed(&path, text).map_err(io("write", &path))?;
            if changed {
                report.written.push(relative.clone());
            } else {
                report.unchanged += 1;
            }
        }
        Ok(report)
    }

    /// How `dir` differs from this site (empty when it is current).
    pub fn check(&self, dir: &Path) -> Result<Vec<Difference>, DocsError> {
        Self::ensure_dir(dir)?;
        let mut out = Vec::new();
        for (relative, text) in &self.files {
            let path = dir.join(relative);
            let kind = match std::fs::read(&path) {
                Ok(bytes) if bytes == text.as_bytes() => continue,
                Ok(_) => DifferenceKind::Stale,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => DifferenceKind::Missing,
                // A directory where a file should be, or an unreadable file: not current.
                Err(_) => DifferenceKind::Stale,
            };
            out.push(Difference { path: relative.clone(), kind });
        }
        for old in Self::previous(dir) {
            if !self.files.contains_key(&old) && dir.join(&old).is_file() {
                out.push(Difference { path: old, kind: DifferenceKind::Extra });
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_lines_never_leave_the_directory() {
        assert!(safe_relative("topics/a.html"));
        for bad in ["", "../x", "/etc/passwd", "a/../../b", "a\\b", MANIFEST, "./x"] {
            assert!(!safe_relative(bad), "{bad}");
        }
    }
}
