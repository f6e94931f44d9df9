//! [`Listener`]: a listening socket that accepts in batches and survives running out of
//! file descriptors (libevent's evconnlistener), and its [`ListenerBuilder`].
//!
//! Accepting uses `accept4(SOCK_CLOEXEC | SOCK_NONBLOCK)` (on Apple's systems, which
//! have no `accept4`, `accept` then `fcntl`, and `SO_NOSIGPIPE`) until `EAGAIN`, at most
//! [`batch`](ListenerBuilder::batch) connections per readiness so one busy listener
//! cannot starve the loop's other sources.
//!
//! When the process (`EMFILE`) or the system (`ENFILE`) has no descriptor left, or the
//! kernel no memory for one more socket (`ENOBUFS`, `ENOMEM`), the connection stays
//! queued: a level-triggered listener would be ready again at once and the loop would
//! spin. The listener keeps a reserved descriptor (`/dev/null`, opened when it is
//! built): it closes it, accepts the pending connection and closes that at once (the
//! client sees the connection closed instead of hanging in the backlog), then reopens
//! the reserve. If that is not possible (no reserve, it could not be reopened, or the
//! accept failed again, as it does out of memory), it stops watching the socket and
//! resumes after [`pause`](ListenerBuilder::pause); connections wait in the backlog
//! meanwhile. Either way the condition is counted ([`ListenerStats`]) and
//! reported ([`AcceptReport::error`]).
//!
//! On a backend with completion I/O (io_uring), the kernel accepts instead: the listener
//! keeps a multishot accept running and [`accept`](Listener::accept) takes the
//! connections it queued (the same batches, errors and fd-exhaustion handling, no
//! `accept4` syscall per connection). [`ListenerBuilder::completion_io`] turns it off.
//!
//! On Windows, accepting is `accept` (the accepted socket is non-blocking, like the
//! listener). Windows has no per-process descriptor limit to reserve against: when it
//! runs out of sockets or buffers (`WSAEMFILE`, `WSAENOBUFS`) the listener pauses, as it
//! does on Unix without a reserve. Unix-domain listeners are Unix-only.

use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
#[cfg(unix)]
use std::os::fd::{AsFd, AsRawFd};
#[cfg(unix)]
use std::os::unix::net::{UnixListener, UnixStream};
#[cfg(windows)]
use std::os::windows::io::AsSocket;
#[cfg(unix)]
use std::path::Path;

use evloop_backends::{OwnedSource, RawSource};
use std::time::Duration;

use evloop_backends::{Interest, Ready};

use crate::socket::{self, AcceptFailure};
use crate::sys::BorrowedSource;
use crate::{Ctx, Error, Key, Machine, Result, Source, SourceId, Token, Watch};

/// Options for a [`Listener`]. Defaults: `SO_REUSEADDR` on, `SO_REUSEPORT` off, backlog
/// 1024, the system's IPv6-only default, batches of 64, a reserved fd, a 100 ms pause.
///
/// ```
/// use evloop_core::ListenerBuilder;
/// use std::time::Duration;
/// let l = ListenerBuilder::new()
///     .reuse_addr(true)
///     .backlog(128)
///     .batch(32)
///     .pause(Duration::from_millis(50))
///     .tcp("127.0.0.1:0".parse().unwrap())
///     .unwrap();
/// assert_ne!(l.local_addr().unwrap().port(), 0);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct ListenerBuilder {
    reuse_addr: bool,
    reuse_port: bool,
    backlog: i32,
    v6_only: Option<bool>,
    batch: usize,
    reserve: bool,
    pause: Duration,
    completion: bool,
}

impl Default for ListenerBuilder {
    fn default() -> Self {
        ListenerBuilder::new()
    }
}

impl ListenerBuilder {
    /// The defaults.
    ///
    /// ```
    /// let b = evloop_core::ListenerBuilder::new();
    /// # let _ = b;
    /// ```
    pub const fn new() -> Self {
        ListenerBuilder {
            reuse_addr: true,
            reuse_port: false,
            backlog: 1024,
            v6_only: None,
            batch: 64,
            reserve: true,
            completion: true,
            pause: Duration::from_millis(100),
        }
    }
    /// `SO_REUSEADDR` (TCP): rebind while old connections linger in `TIME_WAIT`.
    ///
    /// ```
    /// let b = evloop_core::ListenerBuilder::new().reuse_addr(false);
    /// # let _ = b;
    /// ```
    pub const fn reuse_addr(mut self, on: bool) -> Self {
        self.reuse_addr = on;
        self
    }
    /// `SO_REUSEPORT` (TCP): several sockets (one per loop, say) bind the same port.
    /// Whether the kernel then spreads connections across them depends on the system
    /// ([`PortSharing`](crate::workers::PortSharing)): Linux and Android do
    /// (`SO_REUSEPORT`), FreeBSD does (this sets `SO_REUSEPORT_LB` there), DragonFly
    /// does; macOS, iOS, NetBSD and OpenBSD accept the binds but do not balance; illumos
    /// and Solaris have no such option and [`tcp`](Self::tcp) fails with
    /// `ErrorKind::Unsupported`. For one port served by several loops on every system,
    /// use [`workers::SharedPort`](crate::workers::SharedPort).
    ///
    /// ```
    /// use evloop_core::ListenerBuilder;
    /// use evloop_core::workers::{PortSharing, PORT_SHARING};
    /// let a = ListenerBuilder::new().reuse_port(true).tcp("127.0.0.1:0".parse().unwrap());
    /// if PORT_SHARING == PortSharing::Unsupported {
    ///     assert_eq!(a.unwrap_err().kind(), std::io::ErrorKind::Unsupported);
    /// } else {
    ///     let a = a.unwrap();
    ///     let b = ListenerBuilder::new().reuse_port(true).tcp(a.local_addr().unwrap()).unwrap();
    ///     assert_eq!(a.local_addr().unwrap(), b.local_addr().unwrap());
    /// }
    /// ```
    pub const fn reuse_port(mut self, on: bool) -> Self {
        self.reuse_port = on;
        self
    }
    /// The `listen(2)` backlog.
    ///
    /// ```
    /// let b = evloop_core::ListenerBuilder::new().backlog(16);
    /// # let _ = b;
    /// ```
    pub const fn backlog(mut self, n: i32) -> Self {
        self.backlog = n;
        self
    }
    /// `IPV6_V6ONLY` for an IPv6 address: `true` accepts IPv6 only, `false` IPv4-mapped
    /// connections too.
    ///
    /// ```
    /// let b = evloop_core::ListenerBuilder::new().v6_only(true);
    /// # let _ = b;
    /// ```
    pub const fn v6_only(mut self, on: bool) -> Self {
        self.v6_only = Some(on);
        self
    }
    /// Most connections accepted per readiness (at least 1).
    ///
    /// ```
    /// let b = evloop_core::ListenerBuilder::new().batch(8);
    /// # let _ = b;
    /// ```
    pub const fn batch(mut self, n: usize) -> Self {
        self.batch = if n == 0 { 1 } else { n };
        self
    }
    /// Keep a reserved fd for running out of descriptors (default on; off, the listener
    /// only pauses).
    ///
    /// ```
    /// let b = evloop_core::ListenerBuilder::new().reserve_fd(false);
    /// # let _ = b;
    /// ```
    pub const fn reserve_fd(mut self, on: bool) -> Self {
        self.reserve = on;
        self
    }
    /// Let the kernel accept when the loop's backend has completion I/O (io_uring's
    /// multishot accept; default on; readiness backends ignore it).
    ///
    /// ```
    /// let b = evloop_core::ListenerBuilder::new().completion_io(false);
    /// # let _ = b;
    /// ```
    pub const fn completion_io(mut self, on: bool) -> Self {
        self.completion = on;
        self
    }
    /// How long accepting pauses when out of descriptors without a usable reserve.
    ///
    /// ```
    /// let b = evloop_core::ListenerBuilder::new().pause(std::time::Duration::from_millis(20));
    /// # let _ = b;
    /// ```
    pub const fn pause(mut self, d: Duration) -> Self {
        self.pause = d;
        self
    }

    /// A TCP listener bound to `addr`.
    ///
    /// ```
    /// let l = evloop_core::ListenerBuilder::new().tcp("127.0.0.1:0".parse().unwrap()).unwrap();
    /// assert!(l.local_addr().unwrap().ip().is_loopback());
    /// ```
    pub fn tcp(&self, addr: SocketAddr) -> io::Result<Listener> {
        let fd = socket::tcp_listener(
            &addr,
            &socket::TcpOptions {
                reuse_addr: self.reuse_addr,
                reuse_port: self.reuse_port,
                v6_only: self.v6_only,
                backlog: self.backlog,
            },
        )?;
        self.finish(Inner::Tcp(TcpListener::from(fd)))
    }

    /// A Unix-domain stream listener at `path` (which must not exist).
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("evloop-doc-{}.sock", std::process::id()));
    /// let l = evloop_core::ListenerBuilder::new().unix(&path).unwrap();
    /// assert!(l.local_addr().is_err()); // not TCP
    /// std::fs::remove_file(&path).unwrap();
    /// ```
    #[cfg(unix)]
    pub fn unix(&self, path: impl AsRef<Path>) -> io::Result<Listener> {
        let l = UnixListener::bind(path)?;
        l.set_nonblocking(true)?;
        socket::listen(l.as_raw_fd(), self.backlog)?; // again, with our backlog
        self.finish(Inner::Unix(l))
    }

    /// A listener around a TCP socket already bound and listening (from
    /// [`workers::SharedPort`](crate::workers::SharedPort), socket activation, or
    /// `TcpListener::bind`), made non-blocking. The socket options and the backlog are
    /// the socket's own; `batch`, `reserve_fd` and `pause` apply.
    ///
    /// ```
    /// let std = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let addr = std.local_addr().unwrap();
    /// let l = evloop_core::ListenerBuilder::new().batch(16).wrap_tcp(std).unwrap();
    /// assert_eq!(l.local_addr().unwrap(), addr);
    /// ```
    pub fn wrap_tcp(&self, listener: TcpListener) -> io::Result<Listener> {
        listener.set_nonblocking(true)?;
        self.finish(Inner::Tcp(listener))
    }

    /// A listener around a Unix-domain socket already bound and listening, made
    /// non-blocking (see [`wrap_tcp`](Self::wrap_tcp)).
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("evloop-doc-from-{}.sock", std::process::id()));
    /// let std = std::os::unix::net::UnixListener::bind(&path).unwrap();
    /// let l = evloop_core::ListenerBuilder::new().wrap_unix(std).unwrap();
    /// assert!(l.local_addr().is_err()); // not TCP
    /// std::fs::remove_file(&path).unwrap();
    /// ```
    #[cfg(unix)]
    pub fn wrap_unix(&self, listener: UnixListener) -> io::Result<Listener> {
        listener.set_nonblocking(true)?;
        self.finish(Inner::Unix(listener))
    }

    fn finish(&self, inner: Inner) -> io::Result<Listener> {
        // Windows has no descriptor limit a reserve could get around.
        let use_reserve = self.reserve && cfg!(unix);
        let reserve = if use_reserve {
            Some(socket::open_reserve()?)
        } else {
            None
        };
        Ok(Listener {
            inner,
            reserve,
            use_reserve,
            batch: self.batch,
            pause: self.pause,
            id: None,
            paused: false,
            closed: false,
            stats: ListenerStats::default(),
            allow_completion: self.completion,
            completion: false,
        })
    }
}

enum Dropped {
    One,
    NothingPending,
    Failed,
}

#[derive(Debug)]
enum Inner {
    Tcp(TcpListener),
    #[cfg(unix)]
    Unix(UnixListener),
}

/// Counters of a [`Listener`].
///
/// ```
/// let l = evloop_core::ListenerBuilder::new().tcp("127.0.0.1:0".parse().unwrap()).unwrap();
/// assert_eq!(l.stats(), evloop_core::ListenerStats::default());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListenerStats {
    /// Connections accepted and handed over.
    pub accepted: u64,
    /// Times `accept` failed with `EMFILE`/`ENFILE` (or `ENOBUFS`/`ENOMEM`).
    pub exhausted: u64,
    /// Connections accepted with the reserved fd and closed at once.
    pub dropped: u64,
    /// Times accepting was paused.
    pub paused: u64,
}

/// Why a batch of accepts stopped early.
///
/// ```
/// use evloop_core::AcceptError;
/// let e = AcceptError::FdLimit { errno: libc::EMFILE };
/// assert!(e.to_string().contains("descriptors"));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum AcceptError {
    /// Out of file descriptors (`EMFILE`, `ENFILE`) or kernel memory (`ENOBUFS`,
    /// `ENOMEM`): pending connections were dropped with the reserved fd, or accepting
    /// paused (see [`AcceptReport`]).
    FdLimit {
        /// The errno.
        errno: i32,
    },
    /// Another error; accepting paused.
    Io(io::Error),
}

impl std::fmt::Display for AcceptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AcceptError::FdLimit { errno } => write!(
                f,
                "accept: out of {} ({})",
                match *errno {
                    libc::ENOBUFS | libc::ENOMEM => "kernel memory",
                    _ => "file descriptors",
                },
                io::Error::from_raw_os_error(*errno)
            ),
            AcceptError::Io(e) => write!(f, "accept: {e}"),
        }
    }
}

impl std::error::Error for AcceptError {}

/// What one [`Listener::accept`] call did.
///
/// ```
/// let r = evloop_core::AcceptReport::default();
/// assert_eq!((r.accepted, r.dropped, r.paused), (0, 0, false));
/// ```
#[derive(Debug, Default)]
pub struct AcceptReport {
    /// Connections handed to the callback.
    pub accepted: usize,
    /// Connections closed at once for lack of descriptors.
    pub dropped: usize,
    /// Whether accepting is now paused (for the builder's pause). Never for a listener
    /// that was not [`attach`](Source::attach)ed: there is no registration to stop.
    pub paused: bool,
    /// What went wrong, if anything.
    pub error: Option<AcceptError>,
}

/// A connection just accepted: non-blocking and close-on-exec. Turn it into the stream
/// type of its listener.
///
/// ```no_run
/// # fn f(a: evloop_core::Accepted) {
/// let stream: std::net::TcpStream = a.into_tcp();
/// # }
/// ```
#[derive(Debug)]
pub struct Accepted(OwnedSource);

impl Accepted {
    /// As a TCP stream (from a TCP listener).
    ///
    /// ```no_run
    /// # fn f(a: evloop_core::Accepted) {
    /// let _ = a.into_tcp().set_nodelay(true);
    /// # }
    /// ```
    pub fn into_tcp(self) -> TcpStream {
        TcpStream::from(self.0)
    }
    /// As a Unix stream (from a Unix listener).
    ///
    /// ```no_run
    /// # fn f(a: evloop_core::Accepted) {
    /// let _s: std::os::unix::net::UnixStream = a.into_unix();
    /// # }
    /// ```
    #[cfg(unix)]
    pub fn into_unix(self) -> UnixStream {
        UnixStream::from(self.0)
    }
    /// The fd itself (the socket, on Windows).
    ///
    /// ```no_run
    /// # fn f(a: evloop_core::Accepted) {
    /// let _fd: evloop_core::OwnedSource = a.into_fd();
    /// # }
    /// ```
    pub fn into_fd(self) -> OwnedSource {
        self.0
    }
}

crate::impl_as_source!(Accepted => 0);

/// A listening socket as a loop source (libevent's evconnlistener): a field of an
/// `#[event_machine]` whose `#[on_read]` handler calls [`accept`](Self::accept). Built
/// by a [`ListenerBuilder`].
///
/// It is a [`Source`] of its own (not an `AsFd` type), because it resumes itself after a
/// pause: a by-hand machine [`attach`](Source::attach)es it and passes its events
/// through [`before_dispatch`](Source::before_dispatch) before accepting.
///
/// With `#[event_machine]` it is a field whose `#[on_read]` handler calls `accept` (see
/// the book's "Listeners" chapter). By hand:
///
/// ```
/// use evloop_core::*;
/// use std::net::TcpStream;
///
/// struct Server { listener: Listener, conns: Vec<TcpStream> }
/// const LISTENER: u16 = 1;
///
/// impl Machine for Server {
///     type Backend = DefaultBackend;
///     fn setup(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
///         self.listener.attach(ctx, LISTENER, Watch::read())
///     }
///     fn dispatch(&mut self, ctx: &mut Ctx<Self>, ev: Event) {
///         if ev.token.tag() != LISTENER { return }
///         // Resumes the listener after a pause (reported as readable).
///         let ready = self.listener.before_dispatch(ctx, Key::SINGLE, ev.ready);
///         if ready.is_readable() {
///             let conns = &mut self.conns;
///             self.listener.accept(ctx, |_, conn| conns.push(conn.into_tcp()));
///         }
///         if self.conns.len() == 2 { ctx.exit(); }
///     }
/// }
///
/// let listener = ListenerBuilder::new().tcp("127.0.0.1:0".parse().unwrap()).unwrap();
/// let addr = listener.local_addr().unwrap();
/// let mut el = EventLoop::new(Server { listener, conns: Vec::new() }).unwrap();
/// let _c1 = TcpStream::connect(addr).unwrap();
/// let _c2 = TcpStream::connect(addr).unwrap();
/// el.run().unwrap();
/// assert_eq!(el.machine().listener.stats().accepted, 2);
/// ```
#[derive(Debug)]
pub struct Listener {
    inner: Inner,
    reserve: Option<File>,
    use_reserve: bool,
    batch: usize,
    pause: Duration,
    id: Option<SourceId>,
    paused: bool,
    closed: bool,
    stats: ListenerStats,
    allow_completion: bool,
    /// Attached to a loop whose backend accepts for us.
    completion: bool,
}

impl Listener {
    /// A TCP listener on `addr` with the default options.
    ///
    /// ```
    /// let l = evloop_core::Listener::tcp("127.0.0.1:0".parse().unwrap()).unwrap();
    /// # drop(l);
    /// ```
    pub fn tcp(addr: SocketAddr) -> io::Result<Listener> {
        ListenerBuilder::new().tcp(addr)
    }

    /// The TCP address it listens on (an error for a Unix listener).
    ///
    /// ```
    /// let l = evloop_core::Listener::tcp("127.0.0.1:0".parse().unwrap()).unwrap();
    /// assert_ne!(l.local_addr().unwrap().port(), 0);
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match &self.inner {
            Inner::Tcp(l) => l.local_addr(),
            #[cfg(unix)]
            Inner::Unix(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a Unix listener has no socket address",
            )),
        }
    }

    /// The listening fd (the socket, on Windows).
    ///
    /// ```
    /// # #[cfg(unix)] {
    /// use std::os::fd::AsRawFd;
    /// let l = evloop_core::Listener::tcp("127.0.0.1:0".parse().unwrap()).unwrap();
    /// assert!(l.fd().as_raw_fd() >= 0);
    /// # }
    /// ```
    pub fn fd(&self) -> BorrowedSource<'_> {
        match &self.inner {
            #[cfg(unix)]
            Inner::Tcp(l) => l.as_fd(),
            #[cfg(windows)]
            Inner::Tcp(l) => l.as_socket(),
            #[cfg(unix)]
            Inner::Unix(l) => l.as_fd(),
        }
    }

    fn raw(&self) -> RawSource {
        crate::sys::raw_source(&self.fd())
    }

    /// Its counters.
    ///
    /// ```
    /// let l = evloop_core::Listener::tcp("127.0.0.1:0".parse().unwrap()).unwrap();
    /// assert_eq!(l.stats().accepted, 0);
    /// ```
    pub fn stats(&self) -> ListenerStats {
        self.stats
    }

    /// Stop listening for good (a server draining on `SIGTERM`): the listener leaves the
    /// loop and its socket is closed, so the kernel refuses new connections and resets
    /// the ones still waiting in the backlog, instead of completing handshakes nobody
    /// will answer. Connections already accepted are not touched. The fd number stays
    /// open (on `/dev/null`; on Windows the socket is swapped for one that is neither
    /// bound nor listening) until the `Listener` is dropped; `accept` then takes
    /// nothing and `attach` is refused. Calling it twice is harmless.
    ///
    /// ```
    /// use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// let mut l = Listener::tcp("127.0.0.1:0".parse().unwrap()).unwrap();
    /// let addr = l.local_addr().unwrap();
    /// l.attach(el.ctx(), 1, Watch::read()).unwrap();
    /// l.close(el.ctx()).unwrap();
    /// assert!(l.is_closed());
    /// let refused = std::net::TcpStream::connect(addr).unwrap_err();
    /// assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    /// ```
    pub fn close<M: Machine>(&mut self, ctx: &mut Ctx<M>) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        if let Some(id) = self.id.take() {
            match ctx.remove(id) {
                Ok(()) | Err(Error::StaleSource) => {}
                Err(e) => return Err(e),
            }
        }
        self.close_socket()?;
        self.closed = true;
        self.paused = false;
        Ok(())
    }

    /// Close the listening socket so new connections are refused, keeping `fd()`
    /// valid: on Unix the number is kept open on `/dev/null` (`dup2`, atomically), on
    /// Windows the socket is swapped for a fresh one that is neither bound nor listening.
    #[cfg(unix)]
    fn close_socket(&mut self) -> io::Result<()> {
        // The reserve fd is /dev/null already; without one, open it now.
        let opened;
        let devnull = match &self.reserve {
            Some(f) => f.as_raw_fd(),
            None => {
                opened = socket::open_reserve()?;
                opened.as_raw_fd()
            }
        };
        socket::close_in_place(self.raw(), devnull)
    }

    /// See the Unix definition.
    #[cfg(windows)]
    fn close_socket(&mut self) -> io::Result<()> {
        let addr = self.local_addr()?;
        let fresh = socket::socket_for(&addr, socket::STREAM)?;
        self.inner = Inner::Tcp(TcpListener::from(fresh));
        Ok(())
    }

    /// Whether [`close`](Self::close) was called.
    ///
    /// ```
    /// let l = evloop_core::Listener::tcp("127.0.0.1:0".parse().unwrap()).unwrap();
    /// assert!(!l.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Whether accepting is paused (out of descriptors, waiting to retry).
    ///
    /// ```
    /// let l = evloop_core::Listener::tcp("127.0.0.1:0".parse().unwrap()).unwrap();
    /// assert!(!l.is_paused());
    /// ```
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Accept pending connections until `EAGAIN` or the batch size, handing each to
    /// `each`. Out of descriptors, it drops connections with the reserved fd or pauses
    /// (see the [module](self) docs); the report says what happened.
    ///
    /// ```
    /// use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// let mut l = Listener::tcp("127.0.0.1:0".parse().unwrap()).unwrap();
    /// l.attach(el.ctx(), 1, Watch::read()).unwrap();
    /// let _c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    /// let mut got = Vec::new();
    /// let report = l.accept(el.ctx(), |_, conn| got.push(conn.into_tcp()));
    /// assert_eq!((report.accepted, got.len()), (1, 1));
    /// ```
    pub fn accept<M: Machine>(
        &mut self,
        ctx: &mut Ctx<M>,
        mut each: impl FnMut(&mut Ctx<M>, Accepted),
    ) -> AcceptReport {
        let mut report = AcceptReport::default();
        if self.paused || self.closed {
            return report;
        }
        let fd = self.raw();
        let mut tries = 0;
        // Completion mode: take what the kernel accepted. Called with nothing queued (not
        // on a readiness the kernel's accept reported: by hand, or after a pause), it
        // accepts with syscalls instead, so `accept` always takes what is pending.
        let mut from_kernel = self.completion;
        while tries < self.batch {
            tries += 1;
            let next = match self.id.filter(|_| from_kernel) {
                Some(id) => match ctx.accept_take(id) {
                    Some(r) => r,
                    None if tries == 1 => {
                        from_kernel = false;
                        socket::accept(fd)
                    }
                    None => break, // nothing more queued by the kernel
                },
                None => socket::accept(fd),
            };
            let e = match next {
                Ok(c) => {
                    self.stats.accepted += 1;
                    report.accepted += 1;
                    each(ctx, Accepted(c));
                    continue;
                }
                Err(e) => e,
            };
            match socket::accept_failure(&e) {
                AcceptFailure::WouldBlock => break,
                // The connection went away before we took it, or a transient
                // per-connection failure: on to the next one.
                AcceptFailure::Transient => {}
                AcceptFailure::Exhausted(errno) => {
                    self.stats.exhausted += 1;
                    report.error = Some(AcceptError::FdLimit { errno });
                    match self.drop_one(fd) {
                        Dropped::One => {
                            self.stats.dropped += 1;
                            report.dropped += 1;
                        }
                        // Linux finds a free fd before looking at the queue: EMFILE
                        // with nothing pending. Nothing to do until the next one.
                        Dropped::NothingPending => break,
                        // No reserve, or out of memory rather than descriptors.
                        Dropped::Failed => {
                            report.paused = self.pause(ctx);
                            break;
                        }
                    }
                }
                AcceptFailure::Other => {
                    report.error = Some(AcceptError::Io(e));
                    report.paused = self.pause(ctx);
                    break;
                }
            }
        }
        report
    }

    /// Free the reserved fd, accept one connection with it and close it, take the
    /// reserve back.
    fn drop_one(&mut self, fd: RawSource) -> Dropped {
        let Some(reserve) = self.reserve.take() else {
            return Dropped::Failed;
        };
        drop(reserve);
        let ok = match socket::accept(fd) {
            Ok(c) => {
                drop(c); // the client sees the connection closed, not a hang
                Dropped::One
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Dropped::NothingPending,
            Err(_) => Dropped::Failed,
        };
        // If another thread took the freed number meanwhile this fails; then the next
        // exhaustion pauses instead.
        self.reserve = if self.use_reserve {
            socket::open_reserve().ok()
        } else {
            None
        };
        ok
    }

    /// Stop watching for the builder's pause; whether it did (not without a
    /// registration made by [`attach`](Source::attach)).
    fn pause<M: Machine>(&mut self, ctx: &mut Ctx<M>) -> bool {
        let Some(id) = self.id else { return false };
        if ctx.set_interest(id, self.interest(Interest::NONE)).is_err() {
            return false;
        }
        if ctx.set_idle_timeout(id, Some(self.pause)).is_err() {
            // No timer to come back with (the loop's timers are all in use): keep
            // watching rather than stop accepting for good.
            let _ = ctx.set_interest(id, self.interest(Interest::READ));
            return false;
        }
        self.paused = true;
        self.stats.paused += 1;
        true
    }

    /// `i`, with `COMPLETION` when the kernel accepts for us.
    fn interest(&self, i: Interest) -> Interest {
        if self.completion {
            i | Interest::COMPLETION
        } else {
            i
        }
    }

    fn resume<M: Machine>(&mut self, ctx: &mut Ctx<M>) {
        let Some(id) = self.id else { return };
        let _ = ctx.set_idle_timeout(id, None);
        let _ = ctx.set_interest(id, self.interest(Interest::READ));
        self.paused = false;
        if self.use_reserve && self.reserve.is_none() {
            self.reserve = socket::open_reserve().ok();
        }
    }
}

impl Source for Listener {
    type Kind = crate::kind::Single;

    #[inline]
    fn capacity(&self) -> usize {
        1
    }

    /// Register the listening fd (read interest) under `Token::tagged(tag, 0)`.
    fn attach<M: Machine>(&mut self, ctx: &mut Ctx<M>, tag: u16, watch: Watch) -> Result<()> {
        if self.closed {
            return Err(Error::Io(io::Error::new(
                io::ErrorKind::NotConnected,
                "the listener was closed",
            )));
        }
        self.completion = self.allow_completion && ctx.completion_io();
        let mut watch = watch;
        watch.interest = self.interest(Interest::READ);
        watch.timeout = None;
        watch.oneshot = false;
        self.id = Some(ctx.add_io_raw(self.raw(), Token::tagged(tag, 0), watch)?);
        Ok(())
    }

    #[inline]
    fn entry(&self, _token: Token) -> Option<Key> {
        Some(Key::SINGLE)
    }

    /// The end of a pause arrives as `TIMEOUT`: resume watching and report `READABLE`,
    /// so the accept handler runs and tries again.
    fn before_dispatch<M: Machine>(&mut self, ctx: &mut Ctx<M>, _key: Key, ready: Ready) -> Ready {
        if self.paused && ready.is_timeout() {
            self.resume(ctx);
            return ready.remove(Ready::TIMEOUT) | Ready::READABLE;
        }
        ready
    }
}
