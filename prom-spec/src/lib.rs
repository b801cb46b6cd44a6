//! Prom's spec language: the YAML loader, the spec model, diagnostics, lint and the JSON Schema
//! compatibility checker. `prom-codegen` (IR, code generation, its CLI), `prom-macros` and the
//! `prom` CLI all call into this one crate, so a spec that fails `prom-codegen lint` also fails
//! `cargo build` and `prom run`. It knows nothing of code generation: it never depends on
//! `prom-codegen`, the way `prost` never depends on `prost-build`.
#![deny(missing_docs)]

pub mod check;
pub mod compat;
pub mod diag;
pub mod input;
pub mod par;
pub mod source;
pub mod spec;
pub mod suggest;
pub mod yaml;

#[cfg(feature = "cli")]
pub mod cli;

pub use check::{Linted, lint_embedded, lint_paths, lint_str};
