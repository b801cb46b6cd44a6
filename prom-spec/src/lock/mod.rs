//! The schema lock (`prom.lock`): the fingerprint of every published version, so a version
//! cannot be edited in place once events were written with it.
//!
//! A schema registry refuses to overwrite a registered schema; Prom has no registry, so the
//! lock file committed next to the specs plays that part. `prom-codegen build` records every
//! version in it; lint (in every front end: `lint`, `build`, `check`, `Builder`, the macros and
//! `prom run`, all through [`crate::lint_paths`]) reports a locked version whose schema or
//! upcast changed (P209) and a locked version or topic that is gone (P210). The only way past
//! them is explicit: a [`Rewrite`] (`prom-codegen lock --rewrite TOPIC@VERSION`).

mod check;
mod file;
mod fingerprint;

pub use check::{check, unlocked};
pub use file::{LockError, parse, render};
pub use fingerprint::{Fingerprint, fingerprint};

use crate::source::Span;
use crate::spec::Spec;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The lock's file name, inside the spec directory.
pub const LOCK_FILE: &str = "prom.lock";

/// A parsed `prom.lock`: locked versions by topic and number.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Lock {
    /// Locked topics by name.
    pub topics: BTreeMap<String, LockedTopic>,
}

/// One topic's locked versions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LockedTopic {
    /// Where the topic is named in the lock file (none for a lock built in memory).
    pub span: Option<Span>,
    /// Locked versions by number.
    pub versions: BTreeMap<u32, LockedVersion>,
}

/// One locked version: its fingerprint and where it is written.
#[derive(Debug, Clone, PartialEq)]
pub struct LockedVersion {
    /// The recorded fingerprint.
    pub fingerprint: Fingerprint,
    /// Where the version is named in the lock file (none for a lock built in memory).
    pub span: Option<Span>,
}

/// The lock of the specs at `paths`: `prom.lock` in the first directory given. Specs named only
/// as files have no lock (a file is often one part of a directory, whose lock would list topics
/// the file does not declare).
pub fn path_for(paths: &[PathBuf]) -> Option<PathBuf> {
    paths.iter().find(|p| p.is_dir()).map(|dir| dir.join(LOCK_FILE))
}

/// Whether `path` names a lock file (so code generation does not list it as a spec input).
pub fn is_lock_file(path: &Path) -> bool {
    path.file_name().is_some_and(|name| name == LOCK_FILE)
}

impl Lock {
    /// The lock recording every version of `spec`, keeping what `self` holds except the entries
    /// `rewrites` release (those are recorded afresh, or dropped when the spec no longer has them).
    pub fn updated(&self, spec: &Spec, rewrites: &[Rewrite]) -> Lock {
        let mut topics: BTreeMap<String, LockedTopic> = BTreeMap::new();
        for (name, locked) in &self.topics {
            let versions: BTreeMap<u32, LockedVersion> = locked
                .versions
                .iter()
                .filter(|(number, _)| !rewrites.iter().any(|r| r.covers(name, **number)))
                .map(|(number, version)| (*number, LockedVersion { span: None, ..version.clone() }))
                .collect();
            if !versions.is_empty() {
                topics.insert(name.clone(), LockedTopic { span: None, versions });
            }
        }
        for (name, topic) in &spec.topics {
            for version in &topic.versions {
                let entry = topics.entry(name.clone()).or_default();
                entry
                    .versions
                    .entry(version.number.value)
                    .or_insert_with(|| LockedVersion { fingerprint: fingerprint(version), span: None });
            }
        }
        Lock { topics }
    }

    /// Whether both locks record the same fingerprints (locations aside).
    pub fn same_entries(&self, other: &Lock) -> bool {
        let entries = |lock: &Lock| -> Vec<(String, u32, Fingerprint)> {
            lock.topics
                .iter()
                .flat_map(|(name, t)| {
                    t.versions.iter().map(|(n, v)| (name.clone(), *n, v.fingerprint.clone()))
                })
                .collect()
        };
        entries(self) == entries(other)
    }
}

/// A locked entry released for a deliberate rewrite: a whole topic or one version of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewrite {
    /// The topic.
    pub topic: String,
    /// The version, or every version of the topic.
    pub version: Option<u32>,
}

impl Rewrite {
    /// Whether this rewrite releases `topic`'s version `number`.
    pub fn covers(&self, topic: &str, number: u32) -> bool {
        self.topic == topic && self.version.is_none_or(|v| v == number)
    }
}

impl std::str::FromStr for Rewrite {
    type Err = String;

    /// `TOPIC@VERSION` or `TOPIC`.
    fn from_str(text: &str) -> Result<Self, String> {
        let (topic, version) = match text.rsplit_once('@') {
            Some((topic, number)) => {
                let number: u32 = number.parse().map_err(|_| {
                    format!("`{number}` is not a version number: write TOPIC@VERSION, e.g. orders.placed@2")
                })?;
                (topic, Some(number))
            }
            None => (text, None),
        };
        if topic.is_empty() {
            return Err("the topic is empty: write TOPIC@VERSION or TOPIC".to_owned());
        }
        Ok(Rewrite { topic: topic.to_owned(), version })
    }
}

impl std::fmt::Display for Rewrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.version {
            Some(v) => write!(f, "{}@{v}", self.topic),
            None => f.write_str(&self.topic),
        }
    }
}
