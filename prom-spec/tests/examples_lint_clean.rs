//! The example system's specs lint clean: no errors and no warnings.

use std::path::Path;

#[test]
fn example_specs_have_no_diagnostics() {
    let specs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs");
    let linted = prom_spec::lint_paths(&[specs]);
    assert!(linted.diagnostics.is_empty(), "{}", linted.render());
    assert_eq!(linted.spec.topics.len(), 3);
    assert_eq!(linted.spec.topics["heartbeat.received"].versions.len(), 3);
    assert_eq!(linted.spec.projectors.len(), 2);
    assert_eq!(linted.spec.changefeeds.len(), 1);
}
