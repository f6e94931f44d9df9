//! Compile-fail and compile-pass tests (trybuild), one case per file, named for what it
//! tests: `fail/*.rs` must fail with exactly the blessed `.stderr` beside it;
//! `pass/*.rs` must compile and run. Bless with
//! `TRYBUILD=overwrite cargo test -p evloop-ui-tests` on the pinned toolchain, then read
//! every `.stderr`: it must point at the user's token and say how to fix it.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("fail/*.rs");
    t.pass("pass/*.rs");
}
