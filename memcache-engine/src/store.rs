//! The item store: a hash table of items with memcached's expiry, CAS, flush and
//! LRU-eviction rules, and the statistics memcached keeps about them.
//!
//! One [`Store`] serves every connection of a server; it does no locking of its own
//! (wrap it in a `Mutex` to share it between threads). Time comes from a [`Clock`], so
//! tests can move it with a [`ManualClock`].
//!
//! Items are accounted the way memcached accounts them in `stats bytes` and against
//! `-I`: a 48-byte header, the key and a NUL, 4 bytes of flags when they are not 0, the
//! value with its `\r\n`, and an 8-byte CAS. The memory limit (`-m`) is applied to the
//! same sizes, with plain LRU eviction (memcached's slab allocator makes its real
//! limit coarser; see the crate documentation). For `stats items` and `stats slabs`,
//! the store also keeps the figures of memcached's slab classes: the items of each
//! class, the chunks they use and the pages memcached would have taken for them, and
//! the per-class counters (`slabs.rs`).
//!
//! An item's bytes (key, value and the protocol's `\r\n`) are one reference-counted,
//! immutable buffer: a reply can hold on to a value ([`ItemView::shared_value`], a
//! [`SharedValue`]) instead of copying it, and the value stays valid after the item
//! is replaced, deleted or evicted, until the last reply that refers to it is gone.
//!
//! ```
//! use evloop_memcache_engine::store::{Store, StoreConfig, StoreMode, StoreOutcome, NewItem, Exptime};
//! let mut store = Store::new(StoreConfig::default());
//! let item = NewItem::new(b"greeting", b"hello", 7, Exptime::NEVER);
//! assert_eq!(store.store(StoreMode::Set, item), StoreOutcome::Stored);
//! let got = store.get(b"greeting").unwrap();
//! assert_eq!((got.value, got.flags), (&b"hello"[..], 7));
//! ```

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::cnum;
use crate::slabs::{self, ClassCounters, SlabClass, Slabs};

/// The longest relative expiry memcached accepts: 30 days, in seconds. Larger
/// expiry values are absolute unix times.
///
/// ```
/// assert_eq!(evloop_memcache_engine::store::REALTIME_MAXDELTA, 2_592_000);
/// ```
pub const REALTIME_MAXDELTA: i64 = 60 * 60 * 24 * 30;

/// The size of memcached's item header (`sizeof(item)` on 64-bit), counted in every
/// item's size.
///
/// ```
/// use evloop_memcache_engine::store::{ITEM_HEADER_SIZE, Store};
/// assert_eq!(Store::item_size(1, 0, 1), ITEM_HEADER_SIZE + 2 + 3 + 8);
/// ```
pub const ITEM_HEADER_SIZE: usize = 48;

/// memcached's default item size limit (`-I 1m`).
///
/// ```
/// assert_eq!(evloop_memcache_engine::store::DEFAULT_ITEM_SIZE_MAX, 1 << 20);
/// ```
pub const DEFAULT_ITEM_SIZE_MAX: usize = 1024 * 1024;

/// memcached's default memory limit (`-m 64`), in bytes.
///
/// ```
/// assert_eq!(evloop_memcache_engine::store::DEFAULT_MEMORY_LIMIT, 64 << 20);
/// ```
pub const DEFAULT_MEMORY_LIMIT: u64 = 64 * 1024 * 1024;

/// memcached's `ITEM_UPDATE_INTERVAL`: it sets its start time this far (plus 2
/// seconds) in the past, which decides which absolute expiry times count as "before
/// the server started".
const ITEM_UPDATE_INTERVAL: u64 = 60;

const NIL: u32 = u32::MAX;

/// A source of unix time in whole seconds.
///
/// memcached's clock ticks once a second; so does any `Clock` whose `now` is read per
/// command. Implement it to drive expiry from a cached loop time, or use
/// [`ManualClock`] in tests.
///
/// ```
/// use evloop_memcache_engine::store::{Clock, SystemClock};
/// assert!(SystemClock.now() > 1_600_000_000);
/// ```
pub trait Clock: Send + Sync {
    /// The current unix time, in seconds.
    ///
    /// ```
    /// use evloop_memcache_engine::store::{Clock, ManualClock};
    /// assert_eq!(ManualClock::new(5).now(), 5);
    /// ```
    fn now(&self) -> u64;
}

/// The system's wall clock.
///
/// ```
/// use evloop_memcache_engine::store::{Clock, SystemClock};
/// let t = SystemClock.now();
/// assert!(SystemClock.now() >= t);
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

/// A clock that moves only when told to: for tests of expiry.
///
/// ```
/// use evloop_memcache_engine::store::{Clock, ManualClock};
/// let clock = ManualClock::new(1_000);
/// clock.advance(10);
/// assert_eq!(clock.now(), 1_010);
/// clock.set(5);
/// assert_eq!(clock.now(), 5);
/// ```
#[derive(Debug)]
pub struct ManualClock {
    now: AtomicU64,
}

impl ManualClock {
    /// A clock standing at `unix_seconds`.
    ///
    /// ```
    /// use evloop_memcache_engine::store::{Clock, ManualClock};
    /// assert_eq!(ManualClock::new(42).now(), 42);
    /// ```
    pub fn new(unix_seconds: u64) -> Self {
        ManualClock {
            now: AtomicU64::new(unix_seconds),
        }
    }

    /// Moves the clock forward by `seconds`.
    ///
    /// ```
    /// use evloop_memcache_engine::store::{Clock, ManualClock};
    /// let c = ManualClock::new(1);
    /// c.advance(2);
    /// assert_eq!(c.now(), 3);
    /// ```
    pub fn advance(&self, seconds: u64) {
        self.now.fetch_add(seconds, Ordering::Relaxed);
    }

    /// Sets the clock to `unix_seconds`.
    ///
    /// ```
    /// use evloop_memcache_engine::store::{Clock, ManualClock};
    /// let c = ManualClock::new(1);
    /// c.set(9);
    /// assert_eq!(c.now(), 9);
    /// ```
    pub fn set(&self, unix_seconds: u64) {
        self.now.store(unix_seconds, Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> u64 {
        self.now.load(Ordering::Relaxed)
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> u64 {
        (**self).now()
    }
}

/// When an item expires: an absolute unix time, or never.
///
/// Build one from a protocol value with [`Store::exptime`], which applies memcached's
/// rules (0 never, up to 30 days relative, larger absolute, negative already expired).
///
/// ```
/// use evloop_memcache_engine::store::Exptime;
/// assert_eq!(Exptime::NEVER.unix(), None);
/// assert_eq!(Exptime::at(1_700_000_000).unix(), Some(1_700_000_000));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Exptime(u64);

impl Exptime {
    /// Never expires.
    ///
    /// ```
    /// assert_eq!(evloop_memcache_engine::store::Exptime::NEVER.unix(), None);
    /// ```
    pub const NEVER: Exptime = Exptime(0);

    /// Already expired, whatever the time (memcached's "1 second after start").
    ///
    /// ```
    /// assert_eq!(evloop_memcache_engine::store::Exptime::EXPIRED.unix(), Some(1));
    /// ```
    pub const EXPIRED: Exptime = Exptime(1);

    /// Expires at `unix_seconds` (0 means never).
    ///
    /// ```
    /// use evloop_memcache_engine::store::Exptime;
    /// assert_eq!(Exptime::at(0), Exptime::NEVER);
    /// ```
    pub fn at(unix_seconds: u64) -> Exptime {
        Exptime(unix_seconds)
    }

    /// The unix time of expiry, `None` for never.
    ///
    /// ```
    /// use evloop_memcache_engine::store::Exptime;
    /// assert_eq!(Exptime::at(3).unix(), Some(3));
    /// ```
    pub fn unix(self) -> Option<u64> {
        (self.0 != 0).then_some(self.0)
    }

    fn is_expired(self, now: u64) -> bool {
        self.0 != 0 && self.0 <= now
    }
}

/// A store's limits.
///
/// ```
/// use evloop_memcache_engine::store::StoreConfig;
/// let c = StoreConfig { memory_limit: 8 << 20, ..StoreConfig::default() };
/// assert_eq!(c.item_size_max, 1 << 20);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreConfig {
    /// The memory limit in bytes (`-m` times 1 MiB), applied to item sizes as
    /// [`Store::item_size`] counts them. The least recently used items are evicted to
    /// stay under it.
    pub memory_limit: u64,
    /// The largest item, as [`Store::item_size`] counts it (`-I`). Larger items are
    /// refused with `SERVER_ERROR object too large for cache`.
    pub item_size_max: usize,
}

impl Default for StoreConfig {
    /// memcached's defaults: 64 MiB, 1 MiB items.
    ///
    /// ```
    /// use evloop_memcache_engine::store::StoreConfig;
    /// assert_eq!(StoreConfig::default().memory_limit, 64 << 20);
    /// ```
    fn default() -> Self {
        StoreConfig {
            memory_limit: DEFAULT_MEMORY_LIMIT,
            item_size_max: DEFAULT_ITEM_SIZE_MAX,
        }
    }
}

/// How [`Store::store`] stores: the six storage commands.
///
/// ```
/// use evloop_memcache_engine::store::StoreMode;
/// assert_ne!(StoreMode::Cas(5), StoreMode::Set);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreMode {
    /// `set`: store unconditionally.
    Set,
    /// `add`: store only if the key holds no item.
    Add,
    /// `replace`: store only if the key holds an item.
    Replace,
    /// `append`: add the value after the existing one (flags and expiry stay).
    Append,
    /// `prepend`: add the value before the existing one (flags and expiry stay).
    Prepend,
    /// `cas`: store only if the item's CAS unique is this one.
    Cas(u64),
}

/// The result of [`Store::store`], as the protocol reports it.
///
/// ```
/// use evloop_memcache_engine::store::StoreOutcome;
/// assert_eq!(StoreOutcome::NotStored.reply(), "NOT_STORED");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOutcome {
    /// `STORED`.
    Stored,
    /// `NOT_STORED`: the condition of `add`/`replace`/`append`/`prepend` failed, or
    /// the appended item would be too large.
    NotStored,
    /// `EXISTS`: `cas` found the item modified since it was read.
    Exists,
    /// `NOT_FOUND`: `cas` found no item.
    NotFound,
}

impl StoreOutcome {
    /// The reply line, without `\r\n`.
    ///
    /// ```
    /// use evloop_memcache_engine::store::StoreOutcome;
    /// assert_eq!(StoreOutcome::Exists.reply(), "EXISTS");
    /// ```
    pub fn reply(self) -> &'static str {
        match self {
            StoreOutcome::Stored => "STORED",
            StoreOutcome::NotStored => "NOT_STORED",
            StoreOutcome::Exists => "EXISTS",
            StoreOutcome::NotFound => "NOT_FOUND",
        }
    }
}

/// The result of [`Store::incr`] and [`Store::decr`].
///
/// ```
/// use evloop_memcache_engine::store::DeltaOutcome;
/// assert_eq!(DeltaOutcome::Value(3), DeltaOutcome::Value(3));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeltaOutcome {
    /// The new value.
    Value(u64),
    /// The item's value is not a decimal number (or is empty).
    NonNumeric,
    /// No such item.
    NotFound,
}

/// A stored item, borrowed from the store.
///
/// ```
/// use evloop_memcache_engine::store::{Store, StoreConfig, StoreMode, NewItem, Exptime};
/// let mut s = Store::new(StoreConfig::default());
/// s.store(StoreMode::Set, NewItem::new(b"k", b"v", 1, Exptime::NEVER));
/// let it = s.get(b"k").unwrap();
/// assert_eq!((it.key, it.value, it.flags), (&b"k"[..], &b"v"[..], 1));
/// assert!(it.cas > 0);
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ItemView<'a> {
    /// The key.
    pub key: &'a [u8],
    /// The value (without the protocol's `\r\n`).
    pub value: &'a [u8],
    /// The client flags.
    pub flags: u32,
    /// The CAS unique: changes on every modification.
    pub cas: u64,
    /// The item's buffer: key, value, `\r\n`.
    data: &'a Arc<[u8]>,
}

impl fmt::Debug for ItemView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ItemView")
            .field("key", &self.key.escape_ascii().to_string())
            .field("value_len", &self.value.len())
            .field("flags", &self.flags)
            .field("cas", &self.cas)
            .finish()
    }
}

impl ItemView<'_> {
    /// The value followed by `\r\n` (as a `get` reply sends it), shared with the
    /// store: taking it copies nothing, it only counts one more reference to the
    /// item's bytes.
    ///
    /// ```
    /// use evloop_memcache_engine::store::*;
    /// let mut s = Store::new(StoreConfig::default());
    /// s.store(StoreMode::Set, NewItem::new(b"k", b"old", 0, Exptime::NEVER));
    /// let v = s.get(b"k").unwrap().shared_value();
    /// s.store(StoreMode::Set, NewItem::new(b"k", b"new", 0, Exptime::NEVER));
    /// assert_eq!(&*v, b"old\r\n"); // still the bytes it was taken from
    /// ```
    pub fn shared_value(&self) -> SharedValue {
        SharedValue {
            data: Arc::clone(self.data),
            start: self.key.len(),
        }
    }
}

/// An item's value and its `\r\n`, shared with the store and immutable: cloning it
/// counts a reference, it never copies the bytes. See [`ItemView::shared_value`].
///
/// ```
/// use evloop_memcache_engine::store::*;
/// let mut s = Store::new(StoreConfig::default());
/// s.store(StoreMode::Set, NewItem::new(b"k", b"v", 0, Exptime::NEVER));
/// let v = s.get(b"k").unwrap().shared_value();
/// assert_eq!((v.len(), &v[..]), (3, &b"v\r\n"[..]));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct SharedValue {
    data: Arc<[u8]>,
    start: usize,
}

impl std::ops::Deref for SharedValue {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.data[self.start..]
    }
}

impl AsRef<[u8]> for SharedValue {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl fmt::Debug for SharedValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedValue")
            .field("len", &self.len())
            .finish()
    }
}

/// An item ready to be stored: key, value and `\r\n` in the one buffer the store keeps,
/// so that storing it moves the buffer into the store without copying.
///
/// ```
/// use evloop_memcache_engine::store::{NewItem, Exptime};
/// let item = NewItem::new(b"k", b"value", 0, Exptime::NEVER);
/// assert_eq!(item.key(), b"k");
/// assert_eq!(item.value(), b"value");
/// ```
#[derive(PartialEq, Eq)]
pub struct NewItem {
    /// Key, value, `\r\n`; not shared until it is stored (the protocol fills the value
    /// in place as it arrives).
    data: Arc<[u8]>,
    /// Bytes of the value filled in so far.
    filled: usize,
    key_len: usize,
    flags: u32,
    exptime: Exptime,
}

impl Clone for NewItem {
    /// A copy of the bytes (a new item is never shared).
    fn clone(&self) -> NewItem {
        NewItem {
            data: Arc::from(&self.data[..]),
            ..*self
        }
    }
}

impl fmt::Debug for NewItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewItem")
            .field("key", &self.key().escape_ascii().to_string())
            .field("value_len", &self.value().len())
            .field("flags", &self.flags)
            .field("exptime", &self.exptime)
            .finish()
    }
}

/// An item's buffer: `key`, the `parts` of the value, `pad.1` bytes of `pad.0`, then
/// `\r\n`. One allocation: zeroed (a `memset`), then written in place while it is not
/// shared yet.
fn item_bytes(key: &[u8], parts: &[&[u8]], pad: (u8, usize)) -> Arc<[u8]> {
    let len = key.len() + parts.iter().map(|p| p.len()).sum::<usize>() + pad.1 + 2;
    // Collecting an iterator of known length allocates once, in place.
    let mut data: Arc<[u8]> = std::iter::repeat_n(0, len).collect();
    let buf = Arc::get_mut(&mut data).expect("a new buffer is not shared");
    let mut at = 0;
    for p in std::iter::once(key).chain(parts.iter().copied()) {
        buf[at..at + p.len()].copy_from_slice(p);
        at += p.len();
    }
    if pad.0 != 0 {
        buf[at..at + pad.1].fill(pad.0);
    }
    buf[len - 2..].copy_from_slice(b"\r\n");
    data
}

impl NewItem {
    /// An item of `key` and `value`. Keys must be 1 to 250 bytes (the protocol checks;
    /// the store only requires them to be 1 to 255 bytes).
    ///
    /// ```
    /// use evloop_memcache_engine::store::{NewItem, Exptime};
    /// let item = NewItem::new(b"k", b"", 3, Exptime::at(10));
    /// assert_eq!((item.flags(), item.exptime()), (3, Exptime::at(10)));
    /// ```
    pub fn new(key: &[u8], value: &[u8], flags: u32, exptime: Exptime) -> NewItem {
        NewItem::checked(
            key,
            item_bytes(key, &[value], (0, 0)),
            value.len(),
            flags,
            exptime,
        )
    }

    /// An item with `key` and room for a value of `value_len` bytes, to be filled by
    /// the protocol as the data block arrives.
    pub(crate) fn with_capacity(
        key: &[u8],
        value_len: usize,
        flags: u32,
        exptime: Exptime,
    ) -> NewItem {
        let data = item_bytes(key, &[], (0, value_len));
        NewItem::checked(key, data, 0, flags, exptime)
    }

    fn checked(
        key: &[u8],
        data: Arc<[u8]>,
        filled: usize,
        flags: u32,
        exptime: Exptime,
    ) -> NewItem {
        assert!(
            !key.is_empty() && key.len() <= usize::from(u8::MAX),
            "keys are 1 to 255 bytes"
        );
        NewItem {
            data,
            filled,
            key_len: key.len(),
            flags,
            exptime,
        }
    }

    /// What [`slabs::for_each_chunk`] needs to tell memcached's chunks for it, read
    /// from a client: key length, flags, value length, [`slabs::READ`].
    pub(crate) fn chunks(&self) -> (usize, u32, usize, u32) {
        (
            self.key_len,
            self.flags,
            self.data.len() - self.key_len - 2,
            slabs::READ,
        )
    }

    /// Appends bytes of the value, as they arrive; at most the value's length in all.
    pub(crate) fn fill(&mut self, bytes: &[u8]) {
        let start = self.key_len + self.filled;
        let buf = Arc::get_mut(&mut self.data).expect("a new item is not shared");
        buf[start..start + bytes.len()].copy_from_slice(bytes);
        self.filled += bytes.len();
    }

    /// The key.
    ///
    /// ```
    /// use evloop_memcache_engine::store::{NewItem, Exptime};
    /// assert_eq!(NewItem::new(b"a", b"b", 0, Exptime::NEVER).key(), b"a");
    /// ```
    pub fn key(&self) -> &[u8] {
        &self.data[..self.key_len]
    }

    /// The value.
    ///
    /// ```
    /// use evloop_memcache_engine::store::{NewItem, Exptime};
    /// assert_eq!(NewItem::new(b"a", b"b", 0, Exptime::NEVER).value(), b"b");
    /// ```
    pub fn value(&self) -> &[u8] {
        &self.data[self.key_len..self.data.len() - 2]
    }

    /// The client flags.
    ///
    /// ```
    /// use evloop_memcache_engine::store::{NewItem, Exptime};
    /// assert_eq!(NewItem::new(b"a", b"b", 9, Exptime::NEVER).flags(), 9);
    /// ```
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// The expiry.
    ///
    /// ```
    /// use evloop_memcache_engine::store::{NewItem, Exptime};
    /// assert_eq!(NewItem::new(b"a", b"b", 0, Exptime::NEVER).exptime(), Exptime::NEVER);
    /// ```
    pub fn exptime(&self) -> Exptime {
        self.exptime
    }
}

/// The counters memcached reports in `stats` that concern the store and the
/// commands. Gauges (`curr_items`, `bytes`) survive [`Store::reset_stats`]; counters
/// do not.
///
/// ```
/// use evloop_memcache_engine::store::{Store, StoreConfig};
/// let mut s = Store::new(StoreConfig::default());
/// assert!(s.get(b"nothing").is_none());
/// assert_eq!((s.stats().cmd_get, s.stats().get_misses), (1, 1));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Keys requested by `get`/`gets`.
    pub cmd_get: u64,
    /// Storage commands whose data block was read (including bad data chunks).
    pub cmd_set: u64,
    /// `flush_all` commands.
    pub cmd_flush: u64,
    /// Keys touched by `touch`/`gat`/`gats`.
    pub cmd_touch: u64,
    /// `get`/`gets` keys found.
    pub get_hits: u64,
    /// `get`/`gets` keys not found.
    pub get_misses: u64,
    /// Look-ups that found an expired item.
    pub get_expired: u64,
    /// Look-ups that found an item invalidated by `flush_all`.
    pub get_flushed: u64,
    /// `delete` of a missing key.
    pub delete_misses: u64,
    /// `delete` of a present key.
    pub delete_hits: u64,
    /// `incr` of a missing key.
    pub incr_misses: u64,
    /// `incr` of a present numeric item.
    pub incr_hits: u64,
    /// `decr` of a missing key.
    pub decr_misses: u64,
    /// `decr` of a present numeric item.
    pub decr_hits: u64,
    /// `cas` of a missing key.
    pub cas_misses: u64,
    /// `cas` that stored.
    pub cas_hits: u64,
    /// `cas` refused because the item changed.
    pub cas_badval: u64,
    /// `touch`/`gat` keys found.
    pub touch_hits: u64,
    /// `touch`/`gat` keys not found.
    pub touch_misses: u64,
    /// Storage commands refused as too large.
    pub store_too_large: u64,
    /// Storage commands refused for lack of memory.
    pub store_no_memory: u64,
    /// Bytes the protocol consumed from clients.
    pub bytes_read: u64,
    /// Bytes the protocol produced for clients.
    pub bytes_written: u64,
    /// Times a connection yielded after its requests-per-event budget.
    pub conn_yields: u64,
    /// Items stored now (a gauge; expired and flushed items count until reclaimed).
    pub curr_items: u64,
    /// Items ever linked (stored, replaced, appended, incremented into a new item).
    pub total_items: u64,
    /// Bytes of the items stored now (a gauge), counted as [`Store::item_size`].
    pub bytes: u64,
    /// `me` commands (memcached's `cmd_meta`).
    pub meta_cmds: u64,
    /// Expired or flushed items reclaimed (to make room, or by
    /// [`Store::reclaim_expired`]) that were never fetched. A fetch that finds an item
    /// expired counts only `get_expired`, as in memcached.
    pub expired_unfetched: u64,
    /// Evicted items that were never fetched.
    pub evicted_unfetched: u64,
    /// Live items evicted to make room.
    pub evictions: u64,
    /// Expired or flushed items whose memory was reused for new items.
    pub reclaimed: u64,
}

struct Slot {
    /// Key, value and `\r\n`, shared with the replies that refer to the value. A free
    /// slot holds the store's `empty` buffer (`\r\n` alone).
    data: Arc<[u8]>,
    hash: u64,
    cas: u64,
    exptime: Exptime,
    /// When the item was linked (for delayed `flush_all`).
    time: u64,
    flags: u32,
    /// 0 for a free slot.
    key_len: u8,
    fetched: bool,
    /// The meta protocol's item bits (`META_*`).
    meta: u8,
    /// memcached's slab class for the item.
    class: u8,
    /// How memcached cut a chunked item's data (see [`slabs::for_each_chunk`]).
    first_part: u32,
    /// Next slot in the hash chain, or in the free list.
    chain: u32,
    prev: u32,
    next: u32,
}

impl Slot {
    fn key(&self) -> &[u8] {
        &self.data[..usize::from(self.key_len)]
    }

    fn value(&self) -> &[u8] {
        &self.data[usize::from(self.key_len)..self.data.len() - 2]
    }

    fn size(&self) -> usize {
        Store::item_size(usize::from(self.key_len), self.flags, self.value().len())
    }

    fn view(&self) -> ItemView<'_> {
        ItemView {
            key: self.key(),
            value: self.value(),
            flags: self.flags,
            cas: self.cas,
            data: &self.data,
        }
    }
}

/// The item store. See the [module documentation](self).
///
/// ```
/// use evloop_memcache_engine::store::*;
/// use std::sync::Arc;
/// let clock = Arc::new(ManualClock::new(1_000_000));
/// let mut s = Store::with_clock(StoreConfig::default(), clock.clone());
/// let e = s.exptime(10);
/// s.store(StoreMode::Set, NewItem::new(b"k", b"v", 0, e));
/// assert!(s.get(b"k").is_some());
/// clock.advance(10);
/// assert!(s.get(b"k").is_none());
/// ```
pub struct Store {
    buckets: Vec<u32>,
    slots: Vec<Slot>,
    free: u32,
    lru_head: u32,
    lru_tail: u32,
    hasher: RandomState,
    clock: Arc<dyn Clock>,
    config: StoreConfig,
    /// memcached's `process_started`.
    started: u64,
    cas_id: u64,
    /// `settings.oldest_live` as a unix time; 0 for none.
    oldest_live: u64,
    oldest_cas: u64,
    /// What a free slot holds (so that freeing one allocates nothing).
    empty: Arc<[u8]>,
    /// `stats detail on` (memcached's `settings.detail_enabled`).
    pub(crate) detail_enabled: bool,
    pub(crate) stats: StoreStats,
    /// Per slab class: items, chunks, pages and counters (`stats items`, `stats slabs`).
    slabs: Slabs,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("config", &self.config)
            .field("items", &self.stats.curr_items)
            .field("bytes", &self.stats.bytes)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// An empty store on the system clock.
    ///
    /// ```
    /// use evloop_memcache_engine::store::{Store, StoreConfig};
    /// assert!(Store::new(StoreConfig::default()).is_empty());
    /// ```
    pub fn new(config: StoreConfig) -> Store {
        Store::with_clock(config, Arc::new(SystemClock))
    }

    /// An empty store on `clock`.
    ///
    /// ```
    /// use evloop_memcache_engine::store::{Store, StoreConfig, ManualClock};
    /// use std::sync::Arc;
    /// let s = Store::with_clock(StoreConfig::default(), Arc::new(ManualClock::new(100)));
    /// assert_eq!(s.now(), 100);
    /// ```
    pub fn with_clock(config: StoreConfig, clock: Arc<dyn Clock>) -> Store {
        let started = clock.now().saturating_sub(ITEM_UPDATE_INTERVAL + 2);
        Store {
            buckets: vec![NIL; 1024],
            slots: Vec::new(),
            free: NIL,
            lru_head: NIL,
            lru_tail: NIL,
            hasher: RandomState::new(),
            clock,
            config,
            started,
            cas_id: 0,
            oldest_live: 0,
            oldest_cas: 0,
            empty: Arc::from(&b"\r\n"[..]),
            detail_enabled: false,
            stats: StoreStats::default(),
            slabs: Slabs::new(),
        }
    }

    /// The size memcached accounts for an item (`ITEM_ntotal` with CAS): header, key
    /// and NUL, flags when not 0, value and `\r\n`, CAS.
    ///
    /// ```
    /// use evloop_memcache_engine::store::Store;
    /// assert_eq!(Store::item_size(1, 0, 1), 61);
    /// assert_eq!(Store::item_size(1, 5, 1), 65);
    /// ```
    pub fn item_size(key_len: usize, flags: u32, value_len: usize) -> usize {
        let flags_size = if flags == 0 { 0 } else { 4 };
        ITEM_HEADER_SIZE + key_len + 1 + flags_size + value_len + 2 + 8
    }

    /// The current time of the store's clock, in unix seconds.
    ///
    /// ```
    /// use evloop_memcache_engine::store::{Store, StoreConfig};
    /// assert!(Store::new(StoreConfig::default()).now() > 0);
    /// ```
    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// The store's limits.
    ///
    /// ```
    /// use evloop_memcache_engine::store::{Store, StoreConfig};
    /// assert_eq!(Store::new(StoreConfig::default()).config(), StoreConfig::default());
    /// ```
    pub fn config(&self) -> StoreConfig {
        self.config
    }

    /// Changes the memory limit (memcached's `cache_memlimit`). Items are evicted as
    /// new ones need room.
    ///
    /// ```
    /// use evloop_memcache_engine::store::{Store, StoreConfig};
    /// let mut s = Store::new(StoreConfig::default());
    /// s.set_memory_limit(8 << 20);
    /// assert_eq!(s.config().memory_limit, 8 << 20);
    /// ```
    pub fn set_memory_limit(&mut self, bytes: u64) {
        self.config.memory_limit = bytes;
    }

    /// The number of items stored (expired and flushed ones count until they are
    /// looked up, evicted or reclaimed, as in memcached).
    ///
    /// ```
    /// use evloop_memcache_engine::store::{Store, StoreConfig};
    /// assert_eq!(Store::new(StoreConfig::default()).len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.stats.curr_items as usize
    }

    /// Whether no items are stored.
    ///
    /// ```
    /// use evloop_memcache_engine::store::{Store, StoreConfig};
    /// assert!(Store::new(StoreConfig::default()).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.stats.curr_items == 0
    }

    /// The statistics.
    ///
    /// ```
    /// use evloop_memcache_engine::store::{Store, StoreConfig};
    /// assert_eq!(Store::new(StoreConfig::default()).stats().total_items, 0);
    /// ```
    pub fn stats(&self) -> &StoreStats {
        &self.stats
    }

    /// memcached's `stats reset`: zeroes the counters, keeps the gauges.
    ///
    /// ```
    /// use evloop_memcache_engine::store::{Store, StoreConfig};
    /// let mut s = Store::new(StoreConfig::default());
    /// s.get(b"x");
    /// s.reset_stats();
    /// assert_eq!(s.stats().cmd_get, 0);
    /// ```
    pub fn reset_stats(&mut self) {
        let (curr_items, bytes) = (self.stats.curr_items, self.stats.bytes);
        self.stats = StoreStats {
            curr_items,
            bytes,
            ..StoreStats::default()
        };
        self.slabs.reset_counters();
    }

    /// The size of the hash table's bucket array: `(hash_power_level, hash_bytes)`.
    ///
    /// ```
    /// use evloop_memcache_engine::store::{Store, StoreConfig};
    /// let (power, bytes) = Store::new(StoreConfig::default()).hash_table_size();
    /// assert_eq!(bytes, (1usize << power) * 4);
    /// ```
    pub fn hash_table_size(&self) -> (u32, usize) {
        (
            self.buckets.len().trailing_zeros(),
            self.buckets.len() * std::mem::size_of::<u32>(),
        )
    }

    /// Converts a protocol expiry to an [`Exptime`], as memcached's
    /// `realtime(EXPTIME_TO_POSITIVE_TIME(e))`: 0 never; negative already expired; up
    /// to 30 days relative to now; larger an absolute unix time (already expired if
    /// not after the server's start).
    ///
    /// ```
    /// use evloop_memcache_engine::store::{Store, StoreConfig, ManualClock, Exptime};
    /// use std::sync::Arc;
    /// let s = Store::with_clock(StoreConfig::default(), Arc::new(ManualClock::new(2_000_000_000)));
    /// assert_eq!(s.exptime(0), Exptime::NEVER);
    /// assert_eq!(s.exptime(100), Exptime::at(2_000_000_100));
    /// assert_eq!(s.exptime(2_100_000_000), Exptime::at(2_100_000_000));
    /// assert_eq!(s.exptime(-1), Exptime::EXPIRED);
    /// ```
    pub fn exptime(&self, protocol_value: i32) -> Exptime {
        let e = i64::from(protocol_value);
        let e = if e < 0 { REALTIME_MAXDELTA + 1 } else { e };
        if e == 0 {
            Exptime::NEVER
        } else if e > REALTIME_MAXDELTA {
            let e = e as u64;
            if e <= self.started {
                Exptime::EXPIRED
            } else {
                Exptime(e)
            }
        } else {
            Exptime(self.now() + e as u64)
        }
    }

    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    fn next_cas(&mut self) -> u64 {
        self.cas_id += 1;
        self.cas_id
    }

    fn find(&self, key: &[u8], hash: u64) -> u32 {
        let mut i = self.buckets[hash as usize & (self.buckets.len() - 1)];
        while i != NIL {
            let s = &self.slots[i as usize];
            if s.hash == hash && s.key() == key {
                return i;
            }
            i = s.chain;
        }
        NIL
    }

    fn is_flushed(&self, s: &Slot, now: u64) -> bool {
        if self.oldest_live == 0 || self.oldest_live > now {
            return false;
        }
        s.time <= self.oldest_live || (self.oldest_cas != 0 && s.cas < self.oldest_cas)
    }

    /// memcached's `do_item_get`: the live item under `key`, removing it (and counting
    /// it) if it is flushed or expired.
    fn lookup(&mut self, key: &[u8]) -> u32 {
        let i = self.find(key, self.hash(key));
        if i == NIL {
            return NIL;
        }
        let now = self.now();
        let s = &self.slots[i as usize];
        if self.is_flushed(s, now) {
            self.stats.get_flushed += 1;
            self.unlink(i);
            return NIL;
        }
        if s.exptime.is_expired(now) {
            // memcached's `do_item_get` counts no `expired_unfetched` here (only
            // its LRU's reclaims do).
            self.stats.get_expired += 1;
            self.unlink(i);
            return NIL;
        }
        i
    }

    fn lru_remove(&mut self, i: u32) {
        let (prev, next) = {
            let s = &self.slots[i as usize];
            (s.prev, s.next)
        };
        if prev == NIL {
            self.lru_head = next;
        } else {
            self.slots[prev as usize].next = next;
        }
        if next == NIL {
            self.lru_tail = prev;
        } else {
            self.slots[next as usize].prev = prev;
        }
    }

    fn lru_push_front(&mut self, i: u32) {
        let head = self.lru_head;
        {
            let s = &mut self.slots[i as usize];
            s.prev = NIL;
            s.next = head;
        }
        if head == NIL {
            self.lru_tail = i;
        } else {
            self.slots[head as usize].prev = i;
        }
        self.lru_head = i;
    }

    fn bump(&mut self, i: u32) {
        if self.lru_head != i {
            self.lru_remove(i);
            self.lru_push_front(i);
        }
    }

    /// Removes a linked item: hash chain, LRU, accounting, and frees its memory.
    fn unlink(&mut self, i: u32) {
        let (hash, size) = {
            let s = &self.slots[i as usize];
            (s.hash, s.size())
        };
        // Its slab class: the item, and its chunks back on their free lists.
        let s = &self.slots[i as usize];
        let class = usize::from(s.class);
        self.slabs.unlink(class, size);
        if size <= slabs::CHUNK_MAX {
            self.slabs.free(class);
        } else {
            let (key_len, flags, value_len) = (usize::from(s.key_len), s.flags, s.value().len());
            let first_part = s.first_part;
            self.free_chunks(key_len, flags, value_len, first_part);
        }
        let b = hash as usize & (self.buckets.len() - 1);
        let mut cur = self.buckets[b];
        if cur == i {
            self.buckets[b] = self.slots[i as usize].chain;
        } else {
            while cur != NIL {
                let next = self.slots[cur as usize].chain;
                if next == i {
                    self.slots[cur as usize].chain = self.slots[i as usize].chain;
                    break;
                }
                cur = next;
            }
        }
        self.lru_remove(i);
        self.stats.curr_items -= 1;
        self.stats.bytes -= size as u64;
        let s = &mut self.slots[i as usize];
        // The bytes live on while a reply refers to them.
        s.data = Arc::clone(&self.empty);
        s.key_len = 0;
        s.chain = self.free;
        self.free = i;
    }

    /// The slab-class counters of the item in slot `i`.
    fn class_counters(&mut self, i: u32) -> &mut ClassCounters {
        self.slabs
            .counters(usize::from(self.slots[i as usize].class))
    }

    /// Takes memcached's chunks for an item (see [`slabs::for_each_chunk`]).
    fn alloc_chunks(&mut self, key_len: usize, flags: u32, value_len: usize, first_part: u32) {
        let slabs = &mut self.slabs;
        slabs::for_each_chunk(key_len, flags, value_len, first_part, |c| slabs.alloc(c));
    }

    /// Gives back an item's chunks.
    fn free_chunks(&mut self, key_len: usize, flags: u32, value_len: usize, first_part: u32) {
        let slabs = &mut self.slabs;
        slabs::for_each_chunk(key_len, flags, value_len, first_part, |c| slabs.free(c));
    }

    /// Items memcached holds in chunks for a moment besides the linked ones (the data
    /// block of a storage command, a new item before the old one is unlinked): the
    /// pages the classes need for them. Each is `(key_len, flags, value_len,
    /// first_part)`.
    fn peak(&mut self, items: &[(usize, u32, usize, u32)]) {
        for &(k, f, v, p) in items {
            self.alloc_chunks(k, f, v, p);
        }
        for &(k, f, v, p) in items {
            self.free_chunks(k, f, v, p);
        }
    }

    /// A storage command's data block is read (memcached's `complete_nread`): counts
    /// `cmd_set`, in the class of the item. `stored` false: it will not be (a bad
    /// data chunk); memcached held it in its chunks all the same.
    pub(crate) fn count_set(&mut self, item: &NewItem, stored: bool) {
        let (k, f, v, p) = item.chunks();
        self.stats.cmd_set += 1;
        self.slabs
            .counters(slabs::class_of(Store::item_size(k, f, v)))
            .cmd_set += 1;
        if !stored {
            self.peak(&[(k, f, v, p)]);
        }
    }

    /// A storage command refused for lack of memory (`SERVER_ERROR out of memory
    /// storing object`), for an item of `size` bytes.
    pub(crate) fn count_no_memory(&mut self, size: usize) {
        self.stats.store_no_memory += 1;
        self.slabs.counters(slabs::class_of(size)).outofmemory += 1;
    }

    /// The slab classes' figures, indexed by class (0 is unused).
    pub(crate) fn slab_classes(&self) -> &[SlabClass] {
        self.slabs.classes()
    }

    /// Per class, the seconds since the oldest time of its items (memcached's `age`:
    /// `current_time - tails[class]->time`), 0 for a class without items.
    pub(crate) fn slab_ages(&self) -> [u32; slabs::LARGEST + 1] {
        let mut oldest = [u64::MAX; slabs::LARGEST + 1];
        for s in self.slots.iter().filter(|s| s.key_len != 0) {
            let o = &mut oldest[usize::from(s.class)];
            *o = (*o).min(s.time);
        }
        let now = self.now();
        oldest.map(|t| {
            if t == u64::MAX {
                0
            } else {
                now.wrapping_sub(t) as u32
            }
        })
    }

    /// Evicts from the LRU tail until `size` more bytes fit under the limit.
    fn make_room(&mut self, size: u64) {
        let now = self.now();
        while self.stats.bytes + size > self.config.memory_limit && self.lru_tail != NIL {
            let i = self.lru_tail;
            let s = &self.slots[i as usize];
            let expired = s.exptime.is_expired(now) || self.is_flushed(s, now);
            let c = self.slabs.counters(usize::from(s.class));
            if expired {
                self.stats.reclaimed += 1;
                c.reclaimed += 1;
                if !s.fetched {
                    self.stats.expired_unfetched += 1;
                    c.expired_unfetched += 1;
                }
            } else {
                self.stats.evictions += 1;
                c.evicted += 1;
                // memcached's `current_time - it->time`.
                c.evicted_time = now.wrapping_sub(s.time) as u32;
                if s.exptime != Exptime::NEVER {
                    c.evicted_nonzero += 1;
                }
                if !s.fetched {
                    self.stats.evicted_unfetched += 1;
                    c.evicted_unfetched += 1;
                }
            }
            self.unlink(i);
        }
    }

    fn grow(&mut self) {
        let n = self.buckets.len() * 2;
        self.buckets.clear();
        self.buckets.resize(n, NIL);
        for i in 0..self.slots.len() {
            if self.slots[i].key_len != 0 {
                let b = self.slots[i].hash as usize & (n - 1);
                self.slots[i].chain = self.buckets[b];
                self.buckets[b] = i as u32;
            }
        }
    }

    /// Links a new item (key, value, `\r\n`) at the LRU head, with a fresh CAS unique,
    /// in memcached's chunks (`first_part`: see [`slabs::for_each_chunk`]). Returns its
    /// slot.
    fn link(
        &mut self,
        data: Arc<[u8]>,
        key_len: usize,
        flags: u32,
        exptime: Exptime,
        first_part: u32,
    ) -> u32 {
        let value_len = data.len() - key_len - 2;
        let size = Store::item_size(key_len, flags, value_len);
        let class = slabs::class_of(size);
        let size = size as u64;
        self.make_room(size);
        self.slabs.link(class, size as usize);
        if size as usize <= slabs::CHUNK_MAX {
            self.slabs.alloc(class);
        } else {
            self.alloc_chunks(key_len, flags, value_len, first_part);
        }
        if self.stats.curr_items as usize >= self.buckets.len() + self.buckets.len() / 2 {
            self.grow();
        }
        let hash = self.hash(&data[..key_len]);
        let cas = self.next_cas();
        let now = self.now();
        let slot = Slot {
            data,
            hash,
            cas,
            exptime,
            time: now,
            flags,
            key_len: key_len as u8,
            fetched: false,
            meta: 0,
            class: class as u8,
            first_part,
            chain: NIL,
            prev: NIL,
            next: NIL,
        };
        let i = if self.free != NIL {
            let i = self.free;
            self.free = self.slots[i as usize].chain;
            self.slots[i as usize] = slot;
            i
        } else {
            assert!(self.slots.len() < NIL as usize, "too many items");
            self.slots.push(slot);
            (self.slots.len() - 1) as u32
        };
        let b = hash as usize & (self.buckets.len() - 1);
        self.slots[i as usize].chain = self.buckets[b];
        self.buckets[b] = i;
        self.lru_push_front(i);
        self.stats.curr_items += 1;
        self.stats.total_items += 1;
        self.stats.bytes += size;
        i
    }

    /// `get`/`gets` of one key: the item, bumped in the LRU and marked fetched.
    /// Counts `cmd_get` and a hit or a miss.
    ///
    /// ```
    /// use evloop_memcache_engine::store::{Store, StoreConfig};
    /// let mut s = Store::new(StoreConfig::default());
    /// assert!(s.get(b"missing").is_none());
    /// ```
    pub fn get(&mut self, key: &[u8]) -> Option<ItemView<'_>> {
        self.stats.cmd_get += 1;
        let i = self.lookup(key);
        if i == NIL {
            self.stats.get_misses += 1;
            return None;
        }
        self.stats.get_hits += 1;
        self.bump(i);
        let s = &mut self.slots[i as usize];
        self.slabs.counters(usize::from(s.class)).get_hits += 1;
        s.fetched = true;
        Some(s.view())
    }

    /// `gat`/`gats` of one key: the item, after setting its expiry to `exptime`.
    /// Counts `cmd_touch` and a touch hit or miss (not `cmd_get`, as memcached).
    ///
    /// ```
    /// use evloop_memcache_engine::store::*;
    /// let mut s = Store::new(StoreConfig::default());
    /// s.store(StoreMode::Set, NewItem::new(b"k", b"v", 0, Exptime::NEVER));
    /// let e = s.exptime(-1);
    /// assert!(s.get_and_touch(b"k", e).is_some()); // returned, then expired
    /// assert!(s.get(b"k").is_none());
    /// ```
    pub fn get_and_touch(&mut self, key: &[u8], exptime: Exptime) -> Option<ItemView<'_>> {
        self.stats.cmd_touch += 1;
        let i = self.lookup(key);
        if i == NIL {
            self.stats.touch_misses += 1;
            return None;
        }
        self.stats.touch_hits += 1;
        self.bump(i);
        let s = &mut self.slots[i as usize];
        self.slabs.counters(usize::from(s.class)).touch_hits += 1;
        s.fetched = true;
        s.exptime = exptime;
        Some(s.view())
    }

    /// `touch`: sets the expiry of an item. Whether it exists.
    ///
    /// ```
    /// use evloop_memcache_engine::store::*;
    /// let mut s = Store::new(StoreConfig::default());
    /// assert!(!s.touch(b"k", Exptime::NEVER));
    /// ```
    pub fn touch(&mut self, key: &[u8], exptime: Exptime) -> bool {
        self.get_and_touch(key, exptime).is_some()
    }

    /// `delete`. Whether the item existed.
    ///
    /// ```
    /// use evloop_memcache_engine::store::*;
    /// let mut s = Store::new(StoreConfig::default());
    /// s.store(StoreMode::Set, NewItem::new(b"k", b"v", 0, Exptime::NEVER));
    /// assert!(s.delete(b"k"));
    /// assert!(!s.delete(b"k"));
    /// ```
    pub fn delete(&mut self, key: &[u8]) -> bool {
        let i = self.lookup(key);
        if i == NIL {
            self.stats.delete_misses += 1;
            false
        } else {
            self.stats.delete_hits += 1;
            self.class_counters(i).delete_hits += 1;
            self.unlink(i);
            true
        }
    }

    /// Removes `key` without counting a delete: memcached does this when a `set` is
    /// refused as too large, so that a stale value does not survive it.
    pub(crate) fn remove_after_failed_set(&mut self, key: &[u8]) {
        let i = self.lookup(key);
        if i != NIL {
            self.unlink(i);
        }
    }

    /// Stores `item` under `mode`, with memcached's `do_store_item` rules: `add` of a
    /// present key bumps it and is `NOT_STORED`; `append`/`prepend` keep the old
    /// flags and expiry and are `NOT_STORED` if the result would exceed the item size
    /// limit; `cas` is `NOT_FOUND` without an item and `EXISTS` unless the CAS unique
    /// matches (a CAS of 0 never matches). Every stored item gets a new CAS unique.
    ///
    /// ```
    /// use evloop_memcache_engine::store::*;
    /// let mut s = Store::new(StoreConfig::default());
    /// assert_eq!(s.store(StoreMode::Append, NewItem::new(b"k", b"x", 0, Exptime::NEVER)), StoreOutcome::NotStored);
    /// s.store(StoreMode::Set, NewItem::new(b"k", b"b", 5, Exptime::NEVER));
    /// s.store(StoreMode::Append, NewItem::new(b"k", b"c", 0, Exptime::NEVER));
    /// s.store(StoreMode::Prepend, NewItem::new(b"k", b"a", 0, Exptime::NEVER));
    /// let cas = s.get(b"k").map(|it| (it.value.to_vec(), it.flags, it.cas)).unwrap();
    /// assert_eq!((&cas.0[..], cas.1), (&b"abc"[..], 5));
    /// assert_eq!(s.store(StoreMode::Cas(cas.2 + 1), NewItem::new(b"k", b"z", 0, Exptime::NEVER)), StoreOutcome::Exists);
    /// assert_eq!(s.store(StoreMode::Cas(cas.2), NewItem::new(b"k", b"z", 0, Exptime::NEVER)), StoreOutcome::Stored);
    /// ```
    pub fn store(&mut self, mode: StoreMode, item: NewItem) -> StoreOutcome {
        // memcached holds the new item in its chunks before it looks up the old one.
        self.peak(&[item.chunks()]);
        let old = self.lookup(item.key());
        if old == NIL {
            return match mode {
                StoreMode::Set | StoreMode::Add => {
                    self.link_new(item);
                    StoreOutcome::Stored
                }
                StoreMode::Cas(_) => {
                    self.stats.cas_misses += 1;
                    StoreOutcome::NotFound
                }
                StoreMode::Replace | StoreMode::Append | StoreMode::Prepend => {
                    StoreOutcome::NotStored
                }
            };
        }
        match mode {
            StoreMode::Add => {
                self.bump(old);
                StoreOutcome::NotStored
            }
            StoreMode::Set | StoreMode::Replace => {
                self.unlink(old);
                self.link_new(item);
                StoreOutcome::Stored
            }
            StoreMode::Cas(cas) => {
                if cas != 0 && cas == self.slots[old as usize].cas {
                    self.stats.cas_hits += 1;
                    self.class_counters(old).cas_hits += 1;
                    self.unlink(old);
                    self.link_new(item);
                    StoreOutcome::Stored
                } else {
                    self.stats.cas_badval += 1;
                    self.class_counters(old).cas_badval += 1;
                    StoreOutcome::Exists
                }
            }
            StoreMode::Append | StoreMode::Prepend => {
                let s = &self.slots[old as usize];
                let (flags, exptime, key_len) = (s.flags, s.exptime, usize::from(s.key_len));
                let new_len = s.value().len() + item.value().len();
                if Store::item_size(key_len, flags, new_len) > self.config.item_size_max {
                    return StoreOutcome::NotStored;
                }
                let parts = if mode == StoreMode::Append {
                    [s.value(), item.value()]
                } else {
                    [item.value(), s.value()]
                };
                // A chunked result is copied in two parts: see `for_each_chunk`.
                let first_part = parts[0].len().min(slabs::READ as usize - 1) as u32;
                let data = item_bytes(s.key(), &parts, (0, 0));
                // memcached allocates the new item while the old one and the
                // appended data are still in their chunks.
                self.peak(&[item.chunks(), (key_len, flags, new_len, first_part)]);
                self.unlink(old);
                self.link(data, key_len, flags, exptime, first_part);
                StoreOutcome::Stored
            }
        }
    }

    fn link_new(&mut self, item: NewItem) -> u32 {
        let NewItem {
            data,
            key_len,
            flags,
            exptime,
            ..
        } = item;
        self.link(data, key_len, flags, exptime, slabs::READ)
    }

    /// `incr`: adds `delta`, wrapping at 2^64.
    ///
    /// Like memcached, a shorter result is written over the old value and padded with
    /// spaces (`"10"` decremented by 1 becomes `"9 "`), and a longer one makes a new
    /// item. Leading white space and trailing white space or NUL after the digits are
    /// accepted, as C's `strtoull` accepts them.
    ///
    /// ```
    /// use evloop_memcache_engine::store::*;
    /// let mut s = Store::new(StoreConfig::default());
    /// s.store(StoreMode::Set, NewItem::new(b"n", b"18446744073709551615", 0, Exptime::NEVER));
    /// assert_eq!(s.incr(b"n", 2), DeltaOutcome::Value(1));
    /// assert_eq!(s.get(b"n").unwrap().value, b"1                   ");
    /// ```
    pub fn incr(&mut self, key: &[u8], delta: u64) -> DeltaOutcome {
        self.add_delta(key, true, delta)
    }

    /// `decr`: subtracts `delta`, stopping at 0.
    ///
    /// ```
    /// use evloop_memcache_engine::store::*;
    /// let mut s = Store::new(StoreConfig::default());
    /// s.store(StoreMode::Set, NewItem::new(b"n", b"10", 0, Exptime::NEVER));
    /// assert_eq!(s.decr(b"n", 100), DeltaOutcome::Value(0));
    /// assert_eq!(s.get(b"n").unwrap().value, b"0 ");
    /// assert_eq!(s.decr(b"nothing", 1), DeltaOutcome::NotFound);
    /// ```
    pub fn decr(&mut self, key: &[u8], delta: u64) -> DeltaOutcome {
        self.add_delta(key, false, delta)
    }

    fn add_delta(&mut self, key: &[u8], incr: bool, delta: u64) -> DeltaOutcome {
        self.delta_held(key, incr, delta, false)
    }

    /// `incr`/`decr`; `held`: a reply memcached has not yet written refers to the
    /// item (an `mg` earlier in the same batch), so memcached makes a new item instead
    /// of writing in place.
    pub(crate) fn delta_held(
        &mut self,
        key: &[u8],
        incr: bool,
        delta: u64,
        held: bool,
    ) -> DeltaOutcome {
        let i = self.lookup(key);
        if i == NIL {
            if incr {
                self.stats.incr_misses += 1;
            } else {
                self.stats.decr_misses += 1;
            }
            return DeltaOutcome::NotFound;
        }
        match self.add_delta_at(i, incr, delta, held) {
            Some((v, _, _)) => DeltaOutcome::Value(v),
            None => DeltaOutcome::NonNumeric,
        }
    }

    /// The delta on a live item: the new value, its slot, whether in place. `None`
    /// if not numeric.
    fn add_delta_at(
        &mut self,
        i: u32,
        incr: bool,
        delta: u64,
        held: bool,
    ) -> Option<(u64, u32, bool)> {
        let s = &self.slots[i as usize];
        let value = s.value();
        if value.is_empty() {
            return None;
        }
        let old = cnum::safe_strtoull(value)?;
        let new = if incr {
            old.wrapping_add(delta)
        } else {
            old.saturating_sub(delta)
        };
        let c = self.slabs.counters(usize::from(s.class));
        if incr {
            self.stats.incr_hits += 1;
            c.incr_hits += 1;
        } else {
            self.stats.decr_hits += 1;
            c.decr_hits += 1;
        }
        let (digits, start) = cnum::u64_digits(new);
        let digits = &digits[start..];
        if digits.len() <= value.len() && !held {
            let pad = value.len() - digits.len();
            let cas = self.next_cas();
            let s = &mut self.slots[i as usize];
            let k = usize::from(s.key_len);
            if let Some(data) = Arc::get_mut(&mut s.data) {
                let v = &mut data[k..k + digits.len() + pad];
                v[..digits.len()].copy_from_slice(digits);
                v[digits.len()..].fill(b' ');
            } else {
                // A reply still refers to the old value: the same bytes in a new
                // buffer (memcached writes in place; a pending reply holds its copy).
                s.data = item_bytes(&s.data[..k], &[digits], (b' ', pad));
            }
            s.cas = cas;
            self.bump(i);
            Some((new, i, true))
        } else {
            let (flags, exptime, key_len) = (s.flags, s.exptime, usize::from(s.key_len));
            let data = item_bytes(s.key(), &[digits], (0, 0));
            // memcached allocates the new item before it unlinks the old one.
            self.peak(&[(key_len, flags, digits.len(), slabs::READ)]);
            self.unlink(i);
            let j = self.link(data, key_len, flags, exptime, slabs::READ);
            Some((new, j, false))
        }
    }

    /// `flush_all [delay]` (with the delay already parsed, as memcached's `int32`):
    /// invalidates every item at once (delay 0 or negative) or once the delay has
    /// passed. Invalidated items are removed lazily, as in memcached.
    ///
    /// ```
    /// use evloop_memcache_engine::store::*;
    /// let mut s = Store::new(StoreConfig::default());
    /// s.store(StoreMode::Set, NewItem::new(b"k", b"v", 0, Exptime::NEVER));
    /// s.flush_all(0);
    /// assert!(s.get(b"k").is_none());
    /// s.store(StoreMode::Set, NewItem::new(b"k", b"v", 0, Exptime::NEVER));
    /// assert!(s.get(b"k").is_some());
    /// ```
    pub fn flush_all(&mut self, delay: i32) {
        let now = self.now();
        // realtime(exptime), or current_time when no positive delay is given.
        let new_oldest = if delay > 0 {
            match self.exptime(delay) {
                // memcached's realtime() returned 1: its oldest_live becomes 0, which
                // disables the time test.
                Exptime::EXPIRED => 1,
                e => e.0,
            }
        } else {
            now
        };
        self.oldest_live = new_oldest - 1;
        if self.oldest_live <= now {
            self.oldest_cas = self.next_cas();
        }
    }

    /// Removes up to `max` expired or flushed items from the cold end of the LRU,
    /// returning how many were removed: the work of memcached's LRU crawler, for a
    /// server to call now and then. Items stop at the first live one.
    ///
    /// ```
    /// use evloop_memcache_engine::store::*;
    /// let mut s = Store::new(StoreConfig::default());
    /// let e = s.exptime(-1);
    /// s.store(StoreMode::Set, NewItem::new(b"k", b"v", 0, e));
    /// assert_eq!(s.len(), 1);
    /// assert_eq!(s.reclaim_expired(10), 1);
    /// assert!(s.is_empty());
    /// ```
    pub fn reclaim_expired(&mut self, max: usize) -> usize {
        let now = self.now();
        let mut removed = 0;
        while removed < max && self.lru_tail != NIL {
            let i = self.lru_tail;
            let s = &self.slots[i as usize];
            if !(s.exptime.is_expired(now) || self.is_flushed(s, now)) {
                break;
            }
            if !s.fetched {
                self.stats.expired_unfetched += 1;
                self.slabs.counters(usize::from(s.class)).expired_unfetched += 1;
            }
            self.unlink(i);
            removed += 1;
        }
        removed
    }
}

/// memcached's `ITEM_STALE`: invalidated by `md <key> I` or stored by `ms` with `I`
/// and a lower CAS.
pub(crate) const META_STALE: u8 = 1;
/// memcached's `ITEM_TOKEN_SENT`: a client won the right to recache the item.
pub(crate) const META_TOKEN_SENT: u8 = 2;
/// memcached's `ITEM_KEY_BINARY`: stored with a base64 key (`b`).
pub(crate) const META_KEY_BINARY: u8 = 4;

/// What the meta commands read of an item besides its [`ItemView`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct MetaInfo {
    pub(crate) exptime: Exptime,
    /// When the item was linked (unix seconds).
    pub(crate) time: u64,
    pub(crate) fetched: bool,
    pub(crate) bits: u8,
}

/// The storage modes of `ms` (memcached's `NREAD_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MetaStore {
    Set,
    Add,
    Replace,
    Append,
    Prepend,
    Cas,
}

/// The result of `ma`'s delta.
pub(crate) enum MetaDelta {
    NotFound,
    NonNumeric,
    CasMismatch,
    /// The new value, the item's slot (after the delta), and whether it was
    /// written in place (else memcached's `ma` goes on with the old, unlinked item,
    /// whose CAS it sets to the new one's).
    Value(u64, u32, bool),
}

/// The meta commands' access to items: by slot, without the classic commands'
/// counting.
impl Store {
    /// memcached's `do_item_get` without bump or counting (expired and flushed items
    /// are removed and counted).
    pub(crate) fn meta_lookup(&mut self, key: &[u8]) -> Option<u32> {
        let i = self.lookup(key);
        (i != NIL).then_some(i)
    }

    pub(crate) fn meta_view(&self, i: u32) -> ItemView<'_> {
        self.slots[i as usize].view()
    }

    pub(crate) fn meta_info(&self, i: u32) -> MetaInfo {
        let s = &self.slots[i as usize];
        MetaInfo {
            exptime: s.exptime,
            time: s.time,
            fetched: s.fetched,
            bits: s.meta,
        }
    }

    pub(crate) fn meta_set_exptime(&mut self, i: u32, e: Exptime) {
        self.slots[i as usize].exptime = e;
    }

    pub(crate) fn meta_set_bits(&mut self, i: u32, bits: u8) {
        self.slots[i as usize].meta = bits;
    }

    /// A new CAS unique for the item (memcached's `ITEM_set_cas(it, get_cas_id())`).
    pub(crate) fn meta_new_cas(&mut self, i: u32) {
        let cas = self.next_cas();
        self.slots[i as usize].cas = cas;
    }

    /// memcached's `do_item_bump`: LRU bump, marked fetched.
    pub(crate) fn meta_bump(&mut self, i: u32) {
        self.bump(i);
        self.slots[i as usize].fetched = true;
    }

    /// Unlinks the item: an `md` hit, counted.
    pub(crate) fn meta_unlink(&mut self, i: u32) {
        self.stats.delete_hits += 1;
        self.class_counters(i).delete_hits += 1;
        self.unlink(i);
    }

    /// Counts an `mg` hit: a touch with `T`, else a get.
    pub(crate) fn meta_count_hit(&mut self, i: u32, touch: bool) {
        let c = self
            .slabs
            .counters(usize::from(self.slots[i as usize].class));
        if touch {
            self.stats.cmd_touch += 1;
            self.stats.touch_hits += 1;
            c.touch_hits += 1;
        } else {
            self.stats.cmd_get += 1;
            self.stats.get_hits += 1;
            c.get_hits += 1;
        }
    }

    /// Links an empty item with flags 0 that never expires (`mg`'s `N`).
    pub(crate) fn meta_vivify(&mut self, key: &[u8]) -> u32 {
        let data = item_bytes(key, &[], (0, 0));
        self.link(data, key.len(), 0, Exptime::NEVER, slabs::READ)
    }

    /// The seconds left until `e` as memcached prints them (`rel_time_t`
    /// arithmetic, wrapping), `None` for never.
    pub(crate) fn meta_ttl(&self, e: Exptime) -> Option<u32> {
        let unix = match e {
            Exptime::NEVER => return None,
            Exptime::EXPIRED => self.started + 1,
            Exptime(u) => u,
        };
        Some(unix.wrapping_sub(self.now()) as u32)
    }

    /// memcached's `do_store_item` for `ms`: `req_cas` 0 is no CAS; `set_stale`
    /// lets a lower CAS store a stale item (`I`). The outcome and, when stored, the
    /// new item's slot.
    pub(crate) fn meta_store(
        &mut self,
        comm: MetaStore,
        item: NewItem,
        req_cas: u64,
        set_stale: bool,
        key_binary: bool,
    ) -> (StoreOutcome, u32) {
        let bits = if key_binary { META_KEY_BINARY } else { 0 };
        self.peak(&[item.chunks()]);
        let old = self.lookup(item.key());
        if old == NIL {
            return match comm {
                MetaStore::Set | MetaStore::Add => {
                    let i = self.link_new(item);
                    self.slots[i as usize].meta = bits;
                    (StoreOutcome::Stored, i)
                }
                MetaStore::Cas => {
                    self.stats.cas_misses += 1;
                    (StoreOutcome::NotFound, NIL)
                }
                _ => (StoreOutcome::NotStored, NIL),
            };
        }
        let (old_cas, old_exptime, old_bits) = {
            let s = &self.slots[old as usize];
            (s.cas, s.exptime, s.meta)
        };
        #[derive(PartialEq)]
        enum Res {
            None,
            Match,
            Stale,
            Badval,
        }
        let res = if req_cas == 0 {
            Res::None
        } else if req_cas == old_cas {
            Res::Match
        } else if set_stale && req_cas < old_cas {
            Res::Stale
        } else {
            Res::Badval
        };
        match comm {
            MetaStore::Add => {
                self.bump(old);
                (StoreOutcome::NotStored, NIL)
            }
            MetaStore::Cas => match res {
                Res::Match | Res::Stale => {
                    self.stats.cas_hits += 1;
                    self.class_counters(old).cas_hits += 1;
                    let mut item = item;
                    let mut bits = bits;
                    if res == Res::Stale {
                        item.exptime = old_exptime;
                        bits |= META_STALE | (old_bits & META_TOKEN_SENT);
                    }
                    self.unlink(old);
                    let i = self.link_new(item);
                    self.slots[i as usize].meta = bits;
                    (StoreOutcome::Stored, i)
                }
                _ => {
                    self.stats.cas_badval += 1;
                    self.class_counters(old).cas_badval += 1;
                    (StoreOutcome::Exists, NIL)
                }
            },
            MetaStore::Append | MetaStore::Prepend => {
                if res != Res::None && res != Res::Match {
                    return (StoreOutcome::Exists, NIL);
                }
                let mode = if comm == MetaStore::Append {
                    StoreMode::Append
                } else {
                    StoreMode::Prepend
                };
                let key = self.slots[old as usize].key().to_vec();
                let outcome = self.store(mode, item);
                let i = if outcome == StoreOutcome::Stored {
                    self.find(&key, self.hash(&key))
                } else {
                    NIL
                };
                (outcome, i)
            }
            MetaStore::Set | MetaStore::Replace => {
                self.unlink(old);
                let i = self.link_new(item);
                self.slots[i as usize].meta = bits;
                (StoreOutcome::Stored, i)
            }
        }
    }

    /// memcached's `do_add_delta` with `ma`'s CAS check. `held`: a reply memcached
    /// has not yet written refers to the item, so it makes a new item instead of
    /// writing in place.
    pub(crate) fn meta_delta(
        &mut self,
        key: &[u8],
        incr: bool,
        delta: u64,
        req_cas: u64,
        held: bool,
    ) -> MetaDelta {
        let i = self.lookup(key);
        if i == NIL {
            return MetaDelta::NotFound;
        }
        let s = &self.slots[i as usize];
        if s.value().is_empty() {
            return MetaDelta::NonNumeric;
        }
        if req_cas != 0 && s.cas != req_cas {
            return MetaDelta::CasMismatch;
        }
        match self.add_delta_at(i, incr, delta, held) {
            Some((v, j, in_place)) => MetaDelta::Value(v, j, in_place),
            None => MetaDelta::NonNumeric,
        }
    }

    /// The seconds since the item was linked, as memcached's `current_time -
    /// it->time`.
    pub(crate) fn meta_age(&self, time: u64) -> u32 {
        self.now().wrapping_sub(time) as u32
    }

    /// memcached's `current_time - it->exptime` (`me`'s `exp=`), -1 for never.
    pub(crate) fn meta_exp_age(&self, e: Exptime) -> i32 {
        match self.meta_ttl(e) {
            None => -1,
            Some(ttl) => (ttl as i32).wrapping_neg(),
        }
    }

    /// memcached's `settings.oldest_live` (`stats settings`' `oldest`): the relative
    /// time before which items are flushed, 0 if none.
    pub(crate) fn oldest_live_rel(&self) -> u64 {
        if self.oldest_live == 0 {
            0
        } else {
            self.oldest_live.saturating_sub(self.started)
        }
    }

    /// The buffer of `key`'s item, live or not, without side effects.
    pub(crate) fn meta_peek(&self, key: &[u8]) -> Option<&Arc<[u8]>> {
        let i = self.find(key, self.hash(key));
        (i != NIL).then(|| &self.slots[i as usize].data)
    }

    /// The item's buffer, to tell whether a reply refers to it.
    pub(crate) fn meta_data(&self, i: u32) -> &Arc<[u8]> {
        &self.slots[i as usize].data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_at(t: u64) -> (Store, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(t));
        (
            Store::with_clock(StoreConfig::default(), clock.clone()),
            clock,
        )
    }

    fn set(s: &mut Store, k: &[u8], v: &[u8], e: Exptime) -> StoreOutcome {
        s.store(StoreMode::Set, NewItem::new(k, v, 0, e))
    }

    #[test]
    fn expiry_rules() {
        let (mut s, clock) = store_at(1_700_000_000);
        let e = s.exptime(0);
        set(&mut s, b"never", b"v", e);
        let e = s.exptime(REALTIME_MAXDELTA as i32);
        set(&mut s, b"rel30d", b"v", e);
        let e = s.exptime(5);
        set(&mut s, b"rel5", b"v", e);
        let e = s.exptime(1_700_000_010);
        set(&mut s, b"abs10", b"v", e);
        let e = s.exptime(1_600_000_000);
        set(&mut s, b"abspast", b"v", e);
        let e = s.exptime(-1);
        set(&mut s, b"neg", b"v", e);
        assert!(s.get(b"neg").is_none());
        assert!(s.get(b"abspast").is_none());
        clock.advance(4);
        assert!(s.get(b"rel5").is_some());
        clock.advance(1);
        assert!(s.get(b"rel5").is_none());
        clock.advance(4);
        assert!(s.get(b"abs10").is_some());
        clock.advance(1);
        assert!(s.get(b"abs10").is_none());
        clock.advance(REALTIME_MAXDELTA as u64);
        assert!(s.get(b"rel30d").is_none());
        assert!(s.get(b"never").is_some());
        assert_eq!(s.stats().get_expired, 5);
    }

    #[test]
    fn cas_changes_on_every_modification() {
        let (mut s, _) = store_at(1_000_000);
        set(&mut s, b"k", b"1", Exptime::NEVER);
        let c1 = s.get(b"k").unwrap().cas;
        s.incr(b"k", 1);
        let c2 = s.get(b"k").unwrap().cas;
        assert_ne!(c1, c2);
        s.store(
            StoreMode::Append,
            NewItem::new(b"k", b"0", 0, Exptime::NEVER),
        );
        let c3 = s.get(b"k").unwrap().cas;
        assert_ne!(c2, c3);
        assert_eq!(s.get(b"k").unwrap().value, b"20");
        s.touch(b"k", Exptime::NEVER);
        assert_eq!(s.get(b"k").unwrap().cas, c3, "touch keeps the CAS");
        assert_eq!(
            s.store(
                StoreMode::Cas(0),
                NewItem::new(b"k", b"x", 0, Exptime::NEVER)
            ),
            StoreOutcome::Exists
        );
        assert_eq!(
            s.store(
                StoreMode::Cas(c3),
                NewItem::new(b"zz", b"x", 0, Exptime::NEVER)
            ),
            StoreOutcome::NotFound
        );
    }

    #[test]
    fn lru_eviction_under_memory_limit() {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let size = Store::item_size(2, 0, 100) as u64;
        let mut s = Store::with_clock(
            StoreConfig {
                memory_limit: size * 3,
                item_size_max: 1 << 20,
            },
            clock,
        );
        let v = [b'x'; 100];
        set(&mut s, b"k1", &v, Exptime::NEVER);
        set(&mut s, b"k2", &v, Exptime::NEVER);
        set(&mut s, b"k3", &v, Exptime::NEVER);
        assert!(s.get(b"k1").is_some()); // k1 is now the most recent
        set(&mut s, b"k4", &v, Exptime::NEVER); // evicts k2
        assert!(s.get(b"k2").is_none());
        assert!(s.get(b"k1").is_some());
        assert!(s.get(b"k3").is_some());
        assert!(s.get(b"k4").is_some());
        assert_eq!(s.stats().evictions, 1);
        assert_eq!(s.stats().evicted_unfetched, 1);
        assert_eq!(s.stats().bytes, size * 3);
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn expired_tail_items_are_reclaimed_not_evicted() {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let size = Store::item_size(2, 0, 10) as u64;
        let mut s = Store::with_clock(
            StoreConfig {
                memory_limit: size * 2,
                item_size_max: 1 << 20,
            },
            clock.clone(),
        );
        let e = s.exptime(1);
        set(&mut s, b"k1", &[b'x'; 10], e);
        set(&mut s, b"k2", &[b'x'; 10], Exptime::NEVER);
        clock.advance(1);
        set(&mut s, b"k3", &[b'x'; 10], Exptime::NEVER);
        assert_eq!((s.stats().evictions, s.stats().reclaimed), (0, 1));
    }

    #[test]
    fn many_items_grow_the_table() {
        let (mut s, _) = store_at(1_000_000);
        for i in 0..10_000u32 {
            set(
                &mut s,
                format!("key{i}").as_bytes(),
                &i.to_le_bytes(),
                Exptime::NEVER,
            );
        }
        assert_eq!(s.len(), 10_000);
        for i in 0..10_000u32 {
            let v = s.get(format!("key{i}").as_bytes()).unwrap().value.to_vec();
            assert_eq!(v, i.to_le_bytes());
        }
        for i in (0..10_000u32).step_by(2) {
            assert!(s.delete(format!("key{i}").as_bytes()));
        }
        assert_eq!(s.len(), 5_000);
        for i in 0..10_000u32 {
            assert_eq!(s.get(format!("key{i}").as_bytes()).is_some(), i % 2 == 1);
        }
        assert!(s.hash_table_size().0 >= 12);
    }

    #[test]
    fn delayed_flush() {
        let (mut s, clock) = store_at(1_000_000);
        set(&mut s, b"k", b"v", Exptime::NEVER);
        s.flush_all(10);
        assert!(s.get(b"k").is_some());
        clock.advance(9);
        assert!(s.get(b"k").is_none());
        assert_eq!(s.stats().get_flushed, 1);
        clock.advance(1);
        set(&mut s, b"k", b"v", Exptime::NEVER);
        assert!(s.get(b"k").is_some());
    }

    #[test]
    fn incr_parses_like_strtoull() {
        let (mut s, _) = store_at(1_000_000);
        for (v, r) in [
            (&b" 12"[..], DeltaOutcome::Value(13)),
            (b"12 abc", DeltaOutcome::Value(13)),
            (b"-12", DeltaOutcome::NonNumeric),
            (b"12a", DeltaOutcome::NonNumeric),
            (b"", DeltaOutcome::NonNumeric),
            (b"99999999999999999999999", DeltaOutcome::NonNumeric),
        ] {
            set(&mut s, b"n", v, Exptime::NEVER);
            assert_eq!(s.incr(b"n", 1), r, "{v:?}");
        }
        set(&mut s, b"n", b"12 abc", Exptime::NEVER);
        s.incr(b"n", 1);
        assert_eq!(s.get(b"n").unwrap().value, b"13    ");
    }

    fn class(s: &Store, class: usize) -> SlabClass {
        s.slab_classes()[class]
    }

    /// Chunks in use per class, for the classes that have pages.
    fn used(s: &Store) -> Vec<(usize, u64)> {
        (1..=slabs::LARGEST)
            .filter(|&c| class(s, c).pages > 0)
            .map(|c| (c, class(s, c).used_chunks))
            .collect()
    }

    #[test]
    fn counters_count_in_the_items_class() {
        let (mut s, _) = store_at(1_000_000);
        set(&mut s, b"a", b"9", Exptime::NEVER); // 61 bytes: class 1
        set(&mut s, b"b", &[b'x'; 1000], Exptime::NEVER); // 1,060 bytes: class 12
        assert_eq!((class(&s, 1).items, class(&s, 1).mem_requested), (1, 61));
        assert_eq!(
            (class(&s, 12).items, class(&s, 12).mem_requested),
            (1, 1060)
        );
        assert!(s.get(b"a").is_some() && s.get(b"b").is_some() && s.get(b"c").is_none());
        // "9" + 1 is longer: a new item, in the same class.
        assert_eq!(s.incr(b"a", 1), DeltaOutcome::Value(10));
        assert_eq!(s.decr(b"a", 1), DeltaOutcome::Value(9));
        assert!(s.touch(b"b", Exptime::NEVER));
        let cas = s.get(b"b").unwrap().cas;
        // A bad CAS counts in the old item's class; so does a good one, whose new
        // item (class 1) replaces it.
        let small = || NewItem::new(b"b", b"y", 0, Exptime::NEVER);
        assert_eq!(
            s.store(StoreMode::Cas(cas + 1), small()),
            StoreOutcome::Exists
        );
        assert_eq!(s.store(StoreMode::Cas(cas), small()), StoreOutcome::Stored);
        assert!(s.delete(b"a"));
        let c1 = class(&s, 1).counters;
        let c12 = class(&s, 12).counters;
        assert_eq!(
            (c1.get_hits, c1.incr_hits, c1.decr_hits, c1.delete_hits),
            (1, 1, 1, 1)
        );
        assert_eq!(
            (c12.get_hits, c12.touch_hits, c12.cas_badval, c12.cas_hits),
            (2, 1, 1, 1)
        );
        assert_eq!((class(&s, 1).items, class(&s, 12).items), (1, 0));
        assert_eq!(used(&s), [(1, 1), (12, 0)]);
        // `stats reset`: the counters go, the items, chunks and pages stay.
        s.reset_stats();
        assert_eq!(class(&s, 1).counters, ClassCounters::default());
        assert_eq!((class(&s, 1).items, class(&s, 1).pages), (1, 1));
        assert_eq!(class(&s, 12).pages, 1);
    }

    #[test]
    fn pages_are_taken_as_memcached_takes_them() {
        let (mut s, _) = store_at(1_000_000);
        let v = vec![b'x'; 400_000]; // class 39: 2 chunks a page
        set(&mut s, b"h1", &v, Exptime::NEVER);
        set(&mut s, b"h2", &v, Exptime::NEVER);
        assert_eq!((class(&s, 39).pages, class(&s, 39).used_chunks), (1, 2));
        // The new "h1" is in its chunk before the old one is freed: a third chunk.
        set(&mut s, b"h1", &v, Exptime::NEVER);
        assert_eq!((class(&s, 39).pages, class(&s, 39).used_chunks), (2, 2));
        // Pages are never given back.
        assert!(s.delete(b"h1") && s.delete(b"h2"));
        assert_eq!((class(&s, 39).pages, class(&s, 39).used_chunks), (2, 0));
        // A refused command's data took a chunk too (here a page of class 17).
        let item = NewItem::new(b"nokey", &[b'r'; 3000], 0, Exptime::NEVER);
        assert_eq!(s.store(StoreMode::Replace, item), StoreOutcome::NotStored);
        assert_eq!(used(&s), [(17, 0), (39, 0)]);
    }

    #[test]
    fn chunked_items_take_chunks_in_several_classes() {
        let (mut s, _) = store_at(1_000_000);
        set(&mut s, b"k", &vec![b'v'; 600_000], Exptime::NEVER);
        // A header in class 2, 524,240 bytes in class 39, the rest in class 31; the
        // item counts in class 39.
        assert_eq!(used(&s), [(2, 1), (31, 1), (39, 1)]);
        assert_eq!(
            (class(&s, 39).items, class(&s, 39).mem_requested),
            (1, Store::item_size(1, 0, 600_000) as u64)
        );
        // An append copies the two values into new chunks, with empty ones where a
        // copy ends on a full chunk (class 1).
        s.store(
            StoreMode::Append,
            NewItem::new(b"k", b"0123456789", 0, Exptime::NEVER),
        );
        assert_eq!(used(&s), [(1, 3), (2, 1), (31, 1), (39, 1)]);
        assert!(s.delete(b"k"));
        assert_eq!(used(&s), [(1, 0), (2, 0), (31, 0), (39, 0)]);
        assert_eq!(class(&s, 39).items, 0);
    }

    #[test]
    fn evictions_count_in_the_evicted_items_class() {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let size = Store::item_size(2, 0, 100) as u64; // 161 bytes: class 4
        let mut s = Store::with_clock(
            StoreConfig {
                memory_limit: size * 2,
                item_size_max: 1 << 20,
            },
            clock.clone(),
        );
        let e = s.exptime(1000);
        set(&mut s, b"k1", &[b'x'; 100], e);
        set(&mut s, b"k2", &[b'x'; 100], Exptime::NEVER);
        assert!(s.get(b"k2").is_some());
        clock.advance(5);
        set(&mut s, b"k3", &[b'x'; 100], Exptime::NEVER); // evicts k1
        set(&mut s, b"k4", &[b'x'; 100], Exptime::NEVER); // evicts k2
        let c = class(&s, 4).counters;
        assert_eq!(
            (
                c.evicted,
                c.evicted_nonzero,
                c.evicted_unfetched,
                c.evicted_time
            ),
            (2, 1, 1, 5)
        );
        // An expired item at the LRU tail is reclaimed, not evicted.
        let e = s.exptime(1);
        set(&mut s, b"k5", &[b'x'; 100], e); // evicts k3
        set(&mut s, b"k6", &[b'x'; 100], Exptime::NEVER); // evicts k4
        clock.advance(1);
        set(&mut s, b"k7", &[b'x'; 100], Exptime::NEVER); // reclaims k5
        let c = class(&s, 4).counters;
        assert_eq!((c.evicted, c.reclaimed, c.expired_unfetched), (4, 1, 1));
        assert_eq!(class(&s, 4).items, 2);
    }

    #[test]
    fn ages_are_since_each_classs_oldest_item() {
        let (mut s, clock) = store_at(1_000_000);
        set(&mut s, b"a", b"1", Exptime::NEVER);
        clock.advance(5);
        set(&mut s, b"b", b"1", Exptime::NEVER);
        set(&mut s, b"c", &[b'x'; 1000], Exptime::NEVER);
        clock.advance(2);
        let ages = s.slab_ages();
        assert_eq!((ages[1], ages[12], ages[2]), (7, 2, 0));
        assert!(s.delete(b"a"));
        assert_eq!(s.slab_ages()[1], 2);
    }

    /// The per-class figures agree with the items stored, whatever happened to them:
    /// a random mix of commands, chunked items and evictions, then everything deleted.
    #[test]
    fn slab_figures_follow_the_items() {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let mut s = Store::with_clock(
            StoreConfig {
                memory_limit: 3 << 20,
                item_size_max: 1 << 20,
            },
            clock.clone(),
        );
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        // Around the largest chunk, and past it by a chunk's worth and more.
        let sizes = [
            0, 1, 40, 1000, 100_000, 524_150, 524_230, 600_000, 1_048_400,
        ];
        for _ in 0..300 {
            let key = format!("k{}", next(12));
            let len = sizes[next(sizes.len() as u64) as usize] + next(100) as usize;
            let value = vec![b'7'; len];
            let item = NewItem::new(key.as_bytes(), &value, next(2) as u32, Exptime::NEVER);
            match next(8) {
                0 => drop(s.store(StoreMode::Append, item)),
                1 => drop(s.store(StoreMode::Prepend, item)),
                2 => drop(s.incr(key.as_bytes(), 1 << next(64))),
                3 => drop(s.delete(key.as_bytes())),
                4 => drop(s.store(StoreMode::Add, item)),
                _ => drop(s.store(StoreMode::Set, item)),
            }
            if next(100) == 0 {
                clock.advance(1);
            }
        }
        let mut expected = vec![(0u64, 0u64, 0u64); slabs::LARGEST + 1];
        for slot in s.slots.iter().filter(|slot| slot.key_len != 0) {
            let (k, f, v) = (usize::from(slot.key_len), slot.flags, slot.value().len());
            let e = &mut expected[slabs::class_of(slot.size())];
            e.0 += 1;
            e.1 += slot.size() as u64;
            slabs::for_each_chunk(k, f, v, slot.first_part, |c| expected[c].2 += 1);
        }
        for (c, e) in expected.iter().enumerate().skip(1) {
            let got = class(&s, c);
            assert_eq!(
                (got.items, got.mem_requested, got.used_chunks),
                *e,
                "class {c}"
            );
            assert!(got.used_chunks <= got.pages * slabs::chunks_per_page(c));
        }
        assert!(s.stats().evictions > 0, "the limit was reached");
        let keys: Vec<Vec<u8>> = s
            .slots
            .iter()
            .filter(|slot| slot.key_len != 0)
            .map(|slot| slot.key().to_vec())
            .collect();
        for k in keys {
            assert!(s.delete(&k));
        }
        assert!(s
            .slab_classes()
            .iter()
            .all(|c| c.items == 0 && c.mem_requested == 0 && c.used_chunks == 0));
    }

    #[test]
    fn fetching_an_expired_item_counts_no_expired_unfetched() {
        // memcached counts `expired_unfetched` when its LRU reclaims an item, not
        // when a fetch finds it expired.
        let (mut s, clock) = store_at(1_000_000);
        let e = s.exptime(1);
        set(&mut s, b"k", b"v", e);
        clock.advance(1);
        assert!(s.get(b"k").is_none());
        assert_eq!((s.stats().get_expired, s.stats().expired_unfetched), (1, 0));
        assert_eq!(class(&s, 1).items, 0);
    }

    #[test]
    fn append_respects_item_size_limit() {
        let (mut s, _) = store_at(1_000_000);
        let max_value = DEFAULT_ITEM_SIZE_MAX - Store::item_size(1, 0, 0);
        set(&mut s, b"k", &vec![b'x'; max_value], Exptime::NEVER);
        assert_eq!(
            s.store(
                StoreMode::Append,
                NewItem::new(b"k", b"y", 0, Exptime::NEVER)
            ),
            StoreOutcome::NotStored
        );
        assert_eq!(s.get(b"k").unwrap().value.len(), max_value);
    }
}
