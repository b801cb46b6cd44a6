//! Prom's spec language: the YAML loader, the spec model, diagnostics, lint and the JSON Schema
//! compatibility checker. `prom-codegen` (IR, code generation, its CLI), `prom-macros` and the
//! `prom` CLI all call into this one crate, so a spec that fails `prom-codegen lint` also fails
//! `cargo build` and `prom run`. It knows nothing of code generation: it never depends on
//! `prom-codegen`, the way `prost` never depends on `prost-build`.
//!
//! Without the default `lint` feature only what a running system needs remains (the reserved
//! header names, the plain spec choices in [`kinds`], the upcast steps in [`upcast`] and "did you mean"
//! suggestions): no YAML parser, no JSON Schema compiler.
#![deny(missing_docs)]

pub mod headers;
pub mod kinds;
pub mod metrics;
pub mod schema;
pub mod suggest;
pub mod upcast;

#[cfg(feature = "lint")]
pub mod check;
#[cfg(feature = "lint")]
pub mod compat;
#[cfg(feature = "lint")]
pub mod diag;
#[cfg(feature = "lint")]
pub mod input;
#[cfg(feature = "lint")]
pub mod lock;
#[cfg(feature = "lint")]
pub mod par;
#[cfg(feature = "lint")]
pub mod source;
#[cfg(feature = "lint")]
pub mod spec;
#[cfg(feature = "lint")]
pub mod yaml;

#[cfg(feature = "cli")]
pub mod cli;

#[cfg(feature = "lint")]
pub use check::{Linted, lint_embedded, lint_paths, lint_paths_rewriting, lint_str};
