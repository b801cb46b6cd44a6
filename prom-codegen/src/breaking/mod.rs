//! `prom-codegen breaking --against REF`: what a change to the specs would break for readers of
//! events already written, comparing the specs at a git ref with the working tree (like
//! `buf breaking`). Findings are diagnostics with lint's codes, located in the working tree where
//! the thing still exists, else in the old file (shown as `REF:path`).

mod git;

pub use git::{GitError, Snapshot, snapshot};

use prom_spec::diag::{Code, Diagnostic};
use prom_spec::kinds::CompatMode;
use prom_spec::lock::fingerprint;
use prom_spec::source::{SourceMap, Span};
use prom_spec::spec::Spec;
use std::path::Path;
use std::sync::Arc;

/// What `old` (the ref) promised that `new` (the working tree) breaks, sorted by location.
pub fn compare(old: &Spec, new: &Spec, reference: &str) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    topics(old, new, reference, &mut out);
    consumers(old, new, reference, &mut out);
    prom_spec::diag::sort(&mut out);
    out
}

fn topics(old: &Spec, new: &Spec, reference: &str, out: &mut Vec<Diagnostic>) {
    for (name, before) in &old.topics {
        let Some(after) = new.topics.get(name) else {
            out.push(
                Diagnostic::error(
                    Code::LockedVersionRemoved,
                    &before.name.span,
                    format!("topic `{name}` (declared at {reference}) was removed"),
                )
                .with_label("removed since")
                .with_help(
                    "its stored events and its consumers would have no declaration: keep the topic \
                     (stop publishing to it instead) until every reader and the data are gone",
                ),
            );
            continue;
        };
        for version in &before.versions {
            let number = version.number.value;
            let Some(now) = after.versions.iter().find(|v| v.number.value == number) else {
                out.push(
                    Diagnostic::error(
                        Code::LockedVersionRemoved,
                        &after.versions_span,
                        format!("version {number} of topic `{name}` (declared at {reference}) was removed"),
                    )
                    .with_help(format!(
                        "events stored as version {number} would fail to decode: declare it again"
                    )),
                );
                continue;
            };
            let (was, is) = (fingerprint(version), fingerprint(now));
            let next = after.versions.last().map_or(number + 1, |v| v.number.value + 1);
            let help = format!(
                "events already written as version {number} keep their old shape: restore it as at \
                 {reference} and add version {next} with an upcast"
            );
            if was.schema != is.schema {
                out.push(
                    Diagnostic::error(
                        Code::LockedVersionEdited,
                        &now.schema.span,
                        format!("the schema of version {number} of topic `{name}` was edited in place since {reference}"),
                    )
                    .with_help(help.clone()),
                );
            }
            if was.upcast != is.upcast {
                let span = now.upcast.as_ref().map_or(&now.number.span, |u| &u.span);
                out.push(
                    Diagnostic::error(
                        Code::LockedVersionEdited,
                        span,
                        format!("the upcast of version {number} of topic `{name}` was edited in place since {reference}"),
                    )
                    .with_help(help),
                );
            }
        }
        let (was, is) = (before.compat_mode(), after.compat_mode());
        if loosened(was, is) {
            let span = after.compat.as_ref().map_or(&after.name.span, |c| &c.span);
            out.push(
                Diagnostic::error(
                    Code::CompatLoosened,
                    span,
                    format!(
                        "the compatibility mode of topic `{name}` was loosened from `{}` to `{}` since {reference}",
                        was.name(),
                        is.name()
                    ),
                )
                .with_help(format!(
                    "readers rely on what `{}` guaranteed: keep it (or a stricter mode)",
                    was.name()
                )),
            );
        }
        let partitions = |t: &prom_spec::spec::Topic| t.partitions.as_ref().map_or(1, |p| p.value);
        if partitions(before) != partitions(after) {
            let span = after.partitions.as_ref().map_or(&after.name.span, |p| &p.span);
            out.push(
                Diagnostic::error(
                    Code::PartitioningChanged,
                    span,
                    format!(
                        "the partition count of topic `{name}` changed from {} to {} since {reference}",
                        partitions(before),
                        partitions(after)
                    ),
                )
                .with_help(
                    "keys move to other partitions, so events of one key are no longer read in order: \
                     keep the count, or publish to a new topic",
                ),
            );
        }
        let key = |t: &prom_spec::spec::Topic| t.key.as_ref().map(|k| k.value.clone());
        if key(before) != key(after) {
            let span = after.key.as_ref().map_or(&after.name.span, |k| &k.span);
            let shown = |k: Option<String>| k.map_or_else(|| "none".to_owned(), |k| format!("`{k}`"));
            out.push(
                Diagnostic::error(
                    Code::PartitioningChanged,
                    span,
                    format!(
                        "the key of topic `{name}` changed from {} to {} since {reference}",
                        shown(key(before)),
                        shown(key(after))
                    ),
                )
                .with_help(
                    "events are partitioned and compacted by key: a new key reshuffles them; keep the \
                     key, or publish to a new topic",
                ),
            );
        }
        if before.dual_write() && !after.dual_write() {
            let span = after.dual_write.as_ref().map_or(&after.name.span, |d| &d.span);
            out.push(
                Diagnostic::error(
                    Code::DualWriteRemoved,
                    span,
                    format!("topic `{name}` no longer dual-writes to `{name}.v<N>` (it did at {reference})"),
                )
                .with_help(
                    "readers of the versioned topics would stop receiving events: keep `dual_write: true` \
                     until they moved to the topic itself",
                ),
            );
        }
    }
}

fn consumers(old: &Spec, new: &Spec, reference: &str, out: &mut Vec<Diagnostic>) {
    for (name, before) in &old.consumers {
        if !new.consumers.contains_key(name) {
            out.push(
                Diagnostic::error(
                    Code::ConsumerRemoved,
                    &before.name.span,
                    format!("consumer `{name}` (declared at {reference}) was removed"),
                )
                .with_label("removed since")
                .with_help(
                    "its group stops reading and its cursor is left behind: if that is intended, remove it \
                     in a change of its own, after its events are handled",
                ),
            );
        }
    }
}

/// What a mode guarantees: backward, forward, across every earlier version.
fn guarantees(mode: CompatMode) -> (bool, bool, bool) {
    match mode {
        CompatMode::None => (false, false, false),
        CompatMode::Backward => (true, false, false),
        CompatMode::Forward => (false, true, false),
        CompatMode::Full => (true, true, false),
        CompatMode::BackwardTransitive => (true, false, true),
        CompatMode::ForwardTransitive => (false, true, true),
        CompatMode::FullTransitive => (true, true, true),
    }
}

/// Whether `new` drops a guarantee `old` gave.
fn loosened(old: CompatMode, new: CompatMode) -> bool {
    let (ob, of, ot) = guarantees(old);
    let (nb, nf, nt) = guarantees(new);
    (ob && !nb) || (of && !nf) || (ot && !nt)
}

/// Shows the old spec's files as `REF:path` (relative to the repository root): rewrites the
/// diagnostics located in `dir` (the snapshot) and returns their sources under those names.
pub fn relocate(diagnostics: &mut [Diagnostic], old: &SourceMap, dir: &Path, reference: &str) -> SourceMap {
    let shown = |path: &Path| -> Option<Arc<Path>> {
        let relative = path.strip_prefix(dir).ok()?;
        let name = format!("{reference}:{}", relative.display().to_string().replace('\\', "/"));
        Some(Arc::from(Path::new(&name)))
    };
    for diagnostic in diagnostics.iter_mut() {
        if let Some(file) = shown(&diagnostic.span.file) {
            diagnostic.span = Span { file, ..diagnostic.span.clone() };
        }
    }
    let mut sources = SourceMap::default();
    for file in old.files() {
        if let Some(name) = shown(&file.path) {
            sources.add(name.to_path_buf(), file.text.clone());
        }
    }
    sources
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loosening_drops_a_guarantee() {
        use CompatMode::*;
        assert!(loosened(Backward, None));
        assert!(loosened(Full, Backward));
        assert!(loosened(BackwardTransitive, Full));
        assert!(loosened(Backward, Forward));
        assert!(!loosened(Backward, Full));
        assert!(!loosened(None, Forward));
        assert!(!loosened(Full, FullTransitive));
        assert!(!loosened(Forward, Forward));
    }
}
