//! [`Buffer`]: a fixed-capacity byte buffer (libevent's evbuffer, without chains).
//!
//! The bytes live in one allocation made at construction and never grown. They are kept
//! contiguous (the buffer compacts, moving the unread bytes to the front when the tail
//! has no room), so every peek, search and line is a plain `&[u8]` into the buffer: no
//! copy, no chain walking.

use std::fmt;
use std::io;

/// How a line ends, for [`Buffer::read_line`] (libevent's `evbuffer_eol_style`).
///
/// ```
/// use evloop_core::buffered::{Buffer, Eol};
/// let mut b = Buffer::with_capacity(64);
/// b.extend(b"a\r\nb\nc\r\r\nd").unwrap();
/// assert_eq!(b.read_line(Eol::CrlfStrict).unwrap(), Some(&b"a"[..]));
/// assert_eq!(b.read_line(Eol::Lf).unwrap(), Some(&b"b"[..]));
/// assert_eq!(b.read_line(Eol::Any).unwrap(), Some(&b"c"[..])); // "\r\r\n" is one EOL
/// assert_eq!(b.read_line(Eol::Any).unwrap(), None); // "d" has no end yet
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Eol {
    /// `\n` alone.
    Lf,
    /// `\n`, optionally preceded by `\r` (the `\r` is not part of the line).
    Crlf,
    /// `\r\n` only; a lone `\n` is part of the line.
    CrlfStrict,
    /// Any run of `\r` and `\n` characters.
    Any,
}

/// A line that cannot fit: the buffer holds `len` bytes (its limit) and none of them ends
/// a line. Nothing was consumed; the handler decides (reply with an error and
/// [`consume`](Buffer::consume) the bytes, or close the connection).
///
/// ```
/// use evloop_core::buffered::{Buffer, Eol, LineTooLong};
/// let mut b = Buffer::with_capacity(4);
/// b.extend(b"abcd").unwrap();
/// assert_eq!(b.read_line(Eol::Lf), Err(LineTooLong { len: 4 }));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineTooLong {
    /// Bytes buffered without an end of line.
    pub len: usize,
}

impl fmt::Display for LineTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line longer than the buffer ({} bytes, no end of line)",
            self.len
        )
    }
}

impl std::error::Error for LineTooLong {}

/// Not enough room: `needed` bytes were offered, `free` fit. Nothing was written.
///
/// ```
/// use evloop_core::buffered::{Buffer, BufferFull};
/// let mut b = Buffer::with_capacity(2);
/// assert_eq!(b.extend(b"abc"), Err(BufferFull { needed: 3, free: 2 }));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferFull {
    /// Bytes offered.
    pub needed: usize,
    /// Room there was.
    pub free: usize,
}

impl fmt::Display for BufferFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "buffer full: {} bytes offered, {} free",
            self.needed, self.free
        )
    }
}

impl std::error::Error for BufferFull {}

impl From<BufferFull> for io::Error {
    fn from(e: BufferFull) -> io::Error {
        io::Error::new(io::ErrorKind::WriteZero, e)
    }
}

/// A fixed-capacity byte queue: bytes are appended at the back and consumed from the
/// front. Its storage is allocated once, by [`with_capacity`](Self::with_capacity).
///
/// ```
/// use evloop_core::buffered::Buffer;
/// let mut b = Buffer::with_capacity(16);
/// b.extend(b"GET / HTTP/1.1\r\n").unwrap();
/// assert_eq!(b.find(b" "), Some(3));
/// assert_eq!(b.take(4), Some(&b"GET "[..]));
/// assert_eq!(b.peek(1), Some(&b"/"[..]));
/// b.consume(b.len());
/// assert!(b.is_empty());
/// ```
pub struct Buffer {
    data: Box<[u8]>,
    start: usize,
    end: usize,
    line_limit: usize,
}

impl fmt::Debug for Buffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Buffer")
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .finish()
    }
}

impl Buffer {
    /// An empty buffer that holds at most `capacity` bytes.
    ///
    /// ```
    /// let b = evloop_core::buffered::Buffer::with_capacity(4096);
    /// assert_eq!((b.len(), b.capacity()), (0, 4096));
    /// ```
    pub fn with_capacity(capacity: usize) -> Buffer {
        Buffer {
            data: vec![0; capacity].into_boxed_slice(),
            start: 0,
            end: 0,
            line_limit: capacity,
        }
    }

    /// Bytes buffered.
    ///
    /// ```
    /// let mut b = evloop_core::buffered::Buffer::with_capacity(8);
    /// b.extend(b"abc").unwrap();
    /// assert_eq!(b.len(), 3);
    /// ```
    #[inline]
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Whether nothing is buffered.
    ///
    /// ```
    /// assert!(evloop_core::buffered::Buffer::with_capacity(8).is_empty());
    /// ```
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// The fixed capacity.
    ///
    /// ```
    /// assert_eq!(evloop_core::buffered::Buffer::with_capacity(8).capacity(), 8);
    /// ```
    #[inline]
    pub fn capacity(&self) -> usize {
        self.data.len()
    }

    /// Room left: how many more bytes can be appended.
    ///
    /// ```
    /// let mut b = evloop_core::buffered::Buffer::with_capacity(8);
    /// b.extend(b"abc").unwrap();
    /// assert_eq!(b.free(), 5);
    /// ```
    #[inline]
    pub fn free(&self) -> usize {
        self.capacity() - self.len()
    }

    /// Whether no more bytes fit.
    ///
    /// ```
    /// let mut b = evloop_core::buffered::Buffer::with_capacity(1);
    /// b.extend(b"x").unwrap();
    /// assert!(b.is_full());
    /// ```
    #[inline]
    pub fn is_full(&self) -> bool {
        self.len() == self.capacity()
    }

    /// Every buffered byte, in order, without copying (libevent's `evbuffer_pullup`, free
    /// here because the bytes are always contiguous).
    ///
    /// ```
    /// let mut b = evloop_core::buffered::Buffer::with_capacity(8);
    /// b.extend(b"abc").unwrap();
    /// assert_eq!(b.as_slice(), b"abc");
    /// ```
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    /// The first `n` bytes, if that many are buffered, without consuming them.
    ///
    /// ```
    /// let mut b = evloop_core::buffered::Buffer::with_capacity(8);
    /// b.extend(b"abc").unwrap();
    /// assert_eq!(b.peek(2), Some(&b"ab"[..]));
    /// assert_eq!(b.peek(4), None);
    /// ```
    #[inline]
    pub fn peek(&self, n: usize) -> Option<&[u8]> {
        self.as_slice().get(..n)
    }

    /// Where `needle` first starts in the buffered bytes (libevent's `evbuffer_search`).
    /// An empty needle is found at 0.
    ///
    /// ```
    /// let mut b = evloop_core::buffered::Buffer::with_capacity(16);
    /// b.extend(b"key value\r\n").unwrap();
    /// assert_eq!(b.find(b"\r\n"), Some(9));
    /// assert_eq!(b.find(b"zz"), None);
    /// ```
    pub fn find(&self, needle: &[u8]) -> Option<usize> {
        let hay = self.as_slice();
        let Some((&first, rest)) = needle.split_first() else {
            return Some(0);
        };
        let mut from = 0;
        while let Some(i) = hay[from..].iter().position(|&b| b == first) {
            let at = from + i;
            if hay.len() - at > rest.len() && hay[at + 1..at + 1 + rest.len()] == *rest {
                return Some(at);
            }
            if hay.len() - at <= rest.len() {
                return None;
            }
            from = at + 1;
        }
        None
    }

    /// Drop the first `n` bytes (all of them if fewer are buffered).
    ///
    /// ```
    /// let mut b = evloop_core::buffered::Buffer::with_capacity(8);
    /// b.extend(b"abc").unwrap();
    /// b.consume(2);
    /// assert_eq!(b.as_slice(), b"c");
    /// ```
    #[inline]
    pub fn consume(&mut self, n: usize) {
        self.start += n.min(self.len());
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Remove everything.
    ///
    /// ```
    /// let mut b = evloop_core::buffered::Buffer::with_capacity(8);
    /// b.extend(b"abc").unwrap();
    /// b.clear();
    /// assert!(b.is_empty());
    /// ```
    pub fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// An exact-length read: consume the first `n` bytes and return them, or `None`
    /// (consuming nothing) if fewer are buffered. The slice stays valid until the buffer
    /// is next changed.
    ///
    /// ```
    /// let mut b = evloop_core::buffered::Buffer::with_capacity(8);
    /// b.extend(b"abcdef").unwrap();
    /// assert_eq!(b.take(4), Some(&b"abcd"[..]));
    /// assert_eq!(b.take(4), None);
    /// assert_eq!(b.len(), 2);
    /// ```
    pub fn take(&mut self, n: usize) -> Option<&[u8]> {
        if n > self.len() {
            return None;
        }
        let at = self.start;
        self.start += n;
        // Do not reset the offsets here even if empty: the returned slice points at them.
        Some(&self.data[at..at + n])
    }

    /// Copy the first `dst.len()` bytes into `dst` and consume them; `false` (nothing
    /// consumed) if fewer are buffered.
    ///
    /// ```
    /// let mut b = evloop_core::buffered::Buffer::with_capacity(8);
    /// b.extend(&7u32.to_be_bytes()).unwrap();
    /// let mut n = [0u8; 4];
    /// assert!(b.read_exact(&mut n));
    /// assert_eq!(u32::from_be_bytes(n), 7);
    /// ```
    pub fn read_exact(&mut self, dst: &mut [u8]) -> bool {
        match self.take(dst.len()) {
            Some(s) => {
                dst.copy_from_slice(s);
                true
            }
            None => false,
        }
    }

    /// Consume and return the next line, without its end of line: `Ok(None)` if no
    /// complete line is buffered yet, [`LineTooLong`] if the buffer is full (or holds
    /// its [line limit](Self::set_line_limit)) and holds no end of line: a line longer
    /// than the buffer is never truncated silently.
    ///
    /// ```
    /// use evloop_core::buffered::{Buffer, Eol};
    /// let mut b = Buffer::with_capacity(32);
    /// b.extend(b"set k 0 0 1\r\nv\r\n").unwrap();
    /// assert_eq!(b.read_line(Eol::Crlf).unwrap(), Some(&b"set k 0 0 1"[..]));
    /// assert_eq!(b.read_line(Eol::Crlf).unwrap(), Some(&b"v"[..]));
    /// assert_eq!(b.read_line(Eol::Crlf).unwrap(), None);
    /// ```
    pub fn read_line(&mut self, eol: Eol) -> Result<Option<&[u8]>, LineTooLong> {
        self.read_line_within(eol, self.line_limit)
    }

    /// Make [`read_line`](Self::read_line) report [`LineTooLong`] once `limit` bytes
    /// (at most the capacity) are buffered without an end of line. A [`BufConn`]'s input
    /// uses its read high watermark, where reading pauses, so a line can never wait for
    /// bytes that will not be read.
    ///
    /// [`BufConn`]: super::BufConn
    ///
    /// ```
    /// use evloop_core::buffered::{Buffer, Eol};
    /// let mut b = Buffer::with_capacity(32);
    /// b.set_line_limit(4);
    /// b.extend(b"abcd").unwrap();
    /// assert!(b.read_line(Eol::Lf).is_err());
    /// ```
    pub fn set_line_limit(&mut self, limit: usize) {
        self.line_limit = limit.min(self.capacity());
    }

    /// As [`read_line`](Self::read_line), but a line is too long as soon as `limit`
    /// bytes are buffered without an end of line (a connection whose reading pauses at
    /// a high watermark below the capacity uses the watermark).
    ///
    /// ```
    /// use evloop_core::buffered::{Buffer, Eol, LineTooLong};
    /// let mut b = Buffer::with_capacity(32);
    /// b.extend(b"abcdef").unwrap();
    /// assert_eq!(b.read_line_within(Eol::Lf, 4), Err(LineTooLong { len: 6 }));
    /// ```
    pub fn read_line_within(
        &mut self,
        eol: Eol,
        limit: usize,
    ) -> Result<Option<&[u8]>, LineTooLong> {
        let hay = self.as_slice();
        let found = match eol {
            Eol::Lf => hay.iter().position(|&b| b == b'\n').map(|i| (i, i + 1)),
            Eol::Crlf => hay.iter().position(|&b| b == b'\n').map(|i| {
                if i > 0 && hay[i - 1] == b'\r' {
                    (i - 1, i + 1)
                } else {
                    (i, i + 1)
                }
            }),
            Eol::CrlfStrict => {
                let mut from = 0;
                let mut r = None;
                while let Some(i) = hay[from..].iter().position(|&b| b == b'\n') {
                    let at = from + i;
                    if at > 0 && hay[at - 1] == b'\r' {
                        r = Some((at - 1, at + 1));
                        break;
                    }
                    from = at + 1;
                }
                r
            }
            Eol::Any => hay.iter().position(|&b| b == b'\n' || b == b'\r').map(|i| {
                let run = hay[i..]
                    .iter()
                    .take_while(|&&b| b == b'\n' || b == b'\r')
                    .count();
                (i, i + run)
            }),
        };
        match found {
            Some((line_end, next)) => {
                let at = self.start;
                self.start += next;
                Ok(Some(&self.data[at..at + line_end]))
            }
            None if self.len() >= limit.min(self.capacity()) => {
                Err(LineTooLong { len: self.len() })
            }
            None => Ok(None),
        }
    }

    /// Append all of `bytes`, or nothing if they do not fit.
    ///
    /// ```
    /// let mut b = evloop_core::buffered::Buffer::with_capacity(4);
    /// b.extend(b"ab").unwrap();
    /// assert!(b.extend(b"cde").is_err());
    /// assert_eq!(b.as_slice(), b"ab");
    /// ```
    pub fn extend(&mut self, bytes: &[u8]) -> Result<(), BufferFull> {
        if bytes.len() > self.free() {
            return Err(BufferFull {
                needed: bytes.len(),
                free: self.free(),
            });
        }
        self.push(bytes);
        Ok(())
    }

    /// Append as much of `bytes` as fits; returns how many were appended.
    ///
    /// ```
    /// let mut b = evloop_core::buffered::Buffer::with_capacity(4);
    /// assert_eq!(b.push(b"abcdef"), 4);
    /// assert_eq!(b.as_slice(), b"abcd");
    /// ```
    pub fn push(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(self.free());
        self.spare(n)[..n].copy_from_slice(&bytes[..n]);
        self.end += n;
        n
    }

    /// The room at the back, at least `at_least` bytes long if that much is free
    /// (compacting if needed), to fill in place; then [`commit`](Self::commit) what was
    /// written. Lets a producer format straight into the buffer.
    ///
    /// ```
    /// let mut b = evloop_core::buffered::Buffer::with_capacity(8);
    /// let room = b.spare(3);
    /// room[..3].copy_from_slice(b"xyz");
    /// b.commit(3);
    /// assert_eq!(b.as_slice(), b"xyz");
    /// ```
    pub fn spare(&mut self, at_least: usize) -> &mut [u8] {
        if self.data.len() - self.end < at_least.min(self.free()) {
            self.compact();
        }
        &mut self.data[self.end..]
    }

    /// Count `n` bytes written into [`spare`](Self::spare) as buffered.
    ///
    /// ```
    /// let mut b = evloop_core::buffered::Buffer::with_capacity(8);
    /// b.spare(1)[0] = b'!';
    /// b.commit(1);
    /// assert_eq!(b.as_slice(), b"!");
    /// ```
    ///
    /// # Panics
    ///
    /// If `n` is more than the room [`spare`](Self::spare) gave.
    pub fn commit(&mut self, n: usize) {
        assert!(
            n <= self.data.len() - self.end,
            "commit beyond the spare room"
        );
        self.end += n;
    }

    fn compact(&mut self) {
        if self.start > 0 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
    }

    /// Read once from `src` into the free room (at most `max` bytes): `Ok(0)` means end of
    /// file (or no room). Compacts first when the tail is short.
    ///
    /// ```
    /// let mut b = evloop_core::buffered::Buffer::with_capacity(8);
    /// let n = b.read_from(&mut &b"hello"[..], usize::MAX).unwrap();
    /// assert_eq!((n, b.as_slice()), (5, &b"hello"[..]));
    /// ```
    pub fn read_from<R: io::Read + ?Sized>(
        &mut self,
        src: &mut R,
        max: usize,
    ) -> io::Result<usize> {
        let want = max.min(self.free());
        if want == 0 {
            return Ok(0);
        }
        let room = self.spare(want);
        let n = src.read(&mut room[..want])?;
        self.end += n;
        Ok(n)
    }

    /// Write once from the front of the buffer to `dst` and consume what was written.
    ///
    /// ```
    /// let mut b = evloop_core::buffered::Buffer::with_capacity(8);
    /// b.extend(b"hi").unwrap();
    /// let mut out = Vec::new();
    /// assert_eq!(b.write_to(&mut out).unwrap(), 2);
    /// assert_eq!((out.as_slice(), b.is_empty()), (&b"hi"[..], true));
    /// ```
    pub fn write_to<W: io::Write + ?Sized>(&mut self, dst: &mut W) -> io::Result<usize> {
        if self.is_empty() {
            return Ok(0);
        }
        let n = dst.write(self.as_slice())?;
        self.consume(n);
        Ok(n)
    }
}

/// Writing into a buffer appends as much as fits; a full buffer writes 0 bytes (so
/// `write_all` and `write!` report `WriteZero` instead of blocking or growing).
///
/// ```
/// use std::io::Write;
/// let mut b = evloop_core::buffered::Buffer::with_capacity(32);
/// write!(b, "VALUE {} {} {}\r\n", "k", 0, 5).unwrap();
/// assert_eq!(b.as_slice(), b"VALUE k 0 5\r\n");
/// ```
impl io::Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(self.push(buf))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eol_styles() {
        let mut b = Buffer::with_capacity(64);
        b.extend(b"one\ntwo\r\nthree\n\rfour").unwrap();
        assert_eq!(b.read_line(Eol::Lf).unwrap(), Some(&b"one"[..]));
        assert_eq!(b.read_line(Eol::Lf).unwrap(), Some(&b"two\r"[..]));
        assert_eq!(b.read_line(Eol::Any).unwrap(), Some(&b"three"[..]));
        assert_eq!(b.read_line(Eol::Any).unwrap(), None);
        assert_eq!(b.as_slice(), b"four");

        let mut b = Buffer::with_capacity(64);
        b.extend(b"a\nb\r\nc\r").unwrap();
        assert_eq!(b.read_line(Eol::Crlf).unwrap(), Some(&b"a"[..]));
        assert_eq!(b.read_line(Eol::Crlf).unwrap(), Some(&b"b"[..]));
        assert_eq!(b.read_line(Eol::Crlf).unwrap(), None);

        let mut b = Buffer::with_capacity(64);
        b.extend(b"x\ny\r\nz").unwrap();
        assert_eq!(b.read_line(Eol::CrlfStrict).unwrap(), Some(&b"x\ny"[..]));
        assert_eq!(b.read_line(Eol::CrlfStrict).unwrap(), None);

        // An empty line.
        let mut b = Buffer::with_capacity(8);
        b.extend(b"\r\nx").unwrap();
        assert_eq!(b.read_line(Eol::CrlfStrict).unwrap(), Some(&b""[..]));
    }

    #[test]
    fn line_too_long_is_an_error_not_a_truncation() {
        let mut b = Buffer::with_capacity(8);
        b.extend(b"12345678").unwrap();
        for eol in [Eol::Lf, Eol::Crlf, Eol::CrlfStrict, Eol::Any] {
            assert_eq!(b.read_line(eol), Err(LineTooLong { len: 8 }));
        }
        assert_eq!(b.len(), 8, "nothing consumed");
        // A line that exactly fits with its EOL is fine.
        let mut b = Buffer::with_capacity(4);
        b.extend(b"ab\r\n").unwrap();
        assert_eq!(b.read_line(Eol::CrlfStrict).unwrap(), Some(&b"ab"[..]));
        // A full buffer ending in "\r" has no strict CRLF yet: too long.
        let mut b = Buffer::with_capacity(4);
        b.extend(b"abc\r").unwrap();
        assert!(b.read_line(Eol::CrlfStrict).is_err());
    }

    #[test]
    fn compaction_keeps_bytes_in_order() {
        let mut b = Buffer::with_capacity(8);
        for round in 0..100u8 {
            let chunk = [round, round.wrapping_add(1), round.wrapping_add(2)];
            b.extend(&chunk).unwrap();
            b.extend(&chunk).unwrap();
            assert_eq!(b.take(3), Some(&chunk[..]));
            assert_eq!(b.take(3), Some(&chunk[..]));
            b.extend(b"zz").unwrap();
            b.consume(1);
            assert_eq!(b.as_slice(), b"z");
            b.consume(1);
        }
        // Partially consumed, then filled to capacity: needs a compaction.
        b.extend(b"abcdef").unwrap();
        b.consume(4);
        b.extend(b"123456").unwrap();
        assert_eq!(b.as_slice(), b"ef123456");
        assert!(b.is_full());
    }

    #[test]
    fn find_edges() {
        let mut b = Buffer::with_capacity(16);
        b.extend(b"aab").unwrap();
        assert_eq!(b.find(b"ab"), Some(1));
        assert_eq!(b.find(b"b"), Some(2));
        assert_eq!(b.find(b"bb"), None);
        assert_eq!(b.find(b"aabx"), None);
        assert_eq!(b.find(b""), Some(0));
    }
}
