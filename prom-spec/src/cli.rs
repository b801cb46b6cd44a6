//! Naming spec files the same way in every command of both CLIs: positional paths or
//! `--specs PATH` (repeatable), `specs` when neither is given.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Where the specs are, as every command that reads them takes it.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SpecPaths {
    /// Spec files or directories [default: specs]; the same as `--specs PATH`.
    #[arg(value_name = "PATH", id = SPEC_PATHS_ID)]
    pub paths: Vec<PathBuf>,
    /// A spec file or directory, repeatable [default: specs]; the same as a positional PATH.
    #[arg(long = "specs", value_name = "PATH")]
    pub specs: Vec<PathBuf>,
}

/// The clap id of the positional spec paths (so a CLI can move them after its own positionals).
pub const SPEC_PATHS_ID: &str = "spec_paths";

/// The spec paths were given both ways, naming different files.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConflictingSpecPaths {
    /// The positional paths.
    pub positional: Vec<PathBuf>,
    /// The `--specs` paths.
    pub flagged: Vec<PathBuf>,
}

impl std::fmt::Display for ConflictingSpecPaths {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |paths: &[PathBuf]| {
            paths.iter().map(|p| format!("`{}`", p.display())).collect::<Vec<_>>().join(", ")
        };
        write!(
            f,
            "the spec paths are given twice and differ: as arguments {} and with --specs {}\n  \
             = help: name them one way: `PATH...` or `--specs PATH` (repeatable)",
            crate::diag::escape_controls(&list(&self.positional)),
            crate::diag::escape_controls(&list(&self.flagged)),
        )
    }
}

impl std::error::Error for ConflictingSpecPaths {}

impl SpecPaths {
    /// The paths to read: either form (both only when they agree), else `specs`.
    pub fn resolve(&self) -> Result<Vec<PathBuf>, ConflictingSpecPaths> {
        match (self.paths.is_empty(), self.specs.is_empty()) {
            (true, true) => Ok(vec![PathBuf::from("specs")]),
            (false, true) => Ok(self.paths.clone()),
            (true, false) => Ok(self.specs.clone()),
            (false, false) if same_set(&self.paths, &self.specs) => Ok(self.paths.clone()),
            (false, false) => {
                Err(ConflictingSpecPaths { positional: self.paths.clone(), flagged: self.specs.clone() })
            }
        }
    }
}

fn same_set(a: &[PathBuf], b: &[PathBuf]) -> bool {
    fn set(paths: &[PathBuf]) -> BTreeSet<&Path> {
        paths.iter().map(PathBuf::as_path).collect()
    }
    set(a) == set(b)
}

/// Gives every (sub)command's positional spec paths the last positional index, so commands
/// with positionals of their own (`prom publish TOPIC JSON [PATH]...`) take the paths after them
/// even though the paths are declared first.
pub fn spec_paths_last(mut command: clap::Command) -> clap::Command {
    let has_paths = command.get_arguments().any(|a| a.get_id() == SPEC_PATHS_ID);
    if has_paths {
        let positionals = command.get_positionals().count();
        command = command.mut_arg(SPEC_PATHS_ID, |arg| arg.index(positionals));
    }
    let names: Vec<String> = command.get_subcommands().map(|s| s.get_name().to_string()).collect();
    for name in names {
        command = command.mut_subcommand(name, spec_paths_last);
    }
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(positional: &[&str], flagged: &[&str]) -> SpecPaths {
        SpecPaths {
            paths: positional.iter().map(PathBuf::from).collect(),
            specs: flagged.iter().map(PathBuf::from).collect(),
        }
    }

    #[test]
    fn neither_form_means_specs() {
        assert_eq!(paths(&[], &[]).resolve(), Ok(vec![PathBuf::from("specs")]));
    }

    #[test]
    fn either_form_alone_is_taken_as_given() {
        assert_eq!(paths(&["a", "b"], &[]).resolve(), Ok(vec!["a".into(), "b".into()]));
        assert_eq!(paths(&[], &["a", "b"]).resolve(), Ok(vec!["a".into(), "b".into()]));
    }

    #[test]
    fn both_forms_must_agree() {
        assert_eq!(paths(&["a", "b"], &["b", "a"]).resolve(), Ok(vec!["a".into(), "b".into()]));
        let error = paths(&["a"], &["b"]).resolve().expect_err("the forms differ");
        let text = error.to_string();
        assert!(text.contains("as arguments `a` and with --specs `b`"), "{text}");
        assert!(text.contains("help: name them one way"), "{text}");
    }
}
