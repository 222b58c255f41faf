//! Compile-fail tests: the errors `marg_asm!` reports, with their spans.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/avx512_in_avx2.rs");
    t.compile_fail("tests/ui/unknown_mnemonic.rs");
    t.compile_fail("tests/ui/bad_operand.rs");
    t.compile_fail("tests/ui/raw_clobbers_rbx.rs");
    t.compile_fail("tests/ui/secret_table_lookup.rs");
    t.pass("tests/ui/pass_widths.rs");
}
