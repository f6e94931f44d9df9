//! A kqueue descriptor that knows it is not inherited by a forked child.

use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use crate::sys::syscall;

/// An owned kqueue fd, closed on drop only in the process that created it.
///
/// A kqueue is not inherited across `fork()`: in the child its number is free, and the
/// next fd the child opens (typically the fresh kqueue `reinit` creates, or a fresh
/// waker's) may get it. Closing the old number there would close that new object, so in
/// a child the old fd is forgotten instead (there is nothing to release: the child never
/// had it). This is also why `reinit` must not close the kqueue it replaces.
#[derive(Debug)]
pub(crate) struct KqueueFd {
    fd: ManuallyDrop<OwnedFd>,
    pid: libc::pid_t,
}

impl KqueueFd {
    /// A new close-on-exec kqueue.
    pub(crate) fn new() -> io::Result<KqueueFd> {
        // SAFETY: kqueue() takes no arguments and touches no memory of ours.
        let raw = unsafe { syscall!(kqueue()) }?;
        // SAFETY: kqueue() just returned this fd; nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // Not every kqueue target has kqueue1(O_CLOEXEC) (macOS has not): set it apart.
        // SAFETY: `raw` is the kqueue just created, owned by `fd` (open for the call);
        // F_SETFD takes an int of fd flags, no pointer.
        unsafe { syscall!(fcntl(raw, libc::F_SETFD, libc::FD_CLOEXEC)) }?;
        Ok(KqueueFd {
            fd: ManuallyDrop::new(fd),
            // SAFETY: getpid has no preconditions and cannot fail.
            pid: unsafe { libc::getpid() },
        })
    }

    /// Whether this process created the kqueue (false in a forked child).
    pub(crate) fn is_ours(&self) -> bool {
        // SAFETY: getpid has no preconditions and cannot fail.
        self.pid == unsafe { libc::getpid() }
    }
}

impl Drop for KqueueFd {
    fn drop(&mut self) {
        if self.is_ours() {
            // SAFETY: `fd` is dropped exactly once, here, and never used afterwards.
            unsafe { ManuallyDrop::drop(&mut self.fd) };
        }
        // Otherwise forget it: in a forked child the number may name someone else's fd.
    }
}

impl AsFd for KqueueFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for KqueueFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
