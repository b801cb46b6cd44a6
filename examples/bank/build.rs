fn main() {
    // Lints specs/ and writes $OUT_DIR/prom_generated.rs (the account aggregate's typed API).
    prom_codegen::Builder::new().with_specs("specs").run();
}
