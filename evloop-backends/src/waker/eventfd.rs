use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use crate::sys::syscall;

/// A wake fd backed by `eventfd(2)`: a 64-bit counter the kernel sums, so any number of
/// wakes before a drain make one readiness and the write never fills up.
///
/// ```
/// use evloop_backends::Waker;
/// let w = Waker::new().unwrap();
/// w.wake().unwrap();
/// w.wake().unwrap();
/// assert!(w.drain()); // both wakes drained at once
/// assert!(!w.drain());
/// ```
#[derive(Debug)]
pub struct Waker {
    fd: OwnedFd,
}

impl Waker {
    /// Create a non-blocking, close-on-exec wake fd.
    ///
    /// ```
    /// let w = evloop_backends::Waker::new().unwrap();
    /// # drop(w);
    /// ```
    pub fn new() -> io::Result<Waker> {
        let fd = syscall!(eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK))?;
        // SAFETY: eventfd just returned this fd; nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Waker { fd })
    }

    /// Make the fd readable. Safe to call from any thread.
    ///
    /// ```
    /// let w = std::sync::Arc::new(evloop_backends::Waker::new().unwrap());
    /// let w2 = w.clone();
    /// std::thread::spawn(move || w2.wake().unwrap()).join().unwrap();
    /// assert!(w.drain());
    /// ```
    pub fn wake(&self) -> io::Result<()> {
        wake_raw(self.fd.as_raw_fd());
        Ok(())
    }

    /// The fd to hand to [`wake_raw`] for async-signal-safe wakes (the eventfd itself).
    ///
    /// ```
    /// let w = evloop_backends::Waker::new().unwrap();
    /// evloop_backends::wake_raw(w.wake_fd());
    /// assert!(w.drain());
    /// ```
    pub fn wake_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Consume all pending wakes; returns whether there were any.
    ///
    /// ```
    /// let w = evloop_backends::Waker::new().unwrap();
    /// assert!(!w.drain());
    /// ```
    pub fn drain(&self) -> bool {
        let mut buf = 0u64;
        // SAFETY: reads 8 bytes into a valid, writable u64.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), (&mut buf as *mut u64).cast(), 8) };
        n == 8
    }
}

/// Async-signal-safe wake of a raw wake fd (used from signal handlers). Errors are
/// ignored: a full counter or pipe already means "woken".
///
/// ```
/// let w = evloop_backends::Waker::new().unwrap();
/// evloop_backends::wake_raw(w.wake_fd());
/// assert!(w.drain());
/// ```
pub fn wake_raw(fd: RawFd) {
    let one = 1u64;
    // SAFETY: writes 8 bytes from a valid u64; write(2) is async-signal-safe.
    unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
}

impl AsFd for Waker {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Waker {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
