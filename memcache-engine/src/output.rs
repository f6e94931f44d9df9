//! Where replies go: the [`Output`] trait, which `Vec<u8>` implements by copying, and
//! [`Replies`], a queue of reply segments that refers to stored values instead of
//! copying them and is written with one `writev` per call ([`Replies::write_to`]).
//!
//! memcached does the same: a `get` hit's reply is an `iovec` that points into the
//! item, which stays referenced until the reply has been written. However often a
//! client asks for a value it has not read yet, the value is in memory once.
//!
//! ```
//! use evloop_memcache_engine::{Connection, Replies, ServerStats, Store, StoreConfig};
//! let (mut store, env) = (Store::new(StoreConfig::default()), ServerStats::default());
//! let mut conn = Connection::new();
//! let mut setup = Vec::new();
//! conn.process(b"set big 0 0 100000\r\n", &mut setup, &mut store, &env);
//! conn.process(&[b'x'; 100_000], &mut setup, &mut store, &env);
//! conn.process(b"\r\n", &mut setup, &mut store, &env);
//! assert_eq!(setup, b"STORED\r\n");
//!
//! let mut out = Replies::new();
//! conn.process(b"get big big big\r\n", &mut out, &mut store, &env);
//! assert_eq!(out.len(), 3 * (20 + 100_002) + 5); // three headers, three values, END
//! // Seven segments: header, value, header, value, header, value, "END\r\n"; the
//! // values are the stored bytes, not copies.
//! let mut written = Vec::new();
//! while !out.is_empty() {
//!     out.write_to(&mut written).unwrap();
//! }
//! assert!(written.starts_with(b"VALUE big 0 100000\r\nxxx"));
//! assert!(written.ends_with(b"xxx\r\nEND\r\n"));
//! ```

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};

use crate::store::{ItemView, SharedValue};

/// What [`Connection::process`](crate::Connection::process) appends replies to.
///
/// `Vec<u8>` is an `Output` that copies every value; [`Replies`] refers to stored
/// values instead. The engine only appends, measures and (to drop the replies
/// memcached drops on an abrupt close) truncates.
///
/// ```
/// use evloop_memcache_engine::Output;
/// let mut v: Vec<u8> = Vec::new();
/// Output::put(&mut v, b"STORED\r\n");
/// Output::truncate(&mut v, 6);
/// assert_eq!(Output::len(&v), 6);
/// ```
pub trait Output {
    /// Bytes held: everything appended and not yet taken away.
    fn len(&self) -> usize;

    /// Whether nothing is held.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends a copy of `bytes`.
    fn put(&mut self, bytes: &[u8]);

    /// Appends `item`'s value and its `\r\n`.
    fn put_value(&mut self, item: &ItemView<'_>);

    /// Keeps only the first `len` bytes held (no-op if fewer are held).
    fn truncate(&mut self, len: usize);
}

impl Output for Vec<u8> {
    fn len(&self) -> usize {
        Vec::len(self)
    }

    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }

    fn put_value(&mut self, item: &ItemView<'_>) {
        self.extend_from_slice(item.value);
        self.extend_from_slice(b"\r\n");
    }

    fn truncate(&mut self, len: usize) {
        Vec::truncate(self, len);
    }
}

/// One piece of the replies.
#[derive(Debug)]
enum Segment {
    /// `buf[start..end]` of the [`Replies`].
    Own { start: usize, end: usize },
    /// `value[start..end]`: a stored value (and its `\r\n`), shared.
    Shared {
        value: SharedValue,
        start: usize,
        end: usize,
    },
}

impl Segment {
    fn len(&self) -> usize {
        match *self {
            Segment::Own { start, end } | Segment::Shared { start, end, .. } => end - start,
        }
    }
}

/// Most segments handed to one `writev`.
const IOV_BATCH: usize = 64;

/// Replies waiting to be written: the bytes the engine formats (headers, status
/// lines) in one reused buffer, and stored values by reference ([`SharedValue`]).
/// Written front first with [`write_to`](Self::write_to) (or
/// [`io_slices`](Self::io_slices) and [`advance`](Self::advance)).
///
/// Once warm (its buffer and queue have grown to the working size) it allocates
/// nothing: a value is queued by counting a reference to it.
///
/// ```
/// use evloop_memcache_engine::{Output, Replies};
/// let mut r = Replies::new();
/// r.put(b"STORED\r\n");
/// r.put(b"DELETED\r\n");
/// assert_eq!(r.len(), 17);
/// let mut sink = Vec::new();
/// r.write_to(&mut sink).unwrap(); // one writev; what it took is taken away
/// assert_eq!((sink.as_slice(), r.is_empty()), (&b"STORED\r\nDELETED\r\n"[..], true));
/// ```
#[derive(Debug, Default)]
pub struct Replies {
    /// The engine's own bytes; `Own` segments are ranges of it, in order.
    buf: Vec<u8>,
    segments: VecDeque<Segment>,
    len: usize,
}

impl Replies {
    /// Empty, allocating nothing until the first reply.
    ///
    /// ```
    /// assert!(evloop_memcache_engine::Replies::new().is_empty());
    /// ```
    pub fn new() -> Replies {
        Replies::default()
    }

    /// Empty, with room for `bytes` of the engine's own bytes and `segments` pieces.
    ///
    /// ```
    /// let r = evloop_memcache_engine::Replies::with_capacity(16 * 1024, 64);
    /// assert!(r.capacity() >= 16 * 1024);
    /// ```
    pub fn with_capacity(bytes: usize, segments: usize) -> Replies {
        Replies {
            buf: Vec::with_capacity(bytes),
            segments: VecDeque::with_capacity(segments),
            len: 0,
        }
    }

    /// Bytes waiting to be written.
    ///
    /// ```
    /// assert_eq!(evloop_memcache_engine::Replies::new().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing waits to be written.
    ///
    /// ```
    /// assert!(evloop_memcache_engine::Replies::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The capacity of the buffer of the engine's own bytes.
    ///
    /// ```
    /// assert_eq!(evloop_memcache_engine::Replies::new().capacity(), 0);
    /// ```
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Drops everything (the values referred to are released).
    ///
    /// ```
    /// use evloop_memcache_engine::{Output, Replies};
    /// let mut r = Replies::new();
    /// r.put(b"END\r\n");
    /// r.clear();
    /// assert!(r.is_empty());
    /// ```
    pub fn clear(&mut self) {
        self.buf.clear();
        self.segments.clear();
        self.len = 0;
    }

    /// Gives memory back: when empty, shrinks the buffers to about `bytes` and
    /// `segments` (after an exceptional batch of replies).
    ///
    /// ```
    /// use evloop_memcache_engine::{Output, Replies};
    /// let mut r = Replies::new();
    /// r.put(&[b'x'; 100_000]);
    /// r.clear();
    /// r.shrink_to(1024, 16);
    /// assert!(r.capacity() < 100_000);
    /// ```
    pub fn shrink_to(&mut self, bytes: usize, segments: usize) {
        if self.is_empty() {
            self.buf.shrink_to(bytes);
            self.segments.shrink_to(segments);
        }
    }

    /// Fills `dst` with the pieces waiting to be written, front first; returns how
    /// many it filled (0 when empty). Hand them to `writev` (`write_vectored`), then
    /// call [`advance`](Self::advance) with what it wrote.
    ///
    /// ```
    /// use evloop_memcache_engine::{Output, Replies};
    /// use std::io::IoSlice;
    /// let mut r = Replies::new();
    /// r.put(b"END\r\n");
    /// let mut iov = [IoSlice::new(&[]); 4];
    /// assert_eq!(r.io_slices(&mut iov), 1);
    /// assert_eq!(&*iov[0], b"END\r\n");
    /// ```
    pub fn io_slices<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (seg, slot) in self.segments.iter().zip(dst.iter_mut()) {
            *slot = IoSlice::new(match seg {
                Segment::Own { start, end } => &self.buf[*start..*end],
                Segment::Shared { value, start, end } => &value[*start..*end],
            });
            n += 1;
        }
        n
    }

    /// Takes away the first `n` bytes (written): values no longer waited for are
    /// released. When everything is written, the buffer is reused from its start.
    ///
    /// ```
    /// use evloop_memcache_engine::{Output, Replies};
    /// let mut r = Replies::new();
    /// r.put(b"STORED\r\n");
    /// r.advance(3);
    /// assert_eq!(r.len(), 5);
    /// ```
    pub fn advance(&mut self, mut n: usize) {
        assert!(n <= self.len, "advanced past the end of the replies");
        self.len -= n;
        while n > 0 {
            let front = self.segments.front_mut().expect("bytes are held");
            let left = front.len();
            if n < left {
                match front {
                    Segment::Own { start, .. } | Segment::Shared { start, .. } => *start += n,
                }
                break;
            }
            n -= left;
            self.segments.pop_front();
        }
        if self.segments.is_empty() {
            self.buf.clear();
        }
    }

    /// One `write_vectored` (`writev`) of up to 64 pieces from the front; what was
    /// written is taken away. Returns the bytes written (0 when empty); errors,
    /// `WouldBlock` included, are the writer's.
    ///
    /// ```
    /// use evloop_memcache_engine::{Output, Replies};
    /// let mut r = Replies::new();
    /// r.put(b"OK\r\n");
    /// let mut w = Vec::new();
    /// assert_eq!(r.write_to(&mut w).unwrap(), 4);
    /// assert!(r.is_empty());
    /// ```
    pub fn write_to(&mut self, w: &mut impl Write) -> io::Result<usize> {
        match self.segments.len() {
            0 => Ok(0),
            // The usual reply (a header, a value, `END`) without setting up 64 slices.
            1..=4 => self.write_some::<4>(w),
            _ => self.write_some::<IOV_BATCH>(w),
        }
    }

    fn write_some<const N: usize>(&mut self, w: &mut impl Write) -> io::Result<usize> {
        let mut iov = [IoSlice::new(&[]); N];
        let k = self.io_slices(&mut iov);
        let n = w.write_vectored(&iov[..k])?;
        self.advance(n);
        Ok(n)
    }
}

impl Output for Replies {
    fn len(&self) -> usize {
        self.len
    }

    fn put(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let at = self.buf.len();
        self.buf.extend_from_slice(bytes);
        self.len += bytes.len();
        if let Some(Segment::Own { end, .. }) = self.segments.back_mut() {
            if *end == at {
                *end += bytes.len();
                return;
            }
        }
        self.segments.push_back(Segment::Own {
            start: at,
            end: at + bytes.len(),
        });
    }

    fn put_value(&mut self, item: &ItemView<'_>) {
        let value = item.shared_value();
        let end = value.len();
        self.len += end;
        self.segments.push_back(Segment::Shared {
            value,
            start: 0,
            end,
        });
    }

    fn truncate(&mut self, len: usize) {
        while self.len > len {
            let excess = self.len - len;
            let back = self.segments.back_mut().expect("bytes are held");
            let l = back.len();
            if excess < l {
                match back {
                    Segment::Own { end, .. } => {
                        *end -= excess;
                        self.buf.truncate(*end);
                    }
                    Segment::Shared { end, .. } => *end -= excess,
                }
                self.len = len;
                return;
            }
            if let Some(Segment::Own { start, .. }) = self.segments.pop_back() {
                self.buf.truncate(start);
            }
            self.len -= l;
        }
        if self.segments.is_empty() {
            self.buf.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Exptime, NewItem, Store, StoreConfig, StoreMode};

    fn drain(r: &mut Replies) -> Vec<u8> {
        let mut out = Vec::new();
        // A writer that takes 7 bytes at a time, to cut segments anywhere.
        struct Slow<'a>(&'a mut Vec<u8>);
        impl Write for Slow<'_> {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                let n = b.len().min(7);
                self.0.extend_from_slice(&b[..n]);
                Ok(n)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        while !r.is_empty() {
            r.write_to(&mut Slow(&mut out)).unwrap();
        }
        out
    }

    #[test]
    fn segments_match_a_copying_output() {
        let mut store = Store::new(StoreConfig::default());
        store.store(
            StoreMode::Set,
            NewItem::new(b"k", b"0123456789", 0, Exptime::NEVER),
        );
        for cut in 0..40 {
            let mut r = Replies::new();
            let mut v = Vec::new();
            for o in [&mut r as &mut dyn Output, &mut v] {
                o.put(b"VALUE k 0 10\r\n");
                let it = store.get(b"k").unwrap();
                o.put_value(&it);
                o.put(b"END\r\n");
                o.truncate(cut);
            }
            assert_eq!(r.len(), v.len());
            assert_eq!(drain(&mut r), v, "truncated to {cut}");
            assert!(r.buf.is_empty());
        }
    }

    #[test]
    fn a_value_outlives_its_item() {
        let mut store = Store::new(StoreConfig::default());
        store.store(
            StoreMode::Set,
            NewItem::new(b"k", b"old", 0, Exptime::NEVER),
        );
        let mut r = Replies::new();
        r.put_value(&store.get(b"k").unwrap());
        store.store(
            StoreMode::Set,
            NewItem::new(b"k", b"new", 0, Exptime::NEVER),
        );
        assert!(store.delete(b"k"));
        assert_eq!(drain(&mut r), b"old\r\n");
    }
}
