//! The memcached engine's parser and store on arbitrary client bytes, fed in arbitrary
//! chunks as reads would deliver them (at most 16 KiB, as memcached reads), with and
//! without the output limits the server sets: it never panics, never consumes more than
//! it was given, always makes progress or asks for more input, and the same bytes give
//! the same replies with the limits on (the limits change how calls split, not bytes).
#![no_main]

use evloop_memcache_engine::protocol::{Connection, Next, ServerStats};
use evloop_memcache_engine::store::{Store, StoreConfig};
use libfuzzer_sys::fuzz_target;

/// Feed `data` to a fresh connection in `chunk`-byte reads; the replies.
fn run(data: &[u8], chunk: usize, limits: bool) -> Vec<u8> {
    let mut store = Store::new(StoreConfig::default());
    let env = ServerStats::default();
    let mut conn = Connection::new();
    if limits {
        conn = conn.with_output_limit(512).with_keys_per_call(3);
    }
    let mut out = Vec::new();
    let mut fed = 0;
    let mut pending: Vec<u8> = Vec::new();
    let mut steps = 0;
    loop {
        steps += 1;
        assert!(steps < 1_000_000, "no progress");
        if pending.is_empty() {
            if fed == data.len() {
                return out;
            }
            let n = chunk.min(data.len() - fed);
            pending.extend_from_slice(&data[fed..fed + n]);
            fed += n;
        }
        let p = conn.process(&pending, &mut out, &mut store, &env);
        assert!(p.consumed <= pending.len(), "consumed more than given");
        pending.drain(..p.consumed);
        match p.next {
            Next::Close(_) => return out,
            Next::Read => assert!(pending.is_empty(), "asked for more with input left"),
            Next::Yield | Next::Pause => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&c, rest)) = data.split_first() else {
        return;
    };
    let chunk = 1 + (usize::from(c) * 64).min(16 * 1024 - 1);
    let plain = run(rest, chunk, false);
    let limited = run(rest, chunk, true);
    assert_eq!(plain, limited, "the output limits changed the replies");
});
