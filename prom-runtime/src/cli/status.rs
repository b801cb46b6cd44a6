//! `prom status`: topics, consumer groups, DLQs, projectors and changefeeds of the declared
//! system as a table or JSON ([`crate::metrics::inspect::Status`]). Read-only: the embedded store
//! is opened read-only and no group is joined, so it never takes an event from anyone.

use super::{Failure, Outcome, SpecArgs};
use crate::bus::{AnyBus, SqliteBus};
use crate::metrics::inspect::{self, Status};
use std::fmt::Write as _;

/// Arguments of `prom status`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    spec: SpecArgs,
    /// `table` for people, `json` for scripts (one object; its shape is documented and stable).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned tables, one per kind of component.
    Table,
    /// One JSON object.
    Json,
}

/// Prints the status of the declared system.
pub async fn run(target: &super::Target, args: Args) -> Outcome {
    let (spec, _registry) = super::load(&args.spec)?;
    let bus = open(target).await?;
    let status = inspect::collect(&bus, &spec).await?;
    match args.format {
        Format::Json => super::print_json(&status),
        Format::Table => {
            print!("{}", render(&status));
            Ok(())
        }
    }
}

/// The embedded store read-only (it must exist: a status command never creates one), or MongoDB.
async fn open(target: &super::Target) -> Result<AnyBus, Failure> {
    if target.mongo.is_some() {
        return target.open().await;
    }
    let file = target.store.join(crate::bus::sqlite::FILE_NAME);
    if std::fs::symlink_metadata(&file).is_err() {
        return Err(Failure::Runtime(format!(
            "no embedded store at `{}` (no `{}` there): nothing was published or run with this --store yet; \
             pass the directory `prom run`/`prom publish` use with --store DIR, or --mongo URL",
            target.store.display(),
            crate::bus::sqlite::FILE_NAME
        )));
    }
    Ok(SqliteBus::open_read_only(&target.store)?.into())
}

/// The status as aligned tables.
pub fn render(status: &Status) -> String {
    let mut out = String::new();
    let topics: Vec<Vec<String>> = status
        .topics
        .iter()
        .map(|t| {
            vec![
                t.name.clone(),
                t.partitions.to_string(),
                list(t.versions.iter().map(|v| format!("v{v}"))),
                stored_versions(t),
                t.head.to_string(),
                list(t.partition_heads.iter().map(i64::to_string)),
            ]
        })
        .collect();
    table(
        &mut out,
        "TOPICS",
        &["topic", "partitions", "versions", "stored", "head", "head by partition"],
        &topics,
    );
    let mut groups = Vec::new();
    for c in &status.consumers {
        let members = if c.members.is_empty() {
            "none".to_owned()
        } else {
            list(
                c.members
                    .iter()
                    .map(|m| format!("{} [{}]", m.member, list(m.partitions.iter().map(u32::to_string)))),
            )
        };
        groups.push(vec![c.name.clone(), c.group.clone(), c.topic.clone(), members, c.lag.to_string()]);
    }
    table(
        &mut out,
        "CONSUMER GROUPS",
        &["consumer", "group", "topic", "live members [partitions]", "lag"],
        &groups,
    );
    let mut partitions = Vec::new();
    for c in &status.consumers {
        for p in &c.partitions {
            partitions.push(vec![
                c.name.clone(),
                p.partition.to_string(),
                p.cursor.map_or_else(|| "not started".to_owned(), |c| c.to_string()),
                p.lag.to_string(),
                p.held_by.clone().unwrap_or_else(|| "-".to_owned()),
            ]);
        }
    }
    table(
        &mut out,
        "CONSUMER PARTITIONS",
        &["consumer", "partition", "cursor", "lag", "held by"],
        &partitions,
    );
    let dlqs: Vec<Vec<String>> = status
        .dlqs
        .iter()
        .map(|d| {
            vec![
                d.dlq_topic.clone(),
                d.depth.to_string(),
                d.replayed.to_string(),
                d.oldest_age_seconds.map_or_else(|| "-".to_owned(), age),
                d.most_common_error
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), |e| format!("{}× {}", e.count, e.error)),
            ]
        })
        .collect();
    table(&mut out, "DEAD LETTERS", &["dlq", "depth", "replayed", "oldest", "most common error"], &dlqs);
    let projectors: Vec<Vec<String>> = status
        .projectors
        .iter()
        .map(|p| {
            let checkpoint =
                list(p.checkpoint.iter().map(|c| c.map_or_else(|| "-".to_owned(), |c| c.to_string())));
            vec![p.name.clone(), p.kind.to_owned(), p.topic.clone(), checkpoint, p.lag.to_string()]
        })
        .collect();
    table(
        &mut out,
        "PROJECTORS",
        &["projector", "kind", "topic", "checkpoint by partition", "lag"],
        &projectors,
    );
    let window = status.oplog_window_seconds;
    let feeds: Vec<Vec<String>> = status
        .changefeeds
        .iter()
        .map(|f| {
            vec![
                f.name.clone(),
                f.topic.clone(),
                f.resume_token_age_seconds.map_or_else(|| "-".to_owned(), age),
                match (window, &status.oplog_unreadable) {
                    (Some(window), _) => age(window),
                    (None, Some(_)) => "unreadable (see note)".to_owned(),
                    (None, None) => "-".to_owned(),
                },
            ]
        })
        .collect();
    table(&mut out, "CHANGEFEEDS", &["changefeed", "topic", "resume token age", "oplog window"], &feeds);
    if let Some(why) = &status.oplog_unreadable {
        let _ = writeln!(out, "note: {why}");
    }
    out
}

/// `v1 ×40, v2 ×2` (`?` for events without a recorded version; `(newest N)` when only those
/// were counted).
fn stored_versions(topic: &crate::metrics::inspect::TopicStatus) -> String {
    if topic.stored_versions.is_empty() {
        return "none".to_owned();
    }
    let counts = list(topic.stored_versions.iter().map(|s| match s.version {
        Some(v) => format!("v{v} ×{}", s.events),
        None => format!("? ×{}", s.events),
    }));
    match topic.stored_versions_newest_only {
        Some(n) => format!("{counts} (newest {n})"),
        None => counts,
    }
}

fn list(items: impl Iterator<Item = String>) -> String {
    items.collect::<Vec<_>>().join(", ")
}

/// `93.5s`, `12m 3s`, `2h 5m`, `3d 4h`.
fn age(seconds: f64) -> String {
    let s = seconds.max(0.0);
    let whole = s as u64;
    match whole {
        0..60 => format!("{s:.1}s"),
        60..3600 => format!("{}m {}s", whole / 60, whole % 60),
        3600..86400 => format!("{}h {}m", whole / 3600, whole % 3600 / 60),
        _ => format!("{}d {}h", whole / 86400, whole % 86400 / 3600),
    }
}

/// Appends a titled table (or "none") with columns padded to their widest cell.
fn table(out: &mut String, title: &str, header: &[&str], rows: &[Vec<String>]) {
    let _ = writeln!(out, "{title}");
    if rows.is_empty() {
        let _ = writeln!(out, "  none\n");
        return;
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        format!("  {}", padded.join("  ").trim_end())
    };
    let _ = writeln!(out, "{}", line(header.to_vec()));
    for row in rows {
        let _ = writeln!(out, "{}", line(row.iter().map(String::as_str).collect()));
    }
    out.push('\n');
}
