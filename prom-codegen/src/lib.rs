//! Prom's core: the spec language, lint, the JSON Schema compatibility checker, the IR
//! and code generation. The `prom-codegen` CLI, `build.rs` users and `prom-macros` all call
//! into this one crate, so a spec that fails `prom-codegen lint` also fails `cargo build`.
#![deny(missing_docs)]

mod builder;
pub mod check;
pub mod compat;
pub mod diag;
pub mod emit;
mod generate;
pub mod input;
pub mod ir;
mod par;
pub mod source;
pub mod spec;
pub mod suggest;
pub mod yaml;

#[cfg(feature = "cli")]
pub mod cli;

pub use builder::{BuildError, Builder};
pub use check::{Linted, lint_embedded, lint_paths, lint_str};
pub use generate::{Generated, generate, generate_as, write_if_changed};
