//! memcached's slab classes, and the per-class figures of `stats items` and
//! `stats slabs`.
//!
//! memcached stores an item in a chunk of the smallest slab class that holds it
//! ([`Store::item_size`](crate::store::Store::item_size) bytes). With its defaults
//! (`-n 48 -f 1.25`, 1 MiB pages, `slab_chunk_max` 512 KiB) there are 39 classes, of
//! chunks from 96 to 524,288 bytes. An item larger than the largest chunk is chunked:
//! a header in the class that holds it (key, flags, CAS and a chunk header) and its
//! data in chunks of at most 512 KiB, the last one in the smallest class that holds
//! what is left; the item itself counts in the largest class.
//!
//! A class gets its pages from memory one at a time, when it has no free chunk left
//! (the first on its first use), and keeps them (no slab rebalancing without the LRU
//! maintainer). [`Slabs`] keeps, per class, what `stats items` and `stats slabs`
//! report: the items and their bytes, the chunks in use, the pages taken (the most
//! chunks ever in use at once, in whole pages) and the per-class counters.

use crate::store::{Store, ITEM_HEADER_SIZE};

/// memcached's `slab_page_size`: 1 MiB.
pub(crate) const PAGE_SIZE: usize = 1024 * 1024;
/// memcached's `slab_chunk_max`: half a page. Larger items are chunked.
pub(crate) const CHUNK_MAX: usize = PAGE_SIZE / 2;
/// `sizeof(item_chunk)` on 64-bit: the header of every chunk of a chunked item (and
/// of the item's own header).
const CHUNK_HEADER_SIZE: usize = 48;
/// memcached's `MAX_NUMBER_OF_SLAB_CLASSES`.
const MAX_CLASSES: usize = 64;
/// memcached's default `-n` (`chunk_size`): the smallest class holds an item header
/// and this many bytes.
const MIN_CHUNK: usize = 48;
/// memcached's default `-f` (`growth_factor`).
const FACTOR: f64 = 1.25;
/// memcached's `CHUNK_ALIGN_BYTES`.
const ALIGN: usize = 8;

/// memcached's `slabs_init` with its defaults: the chunk size of each class (index 0
/// unused), and the largest class.
const fn class_sizes() -> ([usize; MAX_CLASSES], usize) {
    let mut sizes = [0; MAX_CLASSES];
    let mut size = ITEM_HEADER_SIZE + MIN_CHUNK;
    let mut i = 1;
    while i < MAX_CLASSES - 1 {
        if size as f64 >= CHUNK_MAX as f64 / FACTOR {
            break;
        }
        size = size.next_multiple_of(ALIGN);
        sizes[i] = size;
        // `size *= factor` on an `unsigned int`: truncated.
        size = (size as f64 * FACTOR) as usize;
        i += 1;
    }
    sizes[i] = CHUNK_MAX;
    (sizes, i)
}

const CLASSES: ([usize; MAX_CLASSES], usize) = class_sizes();
const SIZES: [usize; MAX_CLASSES] = CLASSES.0;
/// The largest class (memcached's `power_largest`): 39.
pub(crate) const LARGEST: usize = CLASSES.1;

/// memcached's `perslab` of each class.
const PER_PAGE: [u64; LARGEST + 1] = {
    let mut per_page = [0; LARGEST + 1];
    let mut i = 1;
    while i <= LARGEST {
        per_page[i] = (PAGE_SIZE / SIZES[i]) as u64;
        i += 1;
    }
    per_page
};

/// The chunk size of `class` (1 to [`LARGEST`]).
pub(crate) fn chunk_size(class: usize) -> usize {
    SIZES[class]
}

/// The chunks in one page of `class` (memcached's `perslab`).
pub(crate) fn chunks_per_page(class: usize) -> u64 {
    PER_PAGE[class]
}

/// memcached's `slabs_clsid`: the smallest class whose chunks hold `size` bytes; the
/// largest class for a chunked item.
pub(crate) fn class_of(size: usize) -> usize {
    1 + SIZES[1..LARGEST].partition_point(|&s| s < size)
}

/// `first_part` of an item whose data memcached read from a client, rather than
/// copied from two items (`append`, `prepend`): see [`for_each_chunk`].
pub(crate) const READ: u32 = u32::MAX;

/// Calls `f(class)` for every chunk memcached uses for an item (`key_len`, `flags`,
/// `value_len`): one chunk, or for a chunked item its header and its data chunks.
///
/// How the data of a chunked item is cut depends on how memcached wrote it.
/// `first_part` is [`READ`] for data read from a client (`read_into_chunked_item`):
/// chunks of at most 512 KiB, the last one for what is left. An `append` or `prepend`
/// copies the data of the two items in turn (`_store_item_copy_chunks`), and
/// `first_part` is the length of the first copy: each copy starts a chunk sized for
/// what is left of it, and a chunk that fills up gets a successor at once, even
/// empty.
pub(crate) fn for_each_chunk(
    key_len: usize,
    flags: u32,
    value_len: usize,
    first_part: u32,
    mut f: impl FnMut(usize),
) {
    let size = Store::item_size(key_len, flags, value_len);
    if size <= CHUNK_MAX {
        f(class_of(size));
        return;
    }
    // The header: the item without its data, and the first (empty) chunk header.
    f(class_of(
        Store::item_size(key_len, flags, 0) - 2 + CHUNK_HEADER_SIZE,
    ));
    let nbytes = value_len + 2;
    // The current chunk's room and fill; the header's chunk has no room.
    let (mut room, mut used) = (0, 0);
    let mut alloc = |left: usize, room: &mut usize, used: &mut usize| {
        let size = (left + CHUNK_HEADER_SIZE).min(CHUNK_MAX);
        f(class_of(size));
        *room = size - CHUNK_HEADER_SIZE;
        *used = 0;
    };
    if first_part == READ {
        let mut left = nbytes;
        while left > 0 {
            alloc(left, &mut room, &mut used);
            left -= room.min(left);
        }
        return;
    }
    let first = (first_part as usize).min(nbytes);
    for part in [first, nbytes - first] {
        let mut left = part;
        while left > 0 {
            let n = (room - used).min(left);
            used += n;
            left -= n;
            if used == room {
                alloc(left, &mut room, &mut used);
            }
        }
    }
}

/// The counters of one class that `stats reset` zeroes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ClassCounters {
    pub(crate) get_hits: u64,
    pub(crate) cmd_set: u64,
    pub(crate) delete_hits: u64,
    pub(crate) incr_hits: u64,
    pub(crate) decr_hits: u64,
    pub(crate) cas_hits: u64,
    pub(crate) cas_badval: u64,
    pub(crate) touch_hits: u64,
    pub(crate) evicted: u64,
    /// Evicted items that had an expiry time.
    pub(crate) evicted_nonzero: u64,
    /// Seconds between the last eviction and the evicted item's time.
    pub(crate) evicted_time: u32,
    pub(crate) outofmemory: u64,
    pub(crate) reclaimed: u64,
    pub(crate) expired_unfetched: u64,
    pub(crate) evicted_unfetched: u64,
}

/// One slab class's figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SlabClass {
    /// Items linked in the class (memcached's `sizes`).
    pub(crate) items: u64,
    /// Their bytes, as [`Store::item_size`](crate::store::Store::item_size) counts
    /// (memcached's `sizes_bytes`).
    pub(crate) mem_requested: u64,
    /// Chunks in use: items, chunked items' headers and data chunks.
    pub(crate) used_chunks: u64,
    /// Pages taken: never given back.
    pub(crate) pages: u64,
    pub(crate) counters: ClassCounters,
}

/// The per-class figures of every class (index 0 unused).
#[derive(Debug)]
pub(crate) struct Slabs {
    classes: Box<[SlabClass; LARGEST + 1]>,
}

impl Slabs {
    pub(crate) fn new() -> Slabs {
        Slabs {
            classes: Box::new([SlabClass::default(); LARGEST + 1]),
        }
    }

    /// The classes, indexed by class number (0 is unused).
    pub(crate) fn classes(&self) -> &[SlabClass] {
        &self.classes[..]
    }

    pub(crate) fn counters(&mut self, class: usize) -> &mut ClassCounters {
        &mut self.classes[class].counters
    }

    /// One chunk of `class` taken: a page more if none was free.
    pub(crate) fn alloc(&mut self, class: usize) {
        let c = &mut self.classes[class];
        c.used_chunks += 1;
        if c.used_chunks > c.pages * PER_PAGE[class] {
            c.pages += 1;
        }
    }

    /// One chunk of `class` back on its free list.
    pub(crate) fn free(&mut self, class: usize) {
        self.classes[class].used_chunks -= 1;
    }

    /// An item linked into `class`, of `size` bytes.
    pub(crate) fn link(&mut self, class: usize, size: usize) {
        let c = &mut self.classes[class];
        c.items += 1;
        c.mem_requested += size as u64;
    }

    /// An item of `size` bytes unlinked from `class`.
    pub(crate) fn unlink(&mut self, class: usize, size: usize) {
        let c = &mut self.classes[class];
        c.items -= 1;
        c.mem_requested -= size as u64;
    }

    /// `stats reset`: the counters, not the gauges.
    pub(crate) fn reset_counters(&mut self) {
        for c in self.classes.iter_mut() {
            c.counters = ClassCounters::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `memcached -vv`'s list: "slab class N: chunk size S perslab P".
    #[test]
    fn classes_are_memcached_defaults() {
        let expected: [(usize, usize); 39] = [
            (96, 10922),
            (120, 8738),
            (152, 6898),
            (192, 5461),
            (240, 4369),
            (304, 3449),
            (384, 2730),
            (480, 2184),
            (600, 1747),
            (752, 1394),
            (944, 1110),
            (1184, 885),
            (1480, 708),
            (1856, 564),
            (2320, 451),
            (2904, 361),
            (3632, 288),
            (4544, 230),
            (5680, 184),
            (7104, 147),
            (8880, 118),
            (11104, 94),
            (13880, 75),
            (17352, 60),
            (21696, 48),
            (27120, 38),
            (33904, 30),
            (42384, 24),
            (52984, 19),
            (66232, 15),
            (82792, 12),
            (103496, 10),
            (129376, 8),
            (161720, 6),
            (202152, 5),
            (252696, 4),
            (315872, 3),
            (394840, 2),
            (524288, 2),
        ];
        assert_eq!(LARGEST, 39);
        for (i, &(size, per_page)) in expected.iter().enumerate() {
            assert_eq!(
                (chunk_size(i + 1), chunks_per_page(i + 1)),
                (size, per_page as u64)
            );
        }
    }

    #[test]
    fn class_of_is_the_smallest_that_holds() {
        assert_eq!(class_of(1), 1);
        assert_eq!(class_of(96), 1);
        assert_eq!(class_of(97), 2);
        assert_eq!(class_of(394_840), 38);
        assert_eq!(class_of(394_841), 39);
        assert_eq!(class_of(CHUNK_MAX), 39);
        assert_eq!(class_of(CHUNK_MAX + 1), 39);
        assert_eq!(class_of(1 << 30), 39);
    }

    fn chunks(key_len: usize, flags: u32, value_len: usize, first_part: u32) -> Vec<usize> {
        let mut v = Vec::new();
        for_each_chunk(key_len, flags, value_len, first_part, |c| v.push(c));
        v
    }

    #[test]
    fn chunked_items_as_memcached_cuts_them() {
        // One chunk up to 512 KiB.
        let max = CHUNK_MAX - (ITEM_HEADER_SIZE + 2 + 2 + 8);
        assert_eq!(chunks(1, 0, max, READ), [39]);
        // Read from a client: a header (key "k": 106 bytes, class 2), 524,240 bytes
        // in class 39, what is left in the class that holds it (as memcached's
        // `stats slabs` shows them).
        assert_eq!(chunks(1, 0, max + 1, READ), [2, 39]);
        assert_eq!(chunks(1, 0, 600_000, READ), [2, 39, 31]);
        assert_eq!(chunks(1, 5, 1_048_000, READ), [2, 39, 39]);
        // `append` of 10 bytes to it: 599,998 then 12 bytes; each copy ends on a
        // full chunk, which gets an empty successor (as memcached's `stats slabs`).
        assert_eq!(chunks(1, 0, 600_010, 600_000), [2, 39, 31, 1, 1, 1]);
        // `prepend` of 10 bytes: 10, then 600,002.
        assert_eq!(chunks(1, 0, 600_010, 10), [2, 1, 1, 39, 31, 1]);
    }

    #[test]
    fn pages_are_taken_as_chunks_run_out() {
        let mut s = Slabs::new();
        s.alloc(39);
        assert_eq!(s.classes()[39].pages, 1);
        s.alloc(39);
        assert_eq!(s.classes()[39].pages, 1);
        s.alloc(39);
        assert_eq!(s.classes()[39].pages, 2);
        s.free(39);
        s.free(39);
        s.alloc(39);
        assert_eq!((s.classes()[39].pages, s.classes()[39].used_chunks), (2, 2));
    }
}
