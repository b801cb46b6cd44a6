//! trybuild: a state that misses one of its aggregate's events does not compile, and the error
//! names the event's method (`on_cart_checked_out`). `TRYBUILD=overwrite` re-pins the `.stderr`.

#[test]
fn a_state_missing_an_event_method_does_not_compile() {
    trybuild::TestCases::new().compile_fail("tests/compile-fail/*.rs");
}
