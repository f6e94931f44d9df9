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
        // SAFETY: eventfd takes an initial count and flags (both valid here) and touches no
        // memory of ours.
        let fd = unsafe { syscall!(eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK)) }?;
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
        // SAFETY: `self.fd` is this waker's own eventfd, open for as long as `self` is
        // borrowed.
        unsafe { wake_raw(self.fd.as_raw_fd()) };
        Ok(())
    }

    /// The fd to hand to [`wake_raw`] for async-signal-safe wakes (the eventfd itself).
    ///
    /// ```
    /// let w = evloop_backends::Waker::new().unwrap();
    /// // SAFETY: `w` is alive (its fd open) for the whole call.
    /// unsafe { evloop_backends::wake_raw(w.wake_fd()) };
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

/// Async-signal-safe wake of a raw wake fd (used from signal handlers): one `write(2)`
/// of a 64-bit 1, no lock, no allocation. Errors are ignored: a full counter already
/// means "woken".
///
/// # Safety
///
/// `fd` must be the [`Waker::wake_fd`] of a [`Waker`] that stays alive (its fd open)
/// until this call returns. Any other fd is written to as if it were a wake fd: a closed
/// fd number may have been reused for an unrelated file, pipe or socket, which would
/// receive 8 stray bytes (a violation of I/O safety; memory is not at stake).
///
/// ```
/// let w = evloop_backends::Waker::new().unwrap();
/// // SAFETY: `w` is alive (its fd open) for the whole call.
/// unsafe { evloop_backends::wake_raw(w.wake_fd()) };
/// assert!(w.drain());
/// ```
pub unsafe fn wake_raw(fd: RawFd) {
    let one = 1u64;
    // SAFETY: the buffer is `one`, 8 readable bytes on this stack frame for the whole
    // call; the caller guarantees `fd` is a live eventfd (see `# Safety`), which takes
    // exactly such an 8-byte count. write(2) is async-signal-safe.
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
