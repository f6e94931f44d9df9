//! Socket plumbing shared by [`Listener`](crate::Listener), [`workers`](crate::workers)
//! and [`BufConn::connect`](crate::buffered::BufConn::connect): every `unsafe` socket
//! call of the crate lives here, once, with the per-OS differences next to each other.
//!
//! | what | Linux, Android | FreeBSD, DragonFly, NetBSD, OpenBSD, illumos | macOS, iOS | Windows |
//! |---|---|---|---|---|
//! | new socket | `socket(SOCK_NONBLOCK \| SOCK_CLOEXEC)` | same | `socket` + `fcntl` | `WSASocketW(WSA_FLAG_NO_HANDLE_INHERIT)` + `FIONBIO` |
//! | accept | `accept4(SOCK_NONBLOCK \| SOCK_CLOEXEC)` | same | `accept` + `fcntl` | `accept` + `FIONBIO` |
//! | no `SIGPIPE` on a socket | (the caller ignores `SIGPIPE`) | same | also `SO_NOSIGPIPE` | (no `SIGPIPE`) |
//! | port sharing ([`PORT_SHARING`]) | `SO_REUSEPORT`, balanced | see [`PortSharing`] | `SO_REUSEPORT`, not balanced | none |
//!
//! One file per system family: `unix.rs` and `windows.rs`, with the same functions. With
//! the `fault-injection` feature (Unix), `accept` may fail first with an injected `EMFILE`
//! or `EAGAIN` (`evloop_backends::fault::before_accept`).

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub(crate) use unix::*;
#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub(crate) use windows::*;

/// How several listening sockets bound to one TCP port share its connections on this
/// system, and therefore how [`workers::SharedPort`](crate::workers::SharedPort) hands a
/// port to several workers.
///
/// | system | option | sharing |
/// |---|---|---|
/// | Linux ≥ 3.9, Android | `SO_REUSEPORT` | [`Balanced`](PortSharing::Balanced): the kernel hashes each new connection to one of the sockets |
/// | FreeBSD ≥ 12 | `SO_REUSEPORT_LB` | [`Balanced`](PortSharing::Balanced) (plain `SO_REUSEPORT` would not balance) |
/// | DragonFly | `SO_REUSEPORT` | [`Balanced`](PortSharing::Balanced) |
/// | macOS, iOS, NetBSD, OpenBSD | `SO_REUSEPORT` | [`Unbalanced`](PortSharing::Unbalanced): the port can be bound again, but one socket gets the connections |
/// | illumos, Solaris, Windows, others | none | [`Unsupported`](PortSharing::Unsupported): a second bind fails with `EADDRINUSE` |
///
/// ```
/// use evloop_core::workers::{PortSharing, PORT_SHARING};
/// # #[cfg(target_os = "linux")]
/// assert_eq!(PORT_SHARING, PortSharing::Balanced);
/// println!("{PORT_SHARING:?}");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortSharing {
    /// Several sockets may bind the port and the kernel spreads new connections across
    /// them.
    Balanced,
    /// Several sockets may bind the port, but the kernel does not spread connections
    /// across them (typically the last one bound gets them all).
    Unbalanced,
    /// Only one socket may bind the port.
    Unsupported,
}

/// This system's [`PortSharing`].
///
/// ```
/// use evloop_core::workers::{PortSharing, PORT_SHARING};
/// let one_socket_per_worker = PORT_SHARING == PortSharing::Balanced;
/// # let _ = one_socket_per_worker;
/// ```
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "dragonfly"
))]
pub const PORT_SHARING: PortSharing = PortSharing::Balanced;

/// This system's [`PortSharing`].
///
/// ```
/// use evloop_core::workers::{PortSharing, PORT_SHARING};
/// let one_socket_per_worker = PORT_SHARING == PortSharing::Balanced;
/// # let _ = one_socket_per_worker;
/// ```
#[cfg(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "tvos",
    target_os = "watchos",
    target_os = "visionos",
    target_os = "netbsd",
    target_os = "openbsd"
))]
pub const PORT_SHARING: PortSharing = PortSharing::Unbalanced;

/// This system's [`PortSharing`].
///
/// ```
/// use evloop_core::workers::{PortSharing, PORT_SHARING};
/// let one_socket_per_worker = PORT_SHARING == PortSharing::Balanced;
/// # let _ = one_socket_per_worker;
/// ```
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
pub const PORT_SHARING: PortSharing = PortSharing::Unsupported;

/// How [`tcp_listener`] sets up its socket.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TcpOptions {
    pub reuse_addr: bool,
    pub reuse_port: bool,
    pub v6_only: Option<bool>,
    pub backlog: i32,
}

/// How an `accept` failed, for [`Listener`](crate::Listener).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AcceptFailure {
    /// Nothing (more) to accept.
    WouldBlock,
    /// The connection went away before it was taken, or a failure of that connection
    /// alone: on to the next.
    Transient,
    /// Out of descriptors or memory (the raw error code).
    Exhausted(i32),
    /// Anything else.
    Other,
}
