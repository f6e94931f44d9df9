//! [`Slab`]: a fixed-capacity collection of sources (connections, say) with
//! generation-checked keys.

use std::os::fd::AsFd;

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
        T: AsFd,
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
        T: AsFd,
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
