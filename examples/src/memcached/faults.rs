//! With the `fault-injection` feature only: the server's own socket I/O asks the fault
//! hooks of `evloop::backends::fault` first, as evloop's buffered connections and
//! listeners do, so that on a thread armed by the loop's `FaultInjecting` backend its
//! reads (in `Conn::fill`), writes and accepts may come up short or fail the ways a
//! kernel's may: short reads and writes, `EAGAIN` after readiness, `ECONNRESET`, `EMFILE`
//! on accept. Without the feature this module is not compiled and the server makes the
//! plain calls.

use std::io::{self, IoSlice, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};

use evloop::backends::fault;

/// A connection's socket for the replies' `writev`: each write may take only a prefix
/// (cut anywhere, also inside a slice), or fail with `EAGAIN` or `ECONNRESET`.
pub(super) struct Hooked<'a>(pub(super) &'a TcpStream);

impl Write for Hooked<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = fault::before_write(buf.len())?;
        self.0.write(&buf[..n])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let mut allowed = fault::before_write(total)?;
        if allowed == total {
            return self.0.write_vectored(bufs);
        }
        // A short writev: the first `allowed` bytes, wherever they end.
        let mut prefix = Vec::with_capacity(bufs.len());
        for b in bufs {
            if allowed == 0 {
                break;
            }
            let take = b.len().min(allowed);
            prefix.push(IoSlice::new(&b[..take]));
            allowed -= take;
        }
        self.0.write_vectored(&prefix)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `accept`, unless it first fails with `EMFILE` (the connection stays in the backlog, as
/// with a real one) or `EAGAIN`.
pub(super) fn accept(listener: &TcpListener) -> io::Result<(TcpStream, SocketAddr)> {
    fault::before_accept()?;
    listener.accept()
}
