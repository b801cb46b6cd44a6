fn main() {
    // Lints specs/ (errors fail the build, rendered as `prom-codegen lint` does) and writes
    // $OUT_DIR/prom_generated.rs; edits to the specs rebuild.
    prom_codegen::Builder::new().with_specs("specs").run();
}
