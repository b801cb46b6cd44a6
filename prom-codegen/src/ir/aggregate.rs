//! Aggregates as the emitter needs them: module, event variants and state methods named, each
//! event tied to its topic's generated module.

use super::{Topic, names};
use prom_spec::spec::Spec;

/// An event-sourced aggregate's generated module.
#[derive(Debug)]
pub struct Aggregate {
    /// The aggregate's name in the spec (`account`).
    pub name: String,
    /// The module name (`account`, unique among the generated modules).
    pub module: String,
    /// Description from the spec.
    pub description: Option<String>,
    /// JSON pointer to the stream id in every event.
    pub id: String,
    /// The events, in spec order.
    pub events: Vec<AggregateEvent>,
    /// Events between snapshots, if snapshots are declared.
    pub snapshot_every: Option<u64>,
    /// Whether streams are hash-chained.
    pub tamper_evident: bool,
}

/// One event of an aggregate: a declared topic.
#[derive(Debug)]
pub struct AggregateEvent {
    /// The topic (`money.deposited`).
    pub topic: String,
    /// The topic's generated module (`money_deposited`).
    pub topic_module: String,
    /// The event enum's variant (`MoneyDeposited`).
    pub variant: String,
    /// The state trait's method (`on_money_deposited`).
    pub method: String,
}

/// The aggregates of a lint-clean spec, sorted by name; their modules are claimed in `modules`
/// after the topics' own, so adding an aggregate never renames a topic's module.
pub fn lower(spec: &Spec, topics: &[Topic], modules: &mut names::Scope) -> Vec<Aggregate> {
    spec.aggregates
        .values()
        .map(|a| {
            let mut variants = names::Scope::default();
            let mut methods = names::Scope::default();
            let events = a
                .events
                .iter()
                // Lint rejects undeclared topics; skipping keeps a bad spec from panicking.
                .filter_map(|event| topics.iter().find(|t| t.name == event.value))
                .map(|topic| AggregateEvent {
                    topic: topic.name.clone(),
                    topic_module: topic.module.clone(),
                    variant: variants.claim(names::type_name(&topic.name)),
                    method: methods.claim(format!("on_{}", names::module(&topic.name).trim_end_matches('_'))),
                })
                .collect();
            Aggregate {
                name: a.name.value.clone(),
                module: modules.claim(names::module(&a.name.value)),
                description: a.description.as_ref().map(|d| d.value.clone()),
                id: a.id.value.clone(),
                events,
                snapshot_every: a.snapshot_every(),
                tamper_evident: a.tamper_evident(),
            }
        })
        .collect()
}
