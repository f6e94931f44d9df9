//! The Unix socket calls (see `mod.rs`).

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::TcpOptions;

/// The stream socket type, for [`socket_for`].
pub(crate) const STREAM: libc::c_int = libc::SOCK_STREAM;

/// What an `accept` error means (see [`AcceptFailure`](super::AcceptFailure)).
pub(crate) fn accept_failure(e: &io::Error) -> super::AcceptFailure {
    use super::AcceptFailure::*;
    match e.raw_os_error() {
        Some(libc::EAGAIN) => WouldBlock,
        #[allow(unreachable_patterns)] // EWOULDBLOCK == EAGAIN on Linux
        Some(libc::EWOULDBLOCK) => WouldBlock,
        Some(libc::EINTR | libc::ECONNABORTED | libc::EPROTO | libc::EPERM) => Transient,
        Some(errno @ (libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)) => {
            Exhausted(errno)
        }
        _ => Other,
    }
}

/// The descriptor a listener keeps in reserve for running out of them (`/dev/null`).
pub(crate) fn open_reserve() -> io::Result<std::fs::File> {
    std::fs::File::open("/dev/null")
}

/// The socket option that lets several sockets bind one port, balanced where the system
/// can balance (see [`PortSharing`]).
#[cfg(any(target_os = "linux", target_os = "android", target_os = "dragonfly"))]
const REUSE_PORT_OPTION: Option<libc::c_int> = Some(libc::SO_REUSEPORT);
#[cfg(target_os = "freebsd")]
const REUSE_PORT_OPTION: Option<libc::c_int> = Some(libc::SO_REUSEPORT_LB);
#[cfg(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "tvos",
    target_os = "watchos",
    target_os = "visionos",
    target_os = "netbsd",
    target_os = "openbsd"
))]
const REUSE_PORT_OPTION: Option<libc::c_int> = Some(libc::SO_REUSEPORT);
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "macos",
    target_os = "ios",
    target_os = "tvos",
    target_os = "watchos",
    target_os = "visionos",
    target_os = "netbsd",
    target_os = "openbsd"
)))]
const REUSE_PORT_OPTION: Option<libc::c_int> = None;

/// Take ownership of the fd a creating call returned, or its error.
fn own(fd: RawFd) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by a call that creates a new fd; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Where `accept4` and `SOCK_NONBLOCK | SOCK_CLOEXEC` in `socket`'s type exist.
macro_rules! with_atomic_flags {
    ($($item:item)*) => {$(
        #[cfg(any(
            target_os = "linux",
            target_os = "android",
            target_os = "freebsd",
            target_os = "dragonfly",
            target_os = "netbsd",
            target_os = "openbsd",
            target_os = "illumos",
            target_os = "solaris"
        ))]
        $item
    )*};
}

/// Where they do not (Apple's systems): the flags are set with `fcntl` afterwards.
macro_rules! without_atomic_flags {
    ($($item:item)*) => {$(
        #[cfg(not(any(
            target_os = "linux",
            target_os = "android",
            target_os = "freebsd",
            target_os = "dragonfly",
            target_os = "netbsd",
            target_os = "openbsd",
            target_os = "illumos",
            target_os = "solaris"
        )))]
        $item
    )*};
}

with_atomic_flags! {
    /// `socket(2)`, non-blocking and close-on-exec.
    pub(crate) fn socket(family: libc::c_int, ty: libc::c_int) -> io::Result<OwnedFd> {
        // SAFETY: plain syscall; the result is checked and owned by `own`.
        own(unsafe { libc::socket(family, ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) })
    }

    /// Accept one connection, non-blocking and close-on-exec.
    pub(crate) fn accept(fd: RawFd) -> io::Result<OwnedFd> {
        #[cfg(feature = "fault-injection")]
        evloop_backends::fault::before_accept()?;
        // SAFETY: plain syscall; null address pointers are allowed.
        own(unsafe {
            libc::accept4(
                fd,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            )
        })
    }
}

without_atomic_flags! {
    /// `socket(2)`, non-blocking and close-on-exec (and without `SIGPIPE`).
    pub(crate) fn socket(family: libc::c_int, ty: libc::c_int) -> io::Result<OwnedFd> {
        // SAFETY: plain syscall; the result is checked and owned by `own`.
        let fd = own(unsafe { libc::socket(family, ty, 0) })?;
        set_cloexec_nonblock(fd.as_raw_fd())?;
        no_sigpipe(fd.as_raw_fd())?;
        Ok(fd)
    }

    /// Accept one connection, non-blocking and close-on-exec (and without `SIGPIPE`).
    ///
    /// Between `accept` and `fcntl` a `fork` + `exec` in another thread could inherit
    /// the fd: the price of a system without `accept4`.
    pub(crate) fn accept(fd: RawFd) -> io::Result<OwnedFd> {
        #[cfg(feature = "fault-injection")]
        evloop_backends::fault::before_accept()?;
        // SAFETY: plain syscall; null address pointers are allowed.
        let c = own(unsafe { libc::accept(fd, std::ptr::null_mut(), std::ptr::null_mut()) })?;
        set_cloexec_nonblock(c.as_raw_fd())?;
        no_sigpipe(c.as_raw_fd())?;
        Ok(c)
    }

    /// Set close-on-exec and non-blocking on an fd we own.
    fn set_cloexec_nonblock(fd: RawFd) -> io::Result<()> {
        // SAFETY: fcntl on an open fd; only its flags change.
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
}

/// A write to a socket whose peer is gone raises `SIGPIPE` unless the write says
/// `MSG_NOSIGNAL`; Apple's systems have no such flag for `write`/`writev`, but a
/// per-socket option instead. Elsewhere nothing to do: Rust programs start with
/// `SIGPIPE` ignored, so such a write fails with `EPIPE`.
#[cfg(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "tvos",
    target_os = "watchos",
    target_os = "visionos"
))]
fn no_sigpipe(fd: RawFd) -> io::Result<()> {
    set_bool(fd, libc::SOL_SOCKET, libc::SO_NOSIGPIPE, true)
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "illumos",
    target_os = "solaris",
    target_os = "macos",
    target_os = "ios",
    target_os = "tvos",
    target_os = "watchos",
    target_os = "visionos"
)))]
fn no_sigpipe(_fd: RawFd) -> io::Result<()> {
    Ok(())
}

/// `socket(2)` for `addr`'s family, non-blocking and close-on-exec.
pub(crate) fn socket_for(addr: &SocketAddr, ty: libc::c_int) -> io::Result<OwnedFd> {
    let family = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    socket(family, ty)
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

/// Set a boolean (`c_int`) socket option.
pub(crate) fn set_bool(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    on: bool,
) -> io::Result<()> {
    let v = libc::c_int::from(on);
    // SAFETY: the option value points to a live c_int of the length given.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Let other sockets bind this one's port (see [`PortSharing`]); `Unsupported` where
/// the system has no such option.
pub(crate) fn set_reuse_port(fd: RawFd) -> io::Result<()> {
    match REUSE_PORT_OPTION {
        Some(opt) => set_bool(fd, libc::SOL_SOCKET, opt, true),
        None => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this system cannot bind several sockets to one port (no SO_REUSEPORT)",
        )),
    }
}

/// `listen(2)`.
pub(crate) fn listen(fd: RawFd, backlog: i32) -> io::Result<()> {
    // SAFETY: plain syscall on an open socket.
    if unsafe { libc::listen(fd, backlog) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Close the socket behind `fd` but keep the number open: `dup2` a `/dev/null` fd (the
/// `devnull` given) over it. The kernel then refuses new connections to a listening
/// socket and resets the ones waiting in its backlog, while whoever owns the number
/// (an `OwnedFd`, a `TcpListener`) can still close it later without closing someone
/// else's file.
pub(crate) fn close_in_place(fd: RawFd, devnull: RawFd) -> io::Result<()> {
    // SAFETY: dup2 takes two plain fd numbers and touches no memory of ours; `devnull` is
    // an open fd borrowed from the caller for the call, and `fd` is the caller's own
    // open socket, which dup2 closes and replaces atomically (no other thread can be
    // given that number in between).
    if unsafe { libc::dup2(devnull, fd) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A non-blocking, close-on-exec TCP socket bound to `addr` and listening.
pub(crate) fn tcp_listener(addr: &SocketAddr, opts: &TcpOptions) -> io::Result<OwnedFd> {
    let fd = socket_for(addr, libc::SOCK_STREAM)?;
    let raw = fd.as_raw_fd();
    if opts.reuse_addr {
        set_bool(raw, libc::SOL_SOCKET, libc::SO_REUSEADDR, true)?;
    }
    if opts.reuse_port {
        set_reuse_port(raw)?;
    }
    if let (Some(on), SocketAddr::V6(_)) = (opts.v6_only, addr) {
        set_bool(raw, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, on)?;
    }
    let (storage, len) = sockaddr_of(addr);
    // SAFETY: `storage` holds a valid sockaddr of `len` bytes for this socket's family.
    let r = unsafe { libc::bind(raw, (&storage as *const libc::sockaddr_storage).cast(), len) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    listen(raw, opts.backlog)?;
    Ok(fd)
}

/// Start a non-blocking connect of `fd` to `addr`; `EINPROGRESS` is success.
pub(crate) fn connect(fd: RawFd, addr: &SocketAddr) -> io::Result<()> {
    let (storage, len) = sockaddr_of(addr);
    // SAFETY: `storage` holds a valid sockaddr of `len` bytes for `addr`'s family.
    let r = unsafe { libc::connect(fd, (&storage as *const libc::sockaddr_storage).cast(), len) };
    if r != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(e);
        }
    }
    Ok(())
}

/// Switch an fd to non-blocking mode (if it is not already).
pub(crate) fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on an fd we borrow; F_GETFL/F_SETFL touch only its status flags.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    if flags & libc::O_NONBLOCK == 0 {
        // SAFETY: as above.
        if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The pending error of a socket (`SO_ERROR`), as an `Err`; `Ok` if there is none.
pub(crate) fn so_error(fd: RawFd) -> io::Result<()> {
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `err` and `len` are valid for writes of the sizes given.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            &mut err as *mut libc::c_int as *mut libc::c_void,
            &mut len,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    if err != 0 {
        return Err(io::Error::from_raw_os_error(err));
    }
    Ok(())
}

#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn send_file_chunk(
    out: RawFd,
    file: &std::fs::File,
    offset: &mut u64,
    remaining: &mut u64,
) -> io::Result<usize> {
    let mut off = *offset as libc::off_t;
    let count = (*remaining).min(1 << 30) as usize;
    #[cfg(feature = "fault-injection")]
    let count = evloop_backends::fault::before_write(count)?;
    // SAFETY: both fds are open (the stream's and the file's); `off` is a valid off_t.
    let n = unsafe { libc::sendfile(out, file.as_raw_fd(), &mut off, count) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    *offset = off as u64;
    *remaining -= n as u64;
    Ok(n as usize)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn send_file_chunk(
    out: RawFd,
    file: &std::fs::File,
    offset: &mut u64,
    remaining: &mut u64,
) -> io::Result<usize> {
    // No portable sendfile: read a chunk at the offset and write what the socket takes.
    use std::os::unix::fs::FileExt;
    let mut chunk = [0u8; 8192];
    let want = (*remaining).min(chunk.len() as u64) as usize;
    #[cfg(feature = "fault-injection")]
    let want = evloop_backends::fault::before_write(want)?;
    let got = file.read_at(&mut chunk[..want], *offset)?;
    if got == 0 {
        return Ok(0);
    }
    // SAFETY: `chunk[..got]` is initialised and `out` is open.
    let n = unsafe { libc::write(out, chunk.as_ptr() as *const libc::c_void, got) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    *offset += n as u64;
    *remaining -= n as u64;
    Ok(n as usize)
}
