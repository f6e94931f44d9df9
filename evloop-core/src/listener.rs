//! [`Listener`]: a listening socket that accepts in batches and survives running out of
//! file descriptors (libevent's evconnlistener), and its [`ListenerBuilder`].
//!
//! Accepting uses `accept4(SOCK_CLOEXEC | SOCK_NONBLOCK)` until `EAGAIN`, at most
//! [`batch`](ListenerBuilder::batch) connections per readiness so one busy listener
//! cannot starve the loop's other sources.
//!
//! When the process (`EMFILE`) or the system (`ENFILE`) has no descriptor left, a
//! level-triggered listener would be ready again at once and the loop would spin. The
//! listener keeps a reserved descriptor (`/dev/null`, opened when it is built): it
//! closes it, accepts the pending connection and closes that at once (the client sees
//! the connection closed instead of hanging in the backlog), then reopens the reserve.
//! If that is not possible (no reserve, or it could not be reopened), it stops watching
//! the socket and resumes after [`pause`](ListenerBuilder::pause); connections wait in
//! the backlog meanwhile. Either way the condition is counted ([`ListenerStats`]) and
//! reported ([`AcceptReport::error`]).

use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::Duration;

use evloop_backends::{Interest, Ready};

use crate::{Ctx, Key, Machine, Result, Source, SourceId, Token, Watch};

/// `socket(2)` for `addr`'s family, non-blocking and close-on-exec.
pub(crate) fn socket_for(addr: &SocketAddr, ty: libc::c_int) -> io::Result<OwnedFd> {
    let family = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    socket(family, ty)
}

fn socket(family: libc::c_int, ty: libc::c_int) -> io::Result<OwnedFd> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // SAFETY: plain syscall; a non-negative result is a new fd that we own.
        let fd = unsafe { libc::socket(family, ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and is owned by nobody else.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        // SAFETY: plain syscall; a non-negative result is a new fd that we own.
        let fd = unsafe { libc::socket(family, ty, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        set_flags(fd.as_raw_fd())?;
        Ok(fd)
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn set_flags(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on an open fd we own; only its flags change.
    unsafe {
        if libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) < 0 {
            return Err(io::Error::last_os_error());
        }
        let fl = libc::fcntl(fd, libc::F_GETFL);
        if fl < 0 || libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// `addr` as a `sockaddr_storage` and its length.
pub(crate) fn sockaddr_of(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid `sockaddr_storage`.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            // SAFETY: `sockaddr_storage` is large and aligned enough for `sockaddr_in`.
            let sin = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr = libc::in_addr {
                s_addr: u32::from_ne_bytes(a.ip().octets()),
            };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            // SAFETY: `sockaddr_storage` is large and aligned enough for `sockaddr_in6`.
            let sin6 = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_addr = libc::in6_addr {
                s6_addr: a.ip().octets(),
            };
            sin6.sin6_scope_id = a.scope_id();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

fn setsockopt_int(fd: RawFd, level: libc::c_int, name: libc::c_int, v: bool) -> io::Result<()> {
    let v: libc::c_int = v as libc::c_int;
    // SAFETY: `v` is a valid c_int for the duration of the call.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            &v as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn listen(fd: RawFd, backlog: i32) -> io::Result<()> {
    // SAFETY: plain syscall on an open socket.
    if unsafe { libc::listen(fd, backlog) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Options for a [`Listener`]. Defaults: `SO_REUSEADDR` on, `SO_REUSEPORT` off, backlog
/// 1024, the system's IPv6-only default, batches of 64, a reserved fd, a 100 ms pause.
///
/// ```
/// use evloop_core::ListenerBuilder;
/// use std::time::Duration;
/// let l = ListenerBuilder::new()
///     .reuse_port(true)
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
    /// `SO_REUSEPORT` (TCP): several sockets (one per loop, say) share the port and the
    /// kernel spreads connections over them.
    ///
    /// ```
    /// use evloop_core::ListenerBuilder;
    /// let a = ListenerBuilder::new().reuse_port(true).tcp("127.0.0.1:0".parse().unwrap()).unwrap();
    /// let b = ListenerBuilder::new().reuse_port(true).tcp(a.local_addr().unwrap()).unwrap();
    /// assert_eq!(a.local_addr().unwrap(), b.local_addr().unwrap());
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
        let fd = socket_for(&addr, libc::SOCK_STREAM)?;
        let raw = fd.as_raw_fd();
        if self.reuse_addr {
            setsockopt_int(raw, libc::SOL_SOCKET, libc::SO_REUSEADDR, true)?;
        }
        if self.reuse_port {
            setsockopt_int(raw, libc::SOL_SOCKET, libc::SO_REUSEPORT, true)?;
        }
        if let (Some(on), SocketAddr::V6(_)) = (self.v6_only, &addr) {
            setsockopt_int(raw, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, on)?;
        }
        let (storage, len) = sockaddr_of(&addr);
        // SAFETY: `storage` holds a valid sockaddr of `len` bytes.
        let r = unsafe {
            libc::bind(
                raw,
                &storage as *const libc::sockaddr_storage as *const libc::sockaddr,
                len,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        listen(raw, self.backlog)?;
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
    pub fn unix(&self, path: impl AsRef<Path>) -> io::Result<Listener> {
        let l = UnixListener::bind(path)?;
        l.set_nonblocking(true)?;
        listen(l.as_raw_fd(), self.backlog)?; // again, with our backlog
        self.finish(Inner::Unix(l))
    }

    fn finish(&self, inner: Inner) -> io::Result<Listener> {
        let reserve = if self.reserve {
            Some(File::open("/dev/null")?)
        } else {
            None
        };
        Ok(Listener {
            inner,
            reserve,
            use_reserve: self.reserve,
            batch: self.batch,
            pause: self.pause,
            id: None,
            paused: false,
            stats: ListenerStats::default(),
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
                "accept: out of file descriptors ({})",
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
    /// Whether accepting is now paused (for the builder's pause).
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
pub struct Accepted(OwnedFd);

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
    pub fn into_unix(self) -> UnixStream {
        UnixStream::from(self.0)
    }
    /// The fd itself.
    ///
    /// ```no_run
    /// # fn f(a: evloop_core::Accepted) {
    /// let _fd: std::os::fd::OwnedFd = a.into_fd();
    /// # }
    /// ```
    pub fn into_fd(self) -> OwnedFd {
        self.0
    }
}

impl AsFd for Accepted {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

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
    stats: ListenerStats,
}

#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
))]
fn accept_fd(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; null address pointers are allowed.
    let c = unsafe {
        libc::accept4(
            fd,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
        )
    };
    if c < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `c` is a new fd that we own.
    Ok(unsafe { OwnedFd::from_raw_fd(c) })
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
)))]
fn accept_fd(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; null address pointers are allowed.
    let c = unsafe { libc::accept(fd, std::ptr::null_mut(), std::ptr::null_mut()) };
    if c < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `c` is a new fd that we own.
    let c = unsafe { OwnedFd::from_raw_fd(c) };
    set_flags(c.as_raw_fd())?;
    Ok(c)
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
            Inner::Unix(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a Unix listener has no socket address",
            )),
        }
    }

    /// The listening fd.
    ///
    /// ```
    /// use std::os::fd::AsRawFd;
    /// let l = evloop_core::Listener::tcp("127.0.0.1:0".parse().unwrap()).unwrap();
    /// assert!(l.fd().as_raw_fd() >= 0);
    /// ```
    pub fn fd(&self) -> BorrowedFd<'_> {
        match &self.inner {
            Inner::Tcp(l) => l.as_fd(),
            Inner::Unix(l) => l.as_fd(),
        }
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
        if self.paused {
            return report;
        }
        let fd = self.fd().as_raw_fd();
        let mut tries = 0;
        while tries < self.batch {
            tries += 1;
            let e = match accept_fd(fd) {
                Ok(c) => {
                    self.stats.accepted += 1;
                    report.accepted += 1;
                    each(ctx, Accepted(c));
                    continue;
                }
                Err(e) => e,
            };
            match e.raw_os_error() {
                Some(libc::EAGAIN) => break,
                #[allow(unreachable_patterns)] // EWOULDBLOCK == EAGAIN on Linux
                Some(libc::EWOULDBLOCK) => break,
                // The connection went away before we took it, or a transient
                // per-connection failure: on to the next one.
                Some(libc::EINTR | libc::ECONNABORTED | libc::EPROTO | libc::EPERM) => {}
                Some(errno @ (libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)) => {
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
                        Dropped::Failed => {
                            self.pause(ctx);
                            report.paused = true;
                            break;
                        }
                    }
                }
                _ => {
                    report.error = Some(AcceptError::Io(e));
                    self.pause(ctx);
                    report.paused = true;
                    break;
                }
            }
        }
        report
    }

    /// Free the reserved fd, accept one connection with it and close it, take the
    /// reserve back.
    fn drop_one(&mut self, fd: RawFd) -> Dropped {
        let Some(reserve) = self.reserve.take() else {
            return Dropped::Failed;
        };
        drop(reserve);
        let ok = match accept_fd(fd) {
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
            File::open("/dev/null").ok()
        } else {
            None
        };
        ok
    }

    fn pause<M: Machine>(&mut self, ctx: &mut Ctx<M>) {
        let Some(id) = self.id else { return };
        if ctx.set_interest(id, Interest::NONE).is_ok()
            && ctx.set_timeout(id, Some(self.pause)).is_ok()
        {
            self.paused = true;
            self.stats.paused += 1;
        }
    }

    fn resume<M: Machine>(&mut self, ctx: &mut Ctx<M>) {
        let Some(id) = self.id else { return };
        let _ = ctx.set_timeout(id, None);
        let _ = ctx.set_interest(id, Interest::READ);
        self.paused = false;
        if self.use_reserve && self.reserve.is_none() {
            self.reserve = File::open("/dev/null").ok();
        }
    }
}

impl Source for Listener {
    const COLLECTION: bool = false;

    /// Register the listening fd (read interest) under `Token::tagged(tag, 0)`.
    fn attach<M: Machine>(&mut self, ctx: &mut Ctx<M>, tag: u16, watch: Watch) -> Result<()> {
        let mut watch = watch;
        watch.interest = Interest::READ;
        watch.timeout = None;
        watch.oneshot = false;
        let fd = self.fd().as_raw_fd();
        self.id = Some(ctx.register_raw(fd, Token::tagged(tag, 0), watch)?);
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
