//! trybuild: every compile-fail case must fail with exactly its `.stderr`; pass cases compile.

#[test]
fn ui() {
    // trybuild builds each case in a copy of this crate under target/, where the specs are not;
    // the macros read this override first. Set before any thread starts, so nothing races it.
    #[allow(unsafe_code)]
    // SAFETY: this is the only test in this binary and runs before trybuild spawns anything.
    unsafe {
        std::env::set_var("PROM_MANIFEST_DIR_OVERRIDE", env!("CARGO_MANIFEST_DIR"));
    }
    let cases = trybuild::TestCases::new();
    cases.pass("tests/pass/*.rs");
    cases.compile_fail("tests/fail/*.rs");
}
