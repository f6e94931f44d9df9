//! Decides whether the differential tests (`tests/memcached_differential.rs`) run: they
//! need the real memcached. Without it, outside CI, this sets the cfg
//! `memcached_missing`, which marks them `#[ignore]`, so `cargo test` reports them as
//! ignored instead of passed. The logic is shared with the engine's build script: see
//! `memcache-engine/tests/support/find_memcached.rs`.

#[path = "../memcache-engine/tests/support/find_memcached.rs"]
mod find_memcached;

fn main() {
    find_memcached::build_script_main();
}
