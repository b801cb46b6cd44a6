//! The resolved model code is generated from: names made valid, types laid out, upcast chains
//! ordered. Built only from a spec that linted clean.

mod aggregate;
pub mod facts;
pub mod names;
mod types;

pub use aggregate::{Aggregate, AggregateEvent};
pub use types::{Field, Ty, TypeDef, TypeId, TypeKind, TypeSpace, Variant};

use prom_spec::spec::{self, Spec};

/// Everything the emitter needs, in a deterministic order.
#[derive(Debug)]
pub struct Model {
    /// Topics sorted by name.
    pub topics: Vec<Topic>,
    /// Consumers sorted by name.
    pub consumers: Vec<Consumer>,
    /// Transactional projectors sorted by name (changelog projectors need no code).
    pub transactional: Vec<TxProjector>,
    /// Every consumer, projector and changefeed by name, with its constant (for `only`).
    pub components: Components,
    /// Event-sourced aggregates sorted by name.
    pub aggregates: Vec<Aggregate>,
    /// Consumer, projector and changefeed settings for `spec::system()`.
    pub facts: facts::Facts,
}

/// A consumer group the spec declares; its handler is the user's.
#[derive(Debug)]
pub struct Consumer {
    /// The consumer's name in the spec.
    pub name: String,
    /// The method name on the generated wiring (`hb_analyzers`).
    pub method: String,
    /// The topic it reads.
    pub topic: String,
    /// The generated module of that topic, when it is a declared topic (not `dlq.*`/`*.vN`).
    pub topic_module: Option<String>,
    /// A one-line summary of its policy, for docs.
    pub summary: String,
}

/// The names of every declared component, each kind sorted by name.
#[derive(Debug, Default)]
pub struct Components {
    /// Consumers.
    pub consumers: Vec<ComponentName>,
    /// Projectors (changelog and transactional).
    pub projectors: Vec<ComponentName>,
    /// Changefeeds.
    pub changefeeds: Vec<ComponentName>,
}

/// A component's name in the spec and the `SHOUTY_CASE` constant naming it in generated code.
#[derive(Debug)]
pub struct ComponentName {
    /// The name in the spec (`hb-analyzers`).
    pub name: String,
    /// The constant (`HB_ANALYZERS`), unique within its kind.
    pub constant: String,
}

/// A transactional projector; its handler is the user function the spec names.
#[derive(Debug)]
pub struct TxProjector {
    /// The projector's name in the spec.
    pub name: String,
    /// The Rust path of the handler (`crate::projectors::process_stats`).
    pub handler: String,
    /// The generated module of the topic it reads, when that is a declared topic.
    pub topic_module: Option<String>,
}

/// One topic's generated module.
#[derive(Debug)]
pub struct Topic {
    /// The topic name (`heartbeat.received`).
    pub name: String,
    /// The module name (`heartbeat_received`).
    pub module: String,
    /// The `SHOUTY_CASE` constant name for the topic.
    pub constant: String,
    /// Description from the spec.
    pub description: Option<String>,
    /// Partition key pointer.
    pub key: Option<String>,
    /// Number of partitions.
    pub partitions: u64,
    /// Custom headers: (constant name, header name).
    pub headers: Vec<(String, String)>,
    /// Whether publishes also go to `<name>.v<latest>`.
    pub dual_write: bool,
    /// Compatibility mode, as written in specs.
    pub compat: &'static str,
    /// Versions in ascending order.
    pub versions: Vec<Version>,
    /// The module's named types.
    pub types: TypeSpace,
}

/// One version of a topic.
#[derive(Debug)]
pub struct Version {
    /// The version number.
    pub number: u32,
    /// The root struct.
    pub root: TypeId,
    /// The JSON Schema, as compact JSON text.
    pub schema: String,
    /// How the previous version becomes this one.
    pub upcast: Option<Upcast>,
    /// Lint proved the upcast into this version always yields a valid payload.
    pub upcast_proven: bool,
}

/// An upcast hop into a version.
#[derive(Debug, Clone)]
pub enum Upcast {
    /// Declarative steps (their meaning: [`prom_spec::upcast::Steps::run`]).
    Steps(prom_spec::upcast::Steps),
    /// A user function `fn(Vn) -> Result<Vn+1, UpcastError>`.
    With(String),
}

/// Lowers a lint-clean spec.
pub fn lower(spec: &Spec) -> Model {
    let mut modules = names::Scope::default();
    // Modules generated next to the topics' own.
    for reserved in ["topics", "spec", "consumers", "projectors", "changefeeds"] {
        modules.claim(reserved.to_owned());
    }
    let mut constants = names::Scope::default();
    // Each topic's types are laid out independently, on every core; names that must be unique
    // across topics are claimed afterwards, in order.
    let specs: Vec<&spec::Topic> = spec.topics.values().collect();
    let laid_out = prom_spec::par::map(&specs, |t| lower_versions(t));
    let topics = specs
        .iter()
        .zip(laid_out)
        .map(|(t, laid_out)| {
            // A panic in a worker is a bug: repeat it here, where it surfaces as usual.
            let (versions, types) = laid_out.unwrap_or_else(|_| lower_versions(t));
            let mut header_scope = names::Scope::default();
            Topic {
                name: t.name.value.clone(),
                module: modules.claim(names::module(&t.name.value)),
                constant: constants.claim(names::constant(&t.name.value)),
                description: t.description.as_ref().map(|d| d.value.clone()),
                key: t.key.as_ref().map(|k| k.value.clone()),
                partitions: t.partitions.as_ref().map_or(1, |p| p.value),
                headers: t
                    .headers
                    .iter()
                    .map(|h| (header_scope.claim(names::constant(&h.value)), h.value.clone()))
                    .collect(),
                dual_write: t.dual_write(),
                compat: t.compat_mode().name(),
                versions,
                types,
            }
        })
        .collect::<Vec<Topic>>();
    let aggregates = aggregate::lower(spec, &topics, &mut modules);
    let mut methods = names::Scope::default();
    for reserved in ["new", "run", "bus", "registry", "spec", "only", "producer"] {
        methods.claim(reserved.to_owned());
    }
    let consumers = spec
        .consumers
        .values()
        .map(|c| Consumer {
            name: c.name.value.clone(),
            method: methods.claim(names::field(&c.name.value)),
            topic: c.topic.value.clone(),
            topic_module: topics.iter().find(|t| t.name == c.topic.value).map(|t| t.module.clone()),
            summary: consumer_summary(c),
        })
        .collect();
    let transactional = spec
        .projectors
        .values()
        .filter(|p| p.kind.value == spec::ProjectorKind::Transactional)
        .filter_map(|p| {
            Some(TxProjector {
                name: p.name.value.clone(),
                handler: p.handler.as_ref()?.value.clone(),
                topic_module: topics.iter().find(|t| t.name == p.topic.value).map(|t| t.module.clone()),
            })
        })
        .collect();
    Model {
        topics,
        consumers,
        transactional,
        components: Components {
            consumers: component_names(spec.consumers.keys()),
            projectors: component_names(spec.projectors.keys()),
            changefeeds: component_names(spec.changefeeds.keys()),
        },
        aggregates,
        facts: facts::lower(spec),
    }
}

/// A topic's versions and the named types of its module.
fn lower_versions(t: &spec::Topic) -> (Vec<Version>, TypeSpace) {
    let mut types = TypeSpace::default();
    for reserved in ["Latest", "AnyVersion"] {
        types.reserve(reserved);
    }
    let versions = t
        .versions
        .iter()
        .enumerate()
        .map(|(i, v)| Version {
            number: v.number.value,
            root: types.add_root(&format!("V{}", v.number.value), &v.schema.json),
            schema: v.schema.json.to_string(),
            upcast: v.upcast.as_ref().map(lower_upcast),
            upcast_proven: i
                .checked_sub(1)
                .is_some_and(|prev| prom_spec::check::upcast_proven(&t.versions[prev], v)),
        })
        .collect();
    (versions, types)
}

/// Names with their constants, unique within one kind (`a-b` and `a_b` get `A_B`, `A_B2`).
fn component_names<'a>(names: impl Iterator<Item = &'a String>) -> Vec<ComponentName> {
    let mut constants = names::Scope::default();
    names
        .map(|name| ComponentName { name: name.clone(), constant: constants.claim(names::constant(name)) })
        .collect()
}

fn consumer_summary(c: &spec::Consumer) -> String {
    let mut parts = vec![format!("group `{}`", c.group.as_ref().map_or(&c.name.value, |g| &g.value))];
    if let Some(retry) = &c.retry {
        parts.push(format!("up to {} attempts", retry.max_attempts.value));
    }
    if c.dlq.as_ref().is_some_and(|d| d.value) {
        parts.push(format!("dead letters to `dlq.{}`", c.topic.value));
    }
    if c.partitioned.as_ref().is_some_and(|p| p.value) {
        parts.push("partitioned".to_owned());
    }
    if let Some(ttl) = &c.member_ttl {
        parts.push(format!("member TTL {}", prom_spec::spec::limits::duration_text(ttl.value)));
    }
    parts.join(", ")
}

fn lower_upcast(upcast: &spec::Upcast) -> Upcast {
    if let Some(with) = &upcast.with {
        return Upcast::With(with.value.clone());
    }
    Upcast::Steps(upcast.steps.map(|name| name.value.clone(), |value| value.to_json().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_constants_are_unique_per_kind_and_topic_modules_avoid_the_generated_ones() {
        let linted = prom_spec::lint_str(
            "s.yaml",
            "topics:\n  consumers:\n    versions:\n      1:\n        schema: { type: object }\n\
             consumers:\n  hb-analyzers: { topic: consumers }\n  hb_analyzers: { topic: consumers }\n  \
             only: { topic: consumers }\n",
        );
        assert!(!linted.has_errors(), "{}", linted.render());
        let model = lower(&linted.spec);
        let constants: Vec<(&str, &str)> =
            model.components.consumers.iter().map(|c| (c.name.as_str(), c.constant.as_str())).collect();
        assert_eq!(
            constants,
            [("hb-analyzers", "HB_ANALYZERS"), ("hb_analyzers", "HB_ANALYZERS2"), ("only", "ONLY")]
        );
        assert!(model.components.projectors.is_empty() && model.components.changefeeds.is_empty());
        assert_eq!(model.topics[0].module, "consumers2", "`consumers` holds the component names");
        let methods: Vec<&str> = model.consumers.iter().map(|c| c.method.as_str()).collect();
        assert_eq!(methods, ["hb_analyzers", "hb_analyzers2", "only2"], "`only` is `Wiring::only`");
    }
}
