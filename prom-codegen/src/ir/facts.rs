//! The run-time settings generated code hands the runtime (`spec::system()`): consumers with
//! their retry policies, projectors, changefeeds. Defaults the runtime owns (retry backoff,
//! batch sizes) stay unset here, so generated code picks them up from `prom-runtime`.

use prom_spec::source::Located;
use prom_spec::spec::{self, Spec};
use std::time::Duration;

/// Consumers, projectors and changefeeds, sorted by name.
#[derive(Debug, Default)]
pub struct Facts {
    /// Consumer groups.
    pub consumers: Vec<ConsumerFacts>,
    /// Projectors.
    pub projectors: Vec<ProjectorFacts>,
    /// Changefeeds.
    pub changefeeds: Vec<ChangefeedFacts>,
}

/// A consumer's settings.
#[derive(Debug)]
pub struct ConsumerFacts {
    /// Name.
    pub name: String,
    /// Topic it reads.
    pub topic: String,
    /// Group id (the name when the spec gives none).
    pub group: String,
    /// Starts at the newest event without a cursor.
    pub from_latest: bool,
    /// `retry:`: max attempts, backoff and max backoff as declared.
    pub retry: Option<(u64, Option<Duration>, Option<Duration>)>,
    /// Dead-letters exhausted events.
    pub dlq: bool,
    /// Members share partitions.
    pub partitioned: bool,
    /// Member TTL.
    pub member_ttl: Option<Duration>,
    /// Batch size.
    pub batch_size: Option<u64>,
    /// In-flight limit.
    pub max_in_flight: Option<u64>,
}

/// A projector's settings.
#[derive(Debug)]
pub struct ProjectorFacts {
    /// Name.
    pub name: String,
    /// Topic it reads.
    pub topic: String,
    /// Its kind.
    pub kind: ProjectorKindFacts,
}

/// What a projector's kind needs.
#[derive(Debug)]
pub enum ProjectorKindFacts {
    /// Changelog: collection, key (resolved), version, indexes, snapshot API.
    Changelog {
        /// Collection.
        collection: String,
        /// Key pointer (the projector's, else the topic's).
        key: String,
        /// Version pointer.
        version: Option<String>,
        /// Indexes.
        indexes: Vec<IndexFacts>,
        /// The snapshot API.
        snapshot_api: Option<SnapshotApiFacts>,
    },
    /// Transactional: handler path, main collection, its indexes.
    Transactional {
        /// The handler's path.
        handler: String,
        /// Collection.
        collection: Option<String>,
        /// Indexes.
        indexes: Vec<IndexFacts>,
    },
}

/// A MongoDB index.
#[derive(Debug)]
pub struct IndexFacts {
    /// Fields and directions.
    pub keys: Vec<(String, i64)>,
    /// Unique index.
    pub unique: bool,
    /// Explicit name.
    pub name: Option<String>,
}

/// A snapshot API.
#[derive(Debug)]
pub struct SnapshotApiFacts {
    /// Mount path.
    pub path: String,
    /// Filterable fields.
    pub filters: Vec<String>,
    /// `Cache-Control: max-age`.
    pub max_age: Option<Duration>,
    /// Largest page.
    pub max_limit: Option<u64>,
}

/// A changefeed's settings.
#[derive(Debug)]
pub struct ChangefeedFacts {
    /// Name.
    pub name: String,
    /// Watched collection.
    pub collection: String,
    /// Database.
    pub database: Option<String>,
    /// Target topic.
    pub topic: String,
    /// `fullDocument` mode.
    pub full_document: spec::FullDocument,
    /// Forwarded operations (empty: all).
    pub operations: Vec<String>,
    /// Restart from now when the resume point is gone.
    pub restart_from_now: bool,
}

/// The facts of a lint-clean spec.
pub fn lower(spec: &Spec) -> Facts {
    Facts {
        consumers: spec.consumers.values().map(consumer).collect(),
        projectors: spec.projectors.values().filter_map(|p| projector(spec, p)).collect(),
        changefeeds: spec.changefeeds.values().map(changefeed).collect(),
    }
}

fn consumer(c: &spec::Consumer) -> ConsumerFacts {
    ConsumerFacts {
        name: c.name.value.clone(),
        topic: c.topic.value.clone(),
        group: c.group.as_ref().map_or(&c.name, |g| g).value.clone(),
        from_latest: c.from.as_ref().is_some_and(|f| f.value == spec::StartFrom::Latest),
        retry: c.retry.as_ref().map(|r| (r.max_attempts.value, value(&r.backoff), value(&r.max_backoff))),
        dlq: c.dlq.as_ref().is_some_and(|d| d.value),
        partitioned: c.partitioned.as_ref().is_some_and(|p| p.value),
        member_ttl: value(&c.member_ttl),
        batch_size: value(&c.batch_size),
        max_in_flight: value(&c.max_in_flight),
    }
}

/// `None` only for a projector lint rejects (P305).
fn index_facts(i: &spec::Index) -> IndexFacts {
    IndexFacts {
        keys: i.keys.iter().map(|(f, d)| (f.value.clone(), d.value)).collect(),
        unique: i.unique,
        name: value(&i.name),
    }
}

fn projector(spec: &Spec, p: &spec::Projector) -> Option<ProjectorFacts> {
    let kind = match p.kind.value {
        spec::ProjectorKind::Transactional => ProjectorKindFacts::Transactional {
            handler: value(&p.handler)?,
            collection: value(&p.collection),
            indexes: p.indexes.iter().map(index_facts).collect(),
        },
        spec::ProjectorKind::Changelog => ProjectorKindFacts::Changelog {
            collection: value(&p.collection)?,
            key: value(&p.key).or_else(|| spec.topics.get(&p.topic.value).and_then(|t| value(&t.key)))?,
            version: value(&p.version),
            indexes: p.indexes.iter().map(index_facts).collect(),
            snapshot_api: p.snapshot_api.as_ref().map(|api| SnapshotApiFacts {
                path: api.path.value.clone(),
                filters: api.filters.iter().map(|f| f.value.clone()).collect(),
                max_age: value(&api.max_age),
                max_limit: value(&api.max_limit),
            }),
        },
    };
    Some(ProjectorFacts { name: p.name.value.clone(), topic: p.topic.value.clone(), kind })
}

fn changefeed(f: &spec::Changefeed) -> ChangefeedFacts {
    ChangefeedFacts {
        name: f.name.value.clone(),
        collection: f.collection.value.clone(),
        database: value(&f.database),
        topic: f.topic.value.clone(),
        full_document: f.full_document.as_ref().map(|d| d.value).unwrap_or_default(),
        operations: f.operations.iter().map(|o| o.value.clone()).collect(),
        restart_from_now: f
            .on_lost_resume
            .as_ref()
            .is_some_and(|p| p.value == spec::LostResumePolicy::RestartFromNow),
    }
}

fn value<T: Clone>(located: &Option<Located<T>>) -> Option<T> {
    located.as_ref().map(|l| l.value.clone())
}
