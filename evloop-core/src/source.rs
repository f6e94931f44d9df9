//! [`Source`]: what a machine's field must be for the loop to watch it. Generated code
//! (and hand-written machines that like its shape) treat every watched field alike
//! through this trait: `attach` it under a tag in `setup`, and ask it which entry a token
//! names in `dispatch`.

use crate::sys::AsSource;

use evloop_backends::Ready;

use crate::{Ctx, Key, Machine, Result, Slab, Token, Watch};

/// A field the loop can watch: a single fd-backed value (anything `AsFd`: `TcpListener`,
/// `TcpStream`, `UdpSocket`, `UnixListener`, `UnixStream`, `File`, `OwnedFd`, ...) or a
/// collection of them ([`Slab`]).
///
/// ```
/// use evloop_core::*;
/// use std::net::TcpListener;
///
/// struct Server { listener: TcpListener, conns: Slab<std::net::TcpStream> }
/// impl Machine for Server {
///     type Backend = DefaultBackend;
///     fn setup(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
///         self.listener.attach(ctx, 1, Watch::read())?; // registers now
///         self.conns.attach(ctx, 2, Watch::read())?;    // entries register on insert
///         Ok(())
///     }
///     fn dispatch(&mut self, ctx: &mut Ctx<Self>, ev: Event) {
///         match ev.token.tag() {
///             1 => { /* accept */ }
///             2 => if let Some(_key) = self.conns.entry(ev.token) { /* serve */ },
///             _ => {}
///         }
///     }
/// }
/// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
/// let el = EventLoop::new(Server { listener, conns: Slab::with_capacity(64) }).unwrap();
/// # drop(el);
/// ```
pub trait Source {
    /// What kind of source this is: [`kind::Single`] (one registration; its handlers
    /// take no key) or [`kind::Collection`] (entries come and go; its events name one by
    /// [`Key`], and its handlers take that key). `#[event_machine]` reads this to check
    /// each handler's signature, so a collection type of your own gets the same checks
    /// as [`Slab`].
    ///
    /// ```
    /// use evloop_core::{kind::SourceKind, Slab, Source};
    /// assert!(<<Slab<std::net::TcpStream> as Source>::Kind as SourceKind>::COLLECTION);
    /// assert!(!<<std::net::TcpStream as Source>::Kind as SourceKind>::COLLECTION);
    /// ```
    type Kind: kind::SourceKind;

    /// Most registrations this source holds at once: 1 for a single fd, the capacity of
    /// a collection. A machine built by `#[event_machine]` (without `sources = N`) sizes
    /// the loop's source table from this when the loop is built, on top of
    /// [`Builder::DEFAULT_SOURCES`](crate::Builder::DEFAULT_SOURCES).
    ///
    /// ```
    /// use evloop_core::{Slab, Source};
    /// let conns: Slab<std::net::TcpStream> = Slab::with_capacity(2000);
    /// assert_eq!(Source::capacity(&conns), 2000);
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// assert_eq!(Source::capacity(&a), 1);
    /// ```
    fn capacity(&self) -> usize;

    /// Make the loop watch this field under tokens tagged `tag`: a single fd is
    /// registered with `watch` now; a collection remembers tag and watch for the entries
    /// it will [`insert`](Slab::insert).
    fn attach<M: Machine>(&mut self, ctx: &mut Ctx<M>, tag: u16, watch: Watch) -> Result<()>;

    /// Which entry `token` (already known to carry this field's tag) names: the live key
    /// for a collection (`None` if the entry is gone), [`Key::SINGLE`] for a single fd.
    fn entry(&self, token: Token) -> Option<Key>;

    /// Called by the dispatch of the field's events, once `entry` found `key`, before any
    /// handler: a source that does its own I/O (a [`BufSlab`](crate::buffered::BufSlab)
    /// reads into its input buffer, flushes its output, switches interest) does it here
    /// and returns the readiness its handlers are to see (empty: call none). The default
    /// returns `ready` unchanged and costs nothing; `#[event_machine]` does not even call
    /// it for plain fds and `Slab`s.
    ///
    /// ```
    /// use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// let (mut a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let r = a.before_dispatch(el.ctx(), Key::SINGLE, Ready::READABLE);
    /// assert_eq!(r, Ready::READABLE);
    /// ```
    #[inline(always)]
    fn before_dispatch<M: Machine>(&mut self, ctx: &mut Ctx<M>, key: Key, ready: Ready) -> Ready {
        let _ = (ctx, key);
        ready
    }

    /// Called by the dispatch of the field's events after its handlers ran (the entry
    /// may be gone: a handler may have removed it): a buffered source flushes what the
    /// handlers queued and updates its interest. The default does nothing.
    ///
    /// ```
    /// use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// let (mut a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// a.after_dispatch(el.ctx(), Key::SINGLE); // nothing to do for a plain fd
    /// ```
    #[inline(always)]
    fn after_dispatch<M: Machine>(&mut self, ctx: &mut Ctx<M>, key: Key) {
        let _ = (ctx, key);
    }
}

impl<T: AsSource> Source for T {
    type Kind = kind::Single;

    #[inline]
    fn capacity(&self) -> usize {
        1
    }

    fn attach<M: Machine>(&mut self, ctx: &mut Ctx<M>, tag: u16, watch: Watch) -> Result<()> {
        ctx.add_io(&*self, Token::tagged(tag, 0), watch).map(|_| ())
    }

    #[inline]
    fn entry(&self, _token: Token) -> Option<Key> {
        Some(Key::SINGLE)
    }
}

impl<T: AsSource> Source for Slab<T> {
    type Kind = kind::Collection;

    #[inline]
    fn capacity(&self) -> usize {
        Slab::capacity(self)
    }

    fn attach<M: Machine>(&mut self, _ctx: &mut Ctx<M>, tag: u16, watch: Watch) -> Result<()> {
        self.bind(tag, watch);
        Ok(())
    }

    #[inline]
    fn entry(&self, token: Token) -> Option<Key> {
        self.key_of(token)
    }
}

/// The two kinds of [`Source`]: what [`Source::Kind`] names.
pub mod kind {
    mod sealed {
        pub trait Sealed {}
    }

    /// [`Single`] or [`Collection`]; sealed (there are only these two).
    pub trait SourceKind: sealed::Sealed + Copy + Default + 'static {
        /// Whether events name an entry by [`Key`](crate::Key).
        ///
        /// ```
        /// use evloop_core::kind::{Collection, Single, SourceKind};
        /// assert!(Collection::COLLECTION && !Single::COLLECTION);
        /// ```
        const COLLECTION: bool;
    }

    /// One registration (a `TcpListener`, a [`Listener`](crate::Listener), a pipe): its
    /// handlers take no key.
    ///
    /// ```
    /// use evloop_core::{kind, Source};
    /// fn single<S: Source<Kind = kind::Single>>(_: &S) {}
    /// single(&std::os::unix::net::UnixStream::pair().unwrap().0);
    /// ```
    #[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
    pub struct Single;

    /// Entries that come and go (a [`Slab`](crate::Slab), a
    /// [`BufSlab`](crate::buffered::BufSlab)): each event names one by
    /// [`Key`](crate::Key), and the handlers take it.
    ///
    /// ```
    /// use evloop_core::{kind, Slab, Source};
    /// fn collection<S: Source<Kind = kind::Collection>>(_: &S) {}
    /// collection(&Slab::<std::net::TcpStream>::with_capacity(4));
    /// ```
    #[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
    pub struct Collection;

    impl sealed::Sealed for Single {}
    impl sealed::Sealed for Collection {}
    impl SourceKind for Single {
        const COLLECTION: bool = false;
    }
    impl SourceKind for Collection {
        const COLLECTION: bool = true;
    }
}
