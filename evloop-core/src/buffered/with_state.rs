//! [`WithState`]: a stream together with the program's own per-connection state.

use crate::sys::AsSource;
use std::io::{self, IoSlice, Read, Write};

/// A stream plus the program's state for that connection, usable wherever a stream is
/// (`Read`, `Write` and `AsFd` go to `stream`). A [`BufSlab`](super::BufSlab) of
/// `WithState<TcpStream, MyState>` keeps each connection's state next to its buffers,
/// reached with `conn.stream().state` / `conn.stream_mut().state`.
///
/// ```
/// use evloop_core::buffered::WithState;
/// use std::io::{Read, Write};
/// use std::os::unix::net::UnixStream;
///
/// struct Session { requests: u32 }
/// let (a, mut b) = UnixStream::pair().unwrap();
/// let mut conn = WithState::new(a, Session { requests: 0 });
/// b.write_all(b"hi").unwrap();
/// let mut buf = [0u8; 2];
/// conn.read_exact(&mut buf).unwrap(); // reads from the stream
/// conn.state.requests += 1;
/// assert_eq!((&buf, conn.state.requests), (b"hi", 1));
/// ```
#[derive(Debug, Default)]
pub struct WithState<S, T> {
    /// The stream.
    pub stream: S,
    /// The program's state for this connection.
    pub state: T,
}

impl<S, T> WithState<S, T> {
    /// Pair `stream` with `state`.
    ///
    /// ```
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let c = evloop_core::buffered::WithState::new(a, 7u32);
    /// assert_eq!(c.state, 7);
    /// ```
    pub fn new(stream: S, state: T) -> Self {
        WithState { stream, state }
    }
}

impl<S: Read, T> Read for WithState<S, T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.read(buf)
    }
}

impl<S: Write, T> Write for WithState<S, T> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.write(buf)
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.stream.write_vectored(bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

crate::impl_as_source!([S: AsSource, T] WithState<S, T> => stream);

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    #[test]
    #[cfg_attr(
        miri,
        ignore = "socket I/O (writev on a socketpair), which Miri does not emulate"
    )]
    fn forwards_io_and_fd_to_the_stream() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let fd = a.as_raw_fd();
        let mut c = WithState::new(a, ());
        assert_eq!(c.as_fd().as_raw_fd(), fd);
        let n = c
            .write_vectored(&[IoSlice::new(b"ab"), IoSlice::new(b"c")])
            .unwrap();
        assert_eq!(n, 3);
        let mut got = [0u8; 3];
        b.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"abc");
        b.write_all(b"z").unwrap();
        let mut one = [0u8; 1];
        c.read_exact(&mut one).unwrap();
        assert_eq!(&one, b"z");
    }
}
