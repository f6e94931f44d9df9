//! The Unix side of `sys`: sources are `AsFd`, raw handles are fds.

use std::io;

use evloop_backends::RawSource;

/// What a watchable value implements: [`AsFd`](std::os::fd::AsFd) on Unix,
/// [`AsSocket`](std::os::windows::io::AsSocket) on Windows (`TcpListener`, `TcpStream`,
/// `UdpSocket` on both; `UnixStream`, pipes, `File`, `OwnedFd`... on Unix).
///
/// ```
/// fn watchable<S: evloop_core::AsSource>(_: &S) {}
/// watchable(&std::net::TcpListener::bind("127.0.0.1:0").unwrap());
/// ```
pub use std::os::fd::AsFd as AsSource;
/// A borrowed raw handle: `BorrowedFd` on Unix, `BorrowedSocket` on Windows (what
/// [`AsSource`] lends).
///
/// ```
/// use evloop_core::{AsSource, BorrowedSource};
/// let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
/// let b: BorrowedSource<'_> = l.as_fd();
/// # let _ = b;
/// ```
pub use std::os::fd::BorrowedFd as BorrowedSource;

/// The raw handle of a source: its fd on Unix, its socket on Windows (what
/// [`Ctx::add_io_raw`](crate::Ctx::add_io_raw) takes).
///
/// ```
/// let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
/// let raw: evloop_core::RawSource = evloop_core::raw_source(&l);
/// # let _ = raw;
/// ```
#[inline]
pub fn raw_source<S: AsSource + ?Sized>(s: &S) -> RawSource {
    use std::os::fd::AsRawFd;
    s.as_fd().as_raw_fd()
}

/// Whether `raw` can never name an open handle (a negative fd).
#[inline]
pub(crate) fn is_invalid(raw: RawSource) -> bool {
    raw < 0
}

/// Whether an OS error says the handle is not open.
#[inline]
pub(crate) fn is_bad_handle(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EBADF)
}

/// Read from `file` at `offset`, without moving a shared cursor (`pread` on Unix;
/// `seek_read` on Windows, which moves the file's own cursor, unused here).
pub(crate) fn read_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    use std::os::unix::fs::FileExt;
    file.read_at(buf, offset)
}

/// What wakes a loop watching a [`channel`](crate::channel) receiver: a [`Waker`]'s fd,
/// watched like a socket.
///
/// [`Waker`]: evloop_backends::Waker
pub(crate) type Notify = evloop_backends::Waker;
