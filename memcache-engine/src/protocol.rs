//! memcached's ASCII protocol: a per-connection parser that consumes bytes and appends
//! replies, byte for byte as memcached 1.6 writes them.
//!
//! A server keeps one [`Connection`] per client. Whenever bytes arrive it calls
//! [`Connection::process`] with them, the output (a `Vec<u8>`, or [`Replies`], which
//! refers to stored values instead of copying them), the shared [`Store`] and its
//! [`Environment`]; then it writes the output and acts on the returned [`Next`].
//!
//! [`Replies`]: crate::Replies
//!
//! ```
//! use evloop_memcache_engine::protocol::{Connection, Next, ServerStats};
//! use evloop_memcache_engine::store::{Store, StoreConfig};
//! let mut store = Store::new(StoreConfig::default());
//! let env = ServerStats::default();
//! let mut conn = Connection::new();
//! let mut out = Vec::new();
//! let p = conn.process(b"set k 0 0 5\r\nhello\r\nget k\r\n", &mut out, &mut store, &env);
//! assert_eq!(p.next, Next::Read);
//! assert_eq!(out, b"STORED\r\nVALUE k 0 5\r\nhello\r\nEND\r\n");
//! ```
//!
//! # What is reproduced
//!
//! Commands: `set`, `add`, `replace`, `append`, `prepend`, `cas` (all with `noreply`),
//! `get`, `gets`, `bget`, `gat`, `gats`, `touch`, `delete`, `incr`, `decr`,
//! `flush_all`, `version`, `verbosity`, `stats`, `stats reset`, `stats detail`,
//! `stats settings`, `stats items`, `stats slabs` (memcached's per-class figures
//! for its default slab classes; see the crate documentation for the few that are
//! approximations), `cache_memlimit`, `shutdown` (refused unless the
//! [`Environment`]'s configuration has `-A`; then it closes the connection and calls
//! [`Environment::shutdown`]) and `quit`, and the
//! meta commands `mg`, `ms`, `md`, `ma`, `mn` and `me` with all their flags and modes
//! (see `meta.rs`), including `mg`'s hold on its item until its reply is written (an
//! `incr`/`decr`/`ma` of it meanwhile makes a new item, as in memcached).
//! Replies, including every error line, and the following details are memcached's:
//!
//! - the command line is tokenized on spaces only, cut at the first NUL, with one
//!   `\r` before the `\n` removed; a line of up to 24 tokens is checked for its number
//!   of tokens as memcached checks it; numbers are parsed with C's quirks (see
//!   `cnum.rs`), e.g. a length of `4294967297` is 1;
//! - keys are up to 250 bytes and may hold any byte but space, NUL and `\n` (memcached
//!   does not refuse control characters); an over-long key in a `get` replies
//!   `CLIENT_ERROR bad command line format` and discards the values already found,
//!   and also every earlier reply memcached had not yet written;
//! - a data block is read as exactly `<bytes>` + 2 bytes; if the last two are not
//!   `\r\n`, the reply is `CLIENT_ERROR bad data chunk`, nothing is stored, and the
//!   bytes after the block are parsed as the next command;
//! - an item above the size limit is refused with `SERVER_ERROR object too large for
//!   cache`, its data block is swallowed, and a `set` deletes the key's old value;
//! - `noreply` (the last token) silences every reply of the command, errors included;
//! - a line without `\n` longer than 2048 bytes closes the connection unless it starts
//!   (after at most 100 spaces) with `get ` or `gets `, which may be of any length;
//!   so does a line whose `\n` is more than 16384 bytes away (memcached's read buffer);
//! - an unknown command whose last token starts with `HTTP/` closes the connection;
//! - memcached's "requests per event" batching (`-R`, 20) and which replies it has
//!   flushed when it closes a connection abruptly (see [`Next::Close`]).
//!
//! # Limits per call
//!
//! memcached writes a `get`'s reply before it reads the next command, and reads
//! nothing more from a client while its replies are not written. A server that does
//! the same holds at most one command's replies per client, but one command can be
//! large: `get k k k ...` with a 1 MB value and 1,000 keys in a 4 KB line is a 1 GB
//! reply. [`Connection::with_output_limit`] and [`Connection::with_keys_per_call`] bound
//! what one call does: past either limit, `process` stops at the next command or
//! `get` key and returns [`Next::Pause`]; the server writes the replies and, once they
//! are written, calls `process` again, and the `get` goes on where it stopped. The
//! bytes are the same as without limits (both are off by default).
//!
//! # What is not
//!
//! - `watch`, `lru`, `lru_crawler`, `slabs`, `extstore`, `refresh_certs` and the
//!   `stats` sub-commands other than `reset`, `detail`, `settings`, `items` and
//!   `slabs` (e.g. `sizes`, `conns`) are not implemented: they reply `ERROR`.
//!   Neither is the binary protocol (deprecated by memcached).
//!   `stats detail on|off` replies `OK` but collects nothing (`dump` lists nothing).
//! - Where memcached's bytes depend on timing, the engine gives the timing-free
//!   answer: `incr`/`decr` write a shorter result over the old value padded with
//!   spaces (memcached makes a new, unpadded item instead when another thread, e.g.
//!   its LRU maintainer, happens to hold the item at that moment).
//! - `incr`/`decr` of a value of only white space is `CLIENT_ERROR cannot increment
//!   or decrement non-numeric value`, as on a fresh memcached; memcached's `strtoull`
//!   reads past such a value into stale slab memory and may find a number there.
//! - Abrupt closes drop the replies memcached would not yet have written, computed
//!   per `process` call; memcached also holds back replies while it waits for the
//!   rest of a data block, which the engine cannot (the server has written them).
//!   Likewise, with limits per call, the replies before a [`Next::Pause`] are
//!   written, so an abrupt close later in the same memcached event cannot drop them.

use crate::cnum;
use crate::output::Output;
use crate::slabs;
use crate::store::{DeltaOutcome, Exptime, ItemView, NewItem, Store, StoreMode, StoreOutcome};
use std::sync::Arc;
use std::time::Duration;

#[path = "meta.rs"]
mod meta;

/// The version string memcached 1.6 reports, used when the [`Environment`] does not
/// supply its own.
///
/// ```
/// assert!(evloop_memcache_engine::protocol::DEFAULT_VERSION.starts_with("1.6."));
/// ```
pub const DEFAULT_VERSION: &str = "1.6.18";

/// The longest key memcached accepts.
///
/// ```
/// assert_eq!(evloop_memcache_engine::protocol::KEY_MAX_LENGTH, 250);
/// ```
pub const KEY_MAX_LENGTH: usize = 250;

/// memcached's default requests per event (`-R`).
///
/// ```
/// assert_eq!(evloop_memcache_engine::protocol::DEFAULT_REQS_PER_EVENT, 20);
/// ```
pub const DEFAULT_REQS_PER_EVENT: u32 = 20;

/// memcached's `MAX_TOKENS`: a command line is split into at most 23 tokens at a time.
const MAX_TOKENS: usize = 24;
/// Without `\n` in this many bytes, a command line that is not a `get` closes the
/// connection.
const LINE_LIMIT: usize = 2048;
/// memcached's `READ_BUFFER_SIZE`: how much of a command line it can see at once.
const READ_BUFFER_SIZE: usize = 16384;
/// The `libevent` memcached 1.6.18 reports in Debian's build (`stats`): the engine uses
/// no libevent, and reports memcached's.
const LIBEVENT: &str = "2.1.12-stable";
/// memcached's `MAX_VERBOSITY_LEVEL`.
const MAX_VERBOSITY_LEVEL: u32 = 2;

/// Process-wide statistics the engine cannot know, supplied by the server for `stats`.
///
/// `ServerStats` is itself an [`Environment`] (returning a copy of itself), which is
/// convenient for tests and for servers that refresh one value now and then.
///
/// ```
/// use evloop_memcache_engine::protocol::{Environment, ServerStats};
/// let env = ServerStats { pid: 42, threads: 1, ..ServerStats::default() };
/// assert_eq!(env.server_stats().pid, 42);
/// assert_eq!(env.version(), "1.6.18");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerStats {
    /// `pid`.
    pub pid: u32,
    /// `uptime`, in seconds.
    pub uptime: u64,
    /// `rusage_user`.
    pub rusage_user: Duration,
    /// `rusage_system`.
    pub rusage_system: Duration,
    /// `max_connections` (`-c`).
    pub max_connections: u64,
    /// `curr_connections`.
    pub curr_connections: u64,
    /// `total_connections`.
    pub total_connections: u64,
    /// `rejected_connections`.
    pub rejected_connections: u64,
    /// `connection_structures`.
    pub connection_structures: u64,
    /// `accepting_conns` (reported as 1 or 0).
    pub accepting_conns: bool,
    /// `listen_disabled_num`: times accepting was paused for lack of connections/fds.
    pub listen_disabled_num: u64,
    /// `threads` (`-t`).
    pub threads: u32,
}

impl Default for ServerStats {
    /// memcached's defaults: 1024 connections, 4 threads, accepting.
    ///
    /// ```
    /// use evloop_memcache_engine::protocol::ServerStats;
    /// assert_eq!(ServerStats::default().threads, 4);
    /// ```
    fn default() -> Self {
        ServerStats {
            pid: 0,
            uptime: 0,
            rusage_user: Duration::ZERO,
            rusage_system: Duration::ZERO,
            max_connections: 1024,
            curr_connections: 0,
            total_connections: 0,
            rejected_connections: 0,
            connection_structures: 0,
            accepting_conns: true,
            listen_disabled_num: 0,
            threads: 4,
        }
    }
}

/// What the engine asks of the server: process statistics, the version string, and
/// notifications of `stats reset` and `verbosity`. Called only by the commands that
/// need them.
///
/// ```
/// use evloop_memcache_engine::protocol::{Environment, ServerStats};
/// struct MyServer { started: std::time::Instant }
/// impl Environment for MyServer {
///     fn server_stats(&self) -> ServerStats {
///         ServerStats { pid: std::process::id(), uptime: self.started.elapsed().as_secs(), ..ServerStats::default() }
///     }
///     fn version(&self) -> &str { "1.6.18-evloop" }
/// }
/// let s = MyServer { started: std::time::Instant::now() };
/// assert_eq!(s.server_stats().pid, std::process::id());
/// ```
pub trait Environment {
    /// The process statistics for `stats`.
    ///
    /// ```
    /// use evloop_memcache_engine::protocol::{Environment, ServerStats};
    /// assert_eq!(ServerStats::default().server_stats(), ServerStats::default());
    /// ```
    fn server_stats(&self) -> ServerStats;

    /// The version reported by `version` and `stats`.
    ///
    /// ```
    /// use evloop_memcache_engine::protocol::{Environment, ServerStats};
    /// assert_eq!(ServerStats::default().version(), "1.6.18");
    /// ```
    fn version(&self) -> &str {
        DEFAULT_VERSION
    }

    /// `stats reset` was received: reset `total_connections`, `rejected_connections`
    /// and `listen_disabled_num` (the store resets its own counters).
    ///
    /// ```
    /// use evloop_memcache_engine::protocol::{Environment, ServerStats};
    /// ServerStats::default().reset_stats(); // the default does nothing
    /// ```
    fn reset_stats(&self) {}

    /// `verbosity <level>` was received (`level` is capped at 2, as memcached does).
    ///
    /// ```
    /// use evloop_memcache_engine::protocol::{Environment, ServerStats};
    /// ServerStats::default().set_verbosity(1); // the default does nothing
    /// ```
    fn set_verbosity(&self, level: u32) {
        let _ = level;
    }

    /// The server's configuration, for `stats settings` and `shutdown` (`-A`); the
    /// default is memcached's defaults.
    ///
    /// ```
    /// use evloop_memcache_engine::protocol::{Environment, ServerStats};
    /// assert!(!ServerStats::default().config().enable_shutdown);
    /// ```
    fn config(&self) -> crate::config::Config {
        crate::config::Config::default()
    }

    /// The current verbosity (`stats settings`), as last set by `-v` or `verbosity`.
    ///
    /// ```
    /// use evloop_memcache_engine::protocol::{Environment, ServerStats};
    /// assert_eq!(ServerStats::default().verbosity(), 0);
    /// ```
    fn verbosity(&self) -> u32 {
        0
    }

    /// `shutdown` (or `shutdown graceful`) was received and `-A` allows it: stop the
    /// server, as memcached does on the SIGINT (SIGUSR1) it raises. The connection
    /// is closed, without the replies not yet written.
    ///
    /// ```
    /// use evloop_memcache_engine::protocol::{Environment, ServerStats};
    /// ServerStats::default().shutdown(false); // the default does nothing
    /// ```
    fn shutdown(&self, graceful: bool) {
        let _ = graceful;
    }
}

impl Environment for ServerStats {
    fn server_stats(&self) -> ServerStats {
        self.clone()
    }
}

/// Why the connection must be closed.
///
/// ```
/// use evloop_memcache_engine::protocol::CloseReason;
/// assert_ne!(CloseReason::Quit, CloseReason::HttpRequest);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// The client sent `quit`.
    Quit,
    /// A command line without `\n` grew past memcached's limits.
    LineTooLong,
    /// The client spoke HTTP (an unknown command ending in `HTTP/...`).
    HttpRequest,
    /// The client sent `shutdown` (allowed by `-A`): the server should stop (the
    /// engine has called [`Environment::shutdown`]).
    Shutdown,
}

/// What the server should do after [`Connection::process`].
///
/// ```
/// use evloop_memcache_engine::protocol::{Next, CloseReason};
/// assert_ne!(Next::Read, Next::Close(CloseReason::Quit));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Next {
    /// Every byte was consumed: write the output, read more.
    Read,
    /// The connection used its requests-per-event budget (`-R`, memcached's
    /// `conn_yields`): write the output, let other connections run, then call
    /// `process` again with the bytes not consumed (and any that arrived since).
    Yield,
    /// Write the output, then close the connection. The output is what memcached
    /// would have sent: for `quit`, every reply; for the abrupt closes, the replies
    /// memcached had flushed before closing (those before the last `get` of the batch,
    /// or before the batch). Later calls return `Close` again.
    Close(CloseReason),
    /// The call reached a limit of the connection (its
    /// [output limit](Connection::with_output_limit) or
    /// [keys per call](Connection::with_keys_per_call)): write the output, and once it
    /// is written call `process` again with the bytes not consumed, which may be none
    /// (a `get` stopped between two keys goes on). Never returned without limits.
    Pause,
}

/// The result of [`Connection::process`].
///
/// ```
/// use evloop_memcache_engine::protocol::{Connection, Next, ServerStats};
/// use evloop_memcache_engine::store::{Store, StoreConfig};
/// let (mut s, mut out) = (Store::new(StoreConfig::default()), Vec::new());
/// let p = Connection::new().process(b"version\r\nver", &mut out, &mut s, &ServerStats::default());
/// assert_eq!((p.consumed, p.next), (12, Next::Read)); // "ver" is kept by the connection
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Progress {
    /// How many bytes of the input were consumed. Less than the input only with
    /// [`Next::Yield`], [`Next::Pause`] and [`Next::Close`].
    pub consumed: usize,
    /// What to do next.
    pub next: Next,
}

#[derive(Debug)]
struct PendingData {
    mode: StoreMode,
    item: NewItem,
    /// Bytes of value still to come.
    value_left: usize,
    trailer: [u8; 2],
    trailer_len: usize,
    noreply: bool,
    /// An `ms`: how to store and reply.
    meta: Option<meta::MetaPending>,
}

#[derive(Debug)]
enum State {
    /// Waiting for a command line.
    Line,
    /// Reading a data block.
    Data(PendingData),
    /// Discarding the data block of a refused item.
    Swallow(usize),
    /// In a `get` stopped at a limit: its other keys are `Connection::get_keys[at..]`.
    Get(GetState),
    Closed(CloseReason),
}

/// What a `get` command asks for each key.
#[derive(Debug, Clone, Copy)]
struct GetMode {
    /// `gets`, `gats`: with the CAS unique.
    cas: bool,
    /// `gat`, `gats`: the new expiry.
    touch: Option<Exptime>,
}

#[derive(Debug, Clone, Copy)]
struct GetState {
    mode: GetMode,
    at: usize,
}

/// How far [`get_keys`] went.
enum GetEnd {
    Done,
    /// Stopped at the call's limits; the next key starts at this offset.
    Paused(usize),
    /// An over-long key: the replies were taken back and the error written.
    Refused,
}

/// Where a call that returned [`Next::Pause`] stopped in memcached's event.
#[derive(Debug, Clone, Copy)]
struct Resume {
    nreqs: i64,
    pending: bool,
    window_left: usize,
}

/// What one call may still do before it pauses.
struct Budget {
    out_start: usize,
    output_limit: usize,
    keys_left: usize,
}

impl Budget {
    fn spent(&self, out: &dyn Output) -> bool {
        self.keys_left == 0 || out.len().saturating_sub(self.out_start) > self.output_limit
    }
}

/// The connection-level effect of one command.
enum Flow {
    /// A reply was queued (memcached's `conn_new_cmd`).
    Next,
    /// A reply was queued and flushed at once (`conn_mwrite`: the `get` family).
    Flush,
    /// The command continues with a data block (`conn_nread`/`conn_swallow`).
    Block,
    /// A `get` stopped at the call's limits; its other keys are saved.
    Pause,
    Close(CloseReason),
}

/// One memcached event's bookkeeping: the request budget, and how much of the output
/// memcached would have written by now.
struct Event {
    nreqs: i64,
    /// Whether a command completed and its `conn_new_cmd` decrement is due.
    pending: bool,
    flushed: usize,
}

/// The per-connection protocol state. See the [module documentation](self).
///
/// It allocates only to keep a command line split across calls and the keys of a
/// paused `get` (two buffers it keeps and reuses), and for each stored item; `get` and
/// `set` otherwise parse in place.
///
/// ```
/// use evloop_memcache_engine::protocol::{Connection, Next, ServerStats};
/// use evloop_memcache_engine::store::{Store, StoreConfig};
/// let (mut store, env) = (Store::new(StoreConfig::default()), ServerStats::default());
/// let mut conn = Connection::new();
/// let mut out = Vec::new();
/// // A command split across reads is fine.
/// for piece in [&b"se"[..], b"t k 1 0 2\r", b"\nhi", b"\r\nget k\r\n"] {
///     let p = conn.process(piece, &mut out, &mut store, &env);
///     assert_eq!(p, evloop_memcache_engine::protocol::Progress { consumed: piece.len(), next: Next::Read });
/// }
/// assert_eq!(out, b"STORED\r\nVALUE k 1 2\r\nhi\r\nEND\r\n");
/// ```
#[derive(Debug)]
pub struct Connection {
    state: State,
    /// The start of a command line whose `\n` has not arrived.
    partial: Vec<u8>,
    /// The previous call yielded: the next starts with a `conn_new_cmd` decrement.
    after_yield: bool,
    /// After a yield, how much of memcached's read buffer was left unparsed.
    window_left: usize,
    reqs_per_event: u32,
    /// The previous call paused: where it stopped.
    resume: Option<Resume>,
    /// The keys a paused `get` has not looked up yet (a buffer kept and reused).
    get_keys: Vec<u8>,
    output_limit: usize,
    keys_per_call: usize,
    /// Items that `mg` replies memcached has not yet written refer to (memcached
    /// holds a reference until it writes a reply).
    held: Vec<Arc<[u8]>>,
    /// What an `ms` noted of its flags for its reply (memcached stashes it in its
    /// write buffer).
    meta_stash: Vec<u8>,
}

impl Default for Connection {
    fn default() -> Self {
        Connection::new()
    }
}

impl Connection {
    /// A connection waiting for its first command, with memcached's default of 20
    /// requests per event.
    ///
    /// ```
    /// let conn = evloop_memcache_engine::protocol::Connection::new();
    /// assert!(!conn.is_closed());
    /// ```
    pub fn new() -> Connection {
        Connection {
            state: State::Line,
            partial: Vec::new(),
            after_yield: false,
            window_left: 0,
            reqs_per_event: DEFAULT_REQS_PER_EVENT,
            resume: None,
            get_keys: Vec::new(),
            output_limit: usize::MAX,
            keys_per_call: usize::MAX,
            held: Vec::new(),
            meta_stash: Vec::new(),
        }
    }

    /// Sets the requests per event (memcached's `-R`; at least 1): after this many
    /// commands `process` returns [`Next::Yield`].
    ///
    /// ```
    /// use evloop_memcache_engine::protocol::{Connection, Next, ServerStats};
    /// use evloop_memcache_engine::store::{Store, StoreConfig};
    /// let (mut s, mut out) = (Store::new(StoreConfig::default()), Vec::new());
    /// let mut conn = Connection::new().with_reqs_per_event(1);
    /// let input = b"version\r\nversion\r\nversion\r\n";
    /// let p = conn.process(input, &mut out, &mut s, &ServerStats::default());
    /// assert_eq!((p.consumed, p.next), (18, Next::Yield)); // the first call runs one extra
    /// ```
    pub fn with_reqs_per_event(mut self, reqs: u32) -> Connection {
        self.reqs_per_event = reqs.max(1);
        self
    }

    /// Pauses a call once it has appended more than `bytes` of replies (a stored value
    /// counts with its length, even if the output only refers to it): `process` stops
    /// at the next command or `get` key and returns [`Next::Pause`]. Off
    /// (`usize::MAX`) by default.
    ///
    /// ```
    /// use evloop_memcache_engine::protocol::{Connection, Next, ServerStats};
    /// use evloop_memcache_engine::store::{Store, StoreConfig};
    /// let (mut s, env) = (Store::new(StoreConfig::default()), ServerStats::default());
    /// let mut out = Vec::new();
    /// let mut conn = Connection::new().with_output_limit(100);
    /// conn.process(b"set k 0 0 80\r\n", &mut out, &mut s, &env);
    /// conn.process(&[&[b'v'; 80][..], b"\r\n"].concat(), &mut out, &mut s, &env);
    /// out.clear();
    /// // Three hits of 80 bytes: a pause after the second one.
    /// let p = conn.process(b"get k k k\r\n", &mut out, &mut s, &env);
    /// assert_eq!((p.consumed, p.next), (11, Next::Pause));
    /// assert_eq!(out.len(), 2 * (14 + 82));
    /// // Once that is written, the get goes on.
    /// let p = conn.process(b"", &mut out, &mut s, &env);
    /// assert_eq!(p.next, Next::Read);
    /// assert!(out.ends_with(b"\r\nEND\r\n"));
    /// ```
    pub fn with_output_limit(mut self, bytes: usize) -> Connection {
        self.output_limit = bytes;
        self
    }

    /// Pauses a call once it has looked up `keys` keys of `get` commands (at least 1):
    /// `process` stops at the next command or key and returns [`Next::Pause`], so that
    /// one `get` with very many keys is served over several calls. Off (`usize::MAX`)
    /// by default.
    ///
    /// ```
    /// use evloop_memcache_engine::protocol::{Connection, Next, ServerStats};
    /// use evloop_memcache_engine::store::{Store, StoreConfig};
    /// let (mut s, env) = (Store::new(StoreConfig::default()), ServerStats::default());
    /// let mut out = Vec::new();
    /// let mut conn = Connection::new().with_keys_per_call(2);
    /// let mut calls = 1;
    /// let mut p = conn.process(b"get a b c d e\r\nversion\r\n", &mut out, &mut s, &env);
    /// while p.next == Next::Pause {
    ///     p = conn.process(b"version\r\n", &mut out, &mut s, &env);
    ///     calls += 1;
    /// }
    /// assert_eq!(calls, 3);
    /// assert_eq!(out, b"END\r\nVERSION 1.6.18\r\n");
    /// ```
    pub fn with_keys_per_call(mut self, keys: usize) -> Connection {
        self.keys_per_call = keys.max(1);
        self
    }

    /// Whether the connection has been closed (a [`Next::Close`] was returned).
    ///
    /// ```
    /// use evloop_memcache_engine::protocol::{Connection, ServerStats};
    /// use evloop_memcache_engine::store::{Store, StoreConfig};
    /// let (mut s, mut out) = (Store::new(StoreConfig::default()), Vec::new());
    /// let mut conn = Connection::new();
    /// conn.process(b"quit\r\n", &mut out, &mut s, &ServerStats::default());
    /// assert!(conn.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed(_))
    }

    /// Consumes `input` (the bytes received, or the part left by a [`Next::Yield`]),
    /// appends the replies to `out`, and says what to do next.
    ///
    /// Bytes of an incomplete command line are kept by the connection and count as
    /// consumed. To reproduce memcached exactly where its behaviour depends on how
    /// bytes arrive (line-length limits, replies dropped on abrupt close), call this
    /// once per read, with at most 16 KiB, as memcached reads.
    ///
    /// ```
    /// use evloop_memcache_engine::protocol::{Connection, Next, CloseReason, ServerStats};
    /// use evloop_memcache_engine::store::{Store, StoreConfig};
    /// let (mut s, mut out) = (Store::new(StoreConfig::default()), Vec::new());
    /// let mut conn = Connection::new();
    /// let p = conn.process(b"bogus\r\nquit\r\nget k\r\n", &mut out, &mut s, &ServerStats::default());
    /// assert_eq!(p.next, Next::Close(CloseReason::Quit));
    /// assert_eq!(p.consumed, 13);
    /// assert_eq!(out, b"ERROR\r\n");
    /// ```
    pub fn process(
        &mut self,
        input: &[u8],
        out: &mut impl Output,
        store: &mut Store,
        env: &dyn Environment,
    ) -> Progress {
        let out: &mut dyn Output = out;
        let out_start = out.len();
        let p = self.run(input, out, store, env);
        store.stats.bytes_read += p.consumed as u64;
        store.stats.bytes_written += out.len().saturating_sub(out_start) as u64;
        if p.next == Next::Yield {
            store.stats.conn_yields += 1;
        }
        p
    }

    fn fresh_event(&self, flushed: usize) -> Event {
        Event {
            nreqs: i64::from(self.reqs_per_event),
            pending: false,
            flushed,
        }
    }

    /// How far memcached would read for a command line, from `pos`, given the
    /// carried-over partial line.
    fn read_window(&self, pos: usize, len: usize) -> usize {
        if self.partial.len() > LINE_LIMIT {
            // A long get line: memcached grows its buffer and reads all there is.
            len
        } else {
            len.min(pos + (READ_BUFFER_SIZE - self.partial.len()))
        }
    }

    /// Stops the call: `Next::Pause`, remembering where memcached's event stands.
    fn pause(&mut self, consumed: usize, window: usize, ev: &Event) -> Progress {
        self.resume = Some(Resume {
            nreqs: ev.nreqs,
            pending: ev.pending,
            window_left: window.saturating_sub(consumed),
        });
        Progress {
            consumed,
            next: Next::Pause,
        }
    }

    fn run(
        &mut self,
        input: &[u8],
        out: &mut dyn Output,
        store: &mut Store,
        env: &dyn Environment,
    ) -> Progress {
        let len = input.len();
        let mut pos = 0;
        let mut ev = self.fresh_event(out.len());
        // What was output before this call has been written, unless the call goes on
        // after a pause (memcached's event goes on, holding its items).
        if self.resume.is_none() {
            self.held.clear();
        }
        let mut budget = Budget {
            out_start: out.len(),
            output_limit: self.output_limit,
            keys_left: self.keys_per_call,
        };
        // The end of what memcached has in its read buffer; bytes past it are still
        // in the socket.
        let mut window = if let State::Closed(reason) = self.state {
            return Progress {
                consumed: 0,
                next: Next::Close(reason),
            };
        } else if let Some(r) = self.resume.take() {
            // After a pause, the same event goes on.
            ev.nreqs = r.nreqs;
            ev.pending = r.pending;
            len.min(r.window_left)
        } else {
            match self.state {
                State::Line if self.after_yield => {
                    ev.pending = true;
                    len.min(self.window_left)
                }
                State::Line | State::Get(_) | State::Closed(_) => self.read_window(0, len),
                // Waiting in the middle of a block, memcached's buffer is empty: it
                // reads the rest of the block straight from the socket.
                State::Data(_) | State::Swallow(_) => 0,
            }
        };
        self.after_yield = false;
        loop {
            if ev.pending {
                // memcached's conn_new_cmd.
                ev.pending = false;
                ev.nreqs -= 1;
                if ev.nreqs < 0 && pos < len {
                    self.after_yield = window > pos;
                    self.window_left = window - pos;
                    return Progress {
                        consumed: pos,
                        next: Next::Yield,
                    };
                }
                if pos < len && budget.spent(out) {
                    return self.pause(pos, window, &ev);
                }
            }
            match &mut self.state {
                State::Closed(_) => unreachable!("closing returns"),
                State::Get(g) => {
                    let g = *g;
                    let keys = std::mem::take(&mut self.get_keys);
                    // The keys were checked for an over-long one before the first pause.
                    let mut checked = true;
                    let rest = &keys[g.at..];
                    let end = get_keys(
                        rest,
                        g.mode,
                        &mut checked,
                        ev.flushed,
                        out,
                        store,
                        &mut budget,
                    );
                    self.get_keys = keys;
                    match end {
                        GetEnd::Done | GetEnd::Refused => {
                            self.get_keys.clear();
                            if self.get_keys.capacity() > READ_BUFFER_SIZE {
                                // Do not keep the memory of an exceptional get line.
                                self.get_keys = Vec::new();
                            }
                            if matches!(end, GetEnd::Done) {
                                out.put(b"END\r\n");
                                ev.flushed = out.len();
                                self.held.clear();
                            }
                            self.state = State::Line;
                            ev.pending = true;
                        }
                        GetEnd::Paused(at) => {
                            self.state = State::Get(GetState {
                                mode: g.mode,
                                at: g.at + at,
                            });
                            return self.pause(pos, window, &ev);
                        }
                    }
                }
                State::Line => {
                    let avail = &input[pos..window];
                    if let Some(nl) = avail.iter().position(|&b| b == b'\n') {
                        let end = pos + nl;
                        let flushed = ev.flushed;
                        let flow = if self.partial.is_empty() {
                            self.execute(&input[pos..end], out, store, env, flushed, &mut budget)
                        } else {
                            let mut line = std::mem::take(&mut self.partial);
                            line.extend_from_slice(&input[pos..end]);
                            let flow = self.execute(&line, out, store, env, flushed, &mut budget);
                            line.clear();
                            if line.capacity() > 4 * READ_BUFFER_SIZE {
                                // Do not keep the memory of an exceptional get line.
                                line.shrink_to(READ_BUFFER_SIZE);
                            }
                            self.partial = line;
                            flow
                        };
                        pos = end + 1;
                        match flow {
                            Flow::Next => ev.pending = true,
                            Flow::Flush => {
                                ev.flushed = out.len();
                                self.held.clear();
                                ev.pending = true;
                            }
                            Flow::Block => {}
                            Flow::Pause => return self.pause(pos, window, &ev),
                            Flow::Close(CloseReason::Quit) => {
                                self.state = State::Closed(CloseReason::Quit);
                                return Progress {
                                    consumed: pos,
                                    next: Next::Close(CloseReason::Quit),
                                };
                            }
                            Flow::Close(reason) => {
                                out.truncate(ev.flushed);
                                self.state = State::Closed(reason);
                                return Progress {
                                    consumed: pos,
                                    next: Next::Close(reason),
                                };
                            }
                        }
                        continue;
                    }
                    // No complete line in memcached's buffer.
                    let line_len = self.partial.len() + avail.len();
                    if line_len > LINE_LIMIT {
                        if !self.is_get_line(avail) {
                            out.truncate(ev.flushed);
                            self.partial.clear();
                            self.state = State::Closed(CloseReason::LineTooLong);
                            return Progress {
                                consumed: len,
                                next: Next::Close(CloseReason::LineTooLong),
                            };
                        }
                        if window < len {
                            // memcached switches to a growing buffer and reads on.
                            window = len;
                            continue;
                        }
                    }
                    self.partial.extend_from_slice(avail);
                    pos = window;
                    if pos == len {
                        return Progress {
                            consumed: len,
                            next: Next::Read,
                        };
                    }
                    // memcached flushes its replies and reads again: a new event.
                    ev = self.fresh_event(out.len());
                    self.held.clear();
                    window = self.read_window(pos, len);
                }
                State::Data(pd) => {
                    // Bytes in the read buffer first, then straight from the socket.
                    let take = |from: &[u8], pd: &mut PendingData| -> usize {
                        let v = pd.value_left.min(from.len());
                        pd.item.fill(&from[..v]);
                        pd.value_left -= v;
                        let t = (2 - pd.trailer_len).min(from.len() - v);
                        pd.trailer[pd.trailer_len..pd.trailer_len + t]
                            .copy_from_slice(&from[v..v + t]);
                        pd.trailer_len += t;
                        v + t
                    };
                    pos += take(&input[pos..window.max(pos)], pd);
                    if pd.value_left > 0 || pd.trailer_len < 2 {
                        pos += take(&input[pos..], pd);
                        window = pos;
                        if pd.value_left > 0 || pd.trailer_len < 2 {
                            return Progress {
                                consumed: len,
                                next: Next::Read,
                            };
                        }
                    }
                    let State::Data(pd) = std::mem::replace(&mut self.state, State::Line) else {
                        unreachable!()
                    };
                    match pd.meta {
                        Some(m) => meta::complete_ms(pd, m, &self.meta_stash, out, store),
                        None => complete_data(pd, out, store),
                    }
                    ev.pending = true;
                    window = window.max(pos);
                }
                State::Swallow(left) => {
                    let from_buffer = (*left).min(window.saturating_sub(pos));
                    *left -= from_buffer;
                    pos += from_buffer;
                    if *left > 0 {
                        let direct = (*left).min(len - pos);
                        *left -= direct;
                        pos += direct;
                        window = pos;
                        if *left > 0 {
                            return Progress {
                                consumed: len,
                                next: Next::Read,
                            };
                        }
                    }
                    self.state = State::Line;
                    ev.pending = true;
                    window = window.max(pos);
                }
            }
        }
    }

    /// memcached's test for a command line that may exceed its buffer: a `get` or
    /// `gets` after at most 100 spaces.
    fn is_get_line(&self, avail: &[u8]) -> bool {
        let mut head = [0u8; 106];
        let n = self.partial.len().min(head.len());
        head[..n].copy_from_slice(&self.partial[..n]);
        let m = avail.len().min(head.len() - n);
        head[n..n + m].copy_from_slice(&avail[..m]);
        let head = &head[..n + m];
        let spaces = head.iter().take_while(|&&b| b == b' ').count();
        if spaces > 100 {
            return false;
        }
        let rest = &head[spaces..];
        rest.starts_with(b"get ") || rest.starts_with(b"gets ")
    }

    /// memcached's `process_command_ascii` for one line (without its `\n`).
    /// `flushed` is how much of `out` memcached would have written already.
    fn execute(
        &mut self,
        raw: &[u8],
        out: &mut dyn Output,
        store: &mut Store,
        env: &dyn Environment,
        flushed: usize,
        budget: &mut Budget,
    ) -> Flow {
        let mut line = raw;
        if line.len() > 1 && line[line.len() - 1] == b'\r' {
            line = &line[..line.len() - 1];
        }
        if let Some(z) = line.iter().position(|&b| b == 0) {
            line = &line[..z];
        }
        let t = Tokens::new(line);
        let ntokens = t.ntokens();
        if ntokens < 2 || t.get(0).len() < 2 {
            return error(out);
        }
        let cmd = t.get(0);
        match cmd[0] {
            b'm' if cmd.len() == 2 => match cmd[1] {
                b'g' => {
                    budget.keys_left = budget.keys_left.saturating_sub(1);
                    self.process_mg(&t, ntokens, out, store)
                }
                b's' => self.process_ms(&t, ntokens, out, store),
                b'd' => self.process_md(&t, ntokens, out, store),
                b'a' => self.process_ma(&t, ntokens, out, store),
                b'e' => self.process_me(&t, ntokens, out, store),
                // mn forces memcached to write its replies.
                b'n' => {
                    out_string(out, false, b"MN");
                    Flow::Flush
                }
                _ => error(out),
            },
            b'g' => {
                if ntokens < 3 {
                    return error(out);
                }
                let get = |cas, touch| (cas, touch);
                let (cas, touch) = match cmd {
                    b"get" => get(false, false),
                    b"gets" => get(true, false),
                    b"gat" => get(false, true),
                    b"gats" => get(true, true),
                    _ => return error(out),
                };
                self.process_get(line, &t, cas, touch, out, store, flushed, budget)
            }
            b's' => match cmd {
                b"set" => self.process_update(&t, ntokens, StoreKind::Set, out, store),
                b"stats" => process_stats(&t, ntokens, out, store, env),
                b"shutdown" => process_shutdown(&t, ntokens, out, env),
                _ => error(out),
            },
            b'a' => match cmd {
                b"add" => self.process_update(&t, ntokens, StoreKind::Add, out, store),
                b"append" => self.process_update(&t, ntokens, StoreKind::Append, out, store),
                _ => error(out),
            },
            b'c' => match cmd {
                b"cas" => self.process_update(&t, ntokens, StoreKind::Cas, out, store),
                b"cache_memlimit" => process_memlimit(&t, ntokens, out, store),
                _ => error(out),
            },
            b'i' => match cmd {
                b"incr" => {
                    let held = self.held(store, t.get(1));
                    process_arithmetic(&t, ntokens, true, held, out, store)
                }
                _ => error(out),
            },
            b'd' => match cmd {
                b"delete" => process_delete(&t, ntokens, out, store),
                b"decr" => {
                    let held = self.held(store, t.get(1));
                    process_arithmetic(&t, ntokens, false, held, out, store)
                }
                _ => error(out),
            },
            b't' => match cmd {
                b"touch" => process_touch(&t, ntokens, out, store),
                _ => error(out),
            },
            _ => match cmd {
                b"replace" => self.process_update(&t, ntokens, StoreKind::Replace, out, store),
                b"prepend" => self.process_update(&t, ntokens, StoreKind::Prepend, out, store),
                b"bget" if ntokens >= 3 => {
                    self.process_get(line, &t, false, false, out, store, flushed, budget)
                }
                b"flush_all" => process_flush_all(&t, ntokens, out, store),
                b"version" => {
                    out.put(b"VERSION ");
                    out.put(env.version().as_bytes());
                    out.put(b"\r\n");
                    Flow::Next
                }
                b"quit" => Flow::Close(CloseReason::Quit),
                b"verbosity" => process_verbosity(&t, ntokens, out, env),
                // memcached's administrative commands: not implemented.
                b"lru_crawler" | b"watch" | b"lru" | b"extstore" | b"refresh_certs" => error(out),
                _ => {
                    if t.get(t.count - 1).starts_with(b"HTTP/") {
                        Flow::Close(CloseReason::HttpRequest)
                    } else {
                        error(out)
                    }
                }
            },
        }
    }

    /// memcached's `process_update_command`: set/add/replace/append/prepend/cas.
    fn process_update(
        &mut self,
        t: &Tokens<'_>,
        ntokens: usize,
        kind: StoreKind,
        out: &mut dyn Output,
        store: &mut Store,
    ) -> Flow {
        let handle_cas = kind == StoreKind::Cas;
        let (lo, hi) = if handle_cas { (7, 8) } else { (6, 7) };
        if ntokens != lo && ntokens != hi {
            return error(out);
        }
        let noreply = t.noreply();
        let key = t.get(1);
        if key.len() > KEY_MAX_LENGTH {
            return out_string(out, noreply, b"CLIENT_ERROR bad command line format");
        }
        let (Some(flags), Some(exptime), Some(vlen)) = (
            cnum::safe_strtoul(t.get(2)),
            cnum::safe_strtol(t.get(3)),
            cnum::safe_strtol(t.get(4)),
        ) else {
            return out_string(out, noreply, b"CLIENT_ERROR bad command line format");
        };
        let exptime = store.exptime(exptime);
        let mut cas = 0;
        if handle_cas {
            match cnum::safe_strtoull(t.get(5)) {
                Some(c) => cas = c,
                None => return out_string(out, noreply, b"CLIENT_ERROR bad command line format"),
            }
        }
        if !(0..=i32::MAX - 2).contains(&vlen) {
            return out_string(out, noreply, b"CLIENT_ERROR bad command line format");
        }
        let vlen = vlen as usize;
        let size = Store::item_size(key.len(), flags, vlen);
        let refused: &[u8] = if size > store.config().item_size_max {
            store.stats.store_too_large += 1;
            b"SERVER_ERROR object too large for cache"
        } else if size as u64 > store.config().memory_limit {
            store.count_no_memory(size);
            b"SERVER_ERROR out of memory storing object"
        } else {
            b""
        };
        if !refused.is_empty() {
            out_string(out, noreply, refused);
            self.state = State::Swallow(vlen + 2);
            // "Avoid stale data persisting in cache because we failed alloc."
            if kind == StoreKind::Set {
                store.remove_after_failed_set(key);
            }
            return Flow::Block;
        }
        let mode = match kind {
            StoreKind::Set => StoreMode::Set,
            StoreKind::Add => StoreMode::Add,
            StoreKind::Replace => StoreMode::Replace,
            StoreKind::Append => StoreMode::Append,
            StoreKind::Prepend => StoreMode::Prepend,
            StoreKind::Cas => StoreMode::Cas(cas),
        };
        self.state = State::Data(PendingData {
            mode,
            item: NewItem::with_capacity(key, vlen, flags, exptime),
            value_left: vlen,
            trailer: [0; 2],
            trailer_len: 0,
            noreply,
            meta: None,
        });
        Flow::Block
    }

    /// memcached's `process_get_command`: get, gets, gat, gats, bget (see
    /// [`get_keys`]).
    #[allow(clippy::too_many_arguments)]
    fn process_get(
        &mut self,
        line: &[u8],
        t: &Tokens<'_>,
        cas: bool,
        touch: bool,
        out: &mut dyn Output,
        store: &mut Store,
        flushed: usize,
        budget: &mut Budget,
    ) -> Flow {
        let mut first_key = 1;
        let mut exptime = None;
        if touch {
            match cnum::safe_strtol(t.get(1)) {
                Some(e) => exptime = Some(store.exptime(e)),
                None => return out_string(out, false, b"CLIENT_ERROR invalid exptime argument"),
            }
            first_key = 2;
        }
        let mode = GetMode {
            cas,
            touch: exptime,
        };
        // Re-tokenizing the rest of a long line yields the same tokens: all of them.
        let keys = if first_key < t.count {
            &line[t.spans[first_key].0..]
        } else {
            &line[line.len()..]
        };
        let mut checked = false;
        match get_keys(keys, mode, &mut checked, flushed, out, store, budget) {
            GetEnd::Done => {
                out.put(b"END\r\n");
                Flow::Flush
            }
            GetEnd::Paused(at) => {
                self.get_keys.clear();
                self.get_keys.extend_from_slice(&keys[at..]);
                self.state = State::Get(GetState { mode, at: 0 });
                Flow::Pause
            }
            GetEnd::Refused => Flow::Next,
        }
    }
}

/// One key of a `get` command: the item, counted, bumped and (`gat`) touched.
fn lookup<'s>(key: &[u8], mode: GetMode, store: &'s mut Store) -> Option<ItemView<'s>> {
    match mode.touch {
        Some(e) => store.get_and_touch(key, e),
        None => store.get(key),
    }
}

/// Looks up `keys` (space-separated) and appends a `VALUE` reply for each hit, until
/// the last or until `budget` is spent (after at least one key).
///
/// An over-long key discards not only this command's values but every reply
/// memcached has not yet written (its `conn_release_items`): `out` is cut back to
/// `flushed`. So before it first pauses a `get` (and lets replies out), it makes sure
/// (`checked`) that no such key follows; if one does, it goes on without replies.
#[allow(clippy::too_many_arguments)]
fn get_keys(
    keys: &[u8],
    mode: GetMode,
    checked: &mut bool,
    flushed: usize,
    out: &mut dyn Output,
    store: &mut Store,
    budget: &mut Budget,
) -> GetEnd {
    let refuse = |out: &mut dyn Output| {
        out.truncate(flushed);
        out_string(out, false, b"CLIENT_ERROR bad command line format");
        GetEnd::Refused
    };
    let mut i = 0;
    while i < keys.len() && keys[i] == b' ' {
        i += 1;
    }
    while i < keys.len() {
        let end = keys[i..]
            .iter()
            .position(|&b| b == b' ')
            .map_or(keys.len(), |n| i + n);
        let key = &keys[i..end];
        if key.len() > KEY_MAX_LENGTH {
            return refuse(out);
        }
        if let Some(it) = lookup(key, mode, store) {
            let mut h = Line::new();
            h.put(b"VALUE ");
            h.put(it.key);
            h.put(b" ");
            h.num(u64::from(it.flags));
            h.put(b" ");
            h.num(it.value.len() as u64);
            if mode.cas {
                h.put(b" ");
                h.num(it.cas);
            }
            h.put(b"\r\n");
            out.put(h.bytes());
            out.put_value(&it);
        }
        budget.keys_left = budget.keys_left.saturating_sub(1);
        i = end;
        while i < keys.len() && keys[i] == b' ' {
            i += 1;
        }
        if i < keys.len() && budget.spent(out) {
            if !*checked {
                *checked = true;
                let rest = keys[i..].split(|&b| b == b' ').filter(|k| !k.is_empty());
                if let Some(bad) = rest.clone().position(|k| k.len() > KEY_MAX_LENGTH) {
                    // memcached looks the keys before it up (counted, bumped, touched)
                    // and then throws the replies away: no need to make them.
                    for key in rest.take(bad) {
                        let _ = lookup(key, mode, store);
                    }
                    return refuse(out);
                }
            }
            return GetEnd::Paused(i);
        }
    }
    GetEnd::Done
}

/// A reply line built on the stack, `N` bytes at most: the classic commands' lines
/// ([`Line`]) and the meta commands' (`meta::MetaLine`).
struct StackLine<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> StackLine<N> {
    fn new() -> StackLine<N> {
        StackLine {
            buf: [0; N],
            len: 0,
        }
    }

    fn put(&mut self, b: &[u8]) {
        self.buf[self.len..self.len + b.len()].copy_from_slice(b);
        self.len += b.len();
    }

    fn num(&mut self, v: u64) {
        let (d, s) = cnum::u64_digits(v);
        self.put(&d[s..]);
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// A classic reply line: a `VALUE` header is at most 6 + 255 + 3 x 21 + 2 bytes.
type Line = StackLine<328>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoreKind {
    Set,
    Add,
    Replace,
    Append,
    Prepend,
    Cas,
}

/// memcached's `complete_nread_ascii`.
fn complete_data(pd: PendingData, out: &mut dyn Output, store: &mut Store) {
    let valid = pd.trailer == *b"\r\n";
    store.count_set(&pd.item, valid);
    if !valid {
        out_string(out, pd.noreply, b"CLIENT_ERROR bad data chunk");
        return;
    }
    let outcome = store.store(pd.mode, pd.item);
    let reply: &[u8] = match outcome {
        StoreOutcome::Stored => b"STORED",
        StoreOutcome::NotStored => b"NOT_STORED",
        StoreOutcome::Exists => b"EXISTS",
        StoreOutcome::NotFound => b"NOT_FOUND",
    };
    out_string(out, pd.noreply, reply);
}

/// memcached's `tokenize_command`: at most 23 tokens, split on spaces only; the rest
/// of a longer line is left for the `get` commands.
struct Tokens<'a> {
    line: &'a [u8],
    spans: [(usize, usize); MAX_TOKENS],
    count: usize,
}

impl<'a> Tokens<'a> {
    fn new(line: &'a [u8]) -> Tokens<'a> {
        let mut spans = [(0, 0); MAX_TOKENS];
        let mut count = 0;
        let mut s = 0;
        let mut e = 0;
        while e < line.len() {
            if line[e] == b' ' {
                if s != e {
                    spans[count] = (s, e);
                    count += 1;
                    if count == MAX_TOKENS - 1 {
                        s = e + 1;
                        e = s;
                        break;
                    }
                }
                s = e + 1;
            }
            e += 1;
        }
        if s != e {
            spans[count] = (s, e);
            count += 1;
        }
        Tokens { line, spans, count }
    }

    /// memcached's `ntokens`: the tokens plus the terminal one.
    fn ntokens(&self) -> usize {
        self.count + 1
    }

    /// Token `i`; the empty terminal token past the end.
    fn get(&self, i: usize) -> &'a [u8] {
        if i < self.count {
            let (s, e) = self.spans[i];
            &self.line[s..e]
        } else {
            b""
        }
    }

    /// memcached's `set_noreply_maybe`: the last token is `noreply`.
    fn noreply(&self) -> bool {
        self.count > 0 && self.get(self.count - 1) == b"noreply"
    }
}

fn out_string(out: &mut dyn Output, noreply: bool, s: &[u8]) -> Flow {
    if !noreply {
        out.put(s);
        out.put(b"\r\n");
    }
    Flow::Next
}

fn error(out: &mut dyn Output) -> Flow {
    out_string(out, false, b"ERROR")
}

/// memcached's `process_touch_command`.
fn process_touch(t: &Tokens<'_>, ntokens: usize, out: &mut dyn Output, store: &mut Store) -> Flow {
    if ntokens != 4 && ntokens != 5 {
        return error(out);
    }
    let noreply = t.noreply();
    let key = t.get(1);
    if key.len() > KEY_MAX_LENGTH {
        return out_string(out, noreply, b"CLIENT_ERROR bad command line format");
    }
    let Some(e) = cnum::safe_strtol(t.get(2)) else {
        return out_string(out, noreply, b"CLIENT_ERROR invalid exptime argument");
    };
    let e = store.exptime(e);
    if store.touch(key, e) {
        out_string(out, noreply, b"TOUCHED")
    } else {
        out_string(out, noreply, b"NOT_FOUND")
    }
}

/// memcached's `process_arithmetic_command`: incr, decr.
fn process_arithmetic(
    t: &Tokens<'_>,
    ntokens: usize,
    incr: bool,
    held: bool,
    out: &mut dyn Output,
    store: &mut Store,
) -> Flow {
    if ntokens != 4 && ntokens != 5 {
        return error(out);
    }
    let noreply = t.noreply();
    let key = t.get(1);
    if key.len() > KEY_MAX_LENGTH {
        return out_string(out, noreply, b"CLIENT_ERROR bad command line format");
    }
    let Some(delta) = cnum::safe_strtoull(t.get(2)) else {
        return out_string(out, noreply, b"CLIENT_ERROR invalid numeric delta argument");
    };
    let result = store.delta_held(key, incr, delta, held);
    match result {
        DeltaOutcome::Value(v) => {
            let (digits, start) = cnum::u64_digits(v);
            out_string(out, noreply, &digits[start..])
        }
        DeltaOutcome::NonNumeric => out_string(
            out,
            noreply,
            b"CLIENT_ERROR cannot increment or decrement non-numeric value",
        ),
        DeltaOutcome::NotFound => out_string(out, noreply, b"NOT_FOUND"),
    }
}

/// memcached's `process_delete_command`.
fn process_delete(t: &Tokens<'_>, ntokens: usize, out: &mut dyn Output, store: &mut Store) -> Flow {
    if !(3..=5).contains(&ntokens) {
        return error(out);
    }
    let mut noreply = false;
    if ntokens > 3 {
        let hold_is_zero = t.get(2) == b"0";
        noreply = t.noreply();
        let valid = (ntokens == 4 && (hold_is_zero || noreply))
            || (ntokens == 5 && hold_is_zero && noreply);
        if !valid {
            return out_string(
                out,
                noreply,
                b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]",
            );
        }
    }
    let key = t.get(1);
    if key.len() > KEY_MAX_LENGTH {
        return out_string(out, noreply, b"CLIENT_ERROR bad command line format");
    }
    if store.delete(key) {
        out_string(out, noreply, b"DELETED")
    } else {
        out_string(out, noreply, b"NOT_FOUND")
    }
}

/// memcached's `process_verbosity_command`.
fn process_verbosity(
    t: &Tokens<'_>,
    ntokens: usize,
    out: &mut dyn Output,
    env: &dyn Environment,
) -> Flow {
    if ntokens != 3 && ntokens != 4 {
        return error(out);
    }
    let noreply = t.noreply();
    let Some(level) = cnum::safe_strtoul(t.get(1)) else {
        return out_string(out, noreply, b"CLIENT_ERROR bad command line format");
    };
    env.set_verbosity(level.min(MAX_VERBOSITY_LEVEL));
    out_string(out, noreply, b"OK")
}

/// memcached's `process_flush_all_command`.
fn process_flush_all(
    t: &Tokens<'_>,
    ntokens: usize,
    out: &mut dyn Output,
    store: &mut Store,
) -> Flow {
    if !(2..=4).contains(&ntokens) {
        return error(out);
    }
    let noreply = t.noreply();
    store.stats.cmd_flush += 1;
    let mut delay = 0;
    if ntokens != if noreply { 3 } else { 2 } {
        match cnum::safe_strtol(t.get(1)) {
            Some(d) => delay = d,
            None => return out_string(out, noreply, b"CLIENT_ERROR invalid exptime argument"),
        }
    }
    store.flush_all(delay);
    out_string(out, noreply, b"OK")
}

/// memcached's `process_memlimit_command`.
fn process_memlimit(
    t: &Tokens<'_>,
    ntokens: usize,
    out: &mut dyn Output,
    store: &mut Store,
) -> Flow {
    if ntokens != 3 && ntokens != 4 {
        return error(out);
    }
    let noreply = t.noreply();
    let Some(mb) = cnum::safe_strtoul(t.get(1)) else {
        return out_string(out, noreply, b"ERROR");
    };
    if mb < 8 {
        out_string(
            out,
            noreply,
            b"MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m",
        )
    } else if mb > 1_000_000_000 {
        out_string(
            out,
            noreply,
            b"MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes",
        )
    } else {
        store.set_memory_limit(u64::from(mb) * 1024 * 1024);
        out_string(out, noreply, b"OK")
    }
}

/// memcached's `process_shutdown_command`.
fn process_shutdown(
    t: &Tokens<'_>,
    ntokens: usize,
    out: &mut dyn Output,
    env: &dyn Environment,
) -> Flow {
    if !env.config().enable_shutdown {
        return out_string(out, false, b"ERROR: shutdown not enabled");
    }
    if ntokens == 2 {
        env.shutdown(false);
        Flow::Close(CloseReason::Shutdown)
    } else if ntokens == 3 && t.get(1) == b"graceful" {
        env.shutdown(true);
        Flow::Close(CloseReason::Shutdown)
    } else {
        out_string(out, false, b"CLIENT_ERROR invalid shutdown mode")
    }
}

/// memcached's `process_stat`.
fn process_stats(
    t: &Tokens<'_>,
    ntokens: usize,
    out: &mut dyn Output,
    store: &mut Store,
    env: &dyn Environment,
) -> Flow {
    if ntokens == 2 {
        write_general_stats(out, store, env);
        return Flow::Next;
    }
    match t.get(1) {
        b"reset" => {
            store.reset_stats();
            env.reset_stats();
            out_string(out, false, b"RESET")
        }
        b"settings" => {
            write_settings(out, store, env);
            Flow::Next
        }
        b"items" => {
            write_item_stats(out, store);
            Flow::Next
        }
        b"slabs" => {
            write_slab_stats(out, store);
            Flow::Next
        }
        b"detail" => match t.get(2) {
            // Per-prefix statistics are not collected: "dump" lists none.
            b"on" | b"off" if ntokens >= 4 => {
                store.detail_enabled = t.get(2) == b"on";
                out_string(out, false, b"OK")
            }
            b"dump" if ntokens >= 4 => out_string(out, false, b"END"),
            _ => out_string(out, false, b"CLIENT_ERROR usage: stats detail on|off|dump"),
        },
        _ => error(out),
    }
}

fn stat_u64(out: &mut dyn Output, name: &str, v: u64) {
    let mut l = Line::new();
    l.put(b"STAT ");
    l.put(name.as_bytes());
    l.put(b" ");
    l.num(v);
    l.put(b"\r\n");
    out.put(l.bytes());
}

fn stat_str(out: &mut dyn Output, name: &str, v: &[u8]) {
    out.put(b"STAT ");
    out.put(name.as_bytes());
    out.put(b" ");
    out.put(v);
    out.put(b"\r\n");
}

/// `STAT <prefix><class>:<name> <v>`: a per-class figure.
fn stat_class(out: &mut dyn Output, prefix: &[u8], class: usize, name: &str, v: u64) {
    let mut l = Line::new();
    l.put(b"STAT ");
    l.put(prefix);
    l.num(class as u64);
    l.put(b":");
    l.put(name.as_bytes());
    l.put(b" ");
    l.num(v);
    l.put(b"\r\n");
    out.put(l.bytes());
}

/// `stats items`: memcached 1.6.18's `item_stats` for each class with items, as it
/// prints them without the LRU maintainer (one LRU per class: no `number_hot`,
/// `age_hot`, `moves_*`...). No LRU tail is ever locked or repaired, and there is no
/// crawler: those fields are 0, as memcached's in this configuration.
fn write_item_stats(out: &mut dyn Output, store: &Store) {
    let ages = store.slab_ages();
    for (class, c) in store.slab_classes().iter().enumerate() {
        if c.items == 0 {
            continue;
        }
        let n = &c.counters;
        let mut stat = |name: &str, v: u64| stat_class(out, b"items:", class, name, v);
        stat("number", c.items);
        stat("age", u64::from(ages[class]));
        stat("mem_requested", c.mem_requested);
        stat("evicted", n.evicted);
        stat("evicted_nonzero", n.evicted_nonzero);
        stat("evicted_time", u64::from(n.evicted_time));
        stat("outofmemory", n.outofmemory);
        stat("tailrepairs", 0);
        stat("reclaimed", n.reclaimed);
        stat("expired_unfetched", n.expired_unfetched);
        stat("evicted_unfetched", n.evicted_unfetched);
        stat("crawler_reclaimed", 0);
        stat("crawler_items_checked", 0);
        stat("lrutail_reflocked", 0);
    }
    out.put(b"END\r\n");
}

/// `stats slabs`: memcached 1.6.18's `do_slabs_stats` for each class that has taken
/// pages, then `active_slabs` and `total_malloced` (the pages, of 1 MiB).
fn write_slab_stats(out: &mut dyn Output, store: &Store) {
    let mut active = 0;
    let mut pages = 0;
    for (class, c) in store.slab_classes().iter().enumerate() {
        if c.pages == 0 {
            continue;
        }
        active += 1;
        pages += c.pages;
        let per_page = slabs::chunks_per_page(class);
        let n = &c.counters;
        let mut stat = |name: &str, v: u64| stat_class(out, b"", class, name, v);
        stat("chunk_size", slabs::chunk_size(class) as u64);
        stat("chunks_per_page", per_page);
        stat("total_pages", c.pages);
        stat("total_chunks", c.pages * per_page);
        stat("used_chunks", c.used_chunks);
        stat("free_chunks", c.pages * per_page - c.used_chunks);
        stat("free_chunks_end", 0);
        stat("get_hits", n.get_hits);
        stat("cmd_set", n.cmd_set);
        stat("delete_hits", n.delete_hits);
        stat("incr_hits", n.incr_hits);
        stat("decr_hits", n.decr_hits);
        stat("cas_hits", n.cas_hits);
        stat("cas_badval", n.cas_badval);
        stat("touch_hits", n.touch_hits);
    }
    stat_u64(out, "active_slabs", active);
    stat_u64(out, "total_malloced", pages * slabs::PAGE_SIZE as u64);
    out.put(b"END\r\n");
}

/// `%ld.%06ld`, as memcached prints rusage.
fn stat_duration(out: &mut dyn Output, name: &str, d: Duration) {
    let mut l = Line::new();
    l.put(b"STAT ");
    l.put(name.as_bytes());
    l.put(b" ");
    l.num(d.as_secs());
    l.put(b".");
    let micros = u64::from(d.subsec_micros());
    let (digits, start) = cnum::u64_digits(micros);
    for _ in 0..(6 - (20 - start)) {
        l.put(b"0");
    }
    l.put(&digits[start..]);
    l.put(b"\r\n");
    out.put(l.bytes());
}

/// `stats settings`: memcached 1.6.18's list. Settings without meaning here report
/// what memcached reports when run as the engine works: one LRU and no background
/// threads (`-o no_lru_maintainer,no_lru_crawler`), no UDP workers of its own, no TLS,
/// no extstore in use, memcached's default slab classes.
fn write_settings(out: &mut dyn Output, store: &Store, env: &dyn Environment) {
    let c = env.config();
    let s = |out: &mut dyn Output, name: &str, v: &str| stat_str(out, name, v.as_bytes());
    stat_u64(out, "maxbytes", store.config().memory_limit);
    stat_u64(out, "maxconns", u64::from(c.max_connections));
    stat_u64(out, "tcpport", u64::from(c.port));
    stat_u64(out, "udpport", u64::from(c.udp_port));
    if c.listen.is_empty() {
        s(out, "inter", "NULL");
    } else {
        s(out, "inter", &c.listen.join(","));
    }
    stat_u64(out, "verbosity", u64::from(env.verbosity()));
    stat_u64(out, "oldest", store.oldest_live_rel());
    s(out, "evictions", "on");
    s(out, "domain_socket", "NULL");
    s(out, "umask", "700");
    s(
        out,
        "shutdown_command",
        if c.enable_shutdown { "yes" } else { "no" },
    );
    s(out, "growth_factor", "1.25");
    s(out, "chunk_size", "48");
    stat_u64(out, "num_threads", u64::from(c.threads));
    stat_u64(out, "num_threads_per_udp", u64::from(c.threads));
    s(out, "stat_key_prefix", ":");
    s(
        out,
        "detail_enabled",
        if store.detail_enabled { "yes" } else { "no" },
    );
    stat_u64(out, "reqs_per_event", u64::from(c.reqs_per_event));
    s(out, "cas_enabled", "yes");
    s(out, "tcp_backlog", "1024");
    s(out, "binding_protocol", "auto-negotiate");
    s(out, "auth_enabled_sasl", "no");
    s(out, "auth_enabled_ascii", "no");
    stat_u64(out, "item_size_max", store.config().item_size_max as u64);
    for (name, v) in [
        ("maxconns_fast", "yes"),
        ("hashpower_init", "0"),
        ("slab_reassign", "yes"),
        ("slab_automove", "1"),
        ("slab_automove_ratio", "0.80"),
        ("slab_automove_window", "30"),
        ("slab_chunk_max", "524288"),
        ("lru_crawler", "no"),
        ("lru_crawler_sleep", "100"),
        ("lru_crawler_tocrawl", "0"),
        ("tail_repair_time", "0"),
        ("flush_enabled", "yes"),
        ("dump_enabled", "yes"),
        ("hash_algorithm", "murmur3"),
        ("lru_maintainer_thread", "no"),
        ("lru_segmented", "no"),
        ("hot_lru_pct", "20"),
        ("warm_lru_pct", "40"),
        ("hot_max_factor", "0.20"),
        ("warm_max_factor", "2.00"),
        ("temp_lru", "no"),
        ("temporary_ttl", "61"),
        ("idle_timeout", "0"),
        ("watcher_logbuf_size", "262144"),
        ("worker_logbuf_size", "65536"),
        ("read_buf_mem_limit", "0"),
        ("track_sizes", "no"),
        ("inline_ascii_response", "no"),
        ("ext_item_size", "512"),
        ("ext_item_age", "4294967295"),
        ("ext_low_ttl", "0"),
        ("ext_recache_rate", "2000"),
        ("ext_wbuf_size", "4194304"),
        ("ext_compact_under", "0"),
        ("ext_drop_under", "0"),
        ("ext_max_sleep", "1000000"),
        ("ext_max_frag", "0.80"),
        ("slab_automove_freeratio", "0.010"),
        ("ext_drop_unread", "no"),
        ("ssl_enabled", "no"),
        ("ssl_chain_cert", "(null)"),
        ("ssl_key", "(null)"),
        ("ssl_verify_mode", "0"),
        ("ssl_keyformat", "1"),
        ("ssl_ciphers", "NULL"),
        ("ssl_ca_cert", "NULL"),
        ("ssl_wbuf_size", "16384"),
        ("ssl_session_cache", "no"),
        ("ssl_kernel_tls", "no"),
        ("ssl_min_version", "tlsv1.2"),
        ("num_napi_ids", "(null)"),
        ("memory_file", "(null)"),
    ] {
        s(out, name, v);
    }
    out.put(b"END\r\n");
}

/// The general `stats`: memcached 1.6.18's fields in its order; those without meaning
/// here report memcached's figures for the equivalent configuration (see the book's
/// memcached chapter).
fn write_general_stats(out: &mut dyn Output, store: &Store, env: &dyn Environment) {
    let p = env.server_stats();
    let s = store.stats();
    stat_u64(out, "pid", u64::from(p.pid));
    stat_u64(out, "uptime", p.uptime);
    stat_u64(out, "time", store.now());
    stat_str(out, "version", env.version().as_bytes());
    stat_str(out, "libevent", LIBEVENT.as_bytes());
    stat_u64(out, "pointer_size", u64::from(usize::BITS));
    stat_duration(out, "rusage_user", p.rusage_user);
    stat_duration(out, "rusage_system", p.rusage_system);
    stat_u64(out, "max_connections", p.max_connections);
    stat_u64(out, "curr_connections", p.curr_connections);
    stat_u64(out, "total_connections", p.total_connections);
    stat_u64(out, "rejected_connections", p.rejected_connections);
    stat_u64(out, "connection_structures", p.connection_structures);
    // memcached's response objects and read buffers: its figures for one client
    // asking for stats (the engine's buffers are the server's own).
    for (name, v) in [
        ("response_obj_oom", 0),
        ("response_obj_count", 1),
        ("response_obj_bytes", 16384),
        ("read_buf_count", 2),
        ("read_buf_bytes", 32768),
        ("read_buf_bytes_free", 0),
        ("read_buf_oom", 0),
    ] {
        stat_u64(out, name, v);
    }
    // memcached reserves 5 descriptors per worker thread.
    stat_u64(out, "reserved_fds", 5 * u64::from(p.threads));
    stat_u64(out, "cmd_get", s.cmd_get);
    stat_u64(out, "cmd_set", s.cmd_set);
    stat_u64(out, "cmd_flush", s.cmd_flush);
    stat_u64(out, "cmd_touch", s.cmd_touch);
    stat_u64(out, "cmd_meta", s.meta_cmds);
    stat_u64(out, "get_hits", s.get_hits);
    stat_u64(out, "get_misses", s.get_misses);
    stat_u64(out, "get_expired", s.get_expired);
    stat_u64(out, "get_flushed", s.get_flushed);
    stat_u64(out, "delete_misses", s.delete_misses);
    stat_u64(out, "delete_hits", s.delete_hits);
    stat_u64(out, "incr_misses", s.incr_misses);
    stat_u64(out, "incr_hits", s.incr_hits);
    stat_u64(out, "decr_misses", s.decr_misses);
    stat_u64(out, "decr_hits", s.decr_hits);
    stat_u64(out, "cas_misses", s.cas_misses);
    stat_u64(out, "cas_hits", s.cas_hits);
    stat_u64(out, "cas_badval", s.cas_badval);
    stat_u64(out, "touch_hits", s.touch_hits);
    stat_u64(out, "touch_misses", s.touch_misses);
    stat_u64(out, "store_too_large", s.store_too_large);
    stat_u64(out, "store_no_memory", s.store_no_memory);
    stat_u64(out, "auth_cmds", 0);
    stat_u64(out, "auth_errors", 0);
    stat_u64(out, "bytes_read", s.bytes_read);
    stat_u64(out, "bytes_written", s.bytes_written);
    stat_u64(out, "limit_maxbytes", store.config().memory_limit);
    stat_u64(out, "accepting_conns", u64::from(p.accepting_conns));
    stat_u64(out, "listen_disabled_num", p.listen_disabled_num);
    stat_u64(out, "time_in_listen_disabled_us", 0);
    stat_u64(out, "threads", u64::from(p.threads));
    stat_u64(out, "conn_yields", s.conn_yields);
    let (power, bytes) = store.hash_table_size();
    stat_u64(out, "hash_power_level", u64::from(power));
    stat_u64(out, "hash_bytes", bytes as u64);
    stat_u64(out, "hash_is_expanding", 0);
    // No slab rebalancing, logger, NAPI or io_uring here: memcached's figures when
    // they are idle.
    for name in [
        "slab_reassign_rescues",
        "slab_reassign_chunk_rescues",
        "slab_reassign_evictions_nomem",
        "slab_reassign_inline_reclaim",
        "slab_reassign_busy_items",
        "slab_reassign_busy_deletes",
        "slab_reassign_running",
        "slabs_moved",
        "malloc_fails",
        "log_worker_dropped",
        "log_worker_written",
        "log_watcher_skipped",
        "log_watcher_sent",
        "log_watchers",
        "unexpected_napi_ids",
        "round_robin_fallback",
    ] {
        stat_u64(out, name, 0);
    }
    stat_u64(out, "bytes", s.bytes);
    stat_u64(out, "curr_items", s.curr_items);
    stat_u64(out, "total_items", s.total_items);
    stat_u64(out, "slab_global_page_pool", 0);
    stat_u64(out, "expired_unfetched", s.expired_unfetched);
    stat_u64(out, "evicted_unfetched", s.evicted_unfetched);
    stat_u64(out, "evictions", s.evictions);
    stat_u64(out, "reclaimed", s.reclaimed);
    // No LRU crawler.
    stat_u64(out, "crawler_reclaimed", 0);
    stat_u64(out, "crawler_items_checked", 0);
    stat_u64(out, "lrutail_reflocked", 0);
    out.put(b"END\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ManualClock, StoreConfig};
    use std::sync::Arc;

    fn engine() -> (Store, ServerStats) {
        (
            Store::with_clock(
                StoreConfig::default(),
                Arc::new(ManualClock::new(1_700_000_000)),
            ),
            ServerStats::default(),
        )
    }

    fn run(input: &[u8]) -> Vec<u8> {
        let (mut s, env) = engine();
        let mut out = Vec::new();
        let mut conn = Connection::new();
        let mut rest = input;
        loop {
            let p = conn.process(rest, &mut out, &mut s, &env);
            rest = &rest[p.consumed..];
            if p.next != Next::Yield {
                break;
            }
        }
        out
    }

    #[test]
    fn tokenizer_matches_memcached() {
        let t = Tokens::new(b"  get  a b ");
        assert_eq!(
            (t.count, t.get(0), t.get(1), t.get(2)),
            (3, &b"get"[..], &b"a"[..], &b"b"[..])
        );
        let line: Vec<u8> = (0..30)
            .flat_map(|i| format!("t{i} ").into_bytes())
            .collect();
        let t = Tokens::new(&line);
        assert_eq!(t.count, 23);
        assert_eq!(t.get(22), b"t22");
    }

    #[test]
    fn basic_commands() {
        assert_eq!(
            run(b"set a 0 0 1\r\nx\r\nget a\r\n"),
            b"STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n"
        );
        assert_eq!(run(b"\r\n"), b"ERROR\r\n");
        assert_eq!(run(b"x\r\n"), b"ERROR\r\n");
        assert_eq!(
            run(b"set a 0 0 2\r\nxyz\r\nget a\r\n"),
            b"CLIENT_ERROR bad data chunk\r\nERROR\r\nEND\r\n"
        );
        assert_eq!(
            run(b"set a 0 0 1 noreply\r\nx\r\nget a\r\n"),
            b"VALUE a 0 1\r\nx\r\nEND\r\n"
        );
        assert_eq!(run(b"set a 0 0 4294967297\r\nx\r\n"), b"STORED\r\n");
        assert_eq!(
            run(b"set n 0 0 2\r\n10\r\ndecr n 1\r\nget n\r\n"),
            b"STORED\r\n9\r\nVALUE n 0 2\r\n9 \r\nEND\r\n"
        );
    }

    #[test]
    fn too_large_item_is_swallowed() {
        let mut input = b"set big 0 0 2000000\r\n".to_vec();
        input.extend(std::iter::repeat_n(b'v', 2_000_000));
        input.extend_from_slice(b"\r\nget big\r\n");
        assert_eq!(
            run(&input),
            b"SERVER_ERROR object too large for cache\r\nEND\r\n"
        );
    }

    #[test]
    fn every_split_gives_the_same_output() {
        let input: &[u8] = b"set a 5 0 3\r\nabc\r\nget a b\r\nappend a 0 0 2\r\nde\r\nincr x 1\r\nset b 0 0 2\r\nxyz\r\ngets a\r\ndelete a\r\nbogus\r\n\r\nversion\r\n";
        let whole = run(input);
        for i in 0..=input.len() {
            let (mut s, env) = engine();
            let mut out = Vec::new();
            let mut conn = Connection::new();
            for piece in [&input[..i], &input[i..]] {
                let p = conn.process(piece, &mut out, &mut s, &env);
                assert_eq!(p.consumed, piece.len());
            }
            // CAS values are deterministic with a fresh store.
            assert_eq!(out, whole, "split at {i}");
        }
        let (mut s, env) = engine();
        let mut out = Vec::new();
        let mut conn = Connection::new();
        for b in input {
            conn.process(std::slice::from_ref(b), &mut out, &mut s, &env);
        }
        assert_eq!(out, whole);
    }

    #[test]
    fn long_lines() {
        // No newline in more than 2048 bytes: closed.
        let (mut s, env) = engine();
        let mut out = Vec::new();
        let mut conn = Connection::new();
        let p = conn.process(&[b'x'; 3000], &mut out, &mut s, &env);
        assert_eq!(p.next, Next::Close(CloseReason::LineTooLong));
        // Complete in one read: processed.
        let mut line = vec![b'x'; 3000];
        line.extend_from_slice(b"\r\n");
        assert_eq!(run(&line), b"ERROR\r\n");
        // Beyond memcached's read buffer: closed even when complete.
        let mut line = vec![b'x'; 20000];
        line.extend_from_slice(b"\r\n");
        let (mut s, env) = engine();
        let p = Connection::new().process(&line, &mut out, &mut s, &env);
        assert_eq!(p.next, Next::Close(CloseReason::LineTooLong));
        // A long get is fine, in pieces.
        let mut get = b"get ".to_vec();
        for i in 0..3000 {
            get.extend_from_slice(format!("k{i} ").as_bytes());
        }
        get.extend_from_slice(b"\r\n");
        let (mut s, env) = engine();
        let mut out = Vec::new();
        let mut conn = Connection::new();
        for chunk in get.chunks(1000) {
            let p = conn.process(chunk, &mut out, &mut s, &env);
            assert_eq!(p.next, Next::Read);
        }
        assert_eq!(out, b"END\r\n");
        assert_eq!(s.stats().get_misses, 3000);
    }

    #[test]
    fn yields_follow_memcached_batches() {
        let input = b"version\r\n".repeat(45);
        let (mut s, env) = engine();
        let mut out = Vec::new();
        let mut conn = Connection::new();
        let mut rest = &input[..];
        let mut batches = Vec::new();
        loop {
            let before = out.len();
            let p = conn.process(rest, &mut out, &mut s, &env);
            batches.push((out.len() - before) / b"VERSION 1.6.18\r\n".len());
            rest = &rest[p.consumed..];
            if p.next == Next::Read {
                break;
            }
        }
        assert_eq!(batches, [21, 20, 4]);
    }

    /// Runs `input` in `chunk`-byte reads through a connection with limits, writing
    /// the replies (a `Replies`) after every call, as a server does.
    fn run_limited(input: &[u8], chunk: usize, conn: Connection) -> (Vec<u8>, Store, usize) {
        let (mut s, env) = engine();
        let mut conn = conn;
        let mut out = crate::output::Replies::new();
        let mut written = Vec::new();
        let mut pauses = 0;
        'reads: for read in input.chunks(chunk) {
            let mut rest = read;
            loop {
                let p = conn.process(rest, &mut out, &mut s, &env);
                while !out.is_empty() {
                    out.write_to(&mut written).unwrap();
                }
                rest = &rest[p.consumed..];
                match p.next {
                    Next::Read => break,
                    Next::Yield => {}
                    Next::Pause => pauses += 1,
                    Next::Close(_) => break 'reads,
                }
            }
        }
        (written, s, pauses)
    }

    #[test]
    fn limits_change_the_calls_not_the_bytes() {
        let mut input = Vec::new();
        input.extend_from_slice(b"set a 1 0 300\r\n");
        input.extend(std::iter::repeat_n(b'a', 300));
        input.extend_from_slice(b"\r\nset b 2 0 5\r\nbbbbb\r\n");
        for i in 0..40 {
            input.extend_from_slice(
                format!("get a b x{i} a\r\ngets b a\r\ngat 0 a b\r\n").as_bytes(),
            );
            input.extend_from_slice(b"incr n 1\r\nversion\r\nstats detail dump\r\n");
            input.extend_from_slice(b"mg a v\r\nmg b v k c\r\nmg zz v q\r\nma n v\r\nmn\r\n");
        }
        input.extend_from_slice(b"get ");
        for _ in 0..500 {
            input.extend_from_slice(b"a b zz ");
        }
        input.extend_from_slice(b"\r\nget a b ");
        input.extend(std::iter::repeat_n(b'k', 251));
        input.extend_from_slice(b"\r\nget a\r\n");
        let whole = run(&input);
        let mut tail = b"END\r\nCLIENT_ERROR bad command line format\r\nVALUE a 1 300\r\n".to_vec();
        tail.extend(std::iter::repeat_n(b'a', 300));
        tail.extend_from_slice(b"\r\nEND\r\n");
        assert!(whole.ends_with(&tail));
        for chunk in [7, 1000, 16384] {
            let (_, plain, _) = run_limited(&input, chunk, Connection::new());
            for (limit, keys) in [
                (0, usize::MAX),
                (500, usize::MAX),
                (usize::MAX, 1),
                (4096, 3),
            ] {
                let conn = Connection::new()
                    .with_output_limit(limit)
                    .with_keys_per_call(keys);
                let (got, s, pauses) = run_limited(&input, chunk, conn);
                assert!(
                    got == whole,
                    "chunk {chunk}, limit {limit}, keys {keys}: bytes differ"
                );
                assert!(pauses > 0);
                let (a, b) = (s.stats(), plain.stats());
                assert_eq!(
                    (
                        a.get_hits,
                        a.get_misses,
                        a.touch_hits,
                        a.conn_yields,
                        a.bytes_written
                    ),
                    (
                        b.get_hits,
                        b.get_misses,
                        b.touch_hits,
                        b.conn_yields,
                        b.bytes_written
                    ),
                    "chunk {chunk}, limit {limit}, keys {keys}"
                );
            }
        }
    }

    /// Found by the fuzzer: an abrupt close (here an HTTP request line) drops the replies
    /// memcached had not flushed, but a pause before it (three `mg` with a key budget of
    /// three) has written them already. With limits the replies may run further than
    /// memcached's, never differ from them.
    #[test]
    fn abrupt_close_after_a_pause_keeps_what_the_pause_wrote() {
        let mut input = b"y\nm\n)g\nmg\n\n\x8a\x98\n)g\nm\nmg\n)g\nmg\n".to_vec();
        input.extend_from_slice(b"\nmg\nT\xca\x98\n\x8a\x98 HTTP/\x00\n \n\n");
        let (plain, _, pauses) = run_limited(&input, 1153, Connection::new());
        assert_eq!(pauses, 0);
        // memcached flushed nothing before the close.
        assert_eq!(plain, b"");
        let (limited, _, pauses) =
            run_limited(&input, 1153, Connection::new().with_keys_per_call(3));
        assert_eq!(pauses, 1);
        assert_eq!(limited, b"ERROR\r\n".repeat(11));
        assert!(limited.starts_with(&plain));
    }

    /// An `mg` reply holds its item until memcached writes it: a pause (which memcached
    /// does not make) keeps the hold, so `ma` makes a new, unpadded item either way.
    #[test]
    fn pauses_keep_meta_gets_holds() {
        let input =
            b"set m 0 0 3\r\n100\r\nmg m v\r\nmg m v\r\nmg m v\r\nma m MD D99 v\r\nget m\r\n";
        let whole = run(input);
        assert!(whole.ends_with(b"VALUE m 0 1\r\n1\r\nEND\r\n"));
        for (limit, keys) in [(0, usize::MAX), (usize::MAX, 1)] {
            let conn = Connection::new()
                .with_output_limit(limit)
                .with_keys_per_call(keys);
            let (got, _, pauses) = run_limited(input, input.len(), conn);
            assert!(pauses >= 2);
            assert_eq!(got, whole);
        }
    }

    #[test]
    fn abrupt_close_drops_unflushed_replies() {
        let mut input = b"get a\r\n".to_vec();
        input.extend(b"version\r\n".repeat(3));
        input.extend(b"GET / HTTP/1.1\r\n");
        assert_eq!(run(&input), b"END\r\n");
    }

    /// A store on a manual clock (at 1,700,000,000 s), and the clock to move.
    fn clocked() -> (Arc<ManualClock>, Store) {
        let clock = Arc::new(ManualClock::new(1_700_000_000));
        let s = Store::with_clock(StoreConfig::default(), clock.clone());
        (clock, s)
    }

    /// The replies of `conn` to `input`, as text.
    fn say_on(conn: &mut Connection, input: &[u8], s: &mut Store, env: &ServerStats) -> String {
        let mut out = Vec::new();
        conn.process(input, &mut out, s, env);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn meta_times_follow_the_clock() {
        let (clock, mut s) = clocked();
        let env = ServerStats::default();
        let mut conn = Connection::new();
        let mut say = |input: &[u8], s: &mut Store| say_on(&mut conn, input, s, &env);
        assert_eq!(
            say(b"ms k 1 T100\r\nx\r\nmg k t l h\r\n", &mut s),
            "HD\r\nHD t100 l0 h0\r\n"
        );
        clock.advance(30);
        assert_eq!(say(b"mg k t l h\r\n", &mut s), "HD t70 l30 h1\r\n");
        assert_eq!(
            say(b"me k\r\n", &mut s),
            "ME k exp=-70 la=30 cas=1 fetch=yes cls=1 size=61\r\n"
        );
        assert_eq!(
            say(b"mg k T0 t\r\nma k T10 t\r\n", &mut s),
            "HD t-1\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
        );
        // Past its TTL the item is gone; a recache token is won below R's TTL.
        assert_eq!(
            say(b"ms n 2 T50\r\n10\r\nmg n R60 t\r\nmg n R60\r\n", &mut s),
            "HD\r\nHD t50 W\r\nHD Z\r\n"
        );
        clock.advance(50);
        assert_eq!(say(b"mg n\r\nme n\r\n", &mut s), "EN\r\nEN\r\n");
    }

    /// `stats items` and `stats slabs` as memcached 1.6.18 prints them (run with
    /// `-o no_lru_maintainer,no_lru_crawler`), on a manual clock.
    #[test]
    fn stats_items_and_slabs_format() {
        let (clock, mut s) = clocked();
        let env = ServerStats::default();
        let mut conn = Connection::new();
        let mut say = |input: &[u8], s: &mut Store| say_on(&mut conn, input, s, &env);
        assert_eq!(
            say(b"stats items\r\nstats slabs\r\n", &mut s),
            "END\r\nSTAT active_slabs 0\r\nSTAT total_malloced 0\r\nEND\r\n"
        );
        // "a" is 61 bytes (class 1); "b", 1,060 (class 12). A refused `add` still
        // took a chunk in class 4 (152 to 192 bytes) for its data.
        say(b"set a 0 0 1\r\n1\r\nset b 0 0 1000\r\n", &mut s);
        say(&[b'x'; 1000], &mut s);
        say(b"\r\nadd a 0 0 100\r\n", &mut s);
        say(&[b'y'; 100], &mut s);
        say(b"\r\n", &mut s);
        clock.advance(7);
        assert_eq!(
            say(
                b"get a b nokey\r\nincr a 1\r\ntouch b 0\r\ndelete b\r\n",
                &mut s
            ),
            format!(
                "VALUE a 0 1\r\n1\r\nVALUE b 0 1000\r\n{}\r\nEND\r\n2\r\nTOUCHED\r\nDELETED\r\n",
                "x".repeat(1000)
            )
        );
        let fields = |prefix: &str, values: &[(&str, u64)]| {
            values
                .iter()
                .map(|(n, v)| format!("STAT {prefix}{n} {v}\r\n"))
                .collect::<String>()
        };
        let items = fields(
            "items:1:",
            &[
                ("number", 1),
                ("age", 7),
                ("mem_requested", 61),
                ("evicted", 0),
                ("evicted_nonzero", 0),
                ("evicted_time", 0),
                ("outofmemory", 0),
                ("tailrepairs", 0),
                ("reclaimed", 0),
                ("expired_unfetched", 0),
                ("evicted_unfetched", 0),
                ("crawler_reclaimed", 0),
                ("crawler_items_checked", 0),
                ("lrutail_reflocked", 0),
            ],
        );
        assert_eq!(say(b"stats items\r\n", &mut s), items.clone() + "END\r\n");
        let class = |class: usize, size: u64, per_page: u64, used: u64, counts: [u64; 8]| {
            let mut v = vec![
                ("chunk_size", size),
                ("chunks_per_page", per_page),
                ("total_pages", 1),
                ("total_chunks", per_page),
                ("used_chunks", used),
                ("free_chunks", per_page - used),
                ("free_chunks_end", 0),
            ];
            let names = [
                "get_hits",
                "cmd_set",
                "delete_hits",
                "incr_hits",
                "decr_hits",
                "cas_hits",
                "cas_badval",
                "touch_hits",
            ];
            v.extend(names.into_iter().zip(counts));
            fields(&format!("{class}:"), &v)
        };
        let slabs = class(1, 96, 10922, 1, [1, 1, 0, 1, 0, 0, 0, 0])
            + &class(4, 192, 5461, 0, [0, 1, 0, 0, 0, 0, 0, 0])
            + &class(12, 1184, 885, 0, [1, 1, 1, 0, 0, 0, 0, 1])
            + "STAT active_slabs 3\r\nSTAT total_malloced 3145728\r\nEND\r\n";
        assert_eq!(say(b"stats slabs\r\n", &mut s), slabs);
        // Any further token is ignored, as in memcached; `stats reset` zeroes the
        // counters, not the items, chunks and pages.
        assert_eq!(say(b"stats items x y\r\n", &mut s), items + "END\r\n");
        let reset = say(b"stats reset\r\nstats slabs\r\n", &mut s);
        assert_eq!(
            reset,
            "RESET\r\n".to_owned()
                + &class(1, 96, 10922, 1, [0; 8])
                + &class(4, 192, 5461, 0, [0; 8])
                + &class(12, 1184, 885, 0, [0; 8])
                + "STAT active_slabs 3\r\nSTAT total_malloced 3145728\r\nEND\r\n"
        );
        assert_eq!(say(b"stats nosuch\r\n", &mut s), "ERROR\r\n");
    }

    #[test]
    fn stats_format() {
        let out = run(b"stats\r\n");
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("STAT pid 0\r\n"));
        assert!(text.contains("STAT rusage_user 0.000000\r\n"));
        assert!(text.contains("STAT limit_maxbytes 67108864\r\n"));
        assert!(text.ends_with("END\r\n"));
        let d = {
            let mut v = Vec::new();
            stat_duration(&mut v, "x", Duration::from_micros(1_000_042));
            v
        };
        assert_eq!(d, b"STAT x 1.000042\r\n");
    }
}
