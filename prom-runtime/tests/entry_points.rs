//! The entry points say what they take: `Pipeline::from_yaml` takes YAML text,
//! `Pipeline::from_paths` spec files, `Registry::from_yaml` YAML text; each lints first and
//! reports lint errors as `Error::Spec` with the rendered diagnostics (file:line:col, help).

use prom_runtime::{Error, MemoryBus, Pipeline, PublishOptions, Registry};
use serde_json::json;

const SPEC: &str = "
topics:
  orders.placed:
    key: /order
    versions:
      1:
        schema:
          type: object
          required: [order]
          properties: { order: { type: string } }
consumers:
  billing:
    topic: orders.placed
";

/// `partitions: 0` on line 4, column 17.
const BAD: &str = "
topics:
  orders.placed:
    partitions: 0
    versions:
      1: { schema: { type: object } }
";

fn spec_error(error: Error) -> String {
    match error {
        Error::Spec { diagnostics } => diagnostics,
        other => panic!("expected Error::Spec, got {other:?}"),
    }
}

#[tokio::test]
async fn yaml_text_builds_a_pipeline_that_validates_and_publishes() {
    let pipeline = Pipeline::from_yaml(MemoryBus::new(), SPEC).expect("lints clean");
    assert_eq!(pipeline.system().consumer("billing").map(|c| c.group.as_str()), Some("billing"));
    let producer = pipeline.producer();
    producer
        .publish("orders.placed", json!({ "order": "o-1" }), PublishOptions::default())
        .await
        .expect("valid");
    let invalid = producer.publish("orders.placed", json!({ "order": 1 }), PublishOptions::default()).await;
    assert!(matches!(invalid, Err(Error::Invalid { .. })), "{invalid:?}");
}

#[test]
fn yaml_with_lint_errors_is_a_spec_error_with_locations() {
    let Err(error) = Pipeline::from_yaml(MemoryBus::new(), BAD) else { panic!("the spec has errors") };
    let text = spec_error(error);
    assert!(text.contains("P401"), "{text}");
    assert!(text.contains("spec.yaml:4:17"), "{text}");
    let text = spec_error(Registry::from_yaml("orders.yaml", BAD).expect_err("the spec has errors"));
    assert!(text.contains("orders.yaml:4:17"), "{text}");
}

#[test]
fn spec_paths_are_read_and_a_missing_one_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("orders.yaml");
    std::fs::write(&file, SPEC).expect("write spec");
    let pipeline = Pipeline::from_paths(MemoryBus::new(), &[&file]).expect("lints clean");
    assert!(pipeline.system().topic("orders.placed").is_some());
    let missing = dir.path().join("absent.yaml");
    let Err(error) = Pipeline::from_paths(MemoryBus::new(), &[&missing]) else { panic!("no such file") };
    let text = spec_error(error);
    assert!(text.contains("absent.yaml"), "{text}");
}

#[test]
fn yaml_passed_as_text_is_not_taken_for_a_path() {
    let registry = Registry::from_yaml("orders.yaml", SPEC).expect("lints clean");
    assert_eq!(registry.topic("orders.placed").map(|t| t.partitions).ok(), Some(1));
}

#[test]
fn a_hand_built_system_with_unusable_facts_is_an_invalid_system() {
    let mut system = Pipeline::from_yaml(MemoryBus::new(), SPEC).expect("lints clean").system().clone();
    system.topics[0].versions[0].schema = "{ not json".to_owned();
    let error = Registry::from_system(&system).expect_err("the schema is not JSON");
    let Error::InvalidSystem { component, reason } = &error else { panic!("unexpected {error:?}") };
    assert_eq!(component, "topic `orders.placed` v1");
    assert!(reason.starts_with("the schema is not JSON"), "{reason}");
    system.topics[0].versions.clear();
    let error = Registry::from_system(&system).expect_err("no versions");
    assert!(
        matches!(&error, Error::InvalidSystem { component, .. } if component == "topic `orders.placed`"),
        "{error:?}"
    );
}
