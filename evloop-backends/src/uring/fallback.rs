//! [`UringOrEpoll`]: io_uring where the kernel allows it, epoll where it does not.

use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::time::Duration;

use super::Uring;
use crate::{Backend, BackendEvent, Epoll, Interest};

/// The io_uring backend when the kernel gives us a ring, else epoll: the choice is made
/// at run time, by [`Backend::new`] (and kept by [`Backend::reinit`]).
///
/// io_uring is refused in many real deployments: seccomp profiles (Docker's default,
/// Kubernetes' `RuntimeDefault`) make `io_uring_setup` fail with `EPERM`, the
/// `kernel.io_uring_disabled` sysctl turns it off, older kernels lack it (`ENOSYS`) or the
/// multishot poll this backend needs (before 5.13). [`Uring::new`] reports each of these
/// as an error; this type catches any of them and uses [`Epoll`] instead, remembering why
/// ([`UringOrEpoll::fallback_reason`]). Both honour the same contract, both deliver
/// [`Interest::EDGE`] natively and both have a pollable fd, so code needs no branch.
///
/// [`Backend::NAME`] is `"io_uring or epoll"`; [`UringOrEpoll::active_name`] says which
/// one runs.
///
/// ```
/// use evloop_backends::{Backend, Interest, UringOrEpoll};
/// use std::io::Write;
/// use std::os::fd::AsRawFd;
/// use std::os::unix::net::UnixStream;
/// use std::time::Duration;
///
/// let mut b = UringOrEpoll::new(64).unwrap(); // fails only if epoll fails too
/// match b.fallback_reason() {
///     None => assert_eq!(b.active_name(), "io_uring"),
///     Some(why) => {
///         assert_eq!(b.active_name(), "epoll");
///         eprintln!("using epoll: {why}");
///     }
/// }
/// let (a, mut peer) = UnixStream::pair().unwrap();
/// b.register(a.as_raw_fd(), 1, Interest::READ).unwrap();
/// peer.write_all(b"x").unwrap();
/// assert_eq!(b.wait(Some(Duration::from_secs(5))).unwrap(), 1);
/// assert!(b.event(0).ready.is_readable());
/// ```
#[derive(Debug)]
// One value per loop, made once: keeping the ring inline (not boxed) spares every
// `wait` and `event` a pointer chase; the few hundred bytes epoll leaves unused are moot.
#[allow(clippy::large_enum_variant)]
pub enum UringOrEpoll {
    /// io_uring is in use.
    Uring(Uring),
    /// The kernel refused io_uring; epoll is in use.
    Epoll {
        /// The backend in use.
        epoll: Epoll,
        /// Why io_uring could not be used (the error of [`Uring::new`]).
        reason: io::Error,
    },
}

impl UringOrEpoll {
    /// Use epoll, recording `reason` as why io_uring is not used: what [`Backend::new`]
    /// does when [`Uring::new`] fails. Also for a program that decided by itself (a
    /// configuration switch) not to use io_uring.
    ///
    /// ```
    /// use evloop_backends::{Backend, UringOrEpoll};
    /// let why = std::io::Error::new(std::io::ErrorKind::Other, "disabled in the config");
    /// let b = UringOrEpoll::epoll(64, why).unwrap();
    /// assert_eq!(b.active_name(), "epoll");
    /// assert!(b.fallback_reason().unwrap().to_string().contains("config"));
    /// ```
    pub fn epoll(event_capacity: usize, reason: io::Error) -> io::Result<UringOrEpoll> {
        Ok(UringOrEpoll::Epoll {
            epoll: Epoll::new(event_capacity)?,
            reason,
        })
    }

    /// The [`Backend::NAME`] of the backend in use: `"io_uring"` or `"epoll"`.
    ///
    /// ```
    /// use evloop_backends::{Backend, UringOrEpoll};
    /// let b = UringOrEpoll::new(8).unwrap();
    /// assert!(["io_uring", "epoll"].contains(&b.active_name()));
    /// ```
    pub fn active_name(&self) -> &'static str {
        match self {
            UringOrEpoll::Uring(_) => Uring::NAME,
            UringOrEpoll::Epoll { .. } => Epoll::NAME,
        }
    }

    /// Why io_uring is not in use (`None` while it is).
    ///
    /// ```
    /// use evloop_backends::{Backend, UringOrEpoll};
    /// let b = UringOrEpoll::new(8).unwrap();
    /// assert_eq!(b.fallback_reason().is_none(), b.active_name() == "io_uring");
    /// ```
    pub fn fallback_reason(&self) -> Option<&io::Error> {
        match self {
            UringOrEpoll::Uring(_) => None,
            UringOrEpoll::Epoll { reason, .. } => Some(reason),
        }
    }
}

/// Forward a call to whichever backend is in use.
macro_rules! forward {
    ($self:expr, $b:ident => $call:expr) => {
        match $self {
            UringOrEpoll::Uring($b) => $call,
            UringOrEpoll::Epoll { epoll: $b, .. } => $call,
        }
    };
}

impl Backend for UringOrEpoll {
    const NAME: &'static str = "io_uring or epoll";
    const NATIVE_EDGE: bool = Uring::NATIVE_EDGE && Epoll::NATIVE_EDGE;
    const MAX_FD: Option<RawFd> = None;

    fn new(event_capacity: usize) -> io::Result<Self> {
        match Uring::new(event_capacity) {
            Ok(ring) => Ok(UringOrEpoll::Uring(ring)),
            Err(reason) => UringOrEpoll::epoll(event_capacity, reason),
        }
    }

    fn register(&mut self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        forward!(self, b => b.register(fd, token, interest))
    }

    fn modify(&mut self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        forward!(self, b => b.modify(fd, token, interest))
    }

    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        forward!(self, b => b.deregister(fd))
    }

    fn flush(&mut self) -> io::Result<()> {
        forward!(self, b => b.flush())
    }

    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        forward!(self, b => b.wait(timeout))
    }

    #[inline]
    fn event(&self, i: usize) -> BackendEvent {
        forward!(self, b => b.event(i))
    }

    fn pollable_fd(&self) -> Option<BorrowedFd<'_>> {
        forward!(self, b => b.pollable_fd())
    }

    fn reinit(&mut self) -> io::Result<()> {
        forward!(self, b => b.reinit())
    }

    fn len(&self) -> usize {
        forward!(self, b => b.len())
    }

    #[inline]
    fn completion_io(&self) -> bool {
        forward!(self, b => b.completion_io())
    }

    fn recv_take(&mut self, fd: RawFd, buf: &mut [u8]) -> io::Result<crate::Received> {
        forward!(self, b => b.recv_take(fd, buf))
    }

    fn send(&mut self, fd: RawFd, buf: Vec<u8>) -> Result<(), (Vec<u8>, io::Error)> {
        forward!(self, b => b.send(fd, buf))
    }

    fn send_done(&mut self, fd: RawFd) -> Option<(Vec<u8>, io::Result<()>)> {
        forward!(self, b => b.send_done(fd))
    }

    fn accept_take(&mut self, fd: RawFd) -> Option<io::Result<std::os::fd::OwnedFd>> {
        forward!(self, b => b.accept_take(fd))
    }
}
