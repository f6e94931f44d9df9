//! [`Source`]: what a machine's field must be for the loop to watch it. Generated code
//! (and hand-written machines that like its shape) treat every watched field alike
//! through this trait: `attach` it under a tag in `setup`, and ask it which entry a token
//! names in `dispatch`.

use std::os::fd::AsFd;

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
/// struct Server { listener: TcpListener, conns: Slab<std::net::TcpStream, 64> }
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
/// let el = EventLoop::new(Server { listener, conns: Slab::default() }).unwrap();
/// # drop(el);
/// ```
pub trait Source {
    /// Whether this is a collection, whose events name an entry by [`Key`].
    const COLLECTION: bool;

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

impl<T: AsFd> Source for T {
    const COLLECTION: bool = false;

    fn attach<M: Machine>(&mut self, ctx: &mut Ctx<M>, tag: u16, watch: Watch) -> Result<()> {
        ctx.register(&*self, Token::tagged(tag, 0), watch)
            .map(|_| ())
    }

    #[inline]
    fn entry(&self, _token: Token) -> Option<Key> {
        Some(Key::SINGLE)
    }
}

impl<T: AsFd, const N: usize> Source for Slab<T, N> {
    const COLLECTION: bool = true;

    fn attach<M: Machine>(&mut self, _ctx: &mut Ctx<M>, tag: u16, watch: Watch) -> Result<()> {
        self.bind(tag, watch);
        Ok(())
    }

    #[inline]
    fn entry(&self, token: Token) -> Option<Key> {
        self.key_of(token)
    }
}
