//! Every ```` ```rust ```` block of README.md, compiled (see `build.rs` and [`render`]), and the
//! fresh-crate test of its "Use Prom in your crate" section (`tests/fresh_crate.rs`).
//!
//! A snippet that does not compile fails `cargo build -p prom-readme-tests` with an error in
//! `OUT_DIR/README.md.rs:LINE:COL`, where LINE is the README's own line. Snippets marked
//! `<!-- snippet: mongo -->` (and the generated `prom` module: `specs/` declares a transactional
//! projector) need the `mongo` feature; `<!-- snippet: otel -->` ones the `otel` feature.

pub mod readme;
pub mod render;

/// The code `prom_codegen::Builder` generates from `specs/` in `build.rs`.
#[cfg(feature = "mongo")]
#[rustfmt::skip]
pub mod prom {
    include!(concat!(env!("OUT_DIR"), "/prom_generated.rs"));
}

include!(concat!(env!("OUT_DIR"), "/README.md.rs"));
