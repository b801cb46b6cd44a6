//! Reads one spec document from the located YAML tree into the typed model.

use super::keys;
use super::limits;
use super::model::*;
use super::read::{Keyword, Map, Reader};
use crate::diag::{Code, Diagnostic};
use crate::source::Located;
use crate::suggest::did_you_mean;
use crate::upcast;
use crate::yaml::{Node, Value};
use std::collections::BTreeMap;
use std::path::Path;

impl Keyword for CompatMode {
    const ALL: &'static [(&'static str, Self)] = &[
        ("none", CompatMode::None),
        ("backward", CompatMode::Backward),
        ("forward", CompatMode::Forward),
        ("full", CompatMode::Full),
        ("backward_transitive", CompatMode::BackwardTransitive),
        ("forward_transitive", CompatMode::ForwardTransitive),
        ("full_transitive", CompatMode::FullTransitive),
    ];
}

impl Keyword for StartFrom {
    const ALL: &'static [(&'static str, Self)] =
        &[("earliest", StartFrom::Earliest), ("latest", StartFrom::Latest)];
}

impl Keyword for ProjectorKind {
    const ALL: &'static [(&'static str, Self)] =
        &[("changelog", ProjectorKind::Changelog), ("transactional", ProjectorKind::Transactional)];
}

impl Keyword for FullDocument {
    const ALL: &'static [(&'static str, Self)] = &[
        ("default", FullDocument::Default),
        ("updateLookup", FullDocument::UpdateLookup),
        ("whenAvailable", FullDocument::WhenAvailable),
        ("required", FullDocument::Required),
    ];
}

impl Keyword for LostResumePolicy {
    const ALL: &'static [(&'static str, Self)] =
        &[("fail", LostResumePolicy::Fail), ("restart_from_now", LostResumePolicy::RestartFromNow)];
}

/// Change stream operation types a changefeed may forward.
pub const OPERATIONS: &[&str] =
    &["insert", "update", "replace", "delete", "drop", "rename", "dropDatabase", "invalidate"];

/// One document's declarations in document order: every name, with its body when the body
/// could be read. Documents are read independently; [`merge`] joins them in load order.
#[derive(Debug, Default)]
pub struct Declarations {
    topics: Vec<(Located<String>, Option<Topic>)>,
    consumers: Vec<(Located<String>, Option<Consumer>)>,
    projectors: Vec<(Located<String>, Option<Projector>)>,
    changefeeds: Vec<(Located<String>, Option<Changefeed>)>,
    aggregates: Vec<(Located<String>, Option<Aggregate>)>,
}

/// Reads one document; `dir` resolves `$ref` paths.
pub fn document(r: &mut Reader, root: &Node, dir: &Path) -> Declarations {
    let mut out = Declarations::default();
    if root.value == Value::Null {
        return out;
    }
    let Some(map) = r.map(root, keys::SPEC, "spec") else { return out };
    if let Some(node) = map.get("topics") {
        out.topics = section(r, node, "topics", |r, name, n| topic(r, name, n, dir));
    }
    if let Some(node) = map.get("consumers") {
        out.consumers = section(r, node, "consumers", consumer);
    }
    if let Some(node) = map.get("projectors") {
        out.projectors = section(r, node, "projectors", projector);
    }
    if let Some(node) = map.get("changefeeds") {
        out.changefeeds = section(r, node, "changefeeds", changefeed);
    }
    if let Some(node) = map.get("aggregates") {
        out.aggregates = section(r, node, "aggregates", aggregate);
    }
    out
}

/// Adds a document's declarations to `spec`, reporting names declared twice (in any file).
pub fn merge(r: &mut Reader, declarations: Declarations, spec: &mut Spec) {
    let Declarations { topics, consumers, projectors, changefeeds, aggregates } = declarations;
    merge_section(r, topics, "topics", &mut spec.topics, |t| &t.name);
    merge_section(r, consumers, "consumers", &mut spec.consumers, |c| &c.name);
    merge_section(r, projectors, "projectors", &mut spec.projectors, |p| &p.name);
    merge_section(r, changefeeds, "changefeeds", &mut spec.changefeeds, |c| &c.name);
    merge_section(r, aggregates, "aggregates", &mut spec.aggregates, |a| &a.name);
}

/// Reads a `name: body` section.
fn section<T>(
    r: &mut Reader,
    node: &Node,
    what: &'static str,
    mut parse: impl FnMut(&mut Reader, Located<String>, &Node) -> Option<T>,
) -> Vec<(Located<String>, Option<T>)> {
    let Some(map) = r.map_any(node, what) else { return Vec::new() };
    map.entries()
        .iter()
        .map(|(key, body)| {
            let name = Located::new(key.text.clone(), key.span.clone());
            (name.clone(), parse(r, name, body))
        })
        .collect()
}

/// Adds one section's declarations, in order; a name already in `out` is reported.
fn merge_section<T>(
    r: &mut Reader,
    declared: Vec<(Located<String>, Option<T>)>,
    what: &'static str,
    out: &mut BTreeMap<String, T>,
    name_of: fn(&T) -> &Located<String>,
) {
    for (name, item) in declared {
        if let Some(first) = out.get(&name.value) {
            let first = &name_of(first).span;
            r.push(
                Diagnostic::error(
                    Code::DuplicateDefinition,
                    &name.span,
                    format!("`{}` is declared twice in `{what}`", name.value),
                )
                .with_label(format!("first declared at {first}"))
                .with_help("rename one of them or remove the duplicate"),
            );
            continue;
        }
        if let Some(item) = item {
            out.insert(name.value, item);
        }
    }
}

fn topic(r: &mut Reader, name: Located<String>, node: &Node, dir: &Path) -> Option<Topic> {
    let map = r.map(node, keys::TOPIC, "topic")?;
    let versions_node = map.get("versions");
    let (versions, versions_incomplete) = match versions_node {
        Some(n) => versions(r, n, dir),
        None => {
            r.missing(&map, "versions", "declare at least `versions: { 1: { schema: ... } }`");
            (Vec::new(), true)
        }
    };
    Some(Topic {
        description: r.opt_string(&map, "description"),
        key: r.opt_string(&map, "key"),
        partitions: r.opt_count(&map, "partitions", 1, limits::PARTITIONS),
        headers: r.string_list(&map, "headers"),
        compat: r.opt_keyword(&map, "compat"),
        dual_write: r.opt_bool(&map, "dual_write"),
        versions,
        versions_incomplete,
        versions_span: versions_node.map_or_else(|| name.span.clone(), |n| n.span.clone()),
        name,
    })
}

/// The versions that could be read, and whether any could not.
fn versions(r: &mut Reader, node: &Node, dir: &Path) -> (Vec<Version>, bool) {
    let Some(map) = r.map_any(node, "versions") else { return (Vec::new(), node.value != Value::Null) };
    let mut out: Vec<Version> = Vec::new();
    let mut incomplete = false;
    for (key, body) in map.entries() {
        let Some(number) = key.text.parse::<u32>().ok().filter(|n| *n >= 1) else {
            r.push(
                Diagnostic::error(
                    Code::VersionNumbering,
                    &key.span,
                    format!("version `{}` is not a positive integer", key.text),
                )
                .with_help("number versions 1, 2, 3, ..."),
            );
            incomplete = true;
            continue;
        };
        let Some(map) = r.map(body, keys::VERSION, "version") else {
            incomplete = true;
            continue;
        };
        r.opt_string(&map, "description");
        let schema = match map.get("schema") {
            Some(n) => schema(r, n, dir),
            None => {
                r.missing(
                    &map,
                    "schema",
                    "give the payload's JSON Schema inline or as `{ $ref: file.json }`",
                );
                None
            }
        };
        let upcast = map.get("upcast").and_then(|n| upcast(r, n));
        match schema {
            Some(schema) => {
                out.push(Version { number: Located::new(number, key.span.clone()), schema, upcast })
            }
            None => incomplete = true,
        }
    }
    out.sort_by_key(|v| v.number.value);
    (out, incomplete)
}

fn schema(r: &mut Reader, node: &Node, dir: &Path) -> Option<Schema> {
    let file_ref = match node.as_map() {
        Some([(k, v)]) if k.text == "$ref" => v.as_str().filter(|s| !s.starts_with('#')).map(|s| (s, v)),
        _ => None,
    };
    let (tree, span) = match file_ref {
        Some((path, at)) => (r.load_ref(path, dir, &at.span)?, at.span.clone()),
        None => {
            match &node.value {
                Value::Map(_) | Value::Bool(_) => (node.clone(), node.span.clone()),
                _ => {
                    r.push(
                    Diagnostic::error(
                        Code::WrongType,
                        &node.span,
                        format!("`schema` must be a JSON Schema mapping, found {}", node.kind()),
                    )
                    .with_help("write the schema inline (`type: object`, ...) or as `{ $ref: schemas/file.json }`"),
                );
                    return None;
                }
            }
        }
    };
    match tree.to_json() {
        Ok(json) => Some(Schema { json, node: tree, span }),
        Err(at) => {
            r.push(
                Diagnostic::error(
                    Code::InvalidSchema,
                    at,
                    "JSON Schemas cannot hold NaN or infinite numbers",
                )
                .with_help("use a finite number"),
            );
            None
        }
    }
}

fn upcast(r: &mut Reader, node: &Node) -> Option<Upcast> {
    let map = r.map(node, keys::UPCAST, "upcast")?;
    let rename = pairs(r, &map, upcast::RENAME)
        .into_iter()
        .filter_map(|(from, to)| Some((from, r.string(to, upcast::RENAME)?)))
        .collect();
    let set_default = pairs(r, &map, upcast::SET_DEFAULT).into_iter().map(|(f, v)| (f, v.clone())).collect();
    let remove = r.string_list(&map, upcast::REMOVE);
    let with = r.opt_string(&map, upcast::WITH_KEY).and_then(|p| rust_path(r, p, upcast::WITH_KEY));
    Some(Upcast { span: node.span.clone(), steps: upcast::Steps { rename, remove, set_default }, with })
}

/// The entries of an open mapping under `key` (field names → values).
fn pairs<'n>(r: &mut Reader, map: &Map<'n>, key: &'static str) -> Vec<(Located<String>, &'n Node)> {
    let Some(node) = map.get(key) else { return Vec::new() };
    let Some(inner) = r.map_any(node, key) else { return Vec::new() };
    inner.entries().iter().map(|(k, v)| (Located::new(k.text.clone(), k.span.clone()), v)).collect()
}

fn consumer(r: &mut Reader, name: Located<String>, node: &Node) -> Option<Consumer> {
    let map = r.map(node, keys::CONSUMER, "consumer")?;
    r.opt_string(&map, "description");
    let topic = r.req_string(&map, "topic", "name the topic this consumer reads");
    let retry = map.get("retry").and_then(|n| retry(r, n));
    Some(Consumer {
        topic: topic?,
        group: r.opt_string(&map, "group"),
        from: r.opt_keyword(&map, "from"),
        retry,
        dlq: r.opt_bool(&map, "dlq"),
        partitioned: r.opt_bool(&map, "partitioned"),
        member_ttl: r.opt_duration_within(&map, "member_ttl", limits::MEMBER_TTL_MIN, limits::MEMBER_TTL),
        batch_size: r.opt_count(&map, "batch_size", 1, limits::BATCH_SIZE),
        max_in_flight: r.opt_count(&map, "max_in_flight", 1, limits::MAX_IN_FLIGHT),
        name,
    })
}

fn retry(r: &mut Reader, node: &Node) -> Option<Retry> {
    let map = r.map(node, keys::RETRY, "retry")?;
    let max_attempts = match map.get("max_attempts") {
        Some(_) => r.opt_count(&map, "max_attempts", 1, limits::MAX_ATTEMPTS),
        None => {
            r.missing(&map, "max_attempts", "say how many attempts in total, e.g. `max_attempts: 3`");
            None
        }
    };
    let backoff = r.opt_duration(&map, "backoff", limits::BACKOFF);
    let max_backoff = r.opt_duration(&map, "max_backoff", limits::MAX_BACKOFF);
    Some(Retry { max_attempts: max_attempts?, backoff, max_backoff })
}

fn projector(r: &mut Reader, name: Located<String>, node: &Node) -> Option<Projector> {
    let map = r.map(node, keys::PROJECTOR, "projector")?;
    r.opt_string(&map, "description");
    let kind = match map.get("kind") {
        Some(n) => r.keyword(n, "kind"),
        None => {
            r.missing(&map, "kind", "use `kind: changelog` or `kind: transactional`");
            None
        }
    };
    let topic = r.req_string(&map, "topic", "name the topic this projector reads");
    let indexes = match map.get("indexes") {
        Some(node) => match &node.value {
            Value::Seq(items) => items.iter().filter_map(|n| index(r, n)).collect(),
            _ => {
                r.push(
                    Diagnostic::error(
                        Code::WrongType,
                        &node.span,
                        format!("`indexes` must be a list, found {}", node.kind()),
                    )
                    .with_help("write `indexes: [{ keys: { field: 1 } }]`"),
                );
                Vec::new()
            }
        },
        None => Vec::new(),
    };
    let snapshot_api = map.get("snapshot_api").and_then(|n| snapshot_api(r, n));
    Some(Projector {
        kind: kind?,
        topic: topic?,
        collection: r.opt_string(&map, "collection"),
        key: r.opt_string(&map, "key"),
        version: r.opt_string(&map, "version"),
        indexes,
        snapshot_api,
        handler: r.opt_string(&map, "handler").and_then(|p| rust_path(r, p, "handler")),
        name,
    })
}

fn index(r: &mut Reader, node: &Node) -> Option<Index> {
    let map = r.map(node, keys::INDEX, "index")?;
    let keys: Vec<_> = pairs(r, &map, "keys")
        .into_iter()
        .filter_map(|(field, dir)| {
            let dir = r.int(dir, "keys", -1, 1)?;
            if dir.value == 0 {
                r.push(
                    Diagnostic::error(Code::OutOfRange, &dir.span, "index direction must be 1 or -1")
                        .with_help("use 1 for ascending or -1 for descending"),
                );
                return None;
            }
            Some((field, dir))
        })
        .collect();
    if map.get("keys").is_none() {
        r.missing(&map, "keys", "list the indexed fields, e.g. `keys: { host: 1 }`");
    }
    let unique = r.opt_bool(&map, "unique").is_some_and(|u| u.value);
    Some(Index { keys, unique, name: r.opt_string(&map, "name"), span: node.span.clone() })
}

fn snapshot_api(r: &mut Reader, node: &Node) -> Option<SnapshotApi> {
    let map = r.map(node, keys::SNAPSHOT_API, "snapshot_api")?;
    let path = r.req_string(&map, "path", "mount the API somewhere, e.g. `path: /processes`");
    let path = path.and_then(|p| {
        if p.value.starts_with('/') {
            return Some(p);
        }
        r.push(
            Diagnostic::error(
                Code::InvalidValue,
                &p.span,
                format!("snapshot path `{}` must start with `/`", p.value),
            )
            .with_help(format!("write `/{}`", p.value)),
        );
        None
    });
    Some(SnapshotApi {
        filters: r.string_list(&map, "filters"),
        max_age: r.opt_duration(&map, "max_age", limits::MAX_AGE),
        max_limit: r.opt_count(&map, "max_limit", 1, limits::MAX_LIMIT),
        path: path?,
    })
}

fn changefeed(r: &mut Reader, name: Located<String>, node: &Node) -> Option<Changefeed> {
    let map = r.map(node, keys::CHANGEFEED, "changefeed")?;
    r.opt_string(&map, "description");
    let collection = r.req_string(&map, "collection", "name the collection to watch");
    let topic = r.req_string(&map, "topic", "name the topic the changes are published to");
    let operations = r.string_list(&map, "operations");
    for op in &operations {
        if !OPERATIONS.contains(&op.value.as_str()) {
            let hint = did_you_mean(&op.value, OPERATIONS.iter().copied());
            r.push(
                Diagnostic::error(
                    Code::InvalidValue,
                    &op.span,
                    format!("`{}` is not a change stream operation", op.value),
                )
                .with_help(if hint.is_empty() {
                    format!("use one of {}", OPERATIONS.join(", "))
                } else {
                    hint
                }),
            );
        }
    }
    Some(Changefeed {
        database: r.opt_string(&map, "database"),
        full_document: r.opt_keyword(&map, "full_document"),
        on_lost_resume: r.opt_keyword(&map, "on_lost_resume"),
        collection: collection?,
        topic: topic?,
        operations,
        name,
    })
}

fn aggregate(r: &mut Reader, name: Located<String>, node: &Node) -> Option<Aggregate> {
    let map = r.map(node, keys::AGGREGATE, "aggregate")?;
    let id =
        r.req_string(&map, "id", "point at the stream id in every event's payload, e.g. `id: /accountId`");
    let events_node = map.get("events");
    if events_node.is_none() {
        r.missing(
            &map,
            "events",
            "list the topics whose events make up the aggregate, e.g. `events: [account.opened]`",
        );
    }
    let snapshot = map.get("snapshot").and_then(|n| snapshot_policy(r, n));
    Some(Aggregate {
        description: r.opt_string(&map, "description"),
        events: r.string_list(&map, "events"),
        events_span: events_node.map_or_else(|| name.span.clone(), |n| n.span.clone()),
        snapshot,
        tamper_evident: r.opt_bool(&map, "tamper_evident"),
        id: id?,
        name,
    })
}

fn snapshot_policy(r: &mut Reader, node: &Node) -> Option<SnapshotPolicy> {
    let map = r.map(node, keys::SNAPSHOT, "snapshot")?;
    let every = match map.get("every") {
        Some(_) => r.opt_count(&map, "every", 1, limits::SNAPSHOT_EVERY),
        None => {
            r.missing(&map, "every", "say after how many events a snapshot is taken, e.g. `every: 100`");
            None
        }
    };
    Some(SnapshotPolicy { every: every?, span: node.span.clone() })
}

/// Checks that `path` is a Rust path such as `crate::upcast::v1_to_v2`.
fn rust_path(r: &mut Reader, path: Located<String>, key: &str) -> Option<Located<String>> {
    let ident = |s: &str| {
        let mut chars = s.chars();
        chars.next().is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
            && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
    };
    if path.value.split("::").all(ident) {
        return Some(path);
    }
    r.push(
        Diagnostic::error(
            Code::InvalidValue,
            &path.span,
            format!("`{key}: {}` is not a Rust path", path.value),
        )
        .with_help("name a function like `crate::upcast::heartbeat_v1_to_v2`"),
    );
    None
}
