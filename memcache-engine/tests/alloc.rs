//! The common paths allocate nothing once warm: `get`/`gets`/`gat`/`touch`/`incr`/
//! `delete`/`version` parse in place and write into the reused output buffer (a
//! `Vec<u8>`, or `Replies`, which refers to the values instead of copying them); a
//! storage command allocates exactly its item. Counted with a counting global
//! allocator, per thread (libtest runs tests on several threads).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use evloop_memcache_engine::store::StoreConfig;
use evloop_memcache_engine::{Connection, Next, Output, Replies, ServerStats, Store};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    // A const-initialised Cell without destructor: no allocation, and `try_with`
    // does not panic while the thread is being torn down.
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every method forwards its arguments unchanged to `System`, so `Counting`
// upholds exactly `System`'s guarantees; counting only touches a thread-local `Cell`.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: our caller meets `GlobalAlloc::alloc`'s contract, which we pass on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: `ptr` was allocated by `System` (every allocation goes through us to
        // it) with `layout`, as our caller guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as for `realloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

fn feed(conn: &mut Connection, input: &[u8], out: &mut impl Output, store: &mut Store) {
    let env = ServerStats::default();
    let mut rest = input;
    loop {
        let p = conn.process(rest, out, store, &env);
        rest = &rest[p.consumed..];
        match p.next {
            Next::Read => return,
            // No limits are set: no pause (a pause is a yield that is not counted).
            Next::Yield | Next::Pause => {}
            Next::Close(r) => panic!("closed: {r:?}"),
        }
    }
}

const READS: &[u8] = b"get k1 k2 missing\r\ngets k1 k2\r\ngat 0 k1\r\ngats 0 k2\r\n\
touch k1 0\r\nincr n 1\r\ndecr n 1\r\ndelete missing\r\nversion\r\nverbosity 1\r\n\
bogus\r\n\r\nget k\x01\r\nincr k1 1\r\nstats\r\n\
mg k1 v f c k s t h l O1\r\nmg missing v q k\r\nmg k2 v T0\r\nmg k1 s\r\nmn\r\n\
md missing q\r\nma n\r\nma n MD v c\r\nma missing\r\nme k1\r\nmg a2V5 b k\r\n";

#[test]
fn read_path_does_not_allocate() {
    let mut store = Store::new(StoreConfig::default());
    let mut conn = Connection::new();
    let mut out = Vec::new();
    feed(
        &mut conn,
        b"set k1 0 0 5\r\nvalue\r\nset k2 7 0 3\r\nabc\r\nset n 0 0 2\r\n10\r\n",
        &mut out,
        &mut store,
    );
    // Warm up: the output buffer grows to its working size.
    out.clear();
    feed(&mut conn, READS, &mut out, &mut store);
    let hits = allocations_during(|| {
        for _ in 0..1000 {
            out.clear();
            feed(&mut conn, READS, &mut out, &mut store);
        }
    });
    assert!(out.starts_with(b"VALUE k1 0 5\r\nvalue\r\nVALUE k2 7 3\r\nabc\r\nEND\r\n"));
    assert_eq!(hits, 0, "allocations on the read path, hits");
    let misses = allocations_during(|| {
        out.clear();
        feed(&mut conn, b"flush_all 0 noreply\r\n", &mut out, &mut store);
        for _ in 0..1000 {
            out.clear();
            feed(&mut conn, READS, &mut out, &mut store);
        }
    });
    assert!(out.starts_with(b"END\r\n"));
    assert_eq!(misses, 0, "allocations on the read path, misses");
}

/// The same with the replies a server writes with `writev`: values are referred to
/// (a reference count), never copied or allocated; a paused `get` keeps its keys in a
/// reused buffer.
#[test]
fn read_path_with_shared_values_does_not_allocate() {
    let mut store = Store::new(StoreConfig::default());
    let mut conn = Connection::new()
        .with_output_limit(16)
        .with_keys_per_call(2);
    let mut setup = Vec::new();
    feed(
        &mut conn,
        b"set k1 0 0 5\r\nvalue\r\nset k2 7 0 3\r\nabc\r\nset n 0 0 2\r\n10\r\n",
        &mut setup,
        &mut store,
    );
    let mut out = Replies::new();
    let mut written = 0;
    let mut round = |conn: &mut Connection, out: &mut Replies, store: &mut Store| {
        feed(conn, READS, out, store);
        written = out.len();
        out.advance(out.len()); // as if written
    };
    round(&mut conn, &mut out, &mut store);
    let n = allocations_during(|| {
        for _ in 0..1000 {
            round(&mut conn, &mut out, &mut store);
        }
    });
    assert!(written > 1000);
    assert_eq!(n, 0, "allocations on the read path with shared values");
}

#[test]
fn storage_allocates_only_the_item() {
    let mut store = Store::new(StoreConfig::default());
    let mut conn = Connection::new();
    let mut out = Vec::new();
    let sets = b"set k1 0 0 5\r\nvalue\r\nset k2 7 0 3 noreply\r\nabc\r\nappend k1 0 0 1\r\n!\r\n\
replace k2 0 0 2\r\nxy\r\nadd k1 0 0 1\r\nx\r\nset bad 0 0 1\r\nxx\r\n";
    feed(&mut conn, sets, &mut out, &mut store);
    out.clear();
    feed(&mut conn, sets, &mut out, &mut store);
    let n = allocations_during(|| {
        for _ in 0..1000 {
            out.clear();
            feed(&mut conn, sets, &mut out, &mut store);
        }
    });
    // set, set, append (the new value; the appended data block too), replace, add
    // (refused, but its block was read), and the bad chunk's block.
    assert_eq!(n, 7 * 1000, "allocations on the storage path");
}

#[test]
fn split_commands_reuse_the_line_buffer() {
    let mut store = Store::new(StoreConfig::default());
    let mut conn = Connection::new();
    let mut out = Vec::new();
    let input = b"get k1 k2 missing\r\nversion\r\n";
    for b in input {
        feed(&mut conn, std::slice::from_ref(b), &mut out, &mut store);
    }
    let n = allocations_during(|| {
        for _ in 0..100 {
            out.clear();
            for b in input {
                feed(&mut conn, std::slice::from_ref(b), &mut out, &mut store);
            }
        }
    });
    assert_eq!(n, 0, "allocations when commands arrive byte by byte");
}
