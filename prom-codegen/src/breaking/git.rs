//! The specs as they were at a git ref, read with the `git` command (no libgit2): every file
//! below the spec paths is copied out of the commit into a temporary directory, with the same
//! layout, so `$ref`s and `prom.lock` resolve as they did then.

use std::path::{Component, Path, PathBuf};
use std::process::Command;

/// Why the specs at a ref could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GitError {
    /// `git` could not be started.
    #[error("cannot run `git`: {0}\n  = help: install git, or run from a machine that has it")]
    Spawn(#[source] std::io::Error),
    /// The working directory is not inside a git work tree.
    #[error(
        "not inside a git repository: {0}\n  = help: run `prom-codegen breaking` in the repository that holds the specs"
    )]
    NotARepository(String),
    /// The ref does not name a commit.
    #[error(
        "`{reference}` is not a commit of this repository\n  = help: name a branch, tag or commit, e.g. `--against origin/main` or `--against HEAD~1`"
    )]
    UnknownRef {
        /// The ref as given (control characters escaped).
        reference: String,
    },
    /// A spec path lies outside the repository.
    #[error("`{0}` is outside the git repository, so it has no history to compare with")]
    OutsideRepository(PathBuf),
    /// A git command failed.
    #[error("`git {command}` failed: {message}")]
    Failed {
        /// The command's arguments.
        command: String,
        /// What git said.
        message: String,
    },
    /// Writing the temporary copy failed.
    #[error("cannot write the specs of `{reference}` to a temporary directory: {source}")]
    Io {
        /// The ref as given.
        reference: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Largest file copied out of a commit (the loader refuses bigger ones anyway).
const MAX_BLOB_BYTES: u64 = prom_spec::input::MAX_FILE_BYTES;

/// The specs of one commit, copied into a temporary directory that is removed on drop.
#[derive(Debug)]
pub struct Snapshot {
    /// The temporary directory (the repository root of the copy).
    pub dir: PathBuf,
    /// The spec paths, inside the copy, in the order given; `None` where the path did not exist
    /// at the ref.
    pub paths: Vec<Option<PathBuf>>,
    /// The resolved commit id.
    pub commit: String,
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn git(args: &[&str]) -> Result<Vec<u8>, GitError> {
    let out = Command::new("git").args(args).output().map_err(GitError::Spawn)?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(GitError::Failed {
            command: args.join(" "),
            message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&bytes).trim_end_matches(['\n', '\r']).to_owned()
}

/// `path` (relative to the working directory, or absolute) relative to the repository root.
fn in_repository(path: &Path, top: &Path, cwd: &Path) -> Result<PathBuf, GitError> {
    let absolute = if path.is_absolute() { path.to_path_buf() } else { cwd.join(path) };
    let mut normal = PathBuf::new();
    for component in absolute.components() {
        match component {
            Component::ParentDir => {
                normal.pop();
            }
            Component::CurDir => {}
            other => normal.push(other),
        }
    }
    normal
        .strip_prefix(top)
        .map(Path::to_path_buf)
        .map_err(|_| GitError::OutsideRepository(path.to_path_buf()))
}

/// Copies every file below `paths` as of `reference` into a temporary directory.
pub fn snapshot(reference: &str, paths: &[PathBuf]) -> Result<Snapshot, GitError> {
    let top = PathBuf::from(text(git(&["rev-parse", "--show-toplevel"]).map_err(|e| match e {
        GitError::Failed { message, .. } => GitError::NotARepository(message),
        other => other,
    })?));
    // Canonical on both sides, so a symlinked working directory still strips.
    let top = std::fs::canonicalize(&top).unwrap_or(top);
    let cwd = std::env::current_dir()
        .and_then(std::fs::canonicalize)
        .map_err(|source| GitError::Io { reference: reference.to_owned(), source })?;
    let commit = match git(&[
        "rev-parse",
        "--verify",
        "--quiet",
        "--end-of-options",
        &format!("{reference}^{{commit}}"),
    ]) {
        Ok(id) => text(id),
        Err(GitError::Failed { .. }) => {
            let reference = prom_spec::diag::escape_controls(reference).into_owned();
            return Err(GitError::UnknownRef { reference });
        }
        Err(other) => return Err(other),
    };
    let dir = std::env::temp_dir().join(format!(
        "prom-breaking-{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
    ));
    let io = |source| GitError::Io { reference: reference.to_owned(), source };
    std::fs::create_dir_all(&dir).map_err(io)?;
    let mut snapshot = Snapshot { dir, paths: Vec::new(), commit };
    let top_str = top.display().to_string();
    for path in paths {
        let relative = in_repository(path, &top, &cwd)?;
        let relative_str = relative.to_string_lossy().replace('\\', "/");
        let pathspec = if relative_str.is_empty() { ".".to_owned() } else { relative_str.clone() };
        let listing = git(&[
            "-C",
            &top_str,
            "ls-tree",
            "-r",
            "-l",
            "-z",
            "--full-tree",
            &snapshot.commit,
            "--",
            &pathspec,
        ])?;
        let mut found = false;
        for entry in listing.split(|b| *b == 0).filter(|e| !e.is_empty()) {
            // `<mode> <type> <object> <size>\t<path>`
            let entry = String::from_utf8_lossy(entry);
            let Some((meta, file)) = entry.split_once('\t') else { continue };
            let fields: Vec<&str> = meta.split_whitespace().collect();
            // Only regular files: symlinks and submodules have no text of their own here.
            let [mode, "blob", object, size] = fields[..] else { continue };
            if !mode.starts_with("100") || size.parse::<u64>().map_or(true, |s| s > MAX_BLOB_BYTES) {
                continue;
            }
            let target = snapshot.dir.join(file);
            if !target.starts_with(&snapshot.dir) || file.split('/').any(|c| c == "..") {
                continue;
            }
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(io)?;
            }
            let blob = git(&["-C", &top_str, "cat-file", "blob", object])?;
            std::fs::write(&target, blob).map_err(io)?;
            found = true;
        }
        let copy = snapshot.dir.join(&relative);
        snapshot.paths.push(found.then_some(copy));
    }
    Ok(snapshot)
}
