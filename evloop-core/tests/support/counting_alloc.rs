//! A counting global allocator: it wraps the system allocator and counts every
//! allocation (including `alloc_zeroed` and `realloc`) and every deallocation.
//!
//! Including this file with `#[path = …] mod counting_alloc;` installs the allocator for
//! the whole test binary (evloop-core's `alloc_free.rs`, evloop's `alloc_free_macro.rs`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static DEALLOCS: AtomicUsize = AtomicUsize::new(0);

struct Counting;

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so
// `System`'s guarantees are ours; counting touches only atomics (no allocation).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which we forward.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: `ptr` was allocated by `System` (through us) with `layout`; the caller
        // upholds the rest of `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        DEALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: `ptr` was allocated by `System` (through us) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The number of allocations and deallocations so far, in this order.
pub fn counters() -> (usize, usize) {
    (
        ALLOCS.load(Ordering::SeqCst),
        DEALLOCS.load(Ordering::SeqCst),
    )
}

/// One measured round of a machine: dispatches, the heap operations during them, the
/// time taken, and a count per kind of event.
#[allow(dead_code)] // not every including test measures rounds
pub struct Round<const K: usize> {
    pub events: u64,
    pub allocs: usize,
    pub deallocs: usize,
    pub elapsed: std::time::Duration,
    pub stats: [u64; K],
}

/// The verdict on a round that must not touch the heap: its summary line (`LABEL BACKEND:
/// N events, 0 allocations, ...`), or why it fails.
#[allow(dead_code)]
pub fn judge_alloc_free<const K: usize>(
    label: &str,
    backend: &str,
    r: &Round<K>,
    kinds: &[&str; K],
    min_events: u64,
) -> Result<String, String> {
    let breakdown = kinds
        .iter()
        .zip(&r.stats)
        .map(|(n, s)| format!("{n}={s}"))
        .collect::<Vec<_>>()
        .join(" ");
    let line = format!(
        "{label} {backend}: {} events, {} allocations, {} deallocations ({:?}; {breakdown})",
        r.events, r.allocs, r.deallocs, r.elapsed
    );
    if r.events < min_events {
        return Err(format!("{line}: fewer events than {min_events}"));
    }
    if r.allocs != 0 || r.deallocs != 0 {
        return Err(format!("{line}: the dispatch path touched the heap"));
    }
    Ok(line)
}

/// The verdict on a self-check round whose handler boxes every event: the counter must
/// have seen every one of those allocations, or the test above could not catch one.
#[allow(dead_code)]
pub fn judge_self_check<const K: usize>(backend: &str, r: &Round<K>) -> Result<String, String> {
    let line = format!(
        "self-check {backend}: a handler that boxes every event: {} events, {} allocations",
        r.events, r.allocs
    );
    if (r.allocs as u64) < r.events {
        return Err(format!("{line}: the counting allocator missed allocations"));
    }
    Ok(line)
}
