//! The Windows side of `sys`: sources are `AsSocket`, raw handles are sockets.

use std::io;

use evloop_backends::RawSource;

/// What a watchable value implements: [`AsFd`](std::os::fd::AsFd) on Unix,
/// [`AsSocket`](std::os::windows::io::AsSocket) on Windows (`TcpListener`, `TcpStream`,
/// `UdpSocket` on both).
///
/// ```
/// fn watchable<S: evloop_core::AsSource>(_: &S) {}
/// watchable(&std::net::TcpListener::bind("127.0.0.1:0").unwrap());
/// ```
pub use std::os::windows::io::AsSocket as AsSource;
/// A borrowed raw handle: `BorrowedFd` on Unix, `BorrowedSocket` on Windows.
///
/// ```
/// use evloop_core::{AsSource, BorrowedSource};
/// let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
/// let b: BorrowedSource<'_> = l.as_socket();
/// # let _ = b;
/// ```
pub use std::os::windows::io::BorrowedSocket as BorrowedSource;

/// The raw handle of a source.
#[inline]
pub(crate) fn raw<S: AsSource + ?Sized>(s: &S) -> RawSource {
    use std::os::windows::io::AsRawSocket;
    s.as_socket().as_raw_socket()
}

/// Whether `raw` can never name an open socket (`INVALID_SOCKET`).
#[inline]
pub(crate) fn is_invalid(raw: RawSource) -> bool {
    raw == RawSource::MAX
}

/// Whether an OS error says the handle is not an open socket (`WSAENOTSOCK`).
#[inline]
pub(crate) fn is_bad_handle(e: &io::Error) -> bool {
    e.raw_os_error() == Some(10038)
}
