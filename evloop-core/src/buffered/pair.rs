//! [`BufPair`]: two connected in-memory ends (libevent's `bufferevent_pair`), to test
//! protocol code without sockets or a loop.

use super::{BufConn, Buffer};

/// What protocol code needs from a connection: its two buffers, whether the peer has
/// finished sending, and a way to hang up once the replies are out. Implemented by
/// [`BufConn`] (a real stream) and by [`PairEnd`] (memory), so a protocol written
/// against it is tested with a [`BufPair`] and served with a
/// [`BufSlab`](super::BufSlab).
///
/// ```
/// use evloop_core::buffered::{BufIo, BufPair, Eol};
///
/// /// Answers "PING" with "PONG", line by line.
/// fn serve(io: &mut impl BufIo) {
///     let (input, output) = io.buffers();
///     while let Ok(Some(line)) = input.read_line(Eol::Crlf) {
///         let reply: &[u8] = if line == b"PING" { b"PONG\r\n" } else { b"ERROR\r\n" };
///         output.extend(reply).unwrap();
///     }
/// }
///
/// let mut pair = BufPair::new(64);
/// pair.a().write(b"PING\r\nX\r\n").unwrap();
/// serve(&mut pair.b());
/// assert_eq!(pair.a().input().as_slice(), b"PONG\r\nERROR\r\n");
/// ```
pub trait BufIo {
    /// `(input, output)`: bytes received, bytes to send.
    fn buffers(&mut self) -> (&mut Buffer, &mut Buffer);
    /// Whether the peer closed its side (what it sent before is in the input buffer).
    fn is_eof(&self) -> bool;
    /// Close once everything queued is sent.
    fn close_after_flush(&mut self);
}

impl<S> BufIo for BufConn<S> {
    fn buffers(&mut self) -> (&mut Buffer, &mut Buffer) {
        BufConn::buffers(self)
    }
    fn is_eof(&self) -> bool {
        BufConn::is_eof(self)
    }
    fn close_after_flush(&mut self) {
        BufConn::close_after_flush(self)
    }
}

/// Two connected ends, `a` and `b`, in memory: what one writes to its output is at once
/// in the other's input. Each direction is one fixed-capacity [`Buffer`], so a writer
/// that outruns its reader sees the buffer fill up, as it would with a socket.
///
/// ```
/// use evloop_core::buffered::{BufPair, Eol};
/// let mut pair = BufPair::new(16);
/// pair.a().write(b"hello\n").unwrap();
/// assert_eq!(pair.b().input().read_line(Eol::Lf).unwrap(), Some(&b"hello"[..]));
/// pair.a().close();
/// assert!(pair.b().is_eof());
/// assert!(pair.a().write(&[0; 17]).is_err()); // more than the capacity
/// ```
#[derive(Debug)]
pub struct BufPair {
    ab: Buffer,
    ba: Buffer,
    a_closed: bool,
    b_closed: bool,
}

/// One end of a [`BufPair`].
///
/// ```
/// let mut pair = evloop_core::buffered::BufPair::new(8);
/// let mut a = pair.a();
/// a.output().push(b"x");
/// assert!(a.input().is_empty());
/// ```
#[derive(Debug)]
pub struct PairEnd<'a> {
    input: &'a mut Buffer,
    output: &'a mut Buffer,
    peer_closed: bool,
    closed: &'a mut bool,
}

impl BufPair {
    /// Two ends, each direction buffering up to `capacity` bytes.
    ///
    /// ```
    /// let pair = evloop_core::buffered::BufPair::new(1024);
    /// # drop(pair);
    /// ```
    pub fn new(capacity: usize) -> BufPair {
        BufPair {
            ab: Buffer::with_capacity(capacity),
            ba: Buffer::with_capacity(capacity),
            a_closed: false,
            b_closed: false,
        }
    }
    /// End `a`: reads what `b` wrote, writes what `b` reads.
    ///
    /// ```
    /// let mut pair = evloop_core::buffered::BufPair::new(8);
    /// pair.a().write(b"1").unwrap();
    /// assert_eq!(pair.b().input().as_slice(), b"1");
    /// ```
    pub fn a(&mut self) -> PairEnd<'_> {
        PairEnd {
            input: &mut self.ba,
            output: &mut self.ab,
            peer_closed: self.b_closed,
            closed: &mut self.a_closed,
        }
    }
    /// End `b`.
    ///
    /// ```
    /// let mut pair = evloop_core::buffered::BufPair::new(8);
    /// pair.b().write(b"2").unwrap();
    /// assert_eq!(pair.a().input().as_slice(), b"2");
    /// ```
    pub fn b(&mut self) -> PairEnd<'_> {
        PairEnd {
            input: &mut self.ab,
            output: &mut self.ba,
            peer_closed: self.a_closed,
            closed: &mut self.b_closed,
        }
    }
}

impl PairEnd<'_> {
    /// Bytes the other end wrote, not yet consumed.
    ///
    /// ```
    /// let mut pair = evloop_core::buffered::BufPair::new(8);
    /// assert!(pair.a().input().is_empty());
    /// ```
    pub fn input(&mut self) -> &mut Buffer {
        self.input
    }
    /// Bytes for the other end (its input).
    ///
    /// ```
    /// let mut pair = evloop_core::buffered::BufPair::new(8);
    /// pair.a().output().push(b"z");
    /// assert_eq!(pair.b().input().as_slice(), b"z");
    /// ```
    pub fn output(&mut self) -> &mut Buffer {
        self.output
    }
    /// Send `bytes`, all or nothing.
    ///
    /// ```
    /// let mut pair = evloop_core::buffered::BufPair::new(2);
    /// assert!(pair.a().write(b"abc").is_err());
    /// ```
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), super::BufferFull> {
        self.output.extend(bytes)
    }
    /// Close this end: the other sees end of file.
    ///
    /// ```
    /// let mut pair = evloop_core::buffered::BufPair::new(2);
    /// pair.b().close();
    /// assert!(pair.a().is_eof());
    /// ```
    pub fn close(&mut self) {
        *self.closed = true;
    }
    /// Whether the other end closed.
    ///
    /// ```
    /// let mut pair = evloop_core::buffered::BufPair::new(2);
    /// assert!(!pair.a().is_eof());
    /// ```
    pub fn is_eof(&self) -> bool {
        self.peer_closed
    }
}

impl BufIo for PairEnd<'_> {
    fn buffers(&mut self) -> (&mut Buffer, &mut Buffer) {
        (self.input, self.output)
    }
    fn is_eof(&self) -> bool {
        self.peer_closed
    }
    fn close_after_flush(&mut self) {
        // In memory, everything written is already "sent".
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffered::Eol;

    /// A tiny length-prefixed protocol, written once against `BufIo`.
    fn echo_frames(io: &mut impl BufIo) {
        let (input, output) = io.buffers();
        while let Some(len) = input.peek(1).map(|b| b[0] as usize) {
            if input.len() < 1 + len || output.free() < 1 + len {
                break;
            }
            input.consume(1);
            let body = input.take(len).unwrap();
            output.push(&[len as u8]);
            output.push(body);
        }
        if io.is_eof() {
            io.close_after_flush();
        }
    }

    #[test]
    fn protocol_over_a_pair() {
        let mut pair = BufPair::new(32);
        pair.a().write(&[3, b'a', b'b', b'c', 2, b'x']).unwrap();
        echo_frames(&mut pair.b());
        assert_eq!(pair.a().input().as_slice(), &[3, b'a', b'b', b'c']);
        assert_eq!(
            pair.b().input().as_slice(),
            &[2, b'x'],
            "partial frame kept"
        );
        pair.a().write(b"y").unwrap();
        pair.a().close();
        echo_frames(&mut pair.b());
        assert_eq!(
            pair.a().input().as_slice(),
            &[3, b'a', b'b', b'c', 2, b'x', b'y']
        );
        assert!(pair.a().is_eof(), "b closed after a's EOF");
        assert!(pair.b().input().read_line(Eol::Lf).unwrap().is_none());
    }
}
