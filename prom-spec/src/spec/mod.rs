//! The spec language: YAML files → typed model with locations.

pub mod keys;
pub mod limits;
mod load;
mod model;
mod parse;
mod read;

pub use load::{Loaded, load_embedded, load_paths, load_str};
pub use model::*;
pub use parse::OPERATIONS;
pub use read::parse_duration;

/// The JSON Schema of the spec format itself (`prom-codegen schema`).
pub const FORMAT_SCHEMA: &str = include_str!("format.schema.json");
