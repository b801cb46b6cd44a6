//! What each page shows, as serialisable contexts for the templates.

use super::example::example;
use super::graph::page;
use super::schema_table::{Row, rows};
use prom_spec::kinds::{FullDocument, LostResumePolicy, StartFrom};
use prom_spec::spec::{Aggregate, Changefeed, Consumer, Projector, ProjectorKind, Spec, Topic, Upcast};
use serde::Serialize;
use std::time::Duration;

/// A link to another page: `href` is relative to the site root, without extension.
#[derive(Debug, Clone, Serialize)]
pub struct Link {
    /// What it is (`consumer`, `projector`, ...).
    pub kind: &'static str,
    /// Its name.
    pub name: String,
    /// Its page (`topics/x`), or none for things without a page.
    pub page: Option<String>,
    /// A short note (`dead letters`, `dual-write copy`, ...).
    pub note: String,
}

fn link(kind: &'static str, dir: &str, name: &str, note: impl Into<String>) -> Link {
    Link { kind, name: name.to_owned(), page: Some(page(dir, name)), note: note.into() }
}

/// One version of a topic, as its column shows it.
#[derive(Debug, Clone, Serialize)]
pub struct VersionPage {
    /// The version number.
    pub number: u32,
    /// The schema table.
    pub rows: Vec<Row>,
    /// The steps from the previous version, in the order they apply.
    pub upcast: Vec<String>,
    /// An example payload (pretty JSON), when one validates.
    pub example: Option<String>,
    /// Why there is no example.
    pub example_error: Option<String>,
    /// The schema itself (pretty JSON).
    pub schema: String,
}

/// A topic's page.
#[derive(Debug, Clone, Serialize)]
pub struct TopicPage {
    /// The topic's name.
    pub name: String,
    /// Its page (`topics/x`).
    pub page: String,
    /// Its description.
    pub description: String,
    /// JSON pointer of the partition key.
    pub key: Option<String>,
    /// Partitions.
    pub partitions: u64,
    /// Compatibility mode.
    pub compat: &'static str,
    /// Custom headers.
    pub headers: Vec<String>,
    /// `topic.vN` copies written next to it.
    pub dual_write: Vec<String>,
    /// The dead-letter topic, when a consumer has one.
    pub dlq: Option<String>,
    /// Its versions, oldest first.
    pub versions: Vec<VersionPage>,
    /// Who writes it.
    pub producers: Vec<Link>,
    /// Who reads it (or its dead letters).
    pub consumers: Vec<Link>,
}

/// A key/value fact of a page (consumer, projector, changefeed, aggregate).
#[derive(Debug, Clone, Serialize)]
pub struct Fact {
    /// What it is.
    pub name: &'static str,
    /// Its value as text.
    pub value: String,
    /// A page the value links to.
    pub page: Option<String>,
}

fn fact(name: &'static str, value: impl Into<String>) -> Fact {
    Fact { name, value: value.into(), page: None }
}

fn fact_link(name: &'static str, value: &str, page: Option<String>) -> Fact {
    Fact { name, value: value.to_owned(), page }
}

/// The page of a consumer, projector, changefeed or aggregate: a title, facts, related pages.
#[derive(Debug, Clone, Serialize)]
pub struct ElementPage {
    /// `consumer`, `projector`, `changefeed`, `aggregate`.
    pub kind: &'static str,
    /// Its name.
    pub name: String,
    /// Its page (`consumers/x`).
    pub page: String,
    /// Its description.
    pub description: String,
    /// What the spec says about it.
    pub facts: Vec<Fact>,
    /// Extra tables: indexes, operations, events.
    pub related: Vec<Link>,
}

/// `100ms`, `2s`, `5m`, `1h`: as a spec would write it.
fn duration(d: Duration) -> String {
    prom_spec::spec::limits::duration_text(d)
}

/// The page name of a topic as readers name it: itself, or the declared topic of `dlq.X` / `X.vN`.
fn topic_page(spec: &Spec, name: &str) -> Option<String> {
    if spec.topics.contains_key(name) {
        return Some(page("topics", name));
    }
    let base = name.strip_prefix("dlq.").or_else(|| name.rsplit_once(".v").map(|(b, _)| b))?;
    spec.topics.contains_key(base).then(|| page("topics", base))
}

fn upcast_steps(upcast: &Upcast) -> Vec<String> {
    let mut steps = Vec::new();
    for (from, to) in &upcast.steps.rename {
        steps.push(format!("rename {} → {}", from.value, to.value));
    }
    for field in &upcast.steps.remove {
        steps.push(format!("remove {}", field.value));
    }
    for (field, node) in &upcast.steps.set_default {
        let value = node.to_json().map(|v| serde_json::to_string(&v).unwrap_or_default()).unwrap_or_default();
        steps.push(format!("set {} to {value} where absent", field.value));
    }
    if let Some(with) = &upcast.with {
        steps.push(format!("call {}", with.value));
    }
    steps
}

/// The page of `topic`.
pub fn topic(spec: &Spec, topic: &Topic) -> TopicPage {
    let name = topic.name.value.clone();
    let versions = topic
        .versions
        .iter()
        .map(|version| {
            let (example, example_error) = match example(&version.schema.json) {
                Ok(value) => (Some(serde_json::to_string_pretty(&value).unwrap_or_default()), None),
                Err(why) => (None, Some(why)),
            };
            VersionPage {
                number: version.number.value,
                rows: rows(&version.schema.json),
                upcast: version.upcast.as_ref().map(upcast_steps).unwrap_or_default(),
                example,
                example_error,
                schema: serde_json::to_string_pretty(&version.schema.json).unwrap_or_default(),
            }
        })
        .collect();
    let dlq_name = format!("dlq.{name}");
    let has_dlq =
        spec.consumers.values().any(|c| c.topic.value == name && c.dlq.as_ref().is_some_and(|d| d.value));
    let mut producers = Vec::new();
    for changefeed in spec.changefeeds.values().filter(|c| c.topic.value == name) {
        let note = format!("changes of collection {}", changefeed.collection.value);
        producers.push(link("changefeed", "changefeeds", &changefeed.name.value, note));
    }
    for aggregate in spec.aggregates.values().filter(|a| a.events.iter().any(|e| e.value == name)) {
        producers.push(link("aggregate", "aggregates", &aggregate.name.value, "appends to its streams"));
    }
    let mut consumers = Vec::new();
    for consumer in spec.consumers.values() {
        if consumer.topic.value == name {
            consumers.push(link(
                "consumer",
                "consumers",
                &consumer.name.value,
                format!("group {}", group(consumer)),
            ));
        } else if consumer.topic.value == dlq_name {
            consumers.push(link(
                "consumer",
                "consumers",
                &consumer.name.value,
                format!("reads the dead letters {dlq_name}"),
            ));
        }
    }
    for projector in spec.projectors.values().filter(|p| p.topic.value == name) {
        let note = projector.collection.as_ref().map_or_else(
            || kind_name(projector).to_owned(),
            |c| format!("{} into {}", kind_name(projector), c.value),
        );
        consumers.push(link("projector", "projectors", &projector.name.value, note));
    }
    TopicPage {
        page: page("topics", &name),
        description: topic.description.as_ref().map(|d| d.value.clone()).unwrap_or_default(),
        key: topic.key.as_ref().map(|k| k.value.clone()),
        partitions: topic.partitions.as_ref().map_or(1, |p| p.value),
        compat: topic.compat_mode().name(),
        headers: topic.headers.iter().map(|h| h.value.clone()).collect(),
        dual_write: if topic.dual_write() {
            topic.versions.iter().map(|v| format!("{name}.v{}", v.number.value)).collect()
        } else {
            Vec::new()
        },
        dlq: has_dlq.then_some(dlq_name),
        versions,
        producers,
        consumers,
        name,
    }
}

fn group(consumer: &Consumer) -> &str {
    consumer.group.as_ref().map_or(&consumer.name.value, |g| &g.value)
}

fn kind_name(projector: &Projector) -> &'static str {
    match projector.kind.value {
        ProjectorKind::Changelog => "changelog",
        ProjectorKind::Transactional => "transactional",
    }
}

/// The page of a consumer group.
pub fn consumer(spec: &Spec, consumer: &Consumer) -> ElementPage {
    let topic = &consumer.topic.value;
    let mut facts = vec![
        fact_link("topic", topic, topic_page(spec, topic)),
        fact("group", group(consumer)),
        fact(
            "starts from",
            match consumer.from.as_ref().map(|f| f.value).unwrap_or_default() {
                StartFrom::Earliest => "earliest",
                StartFrom::Latest => "latest",
            },
        ),
    ];
    match &consumer.retry {
        Some(retry) => {
            let mut text = format!("{} attempts", retry.max_attempts.value);
            if let Some(backoff) = &retry.backoff {
                text.push_str(&format!(", backoff {}", duration(backoff.value)));
            }
            if let Some(max) = &retry.max_backoff {
                text.push_str(&format!(" up to {}", duration(max.value)));
            }
            facts.push(fact("retry", text));
        }
        None => facts.push(fact("retry", "none (one attempt)")),
    }
    let dlq = consumer.dlq.as_ref().is_some_and(|d| d.value);
    if dlq {
        let name = format!("dlq.{topic}");
        facts.push(fact_link("dead letters", &name, topic_page(spec, &name)));
    } else {
        facts.push(fact("dead letters", "off"));
    }
    facts.push(fact(
        "partitioned",
        if consumer.partitioned.as_ref().is_some_and(|p| p.value) { "yes" } else { "no" },
    ));
    if let Some(ttl) = &consumer.member_ttl {
        facts.push(fact("member ttl", duration(ttl.value)));
    }
    if let Some(batch) = &consumer.batch_size {
        facts.push(fact("batch size", batch.value.to_string()));
    }
    if let Some(max) = &consumer.max_in_flight {
        facts.push(fact("max in flight", max.value.to_string()));
    }
    ElementPage {
        kind: "consumer",
        page: page("consumers", &consumer.name.value),
        name: consumer.name.value.clone(),
        description: String::new(),
        facts,
        related: Vec::new(),
    }
}

/// The page of a projector.
pub fn projector(spec: &Spec, projector: &Projector) -> ElementPage {
    let topic = &projector.topic.value;
    let mut facts =
        vec![fact("kind", kind_name(projector)), fact_link("topic", topic, topic_page(spec, topic))];
    if let Some(collection) = &projector.collection {
        facts.push(fact("collection", collection.value.clone()));
    }
    let topic_key = spec.topics.get(topic).and_then(|t| t.key.as_ref()).map(|k| k.value.clone());
    match (&projector.key, topic_key) {
        (Some(key), _) => facts.push(fact("key", key.value.clone())),
        (None, Some(key)) => facts.push(fact("key", format!("{key} (the topic's)"))),
        (None, None) => {}
    }
    if let Some(version) = &projector.version {
        facts.push(fact("version guard", version.value.clone()));
    }
    if let Some(handler) = &projector.handler {
        facts.push(fact("handler", handler.value.clone()));
    }
    for index in &projector.indexes {
        let keys: Vec<String> = index.keys.iter().map(|(f, d)| format!("{}: {}", f.value, d.value)).collect();
        let mut text = format!("{{ {} }}", keys.join(", "));
        if index.unique {
            text.push_str(" unique");
        }
        if let Some(name) = &index.name {
            text.push_str(&format!(" ({})", name.value));
        }
        facts.push(fact("index", text));
    }
    if let Some(api) = &projector.snapshot_api {
        let mut text = format!("GET {}", api.path.value);
        if !api.filters.is_empty() {
            let filters: Vec<&str> = api.filters.iter().map(|f| f.value.as_str()).collect();
            text.push_str(&format!(", filters {}", filters.join(", ")));
        }
        if let Some(limit) = &api.max_limit {
            text.push_str(&format!(", pages of at most {}", limit.value));
        }
        if let Some(age) = &api.max_age {
            text.push_str(&format!(", max-age {}", duration(age.value)));
        }
        facts.push(fact("snapshot API", text));
    }
    let related = projector
        .collection
        .as_ref()
        .map(|collection| {
            spec.changefeeds
                .values()
                .filter(|c| c.collection.value == collection.value)
                .map(|c| {
                    link(
                        "changefeed",
                        "changefeeds",
                        &c.name.value,
                        format!("republishes to {}", c.topic.value),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    ElementPage {
        kind: "projector",
        page: page("projectors", &projector.name.value),
        name: projector.name.value.clone(),
        description: String::new(),
        facts,
        related,
    }
}

/// The page of a changefeed.
pub fn changefeed(spec: &Spec, changefeed: &Changefeed) -> ElementPage {
    let topic = &changefeed.topic.value;
    let mut facts = vec![fact("collection", changefeed.collection.value.clone())];
    if let Some(database) = &changefeed.database {
        facts.push(fact("database", database.value.clone()));
    }
    facts.push(fact_link("topic", topic, topic_page(spec, topic)));
    facts.push(fact(
        "full document",
        match changefeed.full_document.as_ref().map(|f| f.value).unwrap_or_default() {
            FullDocument::Default => "default",
            FullDocument::UpdateLookup => "updateLookup",
            FullDocument::WhenAvailable => "whenAvailable",
            FullDocument::Required => "required",
        },
    ));
    let operations: Vec<&str> = changefeed.operations.iter().map(|o| o.value.as_str()).collect();
    facts.push(fact(
        "operations",
        if operations.is_empty() { "all".to_owned() } else { operations.join(", ") },
    ));
    facts.push(fact(
        "on lost resume token",
        match changefeed.on_lost_resume.as_ref().map(|p| p.value).unwrap_or_default() {
            LostResumePolicy::Fail => "fail",
            LostResumePolicy::RestartFromNow => "restart_from_now",
        },
    ));
    let related = spec
        .projectors
        .values()
        .filter(|p| p.collection.as_ref().is_some_and(|c| c.value == changefeed.collection.value))
        .map(|p| {
            link("projector", "projectors", &p.name.value, format!("writes {}", changefeed.collection.value))
        })
        .collect();
    ElementPage {
        kind: "changefeed",
        page: page("changefeeds", &changefeed.name.value),
        name: changefeed.name.value.clone(),
        description: String::new(),
        facts,
        related,
    }
}

/// The page of an aggregate.
pub fn aggregate(spec: &Spec, aggregate: &Aggregate) -> ElementPage {
    let mut facts = vec![fact("stream id", aggregate.id.value.clone())];
    facts.push(fact(
        "snapshots",
        aggregate.snapshot_every().map_or_else(|| "none".to_owned(), |every| format!("every {every} events")),
    ));
    facts.push(fact("tamper evident", if aggregate.tamper_evident() { "yes (SHA-256 chain)" } else { "no" }));
    let related = aggregate
        .events
        .iter()
        .map(|event| Link {
            kind: "event",
            name: event.value.clone(),
            page: topic_page(spec, &event.value),
            note: spec
                .topics
                .get(&event.value)
                .and_then(|t| t.latest())
                .map(|v| format!("v{}", v.number.value))
                .unwrap_or_default(),
        })
        .collect();
    ElementPage {
        kind: "aggregate",
        page: page("aggregates", &aggregate.name.value),
        name: aggregate.name.value.clone(),
        description: aggregate.description.as_ref().map(|d| d.value.clone()).unwrap_or_default(),
        facts,
        related,
    }
}

#[cfg(test)]
mod tests {
    use super::duration;
    use std::time::Duration;

    #[test]
    fn durations_read_like_the_spec() {
        assert_eq!(duration(Duration::from_millis(250)), "250ms");
        assert_eq!(duration(Duration::from_secs(2)), "2s");
        assert_eq!(duration(Duration::from_secs(300)), "5m");
        assert_eq!(duration(Duration::from_secs(7200)), "2h");
        assert_eq!(duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(duration(Duration::from_secs(86_400)), "1d");
    }
}
