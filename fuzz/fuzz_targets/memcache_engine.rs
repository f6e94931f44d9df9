//! The memcached engine's parser and store on arbitrary client bytes, fed in arbitrary
//! chunks as reads would deliver them (at most 16 KiB, as memcached reads), with and
//! without the output limits the server sets: it never panics, never consumes more than
//! it was given, always makes progress or asks for more input, and the same bytes give
//! the same replies with the limits on (the limits change how calls split, not bytes).
//! One exception: on an abrupt close (`LineTooLong`, `HttpRequest`) memcached drops the
//! replies it has not flushed, and a pause (the server's back-pressure, which memcached
//! does not have) writes what came before it, so with the limits the replies may run
//! further; they never differ and never stop short.
#![no_main]

use evloop_memcache_engine::protocol::{CloseReason, Connection, Next, ServerStats};
use evloop_memcache_engine::store::{Store, StoreConfig};
use libfuzzer_sys::fuzz_target;

/// Feed `data` to a fresh connection in `chunk`-byte reads; the replies, and whether the
/// connection was closed abruptly (dropping replies memcached had not flushed).
fn run(data: &[u8], chunk: usize, limits: bool) -> (Vec<u8>, bool) {
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
                return (out, false);
            }
            let n = chunk.min(data.len() - fed);
            pending.extend_from_slice(&data[fed..fed + n]);
            fed += n;
        }
        let p = conn.process(&pending, &mut out, &mut store, &env);
        assert!(p.consumed <= pending.len(), "consumed more than given");
        pending.drain(..p.consumed);
        match p.next {
            Next::Close(why) => {
                let abrupt = matches!(why, CloseReason::LineTooLong | CloseReason::HttpRequest);
                return (out, abrupt);
            }
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
    let (plain, abrupt) = run(rest, chunk, false);
    let (limited, limited_abrupt) = run(rest, chunk, true);
    assert_eq!(
        abrupt, limited_abrupt,
        "the output limits changed how it ended"
    );
    if abrupt {
        assert!(
            limited.starts_with(&plain),
            "the output limits changed the replies before an abrupt close"
        );
    } else {
        assert_eq!(plain, limited, "the output limits changed the replies");
    }
});
