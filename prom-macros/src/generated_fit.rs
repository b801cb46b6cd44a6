//! Property: every payload struct `prom-codegen` generates passes `#[derive(Event)]`'s shape
//! check against the schema it was generated from (codegen and the derive read schemas the
//! same way).

use crate::derive::check_struct;
use crate::errors::Errors;
use crate::specs::Specs;
use std::path::{Path, PathBuf};
use syn::{Item, ItemMod, ItemStruct};

/// The workspace's spec corpora: the codegen constructs corpus and the example specs.
fn corpora() -> Vec<PathBuf> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    vec![workspace.join("tests/corpus/codegen/constructs.yaml"), workspace.join("specs")]
}

/// The `pub mod <name>` among `items`.
fn module<'a>(items: &'a [Item], name: &str) -> Option<&'a ItemMod> {
    items.iter().find_map(|item| match item {
        Item::Mod(m) if m.ident == name => Some(m),
        _ => None,
    })
}

/// The `struct <name>` among `items`.
fn structure<'a>(items: &'a [Item], name: &str) -> Option<&'a ItemStruct> {
    items.iter().find_map(|item| match item {
        Item::Struct(s) if s.ident == name => Some(s),
        _ => None,
    })
}

/// Whether lint found errors (generation then does not run).
fn has_errors(linted: &prom_spec::Linted) -> bool {
    linted.diagnostics.iter().any(|d| d.severity == prom_spec::diag::Severity::Error)
}

/// Shape-check findings for every topic version of one lint-clean spec: how many payload
/// structs were checked, and every error the derive reported, prefixed with topic and version.
fn findings(path: &Path, linted: prom_spec::Linted) -> (usize, Vec<String>) {
    let model = prom_codegen::ir::lower(&linted.spec);
    let file: syn::File = syn::parse2(prom_codegen::emit::tokens(&model)).expect("emitted code parses");
    let specs = Specs {
        root: path.to_path_buf(),
        shown: path.display().to_string(),
        module: "crate::prom".to_owned(),
        linted,
    };
    let (mut checked, mut out) = (0, Vec::new());
    for topic in &model.topics {
        let spec_topic = &specs.linted.spec.topics[&topic.name];
        let Some((_, content)) = &module(&file.items, &topic.module).expect("topic module").content else {
            panic!("topic module `{}` has no body", topic.module)
        };
        for version in &topic.versions {
            let name = &topic.types.defs()[version.root].name;
            let item = structure(content, name)
                .unwrap_or_else(|| panic!("`{}` v{}: no struct `{name}`", topic.name, version.number));
            let input: syn::DeriveInput =
                syn::parse2(quote::ToTokens::into_token_stream(item.clone())).expect("a struct");
            let spec_version = spec_topic
                .versions
                .iter()
                .find(|v| v.number.value == version.number)
                .expect("the spec version of a generated version");
            let mut errors = Errors::default();
            check_struct(&input, &specs, spec_topic, spec_version, &mut errors);
            checked += 1;
            out.extend(
                errors
                    .messages()
                    .into_iter()
                    .map(|m| format!("`{}` v{} ({name}): {m}", topic.name, version.number)),
            );
        }
    }
    (checked, out)
}

#[test]
fn generated_payload_structs_pass_the_derive_shape_check() {
    for path in corpora() {
        let linted = prom_spec::lint_paths(std::slice::from_ref(&path));
        assert!(!has_errors(&linted), "{} does not lint clean: {:?}", path.display(), linted.diagnostics);
        let (checked, problems) = findings(&path, linted);
        assert!(checked > 0, "{}: no payload struct was checked", path.display());
        assert!(problems.is_empty(), "{}:\n{}", path.display(), problems.join("\n"));
    }
}

/// The check is not vacuous: a generated struct whose field type disagrees is rejected.
#[test]
fn a_mistyped_generated_field_is_rejected() {
    let text = "topics:\n  t.x:\n    versions:\n      1:\n        schema: {type: object, required: [n], properties: {n: {type: integer}}}\n";
    let linted = prom_spec::lint_str("mistyped.yaml", text);
    assert!(!has_errors(&linted), "{:?}", linted.diagnostics);
    let model = prom_codegen::ir::lower(&linted.spec);
    let code = prom_codegen::emit::tokens(&model).to_string();
    // The one integer field, retyped as a string.
    let retyped = code.replacen("pub n : i64", "pub n : String", 1);
    assert_ne!(code, retyped, "the generated field was not found: {code}");
    let file: syn::File = syn::parse_str(&retyped).expect("retyped code parses");
    let content =
        module(&file.items, "t_x").and_then(|m| m.content.as_ref()).map(|(_, c)| c).expect("module");
    let input: syn::DeriveInput =
        syn::parse2(quote::ToTokens::into_token_stream(structure(content, "V1").expect("V1").clone()))
            .expect("struct");
    let topic = &linted.spec.topics["t.x"];
    let specs = Specs {
        root: PathBuf::from("."),
        shown: "mistyped.yaml".into(),
        module: "crate::prom".into(),
        linted: prom_spec::lint_str("mistyped.yaml", text),
    };
    let mut errors = Errors::default();
    check_struct(&input, &specs, topic, &topic.versions[0], &mut errors);
    let messages = errors.messages();
    assert!(messages.iter().any(|m| m.contains("field `n` is a string type")), "{messages:?}");
}

/// Arbitrary payload schemas: the constructs codegen maps to Rust types, nested.
mod arbitrary {
    use proptest::prelude::*;
    use serde_json::{Map, Value, json};

    /// Property names: Rust keywords, digits first, separators, names that collide once
    /// snake-cased (`a_b`, `aB`, `a-b`) and one that `patternProperties` also matches (`x-tag`).
    const NAMES: &[&str] = &[
        "id",
        "type",
        "match",
        "self",
        "2fa",
        "camelCase",
        "with-dash",
        "a_b",
        "aB",
        "a-b",
        "Value",
        "r#x",
        "x-tag",
    ];

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(json!({ "type": "string" })),
            Just(json!({ "type": "string", "format": "date-time" })),
            Just(json!({ "type": "integer", "minimum": 0 })),
            Just(json!({ "type": "integer" })),
            Just(json!({ "type": "number" })),
            Just(json!({ "type": "boolean" })),
            Just(json!({})),
            Just(json!(true)),
            Just(json!({ "type": ["string", "null"] })),
            Just(json!({ "type": ["integer", "number"] })),
            Just(json!({ "type": "string", "enum": ["a", "b-c", "self"] })),
            Just(json!({ "enum": ["x", "y"] })),
            Just(json!({ "const": "fixed" })),
            Just(json!({ "type": "null" })),
        ]
    }

    /// An object schema over some of [`NAMES`], each with a schema from `inner`.
    fn object(inner: impl Strategy<Value = Value>) -> impl Strategy<Value = Value> {
        (
            proptest::collection::btree_map(proptest::sample::select(NAMES), inner, 0..5),
            proptest::collection::vec(any::<bool>(), 5),
            proptest::option::of(prop_oneof![
                Just(json!(false)),
                Just(json!(true)),
                Just(json!({ "type": "integer" })),
                Just(json!({ "type": ["string", "null"] })),
            ]),
            any::<bool>(),
        )
            .prop_map(|(properties, required_mask, additional, patterned)| {
                let required: Vec<Value> = properties
                    .keys()
                    .zip(&required_mask)
                    .filter(|(_, r)| **r)
                    .map(|(n, _)| Value::from(*n))
                    .collect();
                let mut schema = Map::new();
                schema.insert("type".into(), json!("object"));
                schema.insert(
                    "properties".into(),
                    Value::Object(properties.into_iter().map(|(n, s)| (n.to_owned(), s)).collect()),
                );
                schema.insert("required".into(), Value::Array(required));
                if let Some(additional) = additional {
                    schema.insert("additionalProperties".into(), additional);
                }
                if patterned {
                    schema.insert("patternProperties".into(), json!({ "^x-": { "type": "string" } }));
                }
                Value::Object(schema)
            })
    }

    /// A property schema: a leaf, or arrays, maps, nullable and nested objects of schemas.
    pub fn property() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                inner.clone().prop_map(|items| json!({ "type": "array", "items": items })),
                inner.clone().prop_map(|values| json!({ "type": "object", "additionalProperties": values })),
                inner.clone().prop_map(|s| json!({ "anyOf": [s, { "type": "null" }] })),
                inner.clone().prop_map(|items| json!({ "type": ["array", "null"], "items": items })),
                inner
                    .clone()
                    .prop_map(|values| json!({ "type": ["object", "null"], "additionalProperties": values })),
                inner.clone().prop_map(|s| json!({ "oneOf": [s, { "type": "boolean" }] })),
                inner.clone().prop_map(|s| json!({ "allOf": [s] })),
                object(inner.clone()),
            ]
        })
    }

    /// A payload (root) schema, sometimes with a property through `$ref` into `$defs`.
    pub fn payload() -> impl Strategy<Value = Value> {
        (object(property()), proptest::option::of((property(), any::<bool>()))).prop_map(
            |(mut root, shared)| {
                if let (Some((shared, required)), Some(object)) = (shared, root.as_object_mut()) {
                    object.insert("$defs".into(), json!({ "shared": shared }));
                    if let Some(Value::Object(properties)) = object.get_mut("properties") {
                        properties.insert("shared".into(), json!({ "$ref": "#/$defs/shared" }));
                    }
                    if required && let Some(Value::Array(list)) = object.get_mut("required") {
                        list.push(json!("shared"));
                    }
                }
                root
            },
        )
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]

    /// Arbitrary payload schemas: what codegen emits passes the derive's shape check.
    #[test]
    fn generated_structs_of_arbitrary_schemas_pass_the_shape_check(schema in arbitrary::payload()) {
        let text = format!("topics:\n  gen.topic:\n    versions:\n      1:\n        schema: {schema}\n");
        let linted = prom_spec::lint_str("gen.yaml", &text);
        // Every generated schema is meant to be valid: a lint error is a generator bug.
        let messages: Vec<&str> = linted.diagnostics.iter().map(|d| d.message.as_str()).collect();
        proptest::prop_assert!(!has_errors(&linted), "schema {} does not lint: {:?}", schema, messages);
        let (checked, problems) = findings(Path::new("."), linted);
        proptest::prop_assert_eq!(checked, 1);
        proptest::prop_assert!(problems.is_empty(), "schema {}:\n{}", schema, problems.join("\n"));
    }
}
