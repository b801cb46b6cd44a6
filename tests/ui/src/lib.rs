//! Compile-time contract tests for Prom's macros; the cases live in `tests/fail` and `tests/pass`.
