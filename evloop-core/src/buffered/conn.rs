//! [`BufConn`]: a stream with an input and an output [`Buffer`] (libevent's bufferevent),
//! and [`BufSlab`]: a collection of them that does their I/O for its handlers.

use crate::sys::AsSource;
use std::fmt;
use std::fs::File;
use std::io::{self, IoSlice, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use evloop_backends::{Interest, Ready};

use super::{Buffer, BufferFull, Eol, LineTooLong};
use crate::{kind, Ctx, Error, Key, Machine, Result, Slab, Source, Token, Watch};

/// What happened to a [`BufConn`] in the dispatch being handled (see
/// [`BufConn::events`]). Several can arrive together: data followed by end of file, say.
///
/// ```
/// use evloop_core::buffered::BufEvents;
/// let ev = BufEvents::DATA | BufEvents::EOF;
/// assert!(ev.is_data() && ev.is_eof() && !ev.is_error());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct BufEvents(u8);

impl BufEvents {
    /// Nothing.
    pub const NONE: BufEvents = BufEvents(0);
    /// New bytes are in the input buffer (at least the read low watermark).
    pub const DATA: BufEvents = BufEvents(1);
    /// The peer closed its side; everything it sent before was read (it is in the input
    /// buffer). Reading stops.
    pub const EOF: BufEvents = BufEvents(1 << 1);
    /// Reading or writing failed ([`BufConn::error`] says why); the connection is dead.
    pub const ERROR: BufEvents = BufEvents(1 << 2);
    /// Reading was wanted and nothing was dispatched for the read timeout.
    pub const READ_TIMEOUT: BufEvents = BufEvents(1 << 3);
    /// Output was pending and nothing was dispatched for the write timeout.
    pub const WRITE_TIMEOUT: BufEvents = BufEvents(1 << 4);
    /// A non-blocking connect completed.
    pub const CONNECTED: BufEvents = BufEvents(1 << 5);
    /// Output that had to wait for the socket drained to the write low watermark:
    /// writable again.
    pub const DRAINED: BufEvents = BufEvents(1 << 6);

    /// Whether every event of `other` is here.
    ///
    /// ```
    /// use evloop_core::buffered::BufEvents;
    /// assert!((BufEvents::DATA | BufEvents::EOF).contains(BufEvents::EOF));
    /// ```
    pub const fn contains(self, other: BufEvents) -> bool {
        self.0 & other.0 == other.0
    }
    /// Whether nothing happened.
    ///
    /// ```
    /// assert!(evloop_core::buffered::BufEvents::NONE.is_empty());
    /// ```
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// [`DATA`](Self::DATA).
    ///
    /// ```
    /// assert!(evloop_core::buffered::BufEvents::DATA.is_data());
    /// ```
    pub const fn is_data(self) -> bool {
        self.contains(Self::DATA)
    }
    /// [`EOF`](Self::EOF).
    ///
    /// ```
    /// assert!(evloop_core::buffered::BufEvents::EOF.is_eof());
    /// ```
    pub const fn is_eof(self) -> bool {
        self.contains(Self::EOF)
    }
    /// [`ERROR`](Self::ERROR).
    ///
    /// ```
    /// assert!(evloop_core::buffered::BufEvents::ERROR.is_error());
    /// ```
    pub const fn is_error(self) -> bool {
        self.contains(Self::ERROR)
    }
    /// [`READ_TIMEOUT`](Self::READ_TIMEOUT) or [`WRITE_TIMEOUT`](Self::WRITE_TIMEOUT).
    ///
    /// ```
    /// assert!(evloop_core::buffered::BufEvents::WRITE_TIMEOUT.is_timeout());
    /// ```
    pub const fn is_timeout(self) -> bool {
        self.0 & (Self::READ_TIMEOUT.0 | Self::WRITE_TIMEOUT.0) != 0
    }
    /// [`CONNECTED`](Self::CONNECTED).
    ///
    /// ```
    /// assert!(evloop_core::buffered::BufEvents::CONNECTED.is_connected());
    /// ```
    pub const fn is_connected(self) -> bool {
        self.contains(Self::CONNECTED)
    }
    /// [`DRAINED`](Self::DRAINED).
    ///
    /// ```
    /// assert!(evloop_core::buffered::BufEvents::DRAINED.is_drained());
    /// ```
    pub const fn is_drained(self) -> bool {
        self.contains(Self::DRAINED)
    }

    /// The readiness a [`BufSlab`]'s handlers see for these events: `DATA` is
    /// `READABLE`, `EOF` is `READ_CLOSED` and `ERROR` is `ERROR` (an `#[on_read]`
    /// handler), `CONNECTED` and `DRAINED` are `WRITABLE` (`#[on_write]`), timeouts are
    /// `TIMEOUT` (`#[on_timeout]`).
    ///
    /// ```
    /// use evloop_core::{buffered::BufEvents, Ready};
    /// assert_eq!(BufEvents::DATA.to_ready(), Ready::READABLE);
    /// assert_eq!(BufEvents::NONE.to_ready(), Ready::EMPTY);
    /// ```
    pub const fn to_ready(self) -> Ready {
        let mut r = 0;
        if self.is_data() {
            r |= Ready::READABLE.bits();
        }
        if self.is_eof() {
            r |= Ready::READ_CLOSED.bits();
        }
        if self.is_error() {
            r |= Ready::ERROR.bits();
        }
        if self.0 & (Self::CONNECTED.0 | Self::DRAINED.0) != 0 {
            r |= Ready::WRITABLE.bits();
        }
        if self.is_timeout() {
            r |= Ready::TIMEOUT.bits();
        }
        Ready::from_bits(r)
    }
}

impl std::ops::BitOr for BufEvents {
    type Output = BufEvents;
    fn bitor(self, rhs: BufEvents) -> BufEvents {
        BufEvents(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for BufEvents {
    fn bitor_assign(&mut self, rhs: BufEvents) {
        self.0 |= rhs.0;
    }
}

impl fmt::Debug for BufEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [&str; 7] = [
            "DATA",
            "EOF",
            "ERROR",
            "READ_TIMEOUT",
            "WRITE_TIMEOUT",
            "CONNECTED",
            "DRAINED",
        ];
        let mut l = f.debug_set();
        for (i, n) in NAMES.iter().enumerate() {
            if self.0 & (1 << i) != 0 {
                l.entry(&format_args!("{n}"));
            }
        }
        l.finish()
    }
}

/// Sizes, watermarks and timeouts of a [`BufConn`] (libevent's
/// `bufferevent_setwatermark` and `bufferevent_set_timeouts`).
///
/// - read low: [`DATA`](BufEvents::DATA) is reported only once this many bytes are
///   buffered (default 1);
/// - read high: reading pauses while this many are buffered (default: the input
///   capacity), and resumes when the handler consumes below it;
/// - write high: while more than this is queued for output, reading pauses too
///   (backpressure: a peer that does not read cannot make us buffer more; default:
///   half the output capacity);
/// - write low: output that had to wait reports [`DRAINED`](BufEvents::DRAINED) when it
///   drains to this (default 0);
/// - read / write timeouts: reported when reading is wanted (output is pending) and no
///   readiness was dispatched on the connection for that long (default: none).
///
/// ```
/// use evloop_core::buffered::BufConfig;
/// use std::time::Duration;
/// let cfg = BufConfig::new(16 * 1024, 64 * 1024)
///     .read_watermarks(1, 8 * 1024)
///     .write_watermarks(0, 32 * 1024)
///     .read_timeout(Some(Duration::from_secs(30)));
/// assert_eq!(cfg.input_capacity(), 16 * 1024);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufConfig {
    input: usize,
    pub(super) output: usize,
    pub(super) read_low: usize,
    pub(super) read_high: usize,
    pub(super) write_low: usize,
    write_high: usize,
    pub(super) read_timeout: Option<Duration>,
    pub(super) write_timeout: Option<Duration>,
    completion: bool,
}

impl Default for BufConfig {
    /// 4 KiB in, 16 KiB out, default watermarks, no timeouts.
    fn default() -> Self {
        BufConfig::new(4096, 16 * 1024)
    }
}

impl BufConfig {
    /// Buffers of these capacities, default watermarks, no timeouts.
    ///
    /// ```
    /// let cfg = evloop_core::buffered::BufConfig::new(1024, 2048);
    /// assert_eq!(cfg.output_capacity(), 2048);
    /// ```
    pub const fn new(input: usize, output: usize) -> BufConfig {
        BufConfig {
            input,
            output,
            read_low: 1,
            read_high: input,
            write_low: 0,
            write_high: output / 2,
            read_timeout: None,
            write_timeout: None,
            completion: true,
        }
    }
    /// Read low and high watermarks (`high` is capped at the input capacity).
    ///
    /// ```
    /// let cfg = evloop_core::buffered::BufConfig::new(1024, 1024).read_watermarks(4, 512);
    /// # let _ = cfg;
    /// ```
    pub const fn read_watermarks(mut self, low: usize, high: usize) -> BufConfig {
        self.read_low = low;
        self.read_high = if high < self.input { high } else { self.input };
        self
    }
    /// Write low and high watermarks.
    ///
    /// ```
    /// let cfg = evloop_core::buffered::BufConfig::new(1024, 1024).write_watermarks(0, 256);
    /// # let _ = cfg;
    /// ```
    pub const fn write_watermarks(mut self, low: usize, high: usize) -> BufConfig {
        self.write_low = low;
        self.write_high = high;
        self
    }
    /// The read timeout.
    ///
    /// ```
    /// let cfg = evloop_core::buffered::BufConfig::default().read_timeout(Some(std::time::Duration::from_secs(5)));
    /// # let _ = cfg;
    /// ```
    pub const fn read_timeout(mut self, t: Option<Duration>) -> BufConfig {
        self.read_timeout = t;
        self
    }
    /// The write timeout.
    ///
    /// ```
    /// let cfg = evloop_core::buffered::BufConfig::default().write_timeout(Some(std::time::Duration::from_secs(5)));
    /// # let _ = cfg;
    /// ```
    pub const fn write_timeout(mut self, t: Option<Duration>) -> BufConfig {
        self.write_timeout = t;
        self
    }
    /// Whether a [`BufSlab`] uses completion I/O when the loop's backend has it
    /// (io_uring; see the book's "io_uring" chapter): the backend receives into its own
    /// buffers and sends from the connection's, so a request and its reply cost no
    /// syscall of their own. On by default; readiness backends ignore it. Off, the
    /// connections read and write with syscalls on readiness under every backend.
    ///
    /// ```
    /// let cfg = evloop_core::buffered::BufConfig::default().completion_io(false);
    /// assert!(!cfg.uses_completion_io());
    /// ```
    pub const fn completion_io(mut self, on: bool) -> BufConfig {
        self.completion = on;
        self
    }
    /// Whether [`completion_io`](Self::completion_io) is on.
    ///
    /// ```
    /// assert!(evloop_core::buffered::BufConfig::default().uses_completion_io());
    /// ```
    pub const fn uses_completion_io(&self) -> bool {
        self.completion
    }
    /// The input buffer's capacity.
    ///
    /// ```
    /// assert_eq!(evloop_core::buffered::BufConfig::new(10, 20).input_capacity(), 10);
    /// ```
    pub const fn input_capacity(&self) -> usize {
        self.input
    }
    /// The output buffer's capacity.
    ///
    /// ```
    /// assert_eq!(evloop_core::buffered::BufConfig::new(10, 20).output_capacity(), 20);
    /// ```
    pub const fn output_capacity(&self) -> usize {
        self.output
    }
}

/// A file being sent with `sendfile`, after `before` bytes of the output buffer.
pub(super) struct FileSend {
    pub(super) file: File,
    pub(super) offset: u64,
    pub(super) remaining: u64,
    pub(super) before: usize,
}

/// The readiness bits after which reading is tried.
pub(super) const READ_BITS: Ready = Ready::from_bits(
    Ready::READABLE.bits() | Ready::READ_CLOSED.bits() | Ready::HUP.bits() | Ready::ERROR.bits(),
);

pub(super) const EOF: u8 = 1;
const CLOSING: u8 = 1 << 1;
pub(super) const CONNECTING: u8 = 1 << 2;
const PAUSED: u8 = 1 << 3;
pub(super) const FAILED: u8 = 1 << 4;
pub(super) const ERROR_REPORTED: u8 = 1 << 5;
/// Output is waiting for the socket (a flush left more than the write low watermark).
pub(super) const WAITED: u8 = 1 << 6;
/// A flush after the handlers drained waiting output: `DRAINED` is owed to the next
/// dispatch (`BufSlab::update` asks for one).
pub(super) const DRAIN_OWED: u8 = 1 << 7;

/// A buffered stream (libevent's bufferevent): bytes read from `S` land in the input
/// [`Buffer`]; bytes queued in the output buffer are written when the stream is
/// writable. In a [`BufSlab`] the reading, flushing and interest switching are done for
/// the handlers; on its own, [`on_ready`](Self::on_ready) does them for one readiness and
/// [`wanted`](Self::wanted) says what to watch.
///
/// ```
/// use evloop_core::buffered::{BufConfig, BufConn, Eol};
/// use evloop_core::Ready;
/// use std::io::Write;
/// use std::os::unix::net::UnixStream;
///
/// let (a, mut peer) = UnixStream::pair().unwrap();
/// let mut conn = BufConn::new(a, &BufConfig::default()).unwrap();
/// peer.write_all(b"PING\r\n").unwrap();
/// let ev = conn.on_ready(Ready::READABLE);
/// assert!(ev.is_data());
/// assert_eq!(conn.read_line(Eol::Crlf).unwrap(), Some(&b"PING"[..]));
/// conn.write(b"PONG\r\n").unwrap();
/// conn.flush().unwrap();
/// ```
pub struct BufConn<S> {
    stream: S,
    pub(super) input: Buffer,
    pub(super) output: Buffer,
    pub(super) cfg: BufConfig,
    pub(super) file: Option<FileSend>,
    pub(super) flags: u8,
    error: Option<io::Error>,
    pub(super) events: BufEvents,
    /// What the loop is told to watch, and the timeout it is told.
    interest: Interest,
    timeout: Option<Duration>,
    /// Completion mode (see `completion.rs`): the backend does this connection's I/O.
    pub(super) completion: bool,
    /// Completion mode: bytes handed to the backend in a send not yet finished.
    pub(super) in_flight: usize,
    /// Completion mode: the send buffer, between sends (allocated by the first).
    pub(super) tx_spare: Vec<u8>,
}

impl<S> fmt::Debug for BufConn<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufConn")
            .field("input", &self.input)
            .field("output", &self.output)
            .field("events", &self.events)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

crate::impl_as_source!([S: AsSource] BufConn<S> => stream);

impl<S: AsSource> BufConn<S> {
    /// Wrap `stream` (switched to non-blocking mode) with buffers sized by `cfg`. The
    /// buffers are allocated here, once.
    ///
    /// ```
    /// use evloop_core::buffered::{BufConfig, BufConn};
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let conn = BufConn::new(a, &BufConfig::new(512, 512)).unwrap();
    /// assert_eq!(conn.input().capacity(), 512);
    /// ```
    pub fn new(stream: S, cfg: &BufConfig) -> io::Result<BufConn<S>> {
        crate::socket::set_nonblocking(crate::sys::raw_source(&stream))?;
        let mut input = Buffer::with_capacity(cfg.input);
        input.set_line_limit(cfg.read_high);
        Ok(BufConn {
            stream,
            input,
            output: Buffer::with_capacity(cfg.output),
            cfg: *cfg,
            file: None,
            flags: 0,
            error: None,
            events: BufEvents::NONE,
            interest: Interest::NONE,
            timeout: None,
            completion: false,
            in_flight: 0,
            tx_spare: Vec::new(),
        })
    }
}

impl BufConn<TcpStream> {
    /// Start a non-blocking connect to `addr`: the connection is returned at once and
    /// reports [`CONNECTED`](BufEvents::CONNECTED) (or [`ERROR`](BufEvents::ERROR)) when
    /// the connect completes. Output queued meanwhile is sent once connected.
    ///
    /// ```
    /// use evloop_core::buffered::{BufConfig, BufConn};
    /// let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let conn = BufConn::connect(server.local_addr().unwrap(), &BufConfig::default()).unwrap();
    /// assert!(conn.is_connecting());
    /// ```
    pub fn connect(addr: SocketAddr, cfg: &BufConfig) -> io::Result<BufConn<TcpStream>> {
        let fd = crate::socket::socket_for(&addr, crate::socket::STREAM)?;
        crate::socket::connect(crate::sys::raw_source(&fd), &addr)?;
        // Connecting even if it completed at once: the first writable readiness checks
        // `SO_ERROR` and reports `CONNECTED` either way.
        let mut conn = BufConn::new(TcpStream::from(fd), cfg)?;
        conn.flags |= CONNECTING;
        Ok(conn)
    }
}

impl<S> BufConn<S> {
    /// The stream.
    ///
    /// ```
    /// # use evloop_core::buffered::{BufConfig, BufConn};
    /// # let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let conn = BufConn::new(a, &BufConfig::default()).unwrap();
    /// let _peer = conn.stream().peer_addr().unwrap();
    /// ```
    pub fn stream(&self) -> &S {
        &self.stream
    }
    /// The stream, mutably (reading or writing it directly bypasses the buffers).
    ///
    /// ```
    /// # use evloop_core::buffered::{BufConfig, BufConn};
    /// # let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let mut conn = BufConn::new(a, &BufConfig::default()).unwrap();
    /// conn.stream_mut().set_nonblocking(true).unwrap();
    /// ```
    pub fn stream_mut(&mut self) -> &mut S {
        &mut self.stream
    }
    /// The stream, dropping the buffers.
    ///
    /// ```
    /// # use evloop_core::buffered::{BufConfig, BufConn};
    /// # let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let conn = BufConn::new(a, &BufConfig::default()).unwrap();
    /// let _stream: std::os::unix::net::UnixStream = conn.into_inner();
    /// ```
    pub fn into_inner(self) -> S {
        self.stream
    }
    /// The input buffer (bytes read, not yet consumed).
    ///
    /// ```
    /// # use evloop_core::buffered::{BufConfig, BufConn};
    /// # let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let conn = BufConn::new(a, &BufConfig::default()).unwrap();
    /// assert!(conn.input().is_empty());
    /// ```
    pub fn input(&self) -> &Buffer {
        &self.input
    }
    /// The input buffer, to parse and consume.
    ///
    /// ```
    /// # use evloop_core::buffered::{BufConfig, BufConn};
    /// # let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let mut conn = BufConn::new(a, &BufConfig::default()).unwrap();
    /// conn.input_mut().consume(10);
    /// ```
    pub fn input_mut(&mut self) -> &mut Buffer {
        &mut self.input
    }
    /// The output buffer (queued, not yet written).
    ///
    /// ```
    /// # use evloop_core::buffered::{BufConfig, BufConn};
    /// # let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let conn = BufConn::new(a, &BufConfig::default()).unwrap();
    /// assert!(conn.output().is_empty());
    /// ```
    pub fn output(&self) -> &Buffer {
        &self.output
    }
    /// The output buffer, to fill in place (`write!`, [`Buffer::spare`]).
    ///
    /// ```
    /// # use evloop_core::buffered::{BufConfig, BufConn};
    /// # let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// use std::io::Write;
    /// let mut conn = BufConn::new(a, &BufConfig::default()).unwrap();
    /// write!(conn.output_mut(), "STORED\r\n").unwrap();
    /// ```
    pub fn output_mut(&mut self) -> &mut Buffer {
        &mut self.output
    }
    /// Both buffers at once, `(input, output)`: parse one while writing the other.
    ///
    /// ```
    /// # use evloop_core::buffered::{BufConfig, BufConn};
    /// # let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let mut conn = BufConn::new(a, &BufConfig::default()).unwrap();
    /// let (input, output) = conn.buffers();
    /// output.push(input.as_slice());
    /// ```
    pub fn buffers(&mut self) -> (&mut Buffer, &mut Buffer) {
        (&mut self.input, &mut self.output)
    }
    /// What happened in the dispatch being handled (set before the handlers run).
    ///
    /// ```
    /// # use evloop_core::buffered::{BufConfig, BufConn};
    /// # let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let conn = BufConn::new(a, &BufConfig::default()).unwrap();
    /// assert!(conn.events().is_empty());
    /// ```
    pub fn events(&self) -> BufEvents {
        self.events
    }
    /// Why the connection failed, once [`ERROR`](BufEvents::ERROR) was reported.
    ///
    /// ```
    /// # use evloop_core::buffered::{BufConfig, BufConn};
    /// # let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let conn = BufConn::new(a, &BufConfig::default()).unwrap();
    /// assert!(conn.error().is_none());
    /// ```
    pub fn error(&self) -> Option<&io::Error> {
        self.error.as_ref()
    }
    /// Whether the peer's end of file was read.
    ///
    /// ```
    /// # use evloop_core::buffered::{BufConfig, BufConn};
    /// # let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let conn = BufConn::new(a, &BufConfig::default()).unwrap();
    /// assert!(!conn.is_eof());
    /// ```
    pub fn is_eof(&self) -> bool {
        self.flags & EOF != 0
    }
    /// Whether a non-blocking connect is still in progress.
    ///
    /// ```
    /// # use evloop_core::buffered::{BufConfig, BufConn};
    /// # let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// assert!(!BufConn::new(a, &BufConfig::default()).unwrap().is_connecting());
    /// ```
    pub fn is_connecting(&self) -> bool {
        self.flags & CONNECTING != 0
    }
    /// The configuration (capacities, watermarks, timeouts).
    ///
    /// ```
    /// # use evloop_core::buffered::{BufConfig, BufConn};
    /// # let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let conn = BufConn::new(a, &BufConfig::new(64, 64)).unwrap();
    /// assert_eq!(conn.config().input_capacity(), 64);
    /// ```
    pub fn config(&self) -> &BufConfig {
        &self.cfg
    }
    /// Change watermarks and timeouts (capacities cannot change: the buffers keep theirs).
    /// In a [`BufSlab`], call [`BufSlab::update`] afterwards.
    ///
    /// ```
    /// # use evloop_core::buffered::{BufConfig, BufConn};
    /// # let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let mut conn = BufConn::new(a, &BufConfig::default()).unwrap();
    /// let cfg = conn.config().read_watermarks(1, 100);
    /// conn.set_config(cfg);
    /// ```
    pub fn set_config(&mut self, cfg: BufConfig) {
        let (input, output) = (self.input.capacity(), self.output.capacity());
        self.cfg = cfg;
        self.cfg.input = input;
        self.cfg.output = output;
        self.cfg.read_high = self.cfg.read_high.min(input);
        self.input.set_line_limit(self.cfg.read_high);
    }

    /// The next line of input (see [`Buffer::read_line`]); too long once the read high
    /// watermark is reached without an end of line, since reading pauses there. To
    /// write a reply while holding the line, use the buffers separately:
    /// `let (input, output) = conn.buffers();`.
    ///
    /// ```
    /// # use evloop_core::buffered::{BufConfig, BufConn, Eol};
    /// # let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let mut conn = BufConn::new(a, &BufConfig::default()).unwrap();
    /// conn.input_mut().extend(b"hi\n").unwrap();
    /// assert_eq!(conn.read_line(Eol::Lf).unwrap(), Some(&b"hi"[..]));
    /// ```
    pub fn read_line(&mut self, eol: Eol) -> std::result::Result<Option<&[u8]>, LineTooLong> {
        self.input.read_line(eol)
    }

    /// Queue `bytes` for output, all or nothing.
    ///
    /// ```
    /// # use evloop_core::buffered::{BufConfig, BufConn};
    /// # let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let mut conn = BufConn::new(a, &BufConfig::new(16, 4)).unwrap();
    /// conn.write(b"ok").unwrap();
    /// assert!(conn.write(b"too long").is_err());
    /// ```
    pub fn write(&mut self, bytes: &[u8]) -> std::result::Result<(), BufferFull> {
        self.output.extend(bytes)
    }

    /// Bytes queued for output, a file still being sent included.
    ///
    /// ```
    /// # use evloop_core::buffered::{BufConfig, BufConn};
    /// # let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let mut conn = BufConn::new(a, &BufConfig::default()).unwrap();
    /// conn.write(b"abc").unwrap();
    /// assert_eq!(conn.pending(), 3);
    /// ```
    pub fn pending(&self) -> u64 {
        self.output.len() as u64
            + self.file.as_ref().map_or(0, |f| f.remaining)
            + self.in_flight as u64
    }

    /// Stop reading (until [`resume_reading`](Self::resume_reading)); bytes already
    /// buffered stay. In a [`BufSlab`], takes effect after the handler (or on
    /// [`BufSlab::update`]).
    ///
    /// ```
    /// # use evloop_core::buffered::{BufConfig, BufConn};
    /// # let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let mut conn = BufConn::new(a, &BufConfig::default()).unwrap();
    /// conn.pause_reading();
    /// assert!(!conn.wanted().is_readable());
    /// ```
    pub fn pause_reading(&mut self) {
        self.flags |= PAUSED;
    }
    /// Undo [`pause_reading`](Self::pause_reading).
    ///
    /// ```
    /// # use evloop_core::buffered::{BufConfig, BufConn};
    /// # let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let mut conn = BufConn::new(a, &BufConfig::default()).unwrap();
    /// conn.pause_reading();
    /// conn.resume_reading();
    /// assert!(conn.wanted().is_readable());
    /// ```
    pub fn resume_reading(&mut self) {
        self.flags &= !PAUSED;
    }

    /// Flush and close: stop reading; once everything queued (files included) is
    /// written, the connection is closed (in a [`BufSlab`], removed and dropped). If
    /// writing fails first, a `BufSlab` reports [`ERROR`](BufEvents::ERROR) to the
    /// connection's handlers, then removes it.
    ///
    /// ```
    /// # use evloop_core::buffered::{BufConfig, BufConn};
    /// # let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let mut conn = BufConn::new(a, &BufConfig::default()).unwrap();
    /// conn.write(b"bye\r\n").unwrap();
    /// conn.close_after_flush();
    /// assert!(!conn.is_done());
    /// conn.flush().unwrap();
    /// assert!(conn.is_done());
    /// ```
    pub fn close_after_flush(&mut self) {
        self.flags |= CLOSING;
    }

    /// Whether [`close_after_flush`](Self::close_after_flush) was asked and everything
    /// was written (or the connection failed): nothing is left to do but drop it.
    ///
    /// ```
    /// # use evloop_core::buffered::{BufConfig, BufConn};
    /// # let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let mut conn = BufConn::new(a, &BufConfig::default()).unwrap();
    /// conn.close_after_flush();
    /// assert!(conn.is_done());
    /// ```
    pub fn is_done(&self) -> bool {
        self.flags & CLOSING != 0 && (self.pending() == 0 || self.flags & FAILED != 0)
    }

    /// Queue `len` bytes of `file` from `offset`, to be sent with `sendfile(2)` after the
    /// output queued so far (and before output queued later). One file at a time: while
    /// one is being sent, another is refused with `WouldBlock`.
    ///
    /// ```
    /// # use evloop_core::buffered::{BufConfig, BufConn};
    /// # let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let mut conn = BufConn::new(a, &BufConfig::default()).unwrap();
    /// let file = std::fs::File::open(std::env::current_exe().unwrap()).unwrap();
    /// conn.send_file(file, 0, 16).unwrap();
    /// assert_eq!(conn.pending(), 16);
    /// ```
    pub fn send_file(&mut self, file: File, offset: u64, len: u64) -> io::Result<()> {
        if self.file.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "a file is already being sent on this connection",
            ));
        }
        self.file = Some(FileSend {
            file,
            offset,
            remaining: len,
            before: self.output.len(),
        });
        Ok(())
    }

    /// What the connection needs watched now: read unless paused (by the read high
    /// watermark, output above the write high watermark, end of file, an error,
    /// [`pause_reading`](Self::pause_reading) or closing); write while output is pending
    /// or a connect is in progress.
    ///
    /// ```
    /// # use evloop_core::buffered::{BufConfig, BufConn};
    /// # let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let mut conn = BufConn::new(a, &BufConfig::default()).unwrap();
    /// assert!(conn.wanted().is_readable() && !conn.wanted().is_writable());
    /// conn.write(b"x").unwrap();
    /// assert!(conn.wanted().is_writable());
    /// ```
    pub fn wanted(&self) -> Interest {
        if self.flags & FAILED != 0 {
            return Interest::NONE;
        }
        let mut i = Interest::NONE;
        if self.flags & (EOF | CLOSING | CONNECTING | PAUSED) == 0
            && self.input.len() < self.cfg.read_high
            && self.output.len() <= self.cfg.write_high
        {
            i |= Interest::READ;
        }
        if self.flags & CONNECTING != 0 || self.pending() > 0 {
            i |= Interest::WRITE;
        }
        i
    }

    /// The timeout that applies to what is [`wanted`](Self::wanted): the shorter of the
    /// read timeout (while reading) and the write timeout (while output is pending).
    pub(super) fn wanted_timeout(&self, wanted: Interest) -> Option<Duration> {
        let r = self.cfg.read_timeout.filter(|_| wanted.is_readable());
        let w = self.cfg.write_timeout.filter(|_| wanted.is_writable());
        match (r, w) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A failed connection's events: `ERROR` once, then nothing. `None` if it has not
    /// failed.
    pub(super) fn failed_events(&mut self) -> Option<BufEvents> {
        if self.flags & FAILED == 0 {
            return None;
        }
        let mut ev = BufEvents::NONE;
        if self.flags & ERROR_REPORTED == 0 {
            self.flags |= ERROR_REPORTED;
            ev |= BufEvents::ERROR;
        }
        self.events = ev;
        Some(ev)
    }

    /// The timeouts a `TIMEOUT` readiness means for what is `wanted`.
    pub(super) fn timeout_events(&self, ready: Ready, wanted: Interest) -> BufEvents {
        let mut ev = BufEvents::NONE;
        if ready.is_timeout() {
            if wanted.is_writable() && self.cfg.write_timeout.is_some() {
                ev |= BufEvents::WRITE_TIMEOUT;
            }
            if wanted.is_readable() && self.cfg.read_timeout.is_some() {
                ev |= BufEvents::READ_TIMEOUT;
            }
        }
        ev
    }

    /// `DRAINED` owed by an earlier flush joins `ev`; reporting it clears the waiting
    /// state, and output still above the low watermark starts it.
    pub(super) fn settle_drained(&mut self, ev: &mut BufEvents) {
        if self.flags & DRAIN_OWED != 0 {
            *ev |= BufEvents::DRAINED;
        }
        if ev.is_drained() {
            self.flags &= !(WAITED | DRAIN_OWED);
        } else if self.pending() > self.cfg.write_low as u64 {
            self.flags |= WAITED;
        }
    }

    /// `DATA` joins `ev` if the input holds at least the read low watermark.
    pub(super) fn data_event(&self, ev: &mut BufEvents) {
        if !self.input.is_empty() && self.input.len() >= self.cfg.read_low {
            *ev |= BufEvents::DATA;
        }
    }

    /// `ERROR` joins `ev` if the connection failed; `ev` becomes what
    /// [`events`](Self::events) says.
    pub(super) fn finish_events(&mut self, mut ev: BufEvents) -> BufEvents {
        if self.flags & FAILED != 0 {
            self.flags |= ERROR_REPORTED;
            ev |= BufEvents::ERROR;
        }
        self.events = ev;
        ev
    }

    pub(super) fn fail(&mut self, e: io::Error) {
        self.flags |= FAILED;
        if self.error.is_none() {
            self.error = Some(e);
        }
    }
}

impl<S: Read + Write + AsSource> BufConn<S> {
    /// Do the I/O one readiness calls for and say what happened: complete a connect,
    /// flush pending output (`WRITABLE`), read into the input buffer up to the read
    /// high watermark (`READABLE`, hang-ups, errors), classify a `TIMEOUT`. The result is
    /// also what [`events`](Self::events) returns until the next call.
    ///
    /// ```
    /// use evloop_core::buffered::{BufConfig, BufConn};
    /// use evloop_core::Ready;
    /// let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let mut conn = BufConn::new(a, &BufConfig::default()).unwrap();
    /// drop(b);
    /// assert!(conn.on_ready(Ready::READABLE).is_eof());
    /// ```
    pub fn on_ready(&mut self, ready: Ready) -> BufEvents {
        if let Some(ev) = self.failed_events() {
            return ev;
        }
        let mut ev = BufEvents::NONE;
        if self.flags & CONNECTING != 0
            && ready.intersects(Ready::WRITABLE | Ready::ERROR | Ready::HUP)
        {
            match crate::socket::so_error(crate::sys::raw_source(&self.stream)) {
                Ok(()) => {
                    self.flags &= !CONNECTING;
                    ev |= BufEvents::CONNECTED;
                }
                Err(e) => {
                    self.fail(e);
                    self.flags |= ERROR_REPORTED;
                    self.events = BufEvents::ERROR;
                    return self.events;
                }
            }
        }
        let wanted = self.wanted();
        ev |= self.timeout_events(ready, wanted);
        let low = self.cfg.write_low as u64;
        if ready.is_writable() && self.flags & CONNECTING == 0 && self.pending() > 0 {
            let before = self.pending();
            if let Err(e) = self.flush() {
                self.fail(e);
            } else if before > low && self.pending() <= low {
                ev |= BufEvents::DRAINED;
            }
        }
        self.settle_drained(&mut ev);
        if self.flags & FAILED == 0 && ready.intersects(READ_BITS) && wanted.is_readable() {
            let room = self.cfg.read_high.saturating_sub(self.input.len());
            loop {
                match read_once(&mut self.input, &mut self.stream, room) {
                    Ok(0) if room > 0 => {
                        self.flags |= EOF;
                        ev |= BufEvents::EOF;
                    }
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => self.fail(e),
                }
                break;
            }
            self.data_event(&mut ev);
        }
        self.finish_events(ev)
    }

    /// Write what is queued until the stream would block: the output buffer, and a
    /// queued file with `sendfile(2)` in its place among the bytes. A short write ends
    /// the attempt (the socket buffer is full; the next writable readiness resumes).
    ///
    /// ```
    /// # use evloop_core::buffered::{BufConfig, BufConn};
    /// use std::io::Read;
    /// let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let mut conn = BufConn::new(a, &BufConfig::default()).unwrap();
    /// conn.write(b"hello").unwrap();
    /// conn.flush().unwrap();
    /// let mut got = [0u8; 5];
    /// b.read_exact(&mut got).unwrap();
    /// assert_eq!(&got, b"hello");
    /// ```
    ///
    /// A connection in a [`BufSlab`] that uses completion I/O is written by the slab
    /// (after its handlers, or by [`BufSlab::flush`]); this does nothing for it.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.flags & CONNECTING != 0 || self.completion {
            return Ok(());
        }
        loop {
            let limit = match &self.file {
                Some(f) => f.before,
                None => self.output.len(),
            };
            if limit > 0 {
                let n = limit.min(self.output.len());
                match write_once(&mut self.stream, &self.output.as_slice()[..n]) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(k) => {
                        self.output.consume(k);
                        if let Some(f) = &mut self.file {
                            f.before -= k;
                        }
                        if k < n {
                            return Ok(());
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) => return Err(e),
                }
                continue;
            }
            let Some(f) = &mut self.file else {
                return Ok(());
            };
            if f.remaining == 0 {
                self.file = None;
                continue;
            }
            match crate::socket::send_file_chunk(
                crate::sys::raw_source(&self.stream),
                &f.file,
                &mut f.offset,
                &mut f.remaining,
            ) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file shorter than the length queued",
                    ))
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    /// Queue borrowed slices without copying them when the stream takes them at once:
    /// if nothing else is queued, they are written with one `writev(2)`, and only what
    /// the stream did not take is copied into the output buffer. All or nothing: if the
    /// slices might not fit in the output buffer's free room, nothing is written and
    /// [`BufferFull`] is returned (as an `io::Error` of kind `WriteZero`).
    ///
    /// ```
    /// # use evloop_core::buffered::{BufConfig, BufConn};
    /// use std::io::{IoSlice, Read};
    /// let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let mut conn = BufConn::new(a, &BufConfig::default()).unwrap();
    /// conn.write_slices(&[IoSlice::new(b"VALUE k 0 3\r\n"), IoSlice::new(b"abc"), IoSlice::new(b"\r\nEND\r\n")]).unwrap();
    /// let mut got = [0u8; 23];
    /// b.read_exact(&mut got).unwrap();
    /// assert_eq!(&got, b"VALUE k 0 3\r\nabc\r\nEND\r\n");
    /// ```
    pub fn write_slices(&mut self, slices: &[IoSlice<'_>]) -> io::Result<()> {
        let total: usize = slices.iter().map(|s| s.len()).sum();
        if total > self.output.free() {
            return Err(BufferFull {
                needed: total,
                free: self.output.free(),
            }
            .into());
        }
        let mut skip = 0;
        // (In completion mode the bytes are copied and sent by the slab.)
        let direct = !self.completion && self.flags & (CONNECTING | FAILED) == 0;
        if self.pending() == 0 && direct && total > 0 {
            loop {
                match write_vectored_once(&mut self.stream, slices) {
                    Ok(n) => skip = n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => {
                        self.fail(e);
                        return Ok(()); // reported as ERROR by the next dispatch
                    }
                }
                break;
            }
        }
        for s in slices {
            let n = skip.min(s.len());
            skip -= n;
            self.output.push(&s[n..]);
        }
        Ok(())
    }
}

// The connection's reads and writes, one call each. With the `fault-injection` feature
// each may first be shortened or fail (`evloop_backends::fault::before_read` and
// `before_write`), on a thread armed by a `FaultInjecting` backend; without it they are
// the plain calls.

/// One read of at most `max` bytes into `input`.
fn read_once<S: Read>(input: &mut Buffer, stream: &mut S, max: usize) -> io::Result<usize> {
    #[cfg(feature = "fault-injection")]
    let max = evloop_backends::fault::before_read(max)?;
    input.read_from(stream, max)
}

/// One write of (a prefix of) `bytes`.
fn write_once<S: Write>(stream: &mut S, bytes: &[u8]) -> io::Result<usize> {
    #[cfg(feature = "fault-injection")]
    let bytes = &bytes[..evloop_backends::fault::before_write(bytes.len())?];
    stream.write(bytes)
}

/// One `writev` of (a prefix of) `slices`.
fn write_vectored_once<S: Write>(stream: &mut S, slices: &[IoSlice<'_>]) -> io::Result<usize> {
    #[cfg(feature = "fault-injection")]
    {
        let total: usize = slices.iter().map(|s| s.len()).sum();
        let allowed = evloop_backends::fault::before_write(total)?;
        if allowed < total {
            // A short writev: a prefix, here of the first slice that has bytes.
            let first = slices
                .iter()
                .find(|s| !s.is_empty())
                .map_or(&[][..], |s| &s[..]);
            return stream.write(&first[..allowed.min(first.len())]);
        }
    }
    stream.write_vectored(slices)
}

/// The interest registered for a connection of a [`BufSlab`] that wants `wanted`: with
/// `COMPLETION` in completion mode, else with `PEER_CLOSED` if the slab's watch asks.
fn interest_for<S>(conn: &BufConn<S>, peer_closed: bool, wanted: Interest) -> Interest {
    let mut i = wanted;
    if conn.completion {
        i |= Interest::COMPLETION;
    } else if wanted.is_readable() && peer_closed {
        i |= Interest::PEER_CLOSED;
    }
    i
}

/// Up to `N` buffered connections, each registered with the loop, found by [`Key`]: the
/// collection a machine's `#[on_read]`, `#[on_write]` and `#[on_timeout]` handlers name
/// to get connections with their bytes already read. Before the handlers run it does the
/// connection's I/O ([`BufConn::on_ready`]) and calls them for what happened (see
/// [`BufEvents::to_ready`]); after them it flushes what they queued and switches the
/// connection's interest (read paused at the watermarks, write while output is
/// pending). A connection whose [`close_after_flush`](BufConn::close_after_flush)
/// completes is removed and closed.
///
/// With `#[event_machine]`, a handler `#[on_read(conns)] fn data(&mut self, key: Key,
/// ctx: &mut Ctx<Self>)` is called with the bytes already in `conns.get_mut(key)`'s
/// input (see the book's "Buffered I/O" chapter). By hand, a machine passes the
/// collection's events through the same two hooks the generated code calls:
///
/// ```
/// use evloop_core::*;
/// use evloop_core::buffered::{BufSlab, Eol};
/// use std::io::{Read, Write};
/// use std::os::unix::net::UnixStream;
///
/// struct Upper { conns: BufSlab<UnixStream> }
/// const CONNS: u16 = 1;
///
/// impl Machine for Upper {
///     type Backend = DefaultBackend;
///     fn setup(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
///         self.conns.attach(ctx, CONNS, Watch::read())
///     }
///     fn dispatch(&mut self, ctx: &mut Ctx<Self>, ev: Event) {
///         let Some(key) = self.conns.entry(ev.token) else { return };
///         let ready = self.conns.before_dispatch(ctx, key, ev.ready); // reads, flushes
///         if ready.intersects(Ready::READABLE | Ready::READ_CLOSED) {
///             let c = self.conns.get_mut(key).unwrap();
///             while let Ok(Some(line)) = c.read_line(Eol::Lf) {
///                 let reply = line.to_ascii_uppercase();
///                 c.write(&reply).unwrap();
///                 c.write(b"\n").unwrap();
///             }
///             if c.events().is_eof() {
///                 c.close_after_flush(); // removed once the replies are written
///             }
///         }
///         self.conns.after_dispatch(ctx, key); // flushes, switches interest
///     }
/// }
///
/// let mut el = EventLoop::new(Upper { conns: BufSlab::default() }).unwrap();
/// let (a, mut client) = UnixStream::pair().unwrap();
/// let (m, ctx) = el.parts();
/// m.conns.insert(ctx, a).unwrap();
/// client.write_all(b"hello\nworld\n").unwrap();
/// client.shutdown(std::net::Shutdown::Write).unwrap();
/// el.run().unwrap(); // ends when the connection is closed: nothing left to watch
/// let mut got = String::new();
/// client.read_to_string(&mut got).unwrap();
/// assert_eq!(got, "HELLO\nWORLD\n");
/// assert_eq!(el.machine().conns.closed(), 1);
/// ```
pub struct BufSlab<S> {
    slab: Slab<BufConn<S>>,
    cfg: BufConfig,
    watch: Watch,
    closed: u64,
    /// The loop's backend does completion I/O and the configuration allows it.
    completion: bool,
}

impl<S> Default for BufSlab<S> {
    /// An empty collection with room for [`Slab::DEFAULT_CAPACITY`] connections and the
    /// default [`BufConfig`].
    fn default() -> Self {
        BufSlab::new(BufConfig::default())
    }
}

impl<S> fmt::Debug for BufSlab<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufSlab")
            .field("len", &self.slab.len())
            .field("capacity", &self.slab.capacity())
            .field("config", &self.cfg)
            .finish()
    }
}

impl<S> BufSlab<S> {
    /// An empty collection with room for [`Slab::DEFAULT_CAPACITY`] connections, whose
    /// connections get buffers and watermarks from `cfg`.
    ///
    /// ```
    /// use evloop_core::buffered::{BufConfig, BufSlab};
    /// let s: BufSlab<std::net::TcpStream> = BufSlab::new(BufConfig::new(2048, 8192));
    /// assert_eq!(s.config().input_capacity(), 2048);
    /// assert_eq!(s.capacity(), evloop_core::Slab::<()>::DEFAULT_CAPACITY);
    /// ```
    pub fn new(cfg: BufConfig) -> Self {
        Self::with_capacity(Slab::<BufConn<S>>::DEFAULT_CAPACITY, cfg)
    }

    /// An empty collection with room for `capacity` connections (a server's connection
    /// limit, from its configuration), allocated now, once; each connection gets buffers
    /// and watermarks from `cfg`.
    ///
    /// # Panics
    ///
    /// If `capacity` is above [`Slab::MAX_CAPACITY`].
    ///
    /// ```
    /// use evloop_core::buffered::{BufConfig, BufSlab};
    /// let s: BufSlab<std::net::TcpStream> = BufSlab::with_capacity(5000, BufConfig::default());
    /// assert_eq!(s.capacity(), 5000);
    /// ```
    pub fn with_capacity(capacity: usize, cfg: BufConfig) -> Self {
        BufSlab {
            slab: Slab::with_capacity(capacity),
            cfg,
            watch: Watch::read(),
            closed: 0,
            completion: false,
        }
    }

    /// The configuration new connections get.
    ///
    /// ```
    /// let s: evloop_core::buffered::BufSlab<std::net::TcpStream> = Default::default();
    /// assert_eq!(s.config().input_capacity(), 4096);
    /// ```
    pub fn config(&self) -> &BufConfig {
        &self.cfg
    }

    /// The connection behind `key`, if live.
    ///
    /// ```
    /// let s: evloop_core::buffered::BufSlab<std::net::TcpStream> = Default::default();
    /// assert!(s.get(evloop_core::Key::from_parts(0, 0)).is_none());
    /// ```
    pub fn get(&self, key: Key) -> Option<&BufConn<S>> {
        self.slab.get(key)
    }

    /// The connection behind `key`, mutably, if live.
    ///
    /// ```
    /// let mut s: evloop_core::buffered::BufSlab<std::net::TcpStream> = Default::default();
    /// assert!(s.get_mut(evloop_core::Key::from_parts(0, 0)).is_none());
    /// ```
    pub fn get_mut(&mut self, key: Key) -> Option<&mut BufConn<S>> {
        self.slab.get_mut(key)
    }

    /// Whether `key` names a live connection.
    ///
    /// ```
    /// let s: evloop_core::buffered::BufSlab<std::net::TcpStream> = Default::default();
    /// assert!(!s.contains(evloop_core::Key::from_parts(0, 0)));
    /// ```
    pub fn contains(&self, key: Key) -> bool {
        self.slab.contains(key)
    }

    /// Connections open.
    ///
    /// ```
    /// let s: evloop_core::buffered::BufSlab<std::net::TcpStream> = Default::default();
    /// assert_eq!(s.len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.slab.len()
    }

    /// Whether none is open.
    ///
    /// ```
    /// let s: evloop_core::buffered::BufSlab<std::net::TcpStream> = Default::default();
    /// assert!(s.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.slab.is_empty()
    }

    /// Most connections open at once, fixed when the collection was made.
    ///
    /// ```
    /// use evloop_core::buffered::{BufConfig, BufSlab};
    /// let s: BufSlab<std::net::TcpStream> = BufSlab::with_capacity(2000, BufConfig::default());
    /// assert_eq!(s.capacity(), 2000);
    /// ```
    pub fn capacity(&self) -> usize {
        self.slab.capacity()
    }

    /// Connections closed by a completed [`close_after_flush`](BufConn::close_after_flush).
    ///
    /// ```
    /// let s: evloop_core::buffered::BufSlab<std::net::TcpStream> = Default::default();
    /// assert_eq!(s.closed(), 0);
    /// ```
    pub fn closed(&self) -> u64 {
        self.closed
    }

    /// Every live connection with its key (to broadcast, say; then
    /// [`flush`](Self::flush) each one written to).
    ///
    /// ```
    /// let s: evloop_core::buffered::BufSlab<std::net::TcpStream> = Default::default();
    /// assert_eq!(s.iter().count(), 0);
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = (Key, &BufConn<S>)> {
        self.slab.iter()
    }

    /// Remove the connection (deregistering it) and hand it back; dropping it closes it.
    ///
    /// ```
    /// use evloop_core::*;
    /// use evloop_core::buffered::BufSlab;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// let mut s: BufSlab<std::os::unix::net::UnixStream> = BufSlab::with_capacity(4, Default::default());
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let k = s.insert(el.ctx(), a).unwrap();
    /// let conn = s.remove(el.ctx(), k).unwrap();
    /// assert!(conn.input().is_empty());
    /// ```
    pub fn remove<M: Machine>(&mut self, ctx: &mut Ctx<M>, key: Key) -> Result<BufConn<S>> {
        self.slab.remove(ctx, key)
    }

    /// The plain [`Slab`] underneath (for what this type does not wrap: sources, tokens).
    ///
    /// ```
    /// use evloop_core::buffered::{BufConfig, BufSlab};
    /// let s: BufSlab<std::net::TcpStream> = BufSlab::with_capacity(4, BufConfig::default());
    /// assert_eq!(s.slab().capacity(), 4);
    /// ```
    pub fn slab(&self) -> &Slab<BufConn<S>> {
        &self.slab
    }
}

impl<S: Read + Write + AsSource> BufSlab<S> {
    /// Wrap `stream` in a [`BufConn`] with the collection's configuration and insert it.
    ///
    /// ```
    /// use evloop_core::*;
    /// use evloop_core::buffered::BufSlab;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// let mut s: BufSlab<std::os::unix::net::UnixStream> = BufSlab::with_capacity(4, Default::default());
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let k = s.insert(el.ctx(), a).unwrap();
    /// assert!(s.contains(k));
    /// ```
    pub fn insert<M: Machine>(&mut self, ctx: &mut Ctx<M>, stream: S) -> Result<Key> {
        let conn = BufConn::new(stream, &self.cfg)?;
        self.insert_conn(ctx, conn)
    }

    /// Insert a connection made elsewhere (by [`BufConn::connect`], say, or with its own
    /// configuration). A full collection refuses it with [`Error::SlabFull`].
    ///
    /// ```
    /// use evloop_core::*;
    /// use evloop_core::buffered::{BufConfig, BufConn, BufSlab};
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// let mut s: BufSlab<std::net::TcpStream> = BufSlab::with_capacity(4, Default::default());
    /// let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let conn = BufConn::connect(server.local_addr().unwrap(), &BufConfig::default()).unwrap();
    /// let k = s.insert_conn(el.ctx(), conn).unwrap();
    /// assert!(s.contains(k));
    /// ```
    pub fn insert_conn<M: Machine>(
        &mut self,
        ctx: &mut Ctx<M>,
        mut conn: BufConn<S>,
    ) -> Result<Key> {
        if conn.cfg.read_timeout.is_none() {
            conn.cfg.read_timeout = self.watch.timeout;
        }
        conn.completion = self.completion && !conn.is_connecting();
        let wanted = conn.wanted();
        let timeout = conn.wanted_timeout(wanted);
        let mut watch = self.watch;
        watch.interest = interest_for(&conn, self.watch.interest.is_peer_closed(), wanted);
        watch.timeout = timeout;
        watch.oneshot = false;
        conn.interest = watch.interest;
        conn.timeout = timeout;
        let completion = conn.completion && conn.pending() > 0;
        let key = self.slab.insert_with(ctx, conn, watch)?;
        if completion {
            // Output queued before the insert: under readiness I/O the write interest
            // sends it on the loop's first turn; here its send goes with that turn.
            let _ = self.flush_queued(ctx, key);
        }
        Ok(key)
    }

    /// Whether this collection's connections use completion I/O: the loop's backend has
    /// it ([`Ctx::completion_io`]) and the configuration allows it
    /// ([`BufConfig::completion_io`]). Decided when it is attached.
    ///
    /// ```
    /// use evloop_core::buffered::BufSlab;
    /// let s: BufSlab<std::net::TcpStream> = BufSlab::default();
    /// assert!(!s.uses_completion_io()); // not attached to a loop yet
    /// ```
    pub fn uses_completion_io(&self) -> bool {
        self.completion
    }

    /// Flush what is queued on `key`'s connection now and update what it watches. Call
    /// it after writing to a connection other than the one being handled (the handled
    /// one is flushed after its handlers return), or after consuming its input outside
    /// its handlers. A failed write is reported to the connection's handlers as
    /// [`ERROR`](BufEvents::ERROR) in the next dispatch, and output that had to wait and
    /// drains here as [`DRAINED`](BufEvents::DRAINED).
    ///
    /// ```
    /// use evloop_core::*;
    /// use evloop_core::buffered::BufSlab;
    /// use std::io::Read;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// let mut s: BufSlab<std::os::unix::net::UnixStream> = BufSlab::with_capacity(4, Default::default());
    /// let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let k = s.insert(el.ctx(), a).unwrap();
    /// s.get_mut(k).unwrap().write(b"hi").unwrap();
    /// s.flush(el.ctx(), k).unwrap();
    /// let mut got = [0; 2];
    /// b.read_exact(&mut got).unwrap();
    /// assert_eq!(&got, b"hi");
    /// ```
    ///
    /// Under completion I/O, called where no handler runs (code that inserted the
    /// connection, say), it also hands the send to the kernel at once (one system
    /// call); from a handler the send goes with the loop's next wait, batched with the
    /// rest of the iteration's.
    pub fn flush<M: Machine>(&mut self, ctx: &mut Ctx<M>, key: Key) -> Result<()> {
        self.flush_queued(ctx, key)?;
        if self.completion && ctx.current().is_none() {
            ctx.submit()?;
        }
        Ok(())
    }

    /// [`flush`](Self::flush), with a completion-mode send left for the next wait.
    fn flush_queued<M: Machine>(&mut self, ctx: &mut Ctx<M>, key: Key) -> Result<()> {
        let conn = self.slab.get_mut(key).ok_or(Error::StaleKey)?;
        if conn.pending() > 0 && conn.flags & FAILED == 0 {
            let before = conn.pending();
            let r = if conn.completion {
                let id = self.slab.source(key).ok_or(Error::StaleKey)?;
                let conn = self.slab.get_mut(key).ok_or(Error::StaleKey)?;
                conn.flush_completion(ctx, id)
            } else {
                conn.flush()
            };
            let conn = self.slab.get_mut(key).ok_or(Error::StaleKey)?;
            match r {
                Err(e) => conn.fail(e),
                Ok(()) => {
                    // Output that had waited and drains here, after the handlers, is
                    // reported as DRAINED by a dispatch of its own (see `update`).
                    let low = conn.cfg.write_low as u64;
                    if conn.pending() > low {
                        conn.flags |= WAITED;
                    } else if before > low && conn.flags & WAITED != 0 {
                        conn.flags = (conn.flags & !WAITED) | DRAIN_OWED;
                    }
                }
            }
        }
        self.update(ctx, key)
    }

    /// Bring the loop's interest and timeout for `key` in line with the connection's
    /// state ([`BufConn::wanted`]); remove it if its flush-and-close is done; schedule a
    /// dispatch to report a failure not yet reported, or a [`DRAINED`](BufEvents::DRAINED)
    /// owed since waiting output drained in a flush after the handlers. A connection
    /// whose flush-and-close failed is removed once its handlers were told
    /// ([`ERROR`](BufEvents::ERROR)).
    ///
    /// ```
    /// use evloop_core::*;
    /// use evloop_core::buffered::BufSlab;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// let mut s: BufSlab<std::os::unix::net::UnixStream> = BufSlab::with_capacity(4, Default::default());
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let k = s.insert(el.ctx(), a).unwrap();
    /// s.get_mut(k).unwrap().pause_reading();
    /// s.update(el.ctx(), k).unwrap();
    /// ```
    pub fn update<M: Machine>(&mut self, ctx: &mut Ctx<M>, key: Key) -> Result<()> {
        let conn = self.slab.get_mut(key).ok_or(Error::StaleKey)?;
        // A failed one goes once its ERROR was dispatched: reported, and the handlers of
        // that dispatch returned (`after_dispatch` clears `events`).
        let failed = conn.flags & FAILED != 0;
        let told = conn.flags & ERROR_REPORTED != 0 && conn.events.is_empty();
        if conn.is_done() && (!failed || told) {
            let mut conn = self.slab.remove(ctx, key)?;
            let _ = conn.stream.flush();
            self.closed += 1;
            return Ok(());
        }
        if self.completion && !conn.completion && !conn.is_connecting() {
            // Connected: from now on the backend does this connection's I/O (nothing
            // of the readiness path is in flight, so nothing can be reordered).
            conn.completion = true;
        }
        let wanted = conn.wanted();
        let timeout = conn.wanted_timeout(wanted);
        let report = conn.flags & (FAILED | ERROR_REPORTED) == FAILED;
        let drained = conn.flags & (FAILED | DRAIN_OWED) == DRAIN_OWED;
        let interest = interest_for(conn, self.watch.interest.is_peer_closed(), wanted);
        let (old_i, old_t) = (conn.interest, conn.timeout);
        conn.interest = interest;
        conn.timeout = timeout;
        let id = self.slab.source(key).ok_or(Error::StaleKey)?;
        if interest != old_i {
            ctx.set_interest(id, interest)?;
        }
        if timeout != old_t {
            ctx.set_idle_timeout(id, timeout)?;
        }
        if report {
            ctx.activate(id, Ready::ERROR)?;
        } else if drained {
            ctx.activate(id, Ready::WRITABLE)?;
        }
        Ok(())
    }
}

impl<S: Read + Write + AsSource> Source for BufSlab<S> {
    type Kind = kind::Collection;

    #[inline]
    fn capacity(&self) -> usize {
        self.slab.capacity()
    }

    fn attach<M: Machine>(&mut self, ctx: &mut Ctx<M>, tag: u16, watch: Watch) -> Result<()> {
        self.slab.bind(tag, watch);
        self.watch = watch;
        self.completion = self.cfg.completion && ctx.completion_io();
        Ok(())
    }

    #[inline]
    fn entry(&self, token: Token) -> Option<Key> {
        self.slab.key_of(token)
    }

    fn before_dispatch<M: Machine>(&mut self, ctx: &mut Ctx<M>, key: Key, ready: Ready) -> Ready {
        let Some(conn) = self.slab.get_mut(key) else {
            return Ready::EMPTY;
        };
        let ev = if conn.completion {
            let Some(id) = self.slab.source(key) else {
                return Ready::EMPTY;
            };
            let conn = self.slab.get_mut(key).expect("checked above");
            conn.on_completion(ctx, id, ready)
        } else {
            conn.on_ready(ready)
        };
        let _ = self.update(ctx, key);
        if self.slab.contains(key) {
            ev.to_ready()
        } else {
            Ready::EMPTY
        }
    }

    fn after_dispatch<M: Machine>(&mut self, ctx: &mut Ctx<M>, key: Key) {
        if let Some(conn) = self.slab.get_mut(key) {
            conn.events = BufEvents::NONE;
            let _ = self.flush_queued(ctx, key);
        }
    }
}
