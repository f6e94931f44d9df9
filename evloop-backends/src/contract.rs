//! The one contract every OS mechanism implements.
//!
//! A backend watches file descriptors for readiness and reports `(token, readiness)`
//! pairs. It knows nothing of handlers, timers or signals: the core loop builds those on
//! top. The rules below are what the core relies on; every backend honours them and the
//! conformance suite checks them under each one.
//!
//! # Registration
//!
//! * [`Backend::register`] starts watching `fd` with an [`Interest`] and a 64-bit token
//!   that comes back with every event for it. One registration per fd: registering an fd
//!   that is already registered is an `AlreadyExists` error (the core multiplexes several
//!   sources on one fd itself). A new registration is applied **at once**, so an invalid,
//!   closed, or unsupported fd (a regular file under epoll) is reported by the call itself.
//! * [`Backend::modify`] changes the interest and/or token of a registered fd. Changes are
//!   **coalesced** in a change list and applied by the next [`Backend::wait`] (or
//!   [`Backend::flush`]): an fd whose interest goes read -> none -> read within one
//!   iteration (a watcher stopped and started again) costs no kernel call at all. An
//!   empty interest ([`Interest::NONE`]) disables the fd while keeping it registered.
//! * [`Backend::deregister`] ends the registration **at once**. This is the point after
//!   which the caller may close the fd, so the kernel must forget it now: with epoll a
//!   registration belongs to the open file, not the fd number, and a deferred delete of an
//!   fd that was `dup`ed and closed would leave the old file registered forever (the
//!   reason libevent ships its change list switched off). Deferring only `modify` gets
//!   both: free stop/start pairs, and a closed fd whose number is reused by a new file in
//!   the same iteration ends up registered for the new file.
//! * Between `register` and `deregister` the caller guarantees that `fd` stays open and
//!   names the same file (the core enforces this through ownership of its sources).
//!
//! # Waiting
//!
//! * [`Backend::wait`] applies pending changes, then blocks until an event, the timeout,
//!   or a wake. `None` waits forever; a timeout shorter than the mechanism's resolution
//!   rounds **up** (never to zero, which would spin); one beyond the kernel's range is
//!   clamped (the caller wakes early and waits again). `EINTR` is retried with the time
//!   that remains; it is never returned as an error.
//! * Events land in a fixed-capacity buffer allocated once by [`Backend::new`]; `wait`
//!   returns how many, and [`Backend::event`] decodes the i-th. If more fds are ready than
//!   fit, the rest are reported by the next `wait` (level-triggered fds stay ready), so no
//!   fd is starved. Nothing is allocated per wait.
//! * Readiness is reported as [`Ready`] bits: readable, writable, `READ_CLOSED` (the peer
//!   shut down its writing side: EPOLLRDHUP/POLLRDHUP), `HUP` (both directions closed) and
//!   `ERROR` (EPOLLERR/POLLERR/POLLNVAL), each distinct. `HUP` and `ERROR` are reported even
//!   when not asked for. Data that arrived before a peer closed is still readable: a backend
//!   never drops `READABLE` because `READ_CLOSED` came with it.
//! * Edge-triggered interest ([`Interest::EDGE`]) is native where the kernel has it
//!   ([`Backend::NATIVE_EDGE`]). Elsewhere it is delivered level-triggered: a superset
//!   that is still correct for edge-style code, which drains until `WouldBlock`.
//! * An fd that was closed while registered never makes the loop spin: it is either
//!   dropped silently by the kernel (epoll, kqueue, event ports) or reported once with
//!   `ERROR` and disabled (poll's and /dev/poll's POLLNVAL, select's EBADF).
//!
//! # Where backends differ
//!
//! The rules above hold under every backend; the conformance suite, the backend contract
//! tests and the whole test suite run under each Linux backend, io_uring included
//! (`.ci/run` runs `cargo test --workspace` once per `backend-*` feature). What a mechanism cannot do is
//! a constant of [`Backend`], so code and tests can ask instead of guessing:
//!
//! | difference | constant | backends |
//! |---|---|---|
//! | highest fd that can be watched | [`Backend::MAX_FD`] | `select`: `FD_SETSIZE - 1`; registering a larger fd is an `InvalidInput` error (a server then closes the connection it cannot watch); every other backend: no limit |
//! | edge-triggered delivery | [`Backend::NATIVE_EDGE`] | epoll, kqueue, io_uring (multishot `POLL_ADD`): native; poll, select, event ports, /dev/poll: delivered level-triggered, a superset that is still correct for code that drains until `WouldBlock` |
//! | an fd to embed the loop in another | [`Backend::pollable_fd`] | epoll, kqueue, event ports, io_uring (the ring fd): `Some`; poll, select, /dev/poll: `None` |
//!
//! And, with no constant because code needs no branch for them:
//!
//! * `PEER_CLOSED`: native under epoll (EPOLLRDHUP), io_uring and Linux poll (POLLRDHUP)
//!   and kqueue (EV_EOF); select emulates it for stream sockets watched for `READ` (a one-byte
//!   peek at EOF). Elsewhere a closed peer shows up as readable with EOF, then `HUP`.
//! * A write-only watch hears a hang-up everywhere: select(2) has no hang-up bit, so the
//!   select backend asks `poll(2)` for `POLLHUP`/`POLLERR` when a write-only fd is reported
//!   writable (one extra syscall per such report).
//! * Regular files: epoll refuses them at registration (`EPERM`, reported by the call);
//!   io_uring, poll and select accept them and report them always ready.
//! * `HUP` on a socket watched only for reading: kqueue's read filter cannot tell a half
//!   close from a full one, so there a closed peer shows up as `READABLE` (plus
//!   `READ_CLOSED` if asked for) and `read` returns 0; `HUP` comes with a write watch.
//! * An fd closed while registered is dropped silently by epoll, kqueue and event ports (the
//!   kernel forgets it), and reported once as `ERROR`, then parked, by poll, select and
//!   /dev/poll. io_uring's armed poll request holds the file, so the watch outlives the
//!   fd number until the request next completes; re-arming it then finds the number
//!   closed, which is reported once as `ERROR`, then parked. None of them spins.
//! * `PRIORITY`: io_uring reports `POLLPRI` only when it comes without `POLLIN` (the
//!   wake-up hint it passes on for arriving socket data claims `POLLPRI` every time).
//! * When the kernel refuses the mechanism: only io_uring can be refused on a system that
//!   has it (seccomp profiles, `kernel.io_uring_disabled`, kernels before 5.13);
//!   `Uring::new` then fails with an error that says so, and `UringOrEpoll` falls back
//!   to epoll.
//!
//! # Completion I/O
//!
//! A readiness backend tells the caller when a socket can be read or written, and the
//! caller makes the `read`/`write` calls. A completion backend (io_uring:
//! [`Backend::completion_io`] is `true`) can do a socket's I/O itself, so a request and
//! its reply cost no syscall of their own: the whole iteration's I/O rides on the one
//! `io_uring_enter` that waits. A registration opts in with [`Interest::COMPLETION`]:
//!
//! * `READ | COMPLETION` on a connected stream socket keeps a receive running into the
//!   backend's own buffers; a connection's bytes are reported as `READABLE` and taken
//!   with [`Backend::recv_take`] (end of file and errors come back from it too, after
//!   the bytes). Dropping `READ` stops receiving (what was received stays until taken);
//!   bytes left untaken are reported again by the next wait, as a level-triggered fd is.
//! * `READ | COMPLETION` on a listening socket keeps an accept running; new connections
//!   are reported as `READABLE` and taken with [`Backend::accept_take`].
//! * [`Backend::send`] hands the backend a buffer to write whole; `WRITE` interest arms
//!   nothing in completion mode, and the send's end is reported as `WRITABLE` to a
//!   registration watching `WRITE`. [`Backend::send_done`] gives the buffer back with
//!   the result. The backend owns the buffer while the kernel may read it: a
//!   deregistration with a send in flight cancels the send and keeps the buffer until
//!   the kernel is done with it.
//!
//! A completion-mode registration is checked at once (a closed fd is refused by the
//! call), but its receive or accept is armed by the next wait's enter, with the rest of
//! the iteration's work: until then the caller may still read or accept with syscalls.
//!
//! Readiness backends keep the defaults: `completion_io` is `false`, the bit is ignored,
//! and the calls fail with `Unsupported`. Code that must run on both asks
//! `completion_io()` once and picks its path (as `BufSlab` and `Listener` in the core do).
//!
//! # Waking and forking
//!
//! The cross-thread wake is a [`crate::Waker`], registered like any fd under a token the
//! core reserves. After `fork()`, [`Backend::reinit`] builds fresh kernel objects in the
//! child and re-registers everything that was registered.

use std::io;
#[cfg(unix)]
use std::os::fd::BorrowedFd;
use std::time::Duration;

use crate::Waker;

/// What a backend watches, as the OS names it: a file descriptor on Unix (`RawFd`), a
/// `SOCKET` on Windows (`RawSocket`). Every [`Backend`] call takes one; user code gets it
/// from the std types with `as_raw_fd()` / `as_raw_socket()`.
///
/// ```
/// # #[cfg(unix)] {
/// use std::os::fd::AsRawFd;
/// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
/// let raw: evloop_backends::RawSource = a.as_raw_fd();
/// # let _ = raw; }
/// ```
#[cfg(unix)]
pub type RawSource = std::os::fd::RawFd;
/// What a backend watches, as the OS names it (see the Unix definition).
#[cfg(windows)]
pub type RawSource = std::os::windows::io::RawSocket;

/// An owned [`RawSource`]: `OwnedFd` on Unix, `OwnedSocket` on Windows (what
/// [`Backend::accept_take`] hands over).
///
/// ```
/// # #[cfg(unix)] {
/// let f: evloop_backends::OwnedSource = std::fs::File::open("/dev/null").unwrap().into();
/// # drop(f); }
/// ```
#[cfg(unix)]
pub type OwnedSource = std::os::fd::OwnedFd;
/// An owned [`RawSource`] (see the Unix definition).
#[cfg(windows)]
pub type OwnedSource = std::os::windows::io::OwnedSocket;

/// What [`Backend::recv_take`] copied out: `len` bytes, and whether the peer's end of
/// file comes after them (nothing more will arrive).
///
/// ```
/// use evloop_backends::Received;
/// let r = Received { len: 0, eof: true };
/// assert!(r.eof);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Received {
    /// Bytes copied into the caller's buffer.
    pub len: usize,
    /// The peer closed its side and every byte it sent was taken.
    pub eof: bool,
}

/// The error of a completion call on a backend without completion I/O.
fn no_completion_io(name: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!(
            "the {name} backend has no completion I/O (check `Backend::completion_io()`; \
             io_uring has it)"
        ),
    )
}

/// What a registration asks to be told about. Combine with `|`.
///
/// ```
/// use evloop_backends::Interest;
/// let both = Interest::READ | Interest::WRITE;
/// assert!(both.is_readable() && both.is_writable());
/// assert!(Interest::NONE.is_empty());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Interest(u8);

impl Interest {
    /// Nothing: the fd stays registered but reports nothing (a stopped watcher).
    pub const NONE: Interest = Interest(0);
    /// Readable (or a listening socket has a connection to accept).
    pub const READ: Interest = Interest(1);
    /// Writable.
    pub const WRITE: Interest = Interest(2);
    /// Report the peer closing its writing side as [`Ready::READ_CLOSED`].
    pub const PEER_CLOSED: Interest = Interest(4);
    /// Edge-triggered: report a readiness once per transition (see the module docs).
    pub const EDGE: Interest = Interest(8);
    /// Completion I/O: the backend does this socket's reading itself (see "Completion
    /// I/O" in the module docs). Backends without it ([`Backend::completion_io`] is
    /// `false`) ignore the bit.
    ///
    /// ```
    /// use evloop_backends::Interest;
    /// let i = Interest::READ | Interest::COMPLETION;
    /// assert!(i.is_completion() && i.is_readable() && !Interest::READ.is_completion());
    /// ```
    pub const COMPLETION: Interest = Interest(16);

    /// The raw bits.
    ///
    /// ```
    /// assert_eq!(evloop_backends::Interest::READ.bits(), 1);
    /// ```
    pub const fn bits(self) -> u8 {
        self.0
    }
    /// Build from raw bits (unknown bits are dropped).
    ///
    /// ```
    /// use evloop_backends::Interest;
    /// assert_eq!(Interest::from_bits(3), Interest::READ | Interest::WRITE);
    /// ```
    pub const fn from_bits(bits: u8) -> Interest {
        Interest(bits & 0x1f)
    }
    /// Whether no readiness kind is asked for (`EDGE` alone counts as empty).
    ///
    /// ```
    /// assert!(evloop_backends::Interest::EDGE.is_empty());
    /// ```
    pub const fn is_empty(self) -> bool {
        self.0 & 0x07 == 0
    }
    /// Whether `READ` is set.
    ///
    /// ```
    /// assert!(evloop_backends::Interest::READ.is_readable());
    /// ```
    pub const fn is_readable(self) -> bool {
        self.0 & 1 != 0
    }
    /// Whether `WRITE` is set.
    ///
    /// ```
    /// assert!(!evloop_backends::Interest::READ.is_writable());
    /// ```
    pub const fn is_writable(self) -> bool {
        self.0 & 2 != 0
    }
    /// Whether `PEER_CLOSED` is set.
    ///
    /// ```
    /// use evloop_backends::Interest;
    /// assert!((Interest::READ | Interest::PEER_CLOSED).is_peer_closed());
    /// ```
    pub const fn is_peer_closed(self) -> bool {
        self.0 & 4 != 0
    }
    /// Whether `EDGE` is set.
    ///
    /// ```
    /// use evloop_backends::Interest;
    /// assert!((Interest::READ | Interest::EDGE).is_edge());
    /// ```
    pub const fn is_edge(self) -> bool {
        self.0 & 8 != 0
    }
    /// Whether `COMPLETION` is set.
    ///
    /// ```
    /// use evloop_backends::Interest;
    /// assert!((Interest::READ | Interest::COMPLETION).is_completion());
    /// ```
    pub const fn is_completion(self) -> bool {
        self.0 & 16 != 0
    }
    /// Whether every bit of `other` is set in `self`.
    ///
    /// ```
    /// use evloop_backends::Interest;
    /// assert!((Interest::READ | Interest::WRITE).contains(Interest::WRITE));
    /// ```
    pub const fn contains(self, other: Interest) -> bool {
        self.0 & other.0 == other.0
    }
    /// `self` with the bits of `other` (`|`, usable in a `const`).
    ///
    /// ```
    /// use evloop_backends::Interest;
    /// const RW: Interest = Interest::READ.union(Interest::WRITE);
    /// assert_eq!(RW, Interest::READ | Interest::WRITE);
    /// ```
    pub const fn union(self, other: Interest) -> Interest {
        Interest(self.0 | other.0)
    }
    /// `self` without the bits of `other`.
    ///
    /// ```
    /// use evloop_backends::Interest;
    /// assert_eq!((Interest::READ | Interest::WRITE).remove(Interest::WRITE), Interest::READ);
    /// ```
    pub const fn remove(self, other: Interest) -> Interest {
        Interest(self.0 & !other.0)
    }
}

impl std::ops::BitOr for Interest {
    type Output = Interest;
    fn bitor(self, rhs: Interest) -> Interest {
        Interest(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for Interest {
    fn bitor_assign(&mut self, rhs: Interest) {
        self.0 |= rhs.0;
    }
}

impl std::fmt::Debug for Interest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = [
            (1, "READ"),
            (2, "WRITE"),
            (4, "PEER_CLOSED"),
            (8, "EDGE"),
            (16, "COMPLETION"),
        ];
        write_flags(f, self.0 as u16, &names, "NONE")
    }
}

/// What happened to a source. Backends set the I/O bits; the core adds `TIMEOUT`,
/// `SIGNAL`, `ACTIVATED` and `WAKE`. Several bits can arrive in one dispatch (readable
/// and timed out in the same iteration, say): nothing is ever lost by merging.
///
/// ```
/// use evloop_backends::Ready;
/// let r = Ready::READABLE | Ready::READ_CLOSED;
/// assert!(r.is_readable() && r.is_read_closed() && !r.is_error());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Ready(u16);

impl Ready {
    /// No readiness.
    pub const EMPTY: Ready = Ready(0);
    /// Data (or EOF, or a connection) can be read without blocking.
    pub const READABLE: Ready = Ready(1);
    /// Data can be written without blocking.
    pub const WRITABLE: Ready = Ready(1 << 1);
    /// The peer shut down its writing side (EPOLLRDHUP/POLLRDHUP). Data sent before the
    /// close may still be readable: read until 0 bytes.
    pub const READ_CLOSED: Ready = Ready(1 << 2);
    /// Both directions are closed (EPOLLHUP/POLLHUP), e.g. the other end of a pipe is gone.
    pub const HUP: Ready = Ready(1 << 3);
    /// An error is pending on the fd (EPOLLERR/POLLERR), or the fd is invalid (POLLNVAL,
    /// select's EBADF). Read it with `SO_ERROR` or by doing the I/O.
    pub const ERROR: Ready = Ready(1 << 4);
    /// Urgent/priority data (EPOLLPRI/POLLPRI).
    pub const PRIORITY: Ready = Ready(1 << 5);
    /// The source's timer expired (set by the core).
    pub const TIMEOUT: Ready = Ready(1 << 8);
    /// The watched signal arrived (set by the core; the event's count says how often).
    pub const SIGNAL: Ready = Ready(1 << 9);
    /// The source was activated by hand (set by the core).
    pub const ACTIVATED: Ready = Ready(1 << 10);
    /// The loop was woken from another thread (set by the core).
    pub const WAKE: Ready = Ready(1 << 11);

    /// The I/O bits a backend may set.
    pub const IO_MASK: Ready = Ready(0x3f);

    /// The raw bits.
    ///
    /// ```
    /// assert_eq!(evloop_backends::Ready::READABLE.bits(), 1);
    /// ```
    pub const fn bits(self) -> u16 {
        self.0
    }
    /// Build from raw bits.
    ///
    /// ```
    /// use evloop_backends::Ready;
    /// assert_eq!(Ready::from_bits(1), Ready::READABLE);
    /// ```
    pub const fn from_bits(bits: u16) -> Ready {
        Ready(bits)
    }
    /// No bit set.
    ///
    /// ```
    /// assert!(evloop_backends::Ready::EMPTY.is_empty());
    /// ```
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// Whether every bit of `other` is set.
    ///
    /// ```
    /// use evloop_backends::Ready;
    /// assert!((Ready::READABLE | Ready::TIMEOUT).contains(Ready::TIMEOUT));
    /// ```
    pub const fn contains(self, other: Ready) -> bool {
        self.0 & other.0 == other.0
    }
    /// Whether any bit of `other` is set.
    ///
    /// ```
    /// use evloop_backends::Ready;
    /// assert!(Ready::READABLE.intersects(Ready::READABLE | Ready::WRITABLE));
    /// ```
    pub const fn intersects(self, other: Ready) -> bool {
        self.0 & other.0 != 0
    }
    /// The bits set in both.
    ///
    /// ```
    /// use evloop_backends::Ready;
    /// assert_eq!((Ready::READABLE | Ready::HUP).intersection(Ready::IO_MASK), Ready::READABLE | Ready::HUP);
    /// ```
    pub const fn intersection(self, other: Ready) -> Ready {
        Ready(self.0 & other.0)
    }
    /// `self` without the bits of `other`.
    ///
    /// ```
    /// use evloop_backends::Ready;
    /// assert_eq!((Ready::READABLE | Ready::HUP).remove(Ready::HUP), Ready::READABLE);
    /// ```
    pub const fn remove(self, other: Ready) -> Ready {
        Ready(self.0 & !other.0)
    }
    /// Readable.
    ///
    /// ```
    /// assert!(evloop_backends::Ready::READABLE.is_readable());
    /// ```
    pub const fn is_readable(self) -> bool {
        self.0 & Self::READABLE.0 != 0
    }
    /// Writable.
    ///
    /// ```
    /// assert!(evloop_backends::Ready::WRITABLE.is_writable());
    /// ```
    pub const fn is_writable(self) -> bool {
        self.0 & Self::WRITABLE.0 != 0
    }
    /// The peer closed its writing side.
    ///
    /// ```
    /// assert!(evloop_backends::Ready::READ_CLOSED.is_read_closed());
    /// ```
    pub const fn is_read_closed(self) -> bool {
        self.0 & Self::READ_CLOSED.0 != 0
    }
    /// Both directions closed.
    ///
    /// ```
    /// assert!(evloop_backends::Ready::HUP.is_hup());
    /// ```
    pub const fn is_hup(self) -> bool {
        self.0 & Self::HUP.0 != 0
    }
    /// An error is pending.
    ///
    /// ```
    /// assert!(evloop_backends::Ready::ERROR.is_error());
    /// ```
    pub const fn is_error(self) -> bool {
        self.0 & Self::ERROR.0 != 0
    }
    /// The source's timer expired.
    ///
    /// ```
    /// assert!(evloop_backends::Ready::TIMEOUT.is_timeout());
    /// ```
    pub const fn is_timeout(self) -> bool {
        self.0 & Self::TIMEOUT.0 != 0
    }
    /// The watched signal arrived.
    ///
    /// ```
    /// assert!(evloop_backends::Ready::SIGNAL.is_signal());
    /// ```
    pub const fn is_signal(self) -> bool {
        self.0 & Self::SIGNAL.0 != 0
    }
    /// Activated by hand.
    ///
    /// ```
    /// assert!(evloop_backends::Ready::ACTIVATED.is_activated());
    /// ```
    pub const fn is_activated(self) -> bool {
        self.0 & Self::ACTIVATED.0 != 0
    }
    /// Woken from another thread.
    ///
    /// ```
    /// assert!(evloop_backends::Ready::WAKE.is_wake());
    /// ```
    pub const fn is_wake(self) -> bool {
        self.0 & Self::WAKE.0 != 0
    }
    /// Any I/O readiness (readable, writable, closed, hup, error, priority).
    ///
    /// ```
    /// use evloop_backends::Ready;
    /// assert!(Ready::HUP.is_io() && !Ready::TIMEOUT.is_io());
    /// ```
    pub const fn is_io(self) -> bool {
        self.0 & Self::IO_MASK.0 != 0
    }
}

impl std::ops::BitOr for Ready {
    type Output = Ready;
    fn bitor(self, rhs: Ready) -> Ready {
        Ready(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for Ready {
    fn bitor_assign(&mut self, rhs: Ready) {
        self.0 |= rhs.0;
    }
}

impl std::fmt::Debug for Ready {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = [
            (1, "READABLE"),
            (1 << 1, "WRITABLE"),
            (1 << 2, "READ_CLOSED"),
            (1 << 3, "HUP"),
            (1 << 4, "ERROR"),
            (1 << 5, "PRIORITY"),
            (1 << 8, "TIMEOUT"),
            (1 << 9, "SIGNAL"),
            (1 << 10, "ACTIVATED"),
            (1 << 11, "WAKE"),
        ];
        write_flags(f, self.0, &names, "EMPTY")
    }
}

fn write_flags(
    f: &mut std::fmt::Formatter<'_>,
    bits: u16,
    names: &[(u16, &str)],
    empty: &str,
) -> std::fmt::Result {
    if bits == 0 {
        return f.write_str(empty);
    }
    let mut first = true;
    for &(bit, name) in names {
        if bits & bit != 0 {
            if !first {
                f.write_str(" | ")?;
            }
            f.write_str(name)?;
            first = false;
        }
    }
    Ok(())
}

/// One readiness report from a backend: the registration's raw `u64` token and what is
/// ready. (The loop turns it into the handler-facing `evloop_core::Event`, which adds the
/// source's id and a count; the two names keep the layers apart.)
///
/// ```
/// use evloop_backends::{BackendEvent, Ready};
/// let ev = BackendEvent { token: 7, ready: Ready::READABLE };
/// assert_eq!(ev.token, 7);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackendEvent {
    /// The token given at registration (or by the last `modify`).
    pub token: u64,
    /// What is ready.
    pub ready: Ready,
}

/// An OS readiness mechanism. See the [module docs](self) for the contract.
///
/// ```
/// use evloop_backends::{Backend, DefaultBackend, Interest};
/// use std::os::fd::AsRawFd;
/// use std::os::unix::net::UnixStream;
/// use std::io::Write;
///
/// let mut backend = DefaultBackend::new(64).unwrap();
/// let (a, mut b) = UnixStream::pair().unwrap();
/// backend.register(a.as_raw_fd(), 42, Interest::READ).unwrap();
/// b.write_all(b"x").unwrap();
/// let n = backend.wait(Some(std::time::Duration::from_secs(5))).unwrap();
/// assert_eq!(n, 1);
/// assert_eq!(backend.event(0).token, 42);
/// assert!(backend.event(0).ready.is_readable());
/// backend.deregister(a.as_raw_fd()).unwrap();
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an evloop backend",
    label = "not a backend",
    note = "use `evloop::DefaultBackend` (chosen for the target), or one by name: `evloop::Epoll`, `evloop::Uring` or `evloop::UringOrEpoll` (Linux), `evloop::Kqueue` (macOS, BSDs), `evloop::EventPorts` or `evloop::DevPoll` (illumos, Solaris), `evloop::Poll`, `evloop::Select`"
)]
pub trait Backend: Sized {
    /// A short name: `"epoll"`, `"poll"`, `"select"`.
    ///
    /// ```
    /// use evloop_backends::{Backend, Poll};
    /// assert_eq!(Poll::NAME, "poll");
    /// ```
    const NAME: &'static str;
    /// Whether [`Interest::EDGE`] is delivered edge-triggered by the kernel.
    ///
    /// ```
    /// use evloop_backends::{Backend, Poll};
    /// assert!(!Poll::NATIVE_EDGE); // delivered level-triggered, a safe superset
    /// ```
    const NATIVE_EDGE: bool;
    /// The largest fd number this backend can watch, if it has a limit (select's
    /// `FD_SETSIZE - 1`).
    ///
    /// ```
    /// use evloop_backends::{Backend, Poll, Select};
    /// assert_eq!(Poll::MAX_FD, None);
    /// assert_eq!(Select::MAX_FD, Some(libc::FD_SETSIZE as i32 - 1));
    /// ```
    const MAX_FD: Option<RawSource>;

    /// Create the backend with room for `event_capacity` events per [`wait`](Self::wait)
    /// (at least 1). This is the only allocation of the event buffer.
    ///
    /// ```
    /// use evloop_backends::{Backend, Interest, Poll};
    /// let b = Poll::new(64).unwrap();
    /// assert!(b.is_empty());
    /// ```
    fn new(event_capacity: usize) -> io::Result<Self>;

    /// Start watching `fd`; applied at once (see the module docs).
    ///
    /// ```
    /// use evloop_backends::{Backend, Interest, Poll};
    /// use std::os::fd::AsRawFd;
    /// let mut b = Poll::new(8).unwrap();
    /// let (a, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    /// b.register(a.as_raw_fd(), 7, Interest::READ).unwrap();
    /// assert!(b.register(a.as_raw_fd(), 7, Interest::READ).is_err()); // once per fd
    /// ```
    fn register(&mut self, fd: RawSource, token: u64, interest: Interest) -> io::Result<()>;

    /// Change the interest and token of a registered fd; coalesced until the next wait.
    ///
    /// ```
    /// use evloop_backends::{Backend, Interest, Poll};
    /// use std::os::fd::AsRawFd;
    /// let mut b = Poll::new(8).unwrap();
    /// let (a, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    /// b.register(a.as_raw_fd(), 7, Interest::READ).unwrap();
    /// b.modify(a.as_raw_fd(), 8, Interest::WRITE).unwrap();
    /// assert_eq!(b.wait(None).unwrap(), 1);
    /// assert_eq!(b.event(0).token, 8);
    /// ```
    fn modify(&mut self, fd: RawSource, token: u64, interest: Interest) -> io::Result<()>;

    /// Stop watching `fd`; applied at once, so the fd may be closed right after.
    ///
    /// ```
    /// use evloop_backends::{Backend, Interest, Poll};
    /// use std::os::fd::AsRawFd;
    /// let mut b = Poll::new(8).unwrap();
    /// let (a, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    /// b.register(a.as_raw_fd(), 7, Interest::READ).unwrap();
    /// b.deregister(a.as_raw_fd()).unwrap();
    /// drop(a); // safe to close now
    /// assert!(b.is_empty());
    /// ```
    fn deregister(&mut self, fd: RawSource) -> io::Result<()>;

    /// Apply the pending change list now, without waiting.
    ///
    /// ```
    /// use evloop_backends::{Backend, Interest, Poll};
    /// let mut b = Poll::new(8).unwrap();
    /// b.flush().unwrap();
    /// ```
    fn flush(&mut self) -> io::Result<()>;

    /// Apply pending changes, then wait for events (see the module docs for timeout
    /// rounding, clamping and `EINTR`). Returns the number of events now in the buffer.
    ///
    /// ```
    /// use evloop_backends::{Backend, Interest, Poll};
    /// let mut b = Poll::new(8).unwrap();
    /// let n = b.wait(Some(std::time::Duration::from_millis(1))).unwrap();
    /// assert_eq!(n, 0); // nothing registered: the timeout passed
    /// ```
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<usize>;

    /// The `i`-th event of the last [`wait`](Self::wait) (`i` below its return value).
    ///
    /// ```
    /// use evloop_backends::{Backend, Interest, Poll};
    /// use std::{io::Write, os::fd::AsRawFd};
    /// let mut b = Poll::new(8).unwrap();
    /// let (a, mut peer) = std::os::unix::net::UnixStream::pair().unwrap();
    /// b.register(a.as_raw_fd(), 3, Interest::READ).unwrap();
    /// peer.write_all(b"x").unwrap();
    /// assert_eq!(b.wait(None).unwrap(), 1);
    /// assert!(b.event(0).ready.is_readable());
    /// ```
    fn event(&self, i: usize) -> BackendEvent;

    /// A file descriptor that becomes readable when this backend has events, for
    /// embedding the loop in another one (libev's `ev_embed`, libuv's backend fd).
    /// `None` when the mechanism has no such fd (poll, select).
    ///
    /// ```
    /// use evloop_backends::{Backend, Interest, Poll};
    /// assert!(Poll::new(8).unwrap().pollable_fd().is_none());
    /// ```
    #[cfg(unix)]
    fn pollable_fd(&self) -> Option<BorrowedFd<'_>>;

    /// After `fork()`, in the child: replace kernel objects shared with the parent by
    /// fresh ones and register every fd that was registered, with its current interest.
    ///
    /// ```
    /// use evloop_backends::{Backend, Interest, Poll};
    /// let mut b = Poll::new(8).unwrap();
    /// b.reinit().unwrap(); // poll keeps no kernel object: nothing to renew
    /// ```
    fn reinit(&mut self) -> io::Result<()>;

    /// Number of registered fds.
    ///
    /// ```
    /// use evloop_backends::{Backend, Interest, Poll};
    /// assert_eq!(Poll::new(8).unwrap().len(), 0);
    /// ```
    fn len(&self) -> usize;

    /// Whether this backend does completion I/O (see "Completion I/O" in the module
    /// docs): `true` for io_uring; `false` for readiness backends.
    ///
    /// ```
    /// use evloop_backends::{Backend, Poll};
    /// assert!(!Poll::new(8).unwrap().completion_io());
    /// ```
    #[inline]
    fn completion_io(&self) -> bool {
        false
    }

    /// Take up to `buf.len()` bytes a completion-mode registration of `fd` received.
    /// `Ok` with `len == 0` and `eof == false`: nothing waiting. After the last bytes,
    /// end of file is `eof == true`, and a receive error is returned as the error (each
    /// keeps being reported until the fd is deregistered).
    ///
    /// ```
    /// use evloop_backends::{Backend, Poll};
    /// let mut b = Poll::new(8).unwrap();
    /// let e = b.recv_take(0, &mut [0; 16]).unwrap_err();
    /// assert_eq!(e.kind(), std::io::ErrorKind::Unsupported);
    /// ```
    fn recv_take(&mut self, fd: RawSource, buf: &mut [u8]) -> io::Result<Received> {
        let _ = (fd, buf);
        Err(no_completion_io(Self::NAME))
    }

    /// Write all of `buf` to `fd` (registered), as a request the next wait submits; its
    /// end is reported as `WRITABLE` and collected with [`send_done`](Self::send_done).
    /// One send per fd at a time. Refused (with the buffer handed back) when one is in
    /// flight (`WouldBlock`), `buf` is empty, `fd` is not registered, or the backend has
    /// no completion I/O (`Unsupported`).
    ///
    /// ```
    /// use evloop_backends::{Backend, Poll};
    /// let mut b = Poll::new(8).unwrap();
    /// let (buf, e) = b.send(0, b"hi".to_vec()).unwrap_err();
    /// assert_eq!((buf.len(), e.kind()), (2, std::io::ErrorKind::Unsupported));
    /// ```
    fn send(&mut self, fd: RawSource, buf: Vec<u8>) -> Result<(), (Vec<u8>, io::Error)> {
        let _ = fd;
        Err((buf, no_completion_io(Self::NAME)))
    }

    /// The buffer of `fd`'s finished send (emptied, for reuse) with its result: `Ok`
    /// once every byte was written. `None` while it is in flight or if there is none.
    ///
    /// ```
    /// use evloop_backends::{Backend, Poll};
    /// assert!(Poll::new(8).unwrap().send_done(0).is_none());
    /// ```
    fn send_done(&mut self, fd: RawSource) -> Option<(Vec<u8>, io::Result<()>)> {
        let _ = fd;
        None
    }

    /// The next connection a completion-mode listening socket `fd` accepted (non-blocking
    /// and close-on-exec), or the error an accept met; `None` when there is none waiting.
    ///
    /// ```
    /// use evloop_backends::{Backend, Poll};
    /// assert!(Poll::new(8).unwrap().accept_take(0).is_none());
    /// ```
    fn accept_take(&mut self, fd: RawSource) -> Option<io::Result<OwnedSource>> {
        let _ = fd;
        None
    }

    /// Watch `waker` under `token`: its wakes are reported as `READABLE` under that
    /// token until [`Waker::drain`] (level-triggered, coalesced). On Unix a waker is an
    /// fd and this is [`register`](Self::register) with [`Interest::READ`]; the Windows
    /// backend binds the waker to its completion port instead (a wake is one
    /// `PostQueuedCompletionStatus`). A waker is watched by one backend at a time.
    ///
    /// ```
    /// use evloop_backends::{Backend, DefaultBackend, Waker};
    /// let mut b = DefaultBackend::new(8).unwrap();
    /// let w = Waker::new().unwrap();
    /// b.register_waker(&w, 9).unwrap();
    /// w.wake().unwrap();
    /// assert_eq!(b.wait(None).unwrap(), 1);
    /// assert_eq!(b.event(0).token, 9);
    /// assert!(w.drain());
    /// b.deregister_waker(&w).unwrap();
    /// ```
    #[cfg(unix)]
    fn register_waker(&mut self, waker: &Waker, token: u64) -> io::Result<()> {
        // The fd that becomes readable (a pipe waker's read end; `wake_fd` is the end
        // that is written).
        self.register(
            std::os::fd::AsRawFd::as_raw_fd(waker),
            token,
            Interest::READ,
        )
    }
    /// Watch `waker` under `token` (see the Unix definition).
    #[cfg(windows)]
    fn register_waker(&mut self, waker: &Waker, token: u64) -> io::Result<()>;

    /// Stop watching `waker` (at once, like [`deregister`](Self::deregister)).
    ///
    /// ```
    /// use evloop_backends::{Backend, DefaultBackend, Waker};
    /// let mut b = DefaultBackend::new(8).unwrap();
    /// let w = Waker::new().unwrap();
    /// b.register_waker(&w, 9).unwrap();
    /// b.deregister_waker(&w).unwrap();
    /// assert!(b.is_empty());
    /// ```
    #[cfg(unix)]
    fn deregister_waker(&mut self, waker: &Waker) -> io::Result<()> {
        self.deregister(std::os::fd::AsRawFd::as_raw_fd(waker))
    }
    /// Stop watching `waker` (see the Unix definition).
    #[cfg(windows)]
    fn deregister_waker(&mut self, waker: &Waker) -> io::Result<()>;

    /// Whether no fd is registered.
    ///
    /// ```
    /// use evloop_backends::{Backend, Interest, Poll};
    /// assert!(Poll::new(8).unwrap().is_empty());
    /// ```
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
