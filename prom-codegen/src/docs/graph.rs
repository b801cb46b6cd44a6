//! The topology as a graph: what flows where, derived from a spec.

use super::names::file_stem;
use prom_spec::spec::Spec;
use std::collections::{BTreeMap, BTreeSet};

/// What a node stands for (its shape and colour in the SVG).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// An event-sourced aggregate appending events.
    Aggregate,
    /// A MongoDB change stream republishing a collection.
    Changefeed,
    /// A declared topic.
    Topic,
    /// A dual-written `topic.vN` copy.
    DualWrite,
    /// A dead-letter topic `dlq.<topic>`.
    Dlq,
    /// A consumer group.
    Consumer,
    /// A projector.
    Projector,
    /// A MongoDB collection written by projectors or watched by changefeeds.
    Collection,
}

impl Kind {
    /// The CSS class and legend name.
    pub fn class(self) -> &'static str {
        match self {
            Kind::Aggregate => "aggregate",
            Kind::Changefeed => "changefeed",
            Kind::Topic => "topic",
            Kind::DualWrite => "dual-write",
            Kind::Dlq => "dlq",
            Kind::Consumer => "consumer",
            Kind::Projector => "projector",
            Kind::Collection => "collection",
        }
    }

    /// Every kind, in legend order.
    pub const ALL: [Kind; 8] = [
        Kind::Topic,
        Kind::DualWrite,
        Kind::Dlq,
        Kind::Consumer,
        Kind::Projector,
        Kind::Collection,
        Kind::Changefeed,
        Kind::Aggregate,
    ];
}

/// One box of the graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Unique id (`kind:name`), also the SVG element id.
    pub id: String,
    /// What it is.
    pub kind: Kind,
    /// Its name as the spec spells it.
    pub label: String,
    /// The page it links to, relative to the site root, without extension (`topics/x`).
    pub page: Option<String>,
}

/// The topology graph: nodes sorted by id, edges `(from, to)` as node indices, sorted, unique.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    /// The nodes.
    pub nodes: Vec<Node>,
    /// The edges.
    pub edges: Vec<(usize, usize)>,
}

/// The page path (without extension) of a topic, consumer, ...
pub fn page(dir: &str, name: &str) -> String {
    format!("{dir}/{}", file_stem(name))
}

#[derive(Default)]
struct Builder {
    nodes: BTreeMap<String, Node>,
    edges: BTreeSet<(String, String)>,
}

impl Builder {
    fn node(&mut self, kind: Kind, label: &str, page: Option<String>) -> String {
        let id = format!("{}:{label}", kind.class());
        self.nodes.entry(id.clone()).or_insert_with(|| Node {
            id: id.clone(),
            kind,
            label: label.to_owned(),
            page,
        });
        id
    }

    /// The node of a topic name as readers see it: declared, `dlq.<topic>` or `topic.vN`.
    fn topic(&mut self, spec: &Spec, name: &str) -> String {
        if spec.topics.contains_key(name) {
            return self.node(Kind::Topic, name, Some(page("topics", name)));
        }
        if let Some(source) = name.strip_prefix("dlq.")
            && spec.topics.contains_key(source)
        {
            return self.node(Kind::Dlq, name, Some(page("topics", source)));
        }
        if let Some((base, _)) = name.rsplit_once(".v")
            && spec.topics.get(base).is_some_and(|t| t.dual_write())
        {
            return self.node(Kind::DualWrite, name, Some(page("topics", base)));
        }
        // Lint rejects unknown topics; a stray one is still drawn, without a page.
        self.node(Kind::Topic, name, None)
    }

    fn edge(&mut self, from: &str, to: &str) {
        self.edges.insert((from.to_owned(), to.to_owned()));
    }
}

/// The graph of `spec`: topics → consumer groups / projectors → collections → changefeeds →
/// topics; aggregates → the topics of their events; dual-write copies and dead-letter topics.
pub fn build(spec: &Spec) -> Graph {
    let mut b = Builder::default();
    // Which projectors write a collection: its node links to the first one's page.
    let mut writers: BTreeMap<&str, &str> = BTreeMap::new();
    for projector in spec.projectors.values() {
        if let Some(collection) = &projector.collection {
            writers.entry(collection.value.as_str()).or_insert(projector.name.value.as_str());
        }
    }
    let collection_page = |name: &str| writers.get(name).map(|p| page("projectors", p));
    for topic in spec.topics.values() {
        let id = b.topic(spec, &topic.name.value);
        if topic.dual_write() {
            for version in &topic.versions {
                let copy = b.node(
                    Kind::DualWrite,
                    &format!("{}.v{}", topic.name.value, version.number.value),
                    Some(page("topics", &topic.name.value)),
                );
                b.edge(&id, &copy);
            }
        }
    }
    for consumer in spec.consumers.values() {
        let source = b.topic(spec, &consumer.topic.value);
        let id = b.node(Kind::Consumer, &consumer.name.value, Some(page("consumers", &consumer.name.value)));
        b.edge(&source, &id);
        if consumer.dlq.as_ref().is_some_and(|d| d.value) {
            let dlq = b.topic(spec, &format!("dlq.{}", consumer.topic.value));
            b.edge(&id, &dlq);
        }
    }
    for projector in spec.projectors.values() {
        let source = b.topic(spec, &projector.topic.value);
        let id =
            b.node(Kind::Projector, &projector.name.value, Some(page("projectors", &projector.name.value)));
        b.edge(&source, &id);
        if let Some(collection) = &projector.collection {
            let target = b.node(Kind::Collection, &collection.value, collection_page(&collection.value));
            b.edge(&id, &target);
        }
    }
    for changefeed in spec.changefeeds.values() {
        let collection = &changefeed.collection.value;
        let source = b.node(Kind::Collection, collection, collection_page(collection));
        let id = b.node(
            Kind::Changefeed,
            &changefeed.name.value,
            Some(page("changefeeds", &changefeed.name.value)),
        );
        let target = b.topic(spec, &changefeed.topic.value);
        b.edge(&source, &id);
        b.edge(&id, &target);
    }
    for aggregate in spec.aggregates.values() {
        let id =
            b.node(Kind::Aggregate, &aggregate.name.value, Some(page("aggregates", &aggregate.name.value)));
        for event in &aggregate.events {
            let target = b.topic(spec, &event.value);
            b.edge(&id, &target);
        }
    }
    let index: BTreeMap<&str, usize> = b.nodes.keys().enumerate().map(|(i, id)| (id.as_str(), i)).collect();
    let edges = b
        .edges
        .iter()
        .filter_map(|(from, to)| Some((*index.get(from.as_str())?, *index.get(to.as_str())?)))
        .filter(|(from, to)| from != to)
        .collect();
    Graph { nodes: b.nodes.into_values().collect(), edges }
}
