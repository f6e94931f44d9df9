use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::sys::syscall;

/// A wake fd backed by a non-blocking self-pipe (for systems without `eventfd`). A flag
/// skips the write while a wake is already pending, so a burst of wakes writes one byte.
///
/// ```
/// use evloop_backends::Waker;
/// let w = Waker::new().unwrap();
/// w.wake().unwrap();
/// w.wake().unwrap();
/// assert!(w.drain());
/// assert!(!w.drain());
/// ```
#[derive(Debug)]
pub struct Waker {
    read: OwnedFd,
    write: OwnedFd,
    pending: AtomicBool,
}

/// Make `fd` (a pipe end the caller owns) non-blocking and close-on-exec.
fn set_nonblock_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: `fd` is a pipe end owned by the caller's `OwnedFd` (open for the call);
    // F_GETFL takes no third argument and reads no memory of ours.
    let fl = unsafe { syscall!(fcntl(fd, libc::F_GETFL)) }?;
    // SAFETY: as above; F_SETFL takes an int of status flags, no pointer.
    unsafe { syscall!(fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK)) }?;
    // SAFETY: as above; F_SETFD takes an int of fd flags, no pointer.
    unsafe { syscall!(fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC)) }?;
    Ok(())
}

impl Waker {
    /// Create the pipe, both ends non-blocking and close-on-exec.
    ///
    /// ```
    /// let w = evloop_backends::Waker::new().unwrap();
    /// # drop(w);
    /// ```
    pub fn new() -> io::Result<Waker> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: `fds` is a local `[c_int; 2]`, alive and writable for the call: exactly
        // the two fds pipe(2) writes, and nothing beyond.
        unsafe { syscall!(pipe(fds.as_mut_ptr())) }?;
        // SAFETY: pipe just returned these fds; nothing else owns them.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        set_nonblock_cloexec(read.as_raw_fd())?;
        set_nonblock_cloexec(write.as_raw_fd())?;
        Ok(Waker {
            read,
            write,
            pending: AtomicBool::new(false),
        })
    }

    /// Make the read end readable. Safe to call from any thread.
    ///
    /// ```
    /// let w = std::sync::Arc::new(evloop_backends::Waker::new().unwrap());
    /// let w2 = w.clone();
    /// std::thread::spawn(move || w2.wake().unwrap()).join().unwrap();
    /// assert!(w.drain());
    /// ```
    pub fn wake(&self) -> io::Result<()> {
        if !self.pending.swap(true, Ordering::AcqRel) {
            // SAFETY: `self.write` is this waker's own write end, open for as long as
            // `self` is borrowed.
            unsafe { wake_raw(self.write.as_raw_fd()) };
        }
        Ok(())
    }

    /// Consume all pending wakes; returns whether there were any.
    ///
    /// ```
    /// let w = evloop_backends::Waker::new().unwrap();
    /// assert!(!w.drain());
    /// ```
    pub fn drain(&self) -> bool {
        self.pending.store(false, Ordering::Release);
        let mut any = false;
        let mut buf = [0u8; 64];
        loop {
            // SAFETY: reads into a valid, writable 64-byte buffer.
            let n =
                unsafe { libc::read(self.read.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return any;
            }
            any = true;
        }
    }

    /// The fd to hand to [`wake_raw`] for async-signal-safe wakes (the write end).
    ///
    /// ```
    /// let w = evloop_backends::Waker::new().unwrap();
    /// // SAFETY: `w` is alive (its fd open) for the whole call.
    /// unsafe { evloop_backends::wake_raw(w.wake_fd()) };
    /// assert!(w.drain());
    /// ```
    pub fn wake_fd(&self) -> RawFd {
        self.write.as_raw_fd()
    }
}

/// Async-signal-safe wake through a raw write fd (used from signal handlers): one
/// `write(2)` of one byte, no lock, no allocation. A full pipe already means "woken", so
/// errors are ignored.
///
/// # Safety
///
/// `fd` must be the [`Waker::wake_fd`] of a [`Waker`] that stays alive (its fd open)
/// until this call returns. Any other fd is written to as if it were a wake fd: a closed
/// fd number may have been reused for an unrelated file, pipe or socket, which would
/// receive a stray byte (a violation of I/O safety; memory is not at stake).
///
/// ```
/// let w = evloop_backends::Waker::new().unwrap();
/// // SAFETY: `w` is alive (its fd open) for the whole call.
/// unsafe { evloop_backends::wake_raw(w.wake_fd()) };
/// assert!(w.drain());
/// ```
pub unsafe fn wake_raw(fd: RawFd) {
    let b = 1u8;
    // SAFETY: the buffer is `b`, one readable byte on this stack frame for the whole
    // call; the caller guarantees `fd` is a live wake pipe's write end (see `# Safety`).
    // write(2) is async-signal-safe.
    unsafe { libc::write(fd, (&b as *const u8).cast(), 1) };
}

impl AsFd for Waker {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }
}

impl AsRawFd for Waker {
    fn as_raw_fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }
}
