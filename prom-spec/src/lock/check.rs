//! The lock rules: a locked version edited in place (P209), a locked version or topic removed
//! (P210). Versions not yet locked are no lint finding (adding versions is how specs evolve);
//! [`unlocked`] lists them for `prom-codegen check`, which fails on a stale lock.

use super::{Lock, Rewrite, fingerprint};
use crate::diag::{Code, Diagnostic};
use crate::spec::Spec;

/// Checks `spec` against `lock`, except what `rewrites` release.
pub fn check(spec: &Spec, lock: &Lock, rewrites: &[Rewrite], out: &mut Vec<Diagnostic>) {
    // Messages name the lock by its file name and line only: the diagnostic's own location is in
    // the spec, and a build script or macro sees absolute paths that must not leak into output.
    let lock_file = super::LOCK_FILE;
    for (name, locked) in &lock.topics {
        let released = |number: u32| rewrites.iter().any(|r| r.covers(name, number));
        let Some(topic) = spec.topics.get(name) else {
            let (Some(span), false) = (&locked.span, locked.versions.keys().all(|n| released(*n))) else {
                continue;
            };
            out.push(
                Diagnostic::error(
                    Code::LockedVersionRemoved,
                    span,
                    format!("topic `{name}` is locked in {lock_file} but no longer declared"),
                )
                .with_label("locked here")
                .with_help(format!(
                    "its stored events would have no reader: declare it again with its versions; to \
                     retire it deliberately run `prom-codegen lock --rewrite {name}`"
                )),
            );
            continue;
        };
        for (number, locked_version) in &locked.versions {
            if released(*number) {
                continue;
            }
            let at = |span: &Option<crate::source::Span>| match span {
                Some(span) => format!("{lock_file}:{}:{}", span.start.line, span.start.column),
                None => lock_file.to_owned(),
            };
            let Some(version) = topic.versions.iter().find(|v| v.number.value == *number) else {
                // A version that could not be read is reported where it is; no second error.
                if topic.versions_incomplete {
                    continue;
                }
                out.push(
                    Diagnostic::error(
                        Code::LockedVersionRemoved,
                        &topic.versions_span,
                        format!(
                            "version {number} of topic `{name}` is locked at {} but no longer declared",
                            at(&locked_version.span)
                        ),
                    )
                    .with_help(format!(
                        "events stored as version {number} would fail to decode: declare it again as \
                         locked; to drop it deliberately run `prom-codegen lock --rewrite {name}@{number}`"
                    )),
                );
                continue;
            };
            let now = fingerprint(version);
            let help = format!(
                "events already written as version {number} keep their old shape: restore version \
                 {number} as it was and add version {} with an upcast instead; for a deliberate \
                 rewrite run `prom-codegen lock --rewrite {name}@{number}`",
                topic.versions.last().map_or(number + 1, |v| v.number.value + 1)
            );
            if now.schema != locked_version.fingerprint.schema {
                out.push(
                    Diagnostic::error(
                        Code::LockedVersionEdited,
                        &version.schema.span,
                        format!(
                            "the schema of version {number} of topic `{name}` was changed in place: it no \
                             longer matches its fingerprint at {}",
                            at(&locked_version.span)
                        ),
                    )
                    .with_label("differs from the locked schema")
                    .with_help(help.clone()),
                );
            }
            if now.upcast != locked_version.fingerprint.upcast {
                let (span, what) = match &version.upcast {
                    Some(upcast) if locked_version.fingerprint.upcast.is_some() => (&upcast.span, "changed"),
                    Some(upcast) => (&upcast.span, "added"),
                    None => (&version.number.span, "removed"),
                };
                out.push(
                    Diagnostic::error(
                        Code::LockedVersionEdited,
                        span,
                        format!(
                            "the upcast of version {number} of topic `{name}` was {what} in place: it no \
                             longer matches its fingerprint at {}",
                            at(&locked_version.span)
                        ),
                    )
                    .with_help(help),
                );
            }
        }
    }
}

/// The versions of `spec` the lock does not record yet (all of them without a lock), as
/// `(topic, version)` in order.
pub fn unlocked(spec: &Spec, lock: Option<&Lock>) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    for (name, topic) in &spec.topics {
        for version in &topic.versions {
            let number = version.number.value;
            let locked =
                lock.and_then(|l| l.topics.get(name)).is_some_and(|t| t.versions.contains_key(&number));
            if !locked {
                out.push((name.clone(), number));
            }
        }
    }
    out
}
