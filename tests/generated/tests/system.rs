//! The facts generated code hands the runtime (`spec::system()`) are exactly what the runtime's
//! one spec converter makes of the same spec, so both paths run the same system.

use prom_generated_tests::constructs::spec;
use prom_runtime::system::{self, ProjectorKind};
use std::path::Path;

fn from_yaml() -> system::System {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus/codegen/constructs.yaml");
    system::lint_paths(&[path]).expect("the constructs spec lints clean")
}

#[test]
fn generated_facts_equal_the_converted_spec() {
    assert_eq!(spec::system(), from_yaml());
}

#[test]
fn generated_facts_carry_what_lint_proved_and_resolved() {
    let system = spec::system();
    let order = system.topic("order.placed").expect("declared");
    let proven: Vec<bool> = order.versions.iter().map(|v| v.upcast_proven).collect();
    // v2 is reached by declarative steps only; v3 needs a user function, which lint cannot prove.
    assert_eq!(proven, [false, true, false]);
    let audit = system.consumer("order-audit").expect("declared");
    assert_eq!((audit.group.as_str(), audit.retry.max_attempts, audit.batch_size), ("audit", 5, Some(16)));
    let Some(ProjectorKind::Changelog(orders)) = system.projector("orders").map(|p| &p.kind) else {
        panic!("`orders` is a changelog projector");
    };
    // The projector names no key: the topic's is resolved at build time.
    assert_eq!(orders.key, "/order_id");
}

#[test]
fn the_registry_takes_the_proven_bits_as_given() {
    let wiring = prom_generated_tests::constructs::wire(prom_runtime::MemoryBus::new()).expect("wires");
    let order = wiring.producer().registry().topic("order.placed").expect("declared");
    // v2 → v3 is a user function: its results are validated.
    assert!(!order.upcast_proven_from(1));
    let mut facts = spec::system();
    let topic = facts.topics.iter_mut().find(|t| t.name == "order.placed").expect("declared");
    topic.versions[2].upcast_proven = true;
    let registry = prom_runtime::Registry::from_system(&facts).expect("registry");
    // Nothing is re-derived at startup: the bit decides.
    assert!(registry.topic("order.placed").expect("declared").upcast_proven_from(1));
}
