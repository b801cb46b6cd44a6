//! Store errors keep the driver's error as their cause: a caller can match the variant, print
//! the same message as before, and walk `source()` down to the `rusqlite::Error` (or the
//! `std::io::Error`) that caused it.

use prom_runtime::{Error, SqliteBus};
use std::error::Error as _;

/// The chain of causes below `error`, outermost first.
fn causes<'a>(error: &'a (dyn std::error::Error + 'static)) -> Vec<&'a (dyn std::error::Error + 'static)> {
    let mut chain = Vec::new();
    let mut next = error.source();
    while let Some(cause) = next {
        chain.push(cause);
        next = cause.source();
    }
    chain
}

#[test]
fn a_file_that_is_not_a_store_fails_with_the_sqlite_error_as_its_cause() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Not a SQLite database: opening it as a store must fail, naming the file.
    std::fs::write(dir.path().join("events.db"), vec![b'x'; 4096]).expect("write");
    let error = match SqliteBus::open(dir.path()) {
        Ok(_) => panic!("a file of `x`s opened as a store"),
        Err(error) => error,
    };
    let Error::Store { path, message, .. } = &error else { panic!("not a store error: {error:?}") };
    assert!(path.ends_with("events.db"), "{path}");
    assert_eq!(error.to_string(), format!("store `{path}`: {message}"));
    let chain = causes(&error);
    let sqlite = chain
        .iter()
        .find_map(|cause| cause.downcast_ref::<rusqlite::Error>())
        .unwrap_or_else(|| panic!("no rusqlite::Error among the causes of {error:?}"));
    assert_eq!(sqlite.sqlite_error_code(), Some(rusqlite::ErrorCode::NotADatabase), "{sqlite}");
    // Cloning (one failed group commit goes to every publisher in it) keeps the cause.
    let cloned = error.clone();
    assert!(causes(&cloned).iter().any(|cause| cause.downcast_ref::<rusqlite::Error>().is_some()));
}

#[test]
fn a_store_directory_that_cannot_be_created_keeps_the_io_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    // A file where the store directory should be.
    let blocked = dir.path().join("blocked");
    std::fs::write(&blocked, b"a file").expect("write");
    let error = match SqliteBus::open(blocked.join("store")) {
        Ok(_) => panic!("a store opened below a regular file"),
        Err(error) => error,
    };
    assert!(
        matches!(&error, Error::Store { message, .. } if message.contains("cannot create the store directory"))
    );
    let io = causes(&error).into_iter().find_map(|cause| cause.downcast_ref::<std::io::Error>());
    assert!(io.is_some(), "no std::io::Error among the causes of {error:?}");
}

#[test]
fn errors_the_store_finds_itself_have_no_cause() {
    let error = Error::store("memory", "the store was opened read-only");
    assert!(matches!(&error, Error::Store { source: None, .. }));
    assert!(error.source().is_none());
}

const RENAMED: &str = "\
topics:
  reading.taken:
    versions:
      1:
        schema: { type: object, properties: { amount: { type: integer } }, required: [amount] }
      2:
        schema: { type: object, properties: { total: { type: integer } }, required: [total] }
        upcast: { rename: { amount: total } }
";

#[test]
fn a_failed_upcast_step_is_the_cause_of_the_upcast_error() {
    let registry = prom_runtime::Registry::from_yaml("spec.yaml", RENAMED).expect("lints clean");
    // Stored behind Prom's back: a v1 event whose payload is not an object.
    let mut record = prom_runtime::NewEvent::new("reading.taken", serde_json::json!([1, 2])).into_record(1);
    record.headers.insert("x-schema-version".into(), "1".into());
    let error = registry.decode(record).expect_err("an array cannot be renamed in");
    let Error::Upcast { from: 1, to: 2, .. } = &error else { panic!("not an upcast error: {error:?}") };
    let step = causes(&error)
        .iter()
        .find_map(|cause| cause.downcast_ref::<prom_spec::upcast::NotAnObject>())
        .map(ToString::to_string);
    assert!(step.is_some(), "the step's own error is kept as the cause of {error:?}");
    assert!(error.to_string().contains(step.as_deref().unwrap_or_default()), "{error}");
}
