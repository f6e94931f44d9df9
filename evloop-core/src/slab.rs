//! [`Slab`]: a fixed-capacity collection of sources (connections, say) with
//! generation-checked keys.

use crate::sys::AsSource;

use crate::{Ctx, Error, Machine, Result, SourceId, Token, Watch};

const NONE: u32 = u32::MAX;
const INDEX_BITS: u32 = 24;
const GEN_MASK: u32 = (1 << 24) - 1;

/// A slab entry's key: index plus generation. A key kept after its entry was removed is
/// stale: the slot's generation moved on, so it never names the slot's next occupant, and
/// an event still in flight for the old occupant is dropped.
///
/// ```
/// use evloop_core::Key;
/// let k = Key::from_parts(3, 1);
/// assert_eq!(k.index(), 3);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Key {
    index: u32,
    gen: u32,
}

impl Key {
    /// The key [`Source::entry`](crate::Source::entry) gives for a single (non-collection)
    /// source.
    ///
    /// ```
    /// assert_eq!(evloop_core::Key::SINGLE.index(), 0);
    /// ```
    pub const SINGLE: Key = Key { index: 0, gen: 0 };

    /// A key from an index and a generation (both 24-bit).
    ///
    /// ```
    /// assert_eq!(evloop_core::Key::from_parts(1, 2).generation(), 2);
    /// ```
    pub const fn from_parts(index: u32, gen: u32) -> Key {
        Key {
            index: index & ((1 << INDEX_BITS) - 1),
            gen: gen & GEN_MASK,
        }
    }
    /// The slot index (dense, below the slab's capacity: handy to index side tables).
    ///
    /// ```
    /// assert_eq!(evloop_core::Key::from_parts(5, 0).index(), 5);
    /// ```
    pub const fn index(self) -> u32 {
        self.index
    }
    /// The generation.
    ///
    /// ```
    /// assert_eq!(evloop_core::Key::from_parts(5, 9).generation(), 9);
    /// ```
    pub const fn generation(self) -> u32 {
        self.gen
    }
    /// Pack into a token payload (48 bits).
    const fn payload(self) -> u64 {
        ((self.gen as u64) << INDEX_BITS) | self.index as u64
    }
}

struct Entry<T> {
    value: Option<T>,
    gen: u32,
    source: Option<SourceId>,
    next_free: u32,
}

/// Sources of type `T`, up to a capacity chosen at run time, each registered with the
/// loop under a token tagged with the slab's tag, found again by [`Key`]. The storage is
/// allocated once, in [`with_capacity`](Self::with_capacity) (or `default()`, with
/// [`Slab::DEFAULT_CAPACITY`]), never per insert. The tag and the [`Watch`] that
/// [`insert`](Self::insert) uses are given by [`Source::attach`](crate::Source::attach):
/// `#[event_machine]` calls it in the generated `setup`, a machine written by hand calls
/// it in its own.
///
/// ```
/// use evloop_core::*;
/// use std::os::unix::net::UnixStream;
///
/// const CONNS: u16 = 1;
/// struct Server { conns: Slab<UnixStream> }
/// impl Machine for Server {
///     type Backend = DefaultBackend;
///     fn setup(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
///         self.conns.attach(ctx, CONNS, Watch::read())
///     }
///     fn dispatch(&mut self, ctx: &mut Ctx<Self>, ev: Event) {
///         if let Some(key) = self.conns.key_of(ev.token) {
///             // the connection that fired; a removed one never gets here
///             let _conn = self.conns.get(key).unwrap();
///             let _ = self.conns.remove(ctx, key);
///         }
///     }
/// }
/// let mut el = EventLoop::new(Server { conns: Slab::with_capacity(64) }).unwrap();
/// let (a, _b) = UnixStream::pair().unwrap();
/// let (m, ctx) = el.parts();
/// let key = m.conns.insert(ctx, a).unwrap();
/// assert!(m.conns.contains(key));
/// assert_eq!(m.conns.capacity(), 64);
/// ```
pub struct Slab<T> {
    entries: Box<[Entry<T>]>,
    free: u32,
    len: usize,
    tag: u16,
    watch: Watch,
}

impl<T> Slab<T> {
    /// The capacity of `Slab::default()`.
    ///
    /// ```
    /// let s: evloop_core::Slab<std::fs::File> = Default::default();
    /// assert_eq!(s.capacity(), evloop_core::Slab::<std::fs::File>::DEFAULT_CAPACITY);
    /// ```
    pub const DEFAULT_CAPACITY: usize = 1024;

    /// The largest capacity a slab can have (keys index it with 24 bits).
    ///
    /// ```
    /// assert_eq!(evloop_core::Slab::<std::fs::File>::MAX_CAPACITY, (1 << 24) - 1);
    /// ```
    pub const MAX_CAPACITY: usize = (1 << INDEX_BITS) - 1;

    /// An empty slab with room for `capacity` entries, allocated now, once: a server's
    /// connection limit, from its configuration.
    ///
    /// # Panics
    ///
    /// If `capacity` is above [`MAX_CAPACITY`](Self::MAX_CAPACITY), like
    /// `Vec::with_capacity` past `isize::MAX` bytes.
    ///
    /// ```
    /// let s: evloop_core::Slab<std::net::TcpStream> = evloop_core::Slab::with_capacity(5000);
    /// assert!(s.is_empty());
    /// assert_eq!(s.capacity(), 5000);
    /// ```
    pub fn with_capacity(capacity: usize) -> Self {
        assert!(
            capacity <= Self::MAX_CAPACITY,
            "Slab::with_capacity({capacity}): the most a slab holds is {}",
            Self::MAX_CAPACITY
        );
        let n = capacity;
        let entries = (0..n)
            .map(|i| Entry {
                value: None,
                gen: 0,
                source: None,
                next_free: if i + 1 < n { (i + 1) as u32 } else { NONE },
            })
            .collect();
        Slab {
            entries,
            free: if n == 0 { NONE } else { 0 },
            len: 0,
            tag: 0,
            watch: Watch::read(),
        }
    }

    /// Set the tag its tokens carry and the [`Watch`] that [`insert`](Self::insert)
    /// uses (what [`Source::attach`](crate::Source::attach) does). Entries already
    /// inserted keep the token they were registered with.
    pub(crate) fn bind(&mut self, tag: u16, watch: Watch) {
        self.tag = tag;
        self.watch = watch;
    }

    /// The [`Watch`] that [`insert`](Self::insert) registers entries with (by default
    /// `Watch::read()`).
    ///
    /// ```
    /// let s: evloop_core::Slab<std::fs::File> = evloop_core::Slab::with_capacity(4);
    /// assert!(s.watch().interest().is_readable());
    /// ```
    pub fn watch(&self) -> Watch {
        self.watch
    }

    /// Store `value` and register it with the slab's own [`Watch`] (see
    /// [`bind`](Self::bind)); otherwise as [`insert_with`](Self::insert_with).
    ///
    /// ```
    /// use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// let mut slab: Slab<std::os::unix::net::UnixStream> = Slab::with_capacity(4);
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let key = slab.insert(el.ctx(), a).unwrap();
    /// assert!(slab.contains(key));
    /// ```
    pub fn insert<M: Machine>(&mut self, ctx: &mut Ctx<M>, value: T) -> Result<Key>
    where
        T: AsSource,
    {
        let w = self.watch;
        self.insert_with(ctx, value, w)
    }

    /// Store `value`, register it with the loop as `watch` says, and return its key. A
    /// full slab is refused with [`Error::SlabFull`] before anything is registered.
    ///
    /// ```
    /// use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// let mut slab: Slab<std::os::unix::net::UnixStream> = Slab::with_capacity(1);
    /// let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// slab.insert_with(el.ctx(), a, Watch::read()).unwrap();
    /// assert!(matches!(slab.insert_with(el.ctx(), b, Watch::read()), Err(Error::SlabFull { capacity: 1 })));
    /// ```
    pub fn insert_with<M: Machine>(
        &mut self,
        ctx: &mut Ctx<M>,
        value: T,
        watch: impl Into<Watch>,
    ) -> Result<Key>
    where
        T: AsSource,
    {
        let idx = self.free;
        if idx == NONE {
            return Err(Error::SlabFull {
                capacity: self.entries.len(),
            });
        }
        let key = Key {
            index: idx,
            gen: self.entries[idx as usize].gen,
        };
        let id = ctx.add_io(&value, self.token(key), watch)?;
        let e = &mut self.entries[idx as usize];
        self.free = e.next_free;
        e.value = Some(value);
        e.source = Some(id);
        self.len += 1;
        Ok(key)
    }

    /// Deregister and take out the entry (closing it is up to the caller: dropping it
    /// does). A stale key is refused with [`Error::StaleKey`].
    ///
    /// ```
    /// use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// let mut slab: Slab<std::os::unix::net::UnixStream> = Slab::with_capacity(4);
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let k = slab.insert_with(el.ctx(), a, Watch::read()).unwrap();
    /// let _stream = slab.remove(el.ctx(), k).unwrap();
    /// assert!(matches!(slab.remove(el.ctx(), k), Err(Error::StaleKey)));
    /// ```
    pub fn remove<M: Machine>(&mut self, ctx: &mut Ctx<M>, key: Key) -> Result<T> {
        if !self.contains(key) {
            return Err(Error::StaleKey);
        }
        let e = &mut self.entries[key.index as usize];
        if let Some(id) = e.source.take() {
            ctx.remove(id)?;
        }
        let value = e.value.take().ok_or(Error::StaleKey)?;
        e.gen = (e.gen + 1) & GEN_MASK;
        e.next_free = self.free;
        self.free = key.index;
        self.len -= 1;
        Ok(value)
    }

    /// Change what the entry behind `key` watches (e.g. add `WRITE` while output is
    /// pending, drop it once flushed). Coalesced like [`Ctx::set_interest`].
    ///
    /// ```
    /// use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// let mut slab: Slab<std::os::unix::net::UnixStream> = Slab::with_capacity(4);
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let k = slab.insert(el.ctx(), a).unwrap();
    /// slab.set_interest(el.ctx(), k, Interest::READ | Interest::WRITE).unwrap();
    /// ```
    pub fn set_interest<M: Machine>(
        &self,
        ctx: &mut Ctx<M>,
        key: Key,
        interest: crate::Interest,
    ) -> Result<()> {
        let id = self.source(key).ok_or(Error::StaleKey)?;
        ctx.set_interest(id, interest)
    }

    /// Whether `key` names a live entry.
    ///
    /// ```
    /// let s: evloop_core::Slab<std::fs::File> = evloop_core::Slab::with_capacity(4);
    /// assert!(!s.contains(evloop_core::Key::from_parts(0, 0)));
    /// ```
    #[inline]
    pub fn contains(&self, key: Key) -> bool {
        matches!(self.entries.get(key.index as usize), Some(e) if e.gen == key.gen && e.value.is_some())
    }

    /// The entry, if `key` is live.
    ///
    /// ```
    /// let s: evloop_core::Slab<std::fs::File> = evloop_core::Slab::with_capacity(4);
    /// assert!(s.get(evloop_core::Key::from_parts(0, 0)).is_none());
    /// ```
    #[inline]
    pub fn get(&self, key: Key) -> Option<&T> {
        let e = self.entries.get(key.index as usize)?;
        if e.gen == key.gen {
            e.value.as_ref()
        } else {
            None
        }
    }

    /// The entry mutably, if `key` is live.
    ///
    /// ```
    /// let mut s: evloop_core::Slab<std::fs::File> = evloop_core::Slab::with_capacity(4);
    /// assert!(s.get_mut(evloop_core::Key::from_parts(0, 0)).is_none());
    /// ```
    #[inline]
    pub fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        let e = self.entries.get_mut(key.index as usize)?;
        if e.gen == key.gen {
            e.value.as_mut()
        } else {
            None
        }
    }

    /// The loop's id for the entry's registration (to set a timeout, stop it...).
    ///
    /// ```
    /// let s: evloop_core::Slab<std::fs::File> = evloop_core::Slab::with_capacity(4);
    /// assert!(s.source(evloop_core::Key::from_parts(0, 0)).is_none());
    /// ```
    pub fn source(&self, key: Key) -> Option<SourceId> {
        let e = self.entries.get(key.index as usize)?;
        if e.gen == key.gen && e.value.is_some() {
            e.source
        } else {
            None
        }
    }

    /// The token the entry behind `key` is registered with.
    ///
    /// ```
    /// use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// let mut s: Slab<std::fs::File> = Slab::with_capacity(4);
    /// s.attach(el.ctx(), 7, Watch::read()).unwrap();
    /// let k = Key::from_parts(2, 0);
    /// assert_eq!(s.key_of(s.token(k)), None); // well-formed, but nothing is stored there
    /// assert_eq!(s.token(k).tag(), 7);
    /// ```
    pub const fn token(&self, key: Key) -> Token {
        Token::tagged(self.tag, key.payload())
    }

    /// The live key a token names, if the token carries this slab's tag and its entry is
    /// still the one the token was made for.
    ///
    /// ```
    /// let s: evloop_core::Slab<std::fs::File> = evloop_core::Slab::with_capacity(4);
    /// assert_eq!(s.key_of(evloop_core::Token(0)), None);
    /// ```
    #[inline]
    pub fn key_of(&self, token: Token) -> Option<Key> {
        if token.tag() != self.tag {
            return None;
        }
        let p = token.payload();
        let key = Key {
            index: (p & ((1 << INDEX_BITS) - 1)) as u32,
            gen: (p >> INDEX_BITS) as u32 & GEN_MASK,
        };
        self.contains(key).then_some(key)
    }

    /// Number of entries.
    ///
    /// ```
    /// let s: evloop_core::Slab<std::fs::File> = evloop_core::Slab::with_capacity(4);
    /// assert_eq!(s.len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether empty.
    ///
    /// ```
    /// let s: evloop_core::Slab<std::fs::File> = evloop_core::Slab::with_capacity(4);
    /// assert!(s.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The capacity, fixed when the slab was made.
    ///
    /// ```
    /// let s: evloop_core::Slab<std::fs::File> = evloop_core::Slab::with_capacity(4);
    /// assert_eq!(s.capacity(), 4);
    /// ```
    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    /// The tag its tokens carry: 0 until [`Source::attach`](crate::Source::attach) gives
    /// it one.
    ///
    /// ```
    /// use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// let mut s: Slab<std::fs::File> = Slab::with_capacity(4);
    /// assert_eq!(s.tag(), 0);
    /// s.attach(el.ctx(), 3, Watch::read()).unwrap();
    /// assert_eq!(s.tag(), 3);
    /// ```
    pub const fn tag(&self) -> u16 {
        self.tag
    }

    /// Every live entry with its key.
    ///
    /// ```
    /// let s: evloop_core::Slab<std::fs::File> = evloop_core::Slab::with_capacity(4);
    /// assert_eq!(s.iter().count(), 0);
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = (Key, &T)> {
        self.entries.iter().enumerate().filter_map(|(i, e)| {
            e.value.as_ref().map(|v| {
                (
                    Key {
                        index: i as u32,
                        gen: e.gen,
                    },
                    v,
                )
            })
        })
    }
}

impl<T> Default for Slab<T> {
    /// An empty slab with room for [`Slab::DEFAULT_CAPACITY`] entries.
    fn default() -> Self {
        Slab::with_capacity(Self::DEFAULT_CAPACITY)
    }
}

#[cfg(all(test, unix))]
mod tests {
    // ---- Model test: random operation sequences against a naive model ----
    //
    // There is no pure layer under `Slab` (inserting registers the entry with a loop), so
    // this runs a real `EventLoop` whose machine owns the slab, with one end of a fresh
    // `UnixStream` pair per entry (the other end is dropped, so every entry reads EOF and
    // is ready at each poll). The model is the list of every key ever issued and the live
    // ones with their values. After every step, for every key ever issued (so stale keys
    // too) and a few forged ones: `contains`, `get`, `source`, `key_of(token(key))` and
    // the error of `remove`/`set_interest` agree with the model; `len` and `iter` list
    // exactly the live entries; a new key is never one issued before; a full slab says
    // `SlabFull`. A poll must dispatch each live entry once, except those removed by an
    // earlier handler in the same dispatch round (the machine removes some), and never
    // an event whose token names no live entry.
    //
    // Cases: 3_000 by default (each builds a loop and makes a few sockets), or
    // `PROPTEST_CASES`. Skipped under Miri (no epoll there; far too slow anyway).

    use super::*;
    use crate::{Builder, DefaultBackend, Event, Interest};
    use proptest::prelude::*;
    use proptest::sample::Index;
    use std::collections::HashMap;
    use std::os::fd::{AsFd, BorrowedFd};
    use std::os::unix::net::UnixStream;

    /// proptest's defaults (which read the `PROPTEST_*` variables), except where the
    /// variable is unset: `cases` cases, the XorShift generator (ChaCha, the default,
    /// takes ~40% of a debug build's run time) and at most 30 s of shrinking a failure.
    fn config(cases: u32) -> ProptestConfig {
        let unset = |var: &str| std::env::var_os(var).is_none();
        let mut config = ProptestConfig::default();
        if unset("PROPTEST_CASES") {
            config.cases = cases;
        }
        if unset("PROPTEST_RNG_ALGORITHM") {
            config.rng_algorithm = prop::test_runner::RngAlgorithm::XorShift;
        }
        if unset("PROPTEST_MAX_SHRINK_TIME") {
            config.max_shrink_time = 30_000;
        }
        config
    }

    /// An entry: an id the model knows it by, and a socket to register.
    struct V {
        id: u64,
        sock: UnixStream,
    }

    impl AsFd for V {
        fn as_fd(&self) -> BorrowedFd<'_> {
            self.sock.as_fd()
        }
    }

    struct M {
        slab: Slab<V>,
        /// Keys dispatched by the last poll, in order.
        fired: Vec<Key>,
        /// Tokens dispatched that named no live entry.
        stale: Vec<Token>,
        /// Entries the handler is to remove (picked among the live ones), one per event.
        kills: Vec<Index>,
        /// What the handler removed: key and the entry's id.
        killed: Vec<(Key, u64)>,
    }

    impl Machine for M {
        type Backend = DefaultBackend;
        fn dispatch(&mut self, ctx: &mut Ctx<Self>, ev: Event) {
            match self.slab.key_of(ev.token) {
                Some(key) => self.fired.push(key),
                None => self.stale.push(ev.token),
            }
            if let Some(pick) = self.kills.pop() {
                let live: Vec<Key> = self.slab.iter().map(|(k, _)| k).collect();
                if !live.is_empty() {
                    let key = live[pick.index(live.len())];
                    let v = self.slab.remove(ctx, key).expect("remove a live key");
                    self.killed.push((key, v.id));
                }
            }
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert,
        /// Remove an issued key (live or stale).
        Remove(Index),
        /// Remove a key made up from parts (usually stale or never issued).
        RemoveForged {
            index: u32,
            gen: u32,
        },
        /// Change an entry's interest through an issued key.
        SetInterest(Index, bool),
        /// Give the entry behind an issued key a new id through `get_mut`.
        Relabel(Index),
        /// Poll once without blocking; handlers remove up to `kills.len()` entries.
        Poll {
            kills: Vec<Index>,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            5 => Just(Op::Insert),
            4 => any::<Index>().prop_map(Op::Remove),
            1 => (0u32..10, 0u32..4).prop_map(|(index, gen)| Op::RemoveForged { index, gen }),
            1 => (any::<Index>(), any::<bool>()).prop_map(|(i, w)| Op::SetInterest(i, w)),
            1 => any::<Index>().prop_map(Op::Relabel),
            2 => prop::collection::vec(any::<Index>(), 0..3).prop_map(|kills| Op::Poll { kills }),
        ]
    }

    struct Model {
        capacity: usize,
        issued: Vec<Key>,
        live: HashMap<Key, u64>,
        next_id: u64,
    }

    impl Model {
        fn pick(&self, i: &Index) -> Key {
            if self.issued.is_empty() {
                Key::from_parts(0, 0)
            } else {
                self.issued[i.index(self.issued.len())]
            }
        }
    }

    fn compare(slab: &Slab<V>, m: &Model) -> Result<(), TestCaseError> {
        prop_assert_eq!(slab.capacity(), m.capacity);
        prop_assert_eq!(slab.len(), m.live.len());
        prop_assert_eq!(slab.is_empty(), m.live.is_empty());
        let mut listed: Vec<(Key, u64)> = slab.iter().map(|(k, v)| (k, v.id)).collect();
        let mut want: Vec<(Key, u64)> = m.live.iter().map(|(&k, &id)| (k, id)).collect();
        listed.sort_by_key(|&(k, _)| (k.index(), k.generation()));
        want.sort_by_key(|&(k, _)| (k.index(), k.generation()));
        prop_assert_eq!(listed, want);
        let forged = (0..m.capacity as u32 + 2).map(|i| Key::from_parts(i, 1 << 20));
        for key in m.issued.iter().copied().chain(forged) {
            let id = m.live.get(&key).copied();
            prop_assert_eq!(slab.contains(key), id.is_some(), "contains {:?}", key);
            prop_assert_eq!(slab.get(key).map(|v| v.id), id, "get {:?}", key);
            prop_assert_eq!(slab.source(key).is_some(), id.is_some(), "source {:?}", key);
            prop_assert_eq!(
                slab.key_of(slab.token(key)),
                id.map(|_| key),
                "key_of {:?}",
                key
            );
            let other_tag = Token::tagged(slab.tag() ^ 1, slab.token(key).payload());
            prop_assert_eq!(slab.key_of(other_tag), None);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(config(3_000))]

        #[test]
        #[cfg_attr(miri, ignore)]
        fn model_slab_with_generations(
            capacity in 0usize..=6,
            ops in prop::collection::vec(op(), 0..40),
        ) {
            let machine = M {
                slab: Slab::with_capacity(capacity),
                fired: Vec::new(),
                stale: Vec::new(),
                kills: Vec::new(),
                killed: Vec::new(),
            };
            let mut el = Builder::default().sources(8).timers(8).events(16).build(machine).unwrap();
            let mut m = Model { capacity, issued: Vec::new(), live: HashMap::new(), next_id: 0 };
            for op in ops {
                let (mc, ctx) = el.parts();
                let slab = &mut mc.slab;
                match op {
                    Op::Insert => {
                        let (a, _b) = UnixStream::pair().unwrap();
                        let id = m.next_id;
                        m.next_id += 1;
                        match slab.insert(ctx, V { id, sock: a }) {
                            Ok(key) => {
                                prop_assert!(m.live.len() < capacity, "inserted into a full slab");
                                prop_assert!((key.index() as usize) < capacity);
                                prop_assert!(!m.issued.contains(&key), "key {:?} issued twice", key);
                                m.issued.push(key);
                                m.live.insert(key, id);
                            }
                            Err(Error::SlabFull { capacity: c }) => {
                                prop_assert_eq!(c, capacity);
                                prop_assert_eq!(m.live.len(), capacity, "SlabFull with room left");
                            }
                            Err(e) => prop_assert!(false, "insert: {:?}", e),
                        }
                    }
                    Op::Remove(i) => {
                        let key = m.pick(&i);
                        match (slab.remove(ctx, key), m.live.remove(&key)) {
                            (Ok(v), Some(id)) => prop_assert_eq!(v.id, id),
                            (Err(Error::StaleKey), None) => {}
                            (r, id) => prop_assert!(false, "remove {:?}: {:?} vs model {:?}", key, r.map(|v| v.id), id),
                        }
                    }
                    Op::RemoveForged { index, gen } => {
                        let key = Key::from_parts(index, gen);
                        match (slab.remove(ctx, key), m.live.remove(&key)) {
                            (Ok(v), Some(id)) => prop_assert_eq!(v.id, id),
                            (Err(Error::StaleKey), None) => {}
                            (r, id) => prop_assert!(false, "remove {:?}: {:?} vs model {:?}", key, r.map(|v| v.id), id),
                        }
                    }
                    Op::SetInterest(i, write) => {
                        let key = m.pick(&i);
                        let interest = if write { Interest::READ | Interest::WRITE } else { Interest::READ };
                        match slab.set_interest(ctx, key, interest) {
                            Ok(()) => prop_assert!(m.live.contains_key(&key)),
                            Err(Error::StaleKey) => prop_assert!(!m.live.contains_key(&key)),
                            Err(e) => prop_assert!(false, "set_interest: {:?}", e),
                        }
                    }
                    Op::Relabel(i) => {
                        let key = m.pick(&i);
                        let id = m.next_id;
                        m.next_id += 1;
                        match slab.get_mut(key) {
                            Some(v) => {
                                prop_assert!(m.live.contains_key(&key));
                                v.id = id;
                                m.live.insert(key, id);
                            }
                            None => prop_assert!(!m.live.contains_key(&key)),
                        }
                    }
                    Op::Poll { kills } => {
                        mc.fired.clear();
                        mc.killed.clear();
                        mc.kills = kills;
                        el.poll(Some(std::time::Duration::ZERO)).unwrap();
                        let mc = el.machine_mut();
                        prop_assert!(mc.stale.is_empty(), "dispatched stale tokens {:?}", mc.stale);
                        // Each live entry fires once unless a handler removed it first.
                        let mut expected: Vec<Key> = m.live.keys().copied().collect();
                        let mut removed_before: Vec<Key> = Vec::new();
                        for (n, &key) in mc.fired.iter().enumerate() {
                            prop_assert!(!removed_before.contains(&key), "{:?} fired after its removal", key);
                            prop_assert!(!mc.fired[..n].contains(&key), "{:?} fired twice", key);
                            // The handler for event n removed killed[n] (if any) after it.
                            if let Some(&(k, _)) = mc.killed.get(n) {
                                removed_before.push(k);
                            }
                        }
                        for &(key, id) in &mc.killed {
                            prop_assert_eq!(m.live.remove(&key), Some(id), "killed {:?}", key);
                        }
                        expected.retain(|k| !removed_before.contains(k) || mc.fired.contains(k));
                        let mut fired = mc.fired.clone();
                        fired.sort_by_key(|k| (k.index(), k.generation()));
                        expected.sort_by_key(|k| (k.index(), k.generation()));
                        prop_assert_eq!(fired, expected, "fired vs live entries not removed first");
                    }
                }
                compare(&el.machine().slab, &m)?;
            }
        }
    }
}
