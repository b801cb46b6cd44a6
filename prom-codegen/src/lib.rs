//! Prom's code generator: the IR, code generation, `Builder` for `build.rs` and the
//! `prom-codegen` CLI. The spec language itself (loader, model, diagnostics, lint, schema
//! compatibility) is `prom-spec`; `prom-codegen` depends on it, never the reverse.
#![deny(missing_docs)]

pub mod alerts;
pub mod asyncapi;
pub mod breaking;
mod builder;
pub mod docs;
pub mod emit;
mod generate;
pub mod ir;
pub mod scaffold;

#[cfg(feature = "cli")]
pub mod cli;

pub use builder::{BuildError, Builder};
pub use generate::{Generated, generate, generate_as, write_if_changed};
/// The spec language, re-exported for code that imported it from here before `prom-spec`.
pub use prom_spec::{Linted, lint_embedded, lint_paths, lint_str};
