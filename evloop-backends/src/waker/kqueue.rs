//! The wake fd on kqueue systems: a small kqueue of its own holding one `EVFILT_USER`
//! event. A kqueue fd is itself pollable (readable while it has pending events), so the
//! loop registers it like any fd, and waking is one `kevent` call: no buffer to fill, no
//! second fd, and safe in a signal handler (a plain system call, no lock).
//!
//! NetBSD before 10 and older OpenBSD have no `EVFILT_USER`: there [`Waker::new`] finds out
//! at run time and falls back to the self-pipe of `pipe.rs`, and [`wake_raw`] tells the
//! two kinds of fd apart by trying `kevent` first (it fails on a pipe without effect).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::ptr;

use crate::kqueue::KqueueFd;
use crate::sys::syscall;

#[cfg(any(target_os = "netbsd", target_os = "openbsd"))]
#[path = "pipe.rs"]
mod pipe;

/// The `ident` of our one `EVFILT_USER` event (each waker has a kqueue of its own).
const WAKE_IDENT: usize = 0;

/// A wake fd backed by a kqueue with one `EVFILT_USER` event (`EV_CLEAR`): any number of
/// wakes before a drain make one readiness, and a wake never blocks or fills up.
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
    imp: Imp,
}

#[derive(Debug)]
enum Imp {
    User(KqueueFd),
    #[cfg(any(target_os = "netbsd", target_os = "openbsd"))]
    Pipe(pipe::Waker),
}

/// A change record for our user event.
fn user_event(flags: u32, fflags: u32) -> libc::kevent {
    // SAFETY: `struct kevent` is plain data (integers and a pointer that may be null),
    // for which all-zero bytes are a valid value.
    let mut k: libc::kevent = unsafe { std::mem::zeroed() };
    k.ident = WAKE_IDENT;
    k.filter = libc::EVFILT_USER;
    k.flags = flags as _;
    k.fflags = fflags;
    k
}

/// Trigger the user event of kqueue `kq`. Any fd may be passed: on one that is not a
/// kqueue (the pipe fallback) kevent fails without effect.
fn trigger(kq: RawFd) -> io::Result<()> {
    let ev = user_event(0, libc::NOTE_TRIGGER);
    // SAFETY: the change list is `ev`, one initialised kevent on this stack frame, alive
    // and only read for the call (nchanges 1). The event list is null with nevents 0, so
    // the kernel writes nothing and (a null timeout notwithstanding) never blocks.
    unsafe { syscall!(kevent(kq, &ev, 1, ptr::null_mut(), 0, ptr::null())) }.map(|_| ())
}

/// Take the pending wake of kqueue `kq`, if any (`EV_CLEAR` resets it).
fn take(kq: RawFd) -> bool {
    let mut ev = user_event(0, 0);
    let zero = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: no change list (null, nchanges 0). The event list is `ev`, one writable
    // kevent on this stack frame (nevents 1, so the kernel writes at most that record);
    // `zero` is a valid timespec alive for the call (a poll: never blocks).
    let n = unsafe { syscall!(kevent(kq, ptr::null(), 0, &mut ev, 1, &zero)) };
    matches!(n, Ok(1))
}

/// A kqueue with our user event added, or the error that refused it.
// `EV_*` are `u32` on NetBSD, `u16` elsewhere: the cast is a no-op on one flavour only.
#[allow(clippy::unnecessary_cast)]
fn user_kqueue() -> io::Result<KqueueFd> {
    let kq = KqueueFd::new()?;
    let add = user_event((libc::EV_ADD | libc::EV_CLEAR) as u32, 0);
    // SAFETY: `kq` is the kqueue we just created and own. The change list is `add`, one
    // initialised kevent on this stack frame, only read (nchanges 1); the event list is
    // null with nevents 0, so nothing is written and the call does not block.
    unsafe {
        syscall!(kevent(
            kq.as_raw_fd(),
            &add,
            1,
            ptr::null_mut(),
            0,
            ptr::null()
        ))
    }?;
    if cfg!(any(target_os = "netbsd", target_os = "openbsd")) {
        // Where EVFILT_USER is recent, check it works end to end before relying on it.
        trigger(kq.as_raw_fd())?;
        if !take(kq.as_raw_fd()) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "EVFILT_USER did not deliver a triggered event",
            ));
        }
    }
    Ok(kq)
}

impl Waker {
    /// Create the wake fd: a close-on-exec kqueue with its user event (or, on NetBSD and
    /// OpenBSD kernels without `EVFILT_USER`, a non-blocking self-pipe).
    ///
    /// ```
    /// let w = evloop_backends::Waker::new().unwrap();
    /// # drop(w);
    /// ```
    pub fn new() -> io::Result<Waker> {
        match user_kqueue() {
            Ok(kq) => Ok(Waker { imp: Imp::User(kq) }),
            #[cfg(any(target_os = "netbsd", target_os = "openbsd"))]
            Err(_) => Ok(Waker {
                imp: Imp::Pipe(pipe::Waker::new()?),
            }),
            #[cfg(not(any(target_os = "netbsd", target_os = "openbsd")))]
            Err(e) => Err(e),
        }
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
        match &self.imp {
            Imp::User(kq) => trigger(kq.as_raw_fd()),
            #[cfg(any(target_os = "netbsd", target_os = "openbsd"))]
            Imp::Pipe(p) => p.wake(),
        }
    }

    /// Consume all pending wakes; returns whether there were any.
    ///
    /// ```
    /// let w = evloop_backends::Waker::new().unwrap();
    /// assert!(!w.drain());
    /// ```
    pub fn drain(&self) -> bool {
        match &self.imp {
            Imp::User(kq) => take(kq.as_raw_fd()),
            #[cfg(any(target_os = "netbsd", target_os = "openbsd"))]
            Imp::Pipe(p) => p.drain(),
        }
    }

    /// The fd to hand to [`wake_raw`] for async-signal-safe wakes (the kqueue itself; the
    /// pipe's write end where the pipe fallback is in use).
    ///
    /// ```
    /// let w = evloop_backends::Waker::new().unwrap();
    /// // SAFETY: `w` is alive (its fd open) for the whole call.
    /// unsafe { evloop_backends::wake_raw(w.wake_fd()) };
    /// assert!(w.drain());
    /// ```
    pub fn wake_fd(&self) -> RawFd {
        match &self.imp {
            Imp::User(kq) => kq.as_raw_fd(),
            #[cfg(any(target_os = "netbsd", target_os = "openbsd"))]
            Imp::Pipe(p) => p.wake_fd(),
        }
    }
}

/// Async-signal-safe wake of a raw wake fd (used from signal handlers): triggers the
/// user event of the kqueue `fd` (one `kevent` call, no lock, no allocation). Errors are
/// ignored (a pending wake already means "woken"). Where the pipe fallback may be in use,
/// a failed trigger (`fd` is not a kqueue) writes a byte to `fd` instead.
///
/// # Safety
///
/// `fd` must be the [`Waker::wake_fd`] of a [`Waker`] that stays alive (its fd open)
/// until this call returns. Any other fd is treated as a wake fd: a closed fd number may
/// have been reused for an unrelated kqueue (whose event 0 would be triggered) or, on
/// NetBSD and OpenBSD, for an unrelated file, pipe or socket, which would receive a
/// stray byte (a violation of I/O safety; memory is not at stake).
///
/// ```
/// let w = evloop_backends::Waker::new().unwrap();
/// // SAFETY: `w` is alive (its fd open) for the whole call.
/// unsafe { evloop_backends::wake_raw(w.wake_fd()) };
/// assert!(w.drain());
/// ```
pub unsafe fn wake_raw(fd: RawFd) {
    let triggered = trigger(fd).is_ok();
    #[cfg(any(target_os = "netbsd", target_os = "openbsd"))]
    if !triggered {
        // SAFETY: the caller guarantees `fd` is a live wake fd; not a kqueue, so it is
        // the write end of the pipe fallback, which is what `pipe::wake_raw` expects.
        unsafe { pipe::wake_raw(fd) };
    }
    let _ = triggered;
}

impl AsFd for Waker {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.imp {
            Imp::User(kq) => kq.as_fd(),
            #[cfg(any(target_os = "netbsd", target_os = "openbsd"))]
            Imp::Pipe(p) => p.as_fd(),
        }
    }
}

impl AsRawFd for Waker {
    fn as_raw_fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }
}
