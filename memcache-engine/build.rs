//! Decides whether the differential tests (`tests/differential.rs`) run: they need the
//! real memcached. Without it, outside CI, this sets the cfg `memcached_missing`, which
//! marks them `#[ignore]`, so `cargo test` reports them as ignored instead of passed.
//! The logic is shared with `evloop-examples`' build script: see
//! `tests/support/find_memcached.rs`.

#[path = "tests/support/find_memcached.rs"]
mod find_memcached;

fn main() {
    find_memcached::build_script_main();
}
