//! With default features off, a program on `prom-runtime` links none of the compiler's crates:
//! no syn, quote or prettyplease (code generation), no saphyr-parser (YAML), no clap (CLI), and
//! no Prometheus exporter (library users get only the `metrics` facade), no schemars.
//! Proc-macro crates (serde's derive, thiserror) run at build time only and are left out.

use std::process::Command;

#[test]
fn the_runtime_without_default_features_links_no_compiler_crates() {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let out = Command::new(env!("CARGO"))
        .args(["tree", "--offline", "--manifest-path", manifest, "-p", "prom-runtime"])
        .args(["-e", "normal,no-proc-macro", "--no-default-features", "--prefix", "none"])
        .output()
        .expect("cargo runs");
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "cargo tree failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let crates: Vec<&str> = tree.lines().filter_map(|line| line.split_whitespace().next()).collect();
    assert!(crates.contains(&"prom-runtime"), "{tree}");
    for forbidden in [
        "syn",
        "quote",
        "prettyplease",
        "saphyr-parser",
        "clap",
        "prom-codegen",
        "prom-macros",
        "metrics-exporter-prometheus",
        // The spec format's schema generator (prom-spec's `format-schema`, for the CLIs).
        "schemars",
    ] {
        assert!(!crates.contains(&forbidden), "`{forbidden}` is in the runtime's tree:\n{tree}");
    }
}

#[test]
fn the_default_runtime_keeps_the_macros_and_the_cli() {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let out = Command::new(env!("CARGO"))
        .args(["tree", "--offline", "--manifest-path", manifest, "-p", "prom-runtime"])
        .args(["-e", "normal", "--prefix", "none"])
        .output()
        .expect("cargo runs");
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "cargo tree failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let crates: Vec<&str> = tree.lines().filter_map(|line| line.split_whitespace().next()).collect();
    for expected in ["prom-macros", "prom-spec", "clap"] {
        assert!(crates.contains(&expected), "`{expected}` is missing from the default tree:\n{tree}");
    }
}
