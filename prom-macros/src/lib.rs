//! Compile-time contracts for Prom. The derive and function-like macros land with the macros
//! issue; this crate already links the spec core without the CLI (no clap in proc-macros).
