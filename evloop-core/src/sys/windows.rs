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

/// Read from `file` at `offset`, without moving a shared cursor (`pread` on Unix;
/// `seek_read` on Windows, which moves the file's own cursor, unused here).
pub(crate) fn read_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    use std::os::windows::fs::FileExt;
    file.seek_read(buf, offset)
}

/// What wakes a loop watching a [`channel`](crate::channel) receiver: a connected pair
/// of loopback TCP sockets (the receiving end is the source; a wake is one byte), since
/// a source on Windows is a socket. The pair is checked to be our own: a connection
/// from anyone else to the short-lived listener is accepted and closed at once, and the
/// wait goes on for ours (already queued: it connected before the first accept).
#[derive(Debug)]
pub(crate) struct Notify {
    rx: std::net::TcpStream,
    tx: std::net::TcpStream,
}

impl Notify {
    pub(crate) fn new() -> io::Result<Notify> {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        let tx = std::net::TcpStream::connect(l.local_addr()?)?;
        let me = tx.local_addr()?;
        let rx = loop {
            let (rx, from) = l.accept()?;
            if from == me {
                break rx;
            }
        };
        rx.set_nonblocking(true)?;
        tx.set_nonblocking(true)?;
        tx.set_nodelay(true)?;
        Ok(Notify { rx, tx })
    }

    /// Make the receiving end readable (a full buffer is readable already).
    pub(crate) fn wake(&self) -> io::Result<()> {
        use std::io::Write;
        match (&self.tx).write(&[1]) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Take every pending wake; whether there was one.
    pub(crate) fn drain(&self) -> bool {
        use std::io::Read;
        let mut buf = [0u8; 64];
        let mut any = false;
        while let Ok(1..) = (&self.rx).read(&mut buf) {
            any = true;
        }
        any
    }
}

crate::impl_as_source!(Notify => rx);
