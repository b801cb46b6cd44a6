//! The one place a spec becomes runtime settings (the `prom` CLI's path; generated code
//! emits the same facts as literals). Only called on a spec that linted clean: what lint
//! guarantees (numbering, required keys per projector kind, ranges) is taken as given.

use super::{
    Aggregate, Changefeed, Changelog, Consumer, Index, Projector, ProjectorKind, SnapshotApi, System, Topic,
    Upcast, Version,
};
use crate::retry::RetryPolicy;
use prom_spec::check::upcast_proven;
use prom_spec::source::Located;
use prom_spec::spec;

impl System {
    /// The settings of a spec that linted clean (`prom_spec::lint_*` without errors).
    pub fn from_spec(spec: &spec::Spec) -> System {
        System {
            topics: spec.topics.values().map(topic).collect(),
            consumers: spec.consumers.values().map(consumer).collect(),
            projectors: spec.projectors.values().filter_map(|p| projector(spec, p)).collect(),
            changefeeds: spec.changefeeds.values().map(changefeed).collect(),
            aggregates: spec.aggregates.values().map(aggregate).collect(),
        }
    }
}

fn topic(topic: &spec::Topic) -> Topic {
    let versions = topic
        .versions
        .iter()
        .enumerate()
        .map(|(i, version)| Version {
            number: version.number.value,
            schema: version.schema.json.to_string(),
            upcast: version.upcast.as_ref().map(upcast),
            upcast_proven: i.checked_sub(1).is_some_and(|prev| upcast_proven(&topic.versions[prev], version)),
        })
        .collect();
    Topic {
        name: topic.name.value.clone(),
        key: value(&topic.key),
        partitions: topic
            .partitions
            .as_ref()
            .map_or(1, |p| u32::try_from(p.value).unwrap_or(u32::MAX).max(1)),
        headers: topic.headers.iter().map(|h| h.value.clone()).collect(),
        dual_write: topic.dual_write(),
        compat: topic.compat_mode(),
        versions,
    }
}

fn upcast(upcast: &spec::Upcast) -> Upcast {
    match &upcast.with {
        Some(path) => Upcast::With(path.value.clone()),
        None => {
            // Lint read every default as JSON, so none is dropped here.
            let steps =
                upcast.steps.map(|name| name.value.clone(), |node| Some(node.to_json().ok()?.to_string()));
            Upcast::Steps { rename: steps.rename, remove: steps.remove, set_default: steps.set_default }
        }
    }
}

fn consumer(consumer: &spec::Consumer) -> Consumer {
    let count =
        |v: &Option<Located<u64>>| v.as_ref().map(|v| usize::try_from(v.value).unwrap_or(usize::MAX).max(1));
    Consumer {
        name: consumer.name.value.clone(),
        topic: consumer.topic.value.clone(),
        group: consumer.group.as_ref().map_or(&consumer.name, |g| g).value.clone(),
        start: consumer.from.as_ref().map(|f| f.value).unwrap_or_default(),
        retry: retry(consumer.retry.as_ref()),
        dlq: consumer.dlq.as_ref().is_some_and(|d| d.value),
        partitioned: consumer.partitioned.as_ref().is_some_and(|p| p.value),
        member_ttl: consumer.member_ttl.as_ref().map(|t| t.value),
        batch_size: count(&consumer.batch_size),
        max_in_flight: count(&consumer.max_in_flight),
    }
}

/// The policy a `retry:` block declares (defaults where it is silent).
fn retry(retry: Option<&spec::Retry>) -> RetryPolicy {
    let default = RetryPolicy::default();
    let Some(retry) = retry else { return default };
    let backoff = retry.backoff.as_ref().map_or(default.backoff, |b| b.value);
    RetryPolicy {
        max_attempts: u32::try_from(retry.max_attempts.value).unwrap_or(u32::MAX).max(1),
        backoff,
        max_backoff: retry.max_backoff.as_ref().map_or(default.max_backoff.max(backoff), |m| m.value),
    }
}

/// `None` only for a projector lint rejects (P305), which never gets here.
fn projector(spec: &spec::Spec, projector: &spec::Projector) -> Option<Projector> {
    let kind = match projector.kind.value {
        spec::ProjectorKind::Transactional => ProjectorKind::Transactional {
            handler: value(&projector.handler)?,
            collection: value(&projector.collection),
            indexes: projector.indexes.iter().map(index).collect(),
        },
        spec::ProjectorKind::Changelog => {
            let topic_key = spec.topics.get(&projector.topic.value).and_then(|t| value(&t.key));
            ProjectorKind::Changelog(Changelog {
                collection: value(&projector.collection)?,
                key: value(&projector.key).or(topic_key)?,
                version: value(&projector.version),
                indexes: projector.indexes.iter().map(index).collect(),
                snapshot_api: projector.snapshot_api.as_ref().map(snapshot_api),
            })
        }
    };
    Some(Projector { name: projector.name.value.clone(), topic: projector.topic.value.clone(), kind })
}

fn index(index: &spec::Index) -> Index {
    Index {
        keys: index.keys.iter().map(|(field, direction)| (field.value.clone(), direction.value)).collect(),
        unique: index.unique,
        name: value(&index.name),
    }
}

fn snapshot_api(api: &spec::SnapshotApi) -> SnapshotApi {
    SnapshotApi {
        path: api.path.value.clone(),
        filters: api.filters.iter().map(|f| f.value.clone()).collect(),
        max_age: api.max_age.as_ref().map(|d| d.value),
        max_limit: api.max_limit.as_ref().map(|m| m.value),
    }
}

fn changefeed(feed: &spec::Changefeed) -> Changefeed {
    Changefeed {
        name: feed.name.value.clone(),
        collection: feed.collection.value.clone(),
        database: value(&feed.database),
        topic: feed.topic.value.clone(),
        full_document: feed.full_document.as_ref().map(|f| f.value).unwrap_or_default(),
        operations: feed.operations.iter().map(|op| op.value.clone()).collect(),
        on_lost_resume: feed.on_lost_resume.as_ref().map(|p| p.value).unwrap_or_default(),
    }
}

fn aggregate(aggregate: &spec::Aggregate) -> Aggregate {
    Aggregate {
        name: aggregate.name.value.clone(),
        description: value(&aggregate.description),
        id: aggregate.id.value.clone(),
        events: aggregate.events.iter().map(|e| e.value.clone()).collect(),
        // Lint bounds `every` far below `u32::MAX`.
        snapshot_every: aggregate.snapshot_every().map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
        tamper_evident: aggregate.tamper_evident(),
    }
}

fn value<T: Clone>(located: &Option<Located<T>>) -> Option<T> {
    located.as_ref().map(|l| l.value.clone())
}
