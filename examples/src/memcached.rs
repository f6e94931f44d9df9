//! The flagship example: a memcached 1.6 server, byte for byte in its replies, in one
//! `#[event_machine]`.
//!
//! The protocol, the item store and the command line are the I/O-free engine of
//! [`evloop_memcache_engine`]; this module is the I/O around it:
//!
//! * a [`Slab`] of listening sockets (one per `-l` address) and a [`Slab`] of client
//!   connections, as many as `-c` says (allocated once, when the server starts; the
//!   loop's tables are sized from the two slabs' capacities);
//! * at start, `RLIMIT_NOFILE` is raised to fit `-c` connections plus the server's own
//!   descriptors ([`fds_needed`]); if it cannot be, the server refuses to start with
//!   memcached's message ([`FdLimitError`]);
//! * accepting: out of descriptors (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`), the loop
//!   stops watching its listeners (memcached's `accept_new_conns(false)`: the
//!   connections wait in the backlog, `stats` counts `listen_disabled_num`) until one
//!   of its connections closes, or another loop's (checked every 10 ms), or 1 s has
//!   passed; a level-triggered listener would otherwise be ready again at once, and
//!   the loop would spin;
//! * each [`Conn`] owns its socket, its engine [`Connection`] (the parser state), a
//!   16 KiB input buffer (memcached's read size) and its [`Replies`], allocated when
//!   the client first sends something and reused for every request, so serving a
//!   `get` allocates nothing. (Not at accept: an idle connection then costs no memory
//!   beyond its slab entry, allocated with the slab; see `bench/memcached.sh` for the
//!   RSS with 10k idle connections.)
//! * on readable: one `read`, then [`Connection::process`], then write the replies
//!   with `writev`. A `get` hit's reply refers to the stored value ([`Replies`]), so a
//!   value asked for many times is in memory once;
//! * back-pressure, as memcached: while a connection has replies the socket will not
//!   take, it stops reading and processing (it watches for writability only). And
//!   one call of `process` stops once it has produced [`OUT_LIMIT`] of replies or
//!   looked up [`KEYS_PER_CALL`] keys ([`Next::Pause`]; the rest of a `get` goes on
//!   once those are written), so a client that asks for a 1 MB value 1,000 times in
//!   one line and never reads costs a few references, and one call never builds a
//!   huge reply while the other clients wait;
//! * [`Next::Yield`] (memcached's requests-per-event budget, `-R`) and a
//!   [`Next::Pause`] whose replies were written at once: the unprocessed input stays
//!   in the buffer and the connection re-activates itself, so it runs again in the
//!   next iteration, after the other ready connections;
//! * [`Next::Close`]: the replies are flushed, then the socket is closed;
//! * `stats` gets pid, uptime, rusage and the connection counts from [`Shared`], the
//!   server's [`Environment`];
//! * SIGINT and SIGTERM stop the loop; so does [`WakeHandle::wake`] (for tests).
//!
//! The store sits in a `Mutex` inside [`Shared`], shared by the loops of `-t N`
//! ([`spawn_workers`]: one loop per thread on one [`SharedPort`] per address); with one loop
//! the lock is never contended.

use std::io::{self, ErrorKind, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
#[cfg(unix)]
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use evloop::prelude::*;
use evloop::workers::{SharedPort, Workers};
use evloop::Ready;
use evloop_memcache_engine::config::usage;
use evloop_memcache_engine::{
    parse_args, Command, Config, Connection, Environment, Next, Replies, ServerStats, Store,
    DEFAULT_VERSION,
};

/// The input buffer: memcached reads at most 16 KiB at a time, and the engine
/// reproduces memcached exactly when it is fed one such read per call.
pub const READ_SIZE: usize = 16 * 1024;
/// The initial capacity of the replies' own bytes (headers and status lines; values
/// are referred to, not copied). A bigger batch grows it; it is shrunk back to this
/// once flushed.
pub const OUT_SIZE: usize = 16 * 1024;
/// Replies' own bytes above this after a flush are shrunk back to [`OUT_SIZE`].
const OUT_KEEP: usize = 256 * 1024;
/// One `process` call stops (at the next command or `get` key) once it has produced
/// this many bytes of replies, values included: the bound on what a client that does
/// not read can make the server hold (plus one value), and on one call's work.
pub const OUT_LIMIT: usize = 256 * 1024;
/// One `process` call stops once it has looked up this many `get` keys.
pub const KEYS_PER_CALL: usize = 1024;
/// While accepting is paused, how often a loop checks whether a connection has
/// closed (memcached's `maxconns_handler` polls every 10 ms). The listeners'
/// `#[on_timeout]` says the same.
const ACCEPT_RETRY: Duration = Duration::from_millis(10);
/// Accepting resumes after this even if no connection closed (descriptors may have
/// been freed elsewhere).
const ACCEPT_PAUSE_MAX: Duration = Duration::from_secs(1);
/// Descriptors each loop opens besides its listeners and connections (the poller, its
/// wake-up, signals): memcached reserves 5 per thread.
const LOOP_FDS: u64 = 5;
/// Descriptors kept free beyond the count: to accept and refuse a connection past
/// `-c`, and for what a library may open (memcached allows 10 of headroom).
const FD_HEADROOM: u64 = 10;

/// memcached's message when it cannot raise `RLIMIT_NOFILE` for `-c` connections.
pub const RLIMIT_MESSAGE: &str =
    "failed to set rlimit for open files. Try starting as root or requesting smaller maxconns value.";
/// memcached's exit status then (`EX_OSERR`).
pub const EX_OSERR: i32 = 71;

/// What memcached writes to a client it refuses because `-c` connections are open.
const TOO_MANY: &[u8] = b"ERROR Too many open connections\r\n";

/// What every loop of the server shares: the item store and the process statistics
/// that `stats` reports. It is the engine's [`Environment`].
pub struct Shared {
    store: Mutex<Store>,
    config: Config,
    pid: u32,
    started: Instant,
    listeners: AtomicU64,
    curr_connections: AtomicU64,
    total_connections: AtomicU64,
    rejected_connections: AtomicU64,
    peak_connections: AtomicU64,
    /// Connections closed so far: a loop that stopped accepting resumes when it moves.
    closed_connections: AtomicU64,
    /// Times a loop stopped accepting for lack of descriptors.
    listen_disabled_num: AtomicU64,
    /// Loops not accepting now.
    loops_not_accepting: AtomicU64,
    verbosity: AtomicU32,
}

impl Shared {
    /// A store sized by `config` (`-m`, `-I`) and zeroed statistics.
    pub fn new(config: &Config) -> Shared {
        Shared {
            store: Mutex::new(Store::new(config.store_config())),
            config: config.clone(),
            pid: std::process::id(),
            started: Instant::now(),
            listeners: AtomicU64::new(0),
            curr_connections: AtomicU64::new(0),
            total_connections: AtomicU64::new(0),
            rejected_connections: AtomicU64::new(0),
            peak_connections: AtomicU64::new(0),
            closed_connections: AtomicU64::new(0),
            listen_disabled_num: AtomicU64::new(0),
            loops_not_accepting: AtomicU64::new(0),
            verbosity: AtomicU32::new(config.verbose),
        }
    }

    /// The store, locked (a poisoned lock is taken over: the store has no invariant a
    /// panicking handler could break halfway that matters more than serving).
    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The configuration the server runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Client connections open now.
    pub fn curr_connections(&self) -> u64 {
        self.curr_connections.load(Ordering::Relaxed)
    }

    /// The verbosity (`-v`, changed by the `verbosity` command).
    pub fn verbosity(&self) -> u32 {
        self.verbosity.load(Ordering::Relaxed)
    }

    fn opened(&self) {
        let now = self.curr_connections.fetch_add(1, Ordering::Relaxed) + 1;
        self.total_connections.fetch_add(1, Ordering::Relaxed);
        self.peak_connections.fetch_max(now, Ordering::Relaxed);
    }

    fn closed(&self) {
        self.curr_connections.fetch_sub(1, Ordering::Relaxed);
        self.closed_connections.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(windows)]
fn rusage() -> (Duration, Duration) {
    (Duration::ZERO, Duration::ZERO) // not measured on Windows
}

#[cfg(unix)]
fn rusage() -> (Duration, Duration) {
    // SAFETY: all-zero bytes are a valid `rusage` (plain integers).
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable `rusage`.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return (Duration::ZERO, Duration::ZERO);
    }
    let d = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    (d(ru.ru_utime), d(ru.ru_stime))
}

impl Environment for Shared {
    fn server_stats(&self) -> ServerStats {
        let (user, system) = rusage();
        let listeners = self.listeners.load(Ordering::Relaxed);
        ServerStats {
            pid: self.pid,
            // memcached starts its clock 2 seconds in the past.
            uptime: self.started.elapsed().as_secs() + 2,
            rusage_user: user,
            rusage_system: system,
            max_connections: u64::from(self.config.max_connections),
            curr_connections: self.curr_connections.load(Ordering::Relaxed),
            // memcached counts its listening sockets among the connections made.
            total_connections: self.total_connections.load(Ordering::Relaxed) + listeners,
            rejected_connections: self.rejected_connections.load(Ordering::Relaxed),
            connection_structures: self.peak_connections.load(Ordering::Relaxed) + listeners,
            accepting_conns: self.loops_not_accepting.load(Ordering::Relaxed) == 0,
            listen_disabled_num: self.listen_disabled_num.load(Ordering::Relaxed),
            threads: self.config.threads,
        }
    }

    fn version(&self) -> &str {
        DEFAULT_VERSION
    }

    fn reset_stats(&self) {
        self.total_connections.store(0, Ordering::Relaxed);
        self.listeners.store(0, Ordering::Relaxed);
        self.rejected_connections.store(0, Ordering::Relaxed);
        self.listen_disabled_num.store(0, Ordering::Relaxed);
    }

    fn set_verbosity(&self, level: u32) {
        self.verbosity.store(level, Ordering::Relaxed);
    }

    fn config(&self) -> Config {
        self.config.clone()
    }

    fn verbosity(&self) -> u32 {
        self.verbosity.load(Ordering::Relaxed)
    }

    // `shutdown` with -A: stop as on SIGINT (memcached raises SIGINT, or SIGUSR1 for
    // `graceful`, which it also ends with; here both stop the loops).
    fn shutdown(&self, _graceful: bool) {
        // SAFETY: raise only sends a signal to this process.
        unsafe { libc::raise(libc::SIGINT) };
    }
}

/// One client: its socket, its protocol state, and its buffers.
pub struct Conn {
    stream: TcpStream,
    engine: Connection,
    /// Bytes read; `input[start..]` are not processed yet (left by a yield or pause).
    input: Vec<u8>,
    start: usize,
    /// Replies not written yet: own bytes, and stored values by reference.
    out: Replies,
    /// What the last `process` asked for, acted on once `out` is flushed.
    next: Next,
    /// Watching for writability (output is blocked).
    writing: bool,
    /// Completion I/O (io_uring): the backend receives for us and sends `tx`.
    completion: bool,
    /// Completion I/O: a send of the replies is in flight.
    sending: bool,
    /// Completion I/O: reading is off while the input buffer is full.
    read_off: bool,
    /// Completion I/O: the send buffer, reused (allocated by the first send).
    tx: Vec<u8>,
}

evloop::impl_as_source!(Conn => stream);

impl Conn {
    fn new(stream: TcpStream, reqs_per_event: u32) -> Conn {
        Conn {
            stream,
            engine: Connection::new()
                .with_reqs_per_event(reqs_per_event)
                .with_output_limit(OUT_LIMIT)
                .with_keys_per_call(KEYS_PER_CALL),
            // Allocated by the first read (see `fill`), then kept.
            input: Vec::new(),
            start: 0,
            out: Replies::new(),
            next: Next::Read,
            writing: false,
            completion: false,
            sending: false,
            read_off: false,
            tx: Vec::new(),
        }
    }

    /// Run the engine over the input not processed yet; the replies go to `out`.
    fn process(&mut self, shared: &Shared) {
        let p = {
            let mut store = shared.store();
            self.engine
                .process(&self.input[self.start..], &mut self.out, &mut store, shared)
        };
        self.start += p.consumed;
        self.next = p.next;
        if self.start == self.input.len() {
            self.input.clear();
            self.start = 0;
        }
    }

    /// Completion I/O: take the bytes the backend received into the free end of the
    /// input buffer (at most its capacity); the first call allocates the buffers.
    /// Returns the bytes taken and whether the client closed its side after them.
    fn take(&mut self, ctx: &mut Ctx<Memcached>, id: SourceId) -> io::Result<(usize, bool)> {
        if self.input.capacity() == 0 {
            self.input.reserve_exact(READ_SIZE);
            self.out = Replies::with_capacity(OUT_SIZE, 64);
        }
        let len = self.input.len();
        let room = self.input.capacity() - len;
        if room == 0 {
            return Ok((0, false));
        }
        // Initialised room to copy into (resize writes zeros only past the old length;
        // truncated back to what was taken below).
        self.input.resize(len + room, 0);
        let r = ctx.recv_take(id, &mut self.input[len..]);
        let taken = r.as_ref().map_or(0, |r| r.len);
        self.input.truncate(len + taken);
        let r = r.map_err(|e| match e {
            evloop::Error::Io(e) => e,
            other => io::Error::other(other.to_string()),
        })?;
        Ok((r.len, r.eof))
    }

    /// Completion I/O: hand the backend every pending reply as one send (copied into
    /// `tx`; stored values are copied too, as the kernel reads them after we return).
    /// `Blocked` while a send is in flight.
    fn send(&mut self, ctx: &mut Ctx<Memcached>, id: SourceId) -> Flush {
        if self.sending {
            return Flush::Blocked;
        }
        if self.out.is_empty() {
            if self.out.capacity() > OUT_KEEP {
                self.out.shrink_to(OUT_SIZE, 64);
            }
            return Flush::Done;
        }
        let mut tx = std::mem::take(&mut self.tx);
        tx.clear();
        while !self.out.is_empty() {
            // Writing into a Vec takes every slice.
            if self.out.write_to(&mut tx).is_err() {
                return Flush::Failed;
            }
        }
        match ctx.send(id, tx) {
            Ok(()) => {
                self.sending = true;
                Flush::Blocked
            }
            Err((tx, _)) => {
                self.tx = tx;
                Flush::Failed
            }
        }
    }

    /// One `read(2)` into the free end of the input buffer; the first allocates the
    /// buffers (they are reused from then on).
    fn fill(&mut self) -> io::Result<usize> {
        if self.input.capacity() == 0 {
            self.input.reserve_exact(READ_SIZE);
            self.out = Replies::with_capacity(OUT_SIZE, 64);
        }
        #[cfg(windows)]
        return self.fill_windows();
        #[cfg(unix)]
        self.fill_unix()
    }

    /// `fill` on Windows: a `recv` through `Read` into zeroed spare room.
    #[cfg(windows)]
    fn fill_windows(&mut self) -> io::Result<usize> {
        let len = self.input.len();
        let room = self.input.capacity() - len;
        self.input.resize(len + room, 0);
        let r = io::Read::read(&mut &self.stream, &mut self.input[len..]);
        self.input.truncate(len + r.as_ref().map_or(0, |n| *n));
        r
    }

    /// `fill` on Unix: one `read(2)` into the spare capacity.
    #[cfg(unix)]
    fn fill_unix(&mut self) -> io::Result<usize> {
        let spare = self.input.spare_capacity_mut();
        // With the `fault-injection` feature: a short read, `EAGAIN` or a reset first.
        #[cfg(feature = "fault-injection")]
        let spare = {
            let len = evloop::backends::fault::before_read(spare.len())?;
            &mut spare[..len]
        };
        // SAFETY: `spare` is writable memory of `spare.len()` bytes owned by `input`;
        // read(2) writes at most that many and returns how many it wrote.
        let n = unsafe {
            libc::read(
                self.stream.as_raw_fd(),
                spare.as_mut_ptr().cast(),
                spare.len(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        // SAFETY: the kernel initialised the first `n` bytes of the spare capacity.
        unsafe { self.input.set_len(self.input.len() + n) };
        Ok(n)
    }

    /// Write what is pending in `out`, a `writev` at a time. (Bounded: a call of
    /// `process` leaves at most about `OUT_LIMIT` plus one value, and the next call
    /// waits until this is written.)
    fn flush(&mut self) -> Flush {
        while !self.out.is_empty() {
            #[cfg(not(feature = "fault-injection"))]
            let written = self.out.write_to(&mut &self.stream);
            #[cfg(feature = "fault-injection")]
            let written = self.out.write_to(&mut faults::Hooked(&self.stream));
            match written {
                Ok(0) => return Flush::Failed,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Flush::Blocked,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Flush::Failed,
            }
        }
        if self.out.capacity() > OUT_KEEP {
            self.out.shrink_to(OUT_SIZE, 64);
        }
        Flush::Done
    }
}

enum Flush {
    Done,
    Blocked,
    Failed,
}

/// The backend of the server's loops: the platform's default; with the `fault-injection`
/// feature (tests, `.ci/faults`), the default wrapped in `FaultInjecting` (waits
/// interrupted or woken early, registrations refused), and the connections' reads and
/// writes and the accepts ask its socket hooks first.
#[cfg(not(feature = "fault-injection"))]
pub type ServerBackend = DefaultBackend;
/// The backend of the server's loops: with the `fault-injection` feature, the default
/// wrapped in `FaultInjecting`.
#[cfg(feature = "fault-injection")]
pub type ServerBackend = evloop::backends::fault::FaultInjecting<DefaultBackend>;
#[cfg(feature = "fault-injection")]
mod faults;

/// The server: its listeners, its connections, and the [`Shared`] store and
/// statistics.
#[event_machine(timers = 16, backend = ServerBackend)]
pub struct Memcached {
    listeners: Slab<TcpListener>,
    conns: Slab<Conn>,
    /// Bound but not yet registered (the loop registers them when it starts).
    unregistered: Vec<TcpListener>,
    addrs: Vec<SocketAddr>,
    shared: Arc<Shared>,
    max_conns: u64,
    /// Not accepting (out of descriptors) since then, when `Shared`'s closed count was
    /// this.
    accept_paused: Option<(Instant, u64)>,
}

/// The connections one loop serves at once: `-c`, or the most a [`Slab`] holds if `-c`
/// asks for more (16.7 million).
pub fn max_conns(config: &Config) -> usize {
    (config.max_connections as usize).min(Slab::<Conn>::MAX_CAPACITY)
}

/// The addresses `config` asks to listen on: each `-l` entry (an IP, `IP:port`,
/// `[v6]:port` or a host name) with `-p` as the port unless it carries one;
/// 127.0.0.1 when there is no `-l`.
pub fn listen_addrs(config: &Config) -> io::Result<Vec<SocketAddr>> {
    let port = config.port;
    let entries: Vec<&str> = if config.listen.is_empty() {
        vec!["127.0.0.1"]
    } else {
        config.listen.iter().map(String::as_str).collect()
    };
    let mut addrs = Vec::new();
    for e in entries {
        if let Ok(a) = e.parse::<SocketAddr>() {
            addrs.push(a);
        } else if let Ok(ip) = e.trim_matches(['[', ']']).parse::<IpAddr>() {
            addrs.push(SocketAddr::new(ip, port));
        } else if let Ok(found) = e.to_socket_addrs() {
            addrs.extend(found);
        } else {
            addrs.extend((e, port).to_socket_addrs()?);
        }
    }
    Ok(addrs)
}

impl Memcached {
    /// Bind the addresses of `config` (see [`listen_addrs`]; port 0 takes any free
    /// port) with a new store.
    pub fn bind(config: &Config) -> io::Result<Memcached> {
        Memcached::with_shared(config, Arc::new(Shared::new(config)))
    }

    /// Bind the addresses of `config`, serving the store of `shared`.
    pub fn with_shared(config: &Config, shared: Arc<Shared>) -> io::Result<Memcached> {
        let mut listeners = Vec::new();
        for a in listen_addrs(config)? {
            let l = TcpListener::bind(a)?;
            l.set_nonblocking(true)?;
            listeners.push(l);
        }
        Memcached::from_listeners(listeners, shared)
    }

    /// Serve the store of `shared` on these (non-blocking) listeners.
    pub fn from_listeners(
        listeners: Vec<TcpListener>,
        shared: Arc<Shared>,
    ) -> io::Result<Memcached> {
        let addrs = listeners
            .iter()
            .map(TcpListener::local_addr)
            .collect::<io::Result<Vec<_>>>()?;
        shared
            .listeners
            .fetch_add(listeners.len() as u64, Ordering::Relaxed);
        Ok(Memcached {
            listeners: Slab::with_capacity(listeners.len()),
            conns: Slab::with_capacity(max_conns(&shared.config)),
            unregistered: listeners,
            addrs,
            max_conns: max_conns(&shared.config) as u64,
            shared,
            accept_paused: None,
        })
    }

    /// The addresses it listens on.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The store and statistics it serves.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Client connections open in this loop now.
    pub fn open_connections(&self) -> usize {
        self.conns.len()
    }

    fn close(&mut self, ctx: &mut Ctx<Self>, key: Key) {
        if let Ok(c) = self.conns.remove(ctx, key) {
            self.shared.closed();
            if self.shared.verbosity() > 1 {
                eprintln!("<{} connection closed.", evloop::raw_source(&c.stream));
            }
            // A descriptor is free again (memcached's `allow_new_conns`).
            self.resume_accepting(ctx);
        }
    }

    /// Out of descriptors: stop watching the listeners (memcached's
    /// `accept_new_conns(false)`); the connections wait in the backlog. The listeners'
    /// idle timeout checks every [`ACCEPT_RETRY`] whether a connection has closed.
    fn pause_accepting(&mut self, ctx: &mut Ctx<Self>) {
        if self.accept_paused.is_some() {
            return;
        }
        let closed = self.shared.closed_connections.load(Ordering::Relaxed);
        self.accept_paused = Some((Instant::now(), closed));
        self.shared
            .listen_disabled_num
            .fetch_add(1, Ordering::Relaxed);
        self.shared
            .loops_not_accepting
            .fetch_add(1, Ordering::Relaxed);
        self.watch_listeners(ctx, Interest::NONE, Some(ACCEPT_RETRY));
    }

    fn resume_accepting(&mut self, ctx: &mut Ctx<Self>) {
        if self.accept_paused.take().is_none() {
            return;
        }
        self.shared
            .loops_not_accepting
            .fetch_sub(1, Ordering::Relaxed);
        self.watch_listeners(ctx, Interest::READ, None);
    }

    /// What every listener watches, and its idle timeout.
    fn watch_listeners(&mut self, ctx: &mut Ctx<Self>, interest: Interest, idle: Option<Duration>) {
        let keys: Vec<Key> = self.listeners.iter().map(|(k, _)| k).collect();
        for key in keys {
            let _ = self.listeners.set_interest(ctx, key, interest);
            if let Some(id) = self.listeners.source(key) {
                let _ = ctx.set_idle_timeout(id, idle);
            }
        }
    }

    /// Flush the output of `key`, then act on what the engine asked for.
    fn flush_and_continue(&mut self, ctx: &mut Ctx<Self>, key: Key) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.completion {
            return self.send_and_continue(ctx, key);
        }
        match c.flush() {
            Flush::Done => {}
            Flush::Blocked => {
                if !c.writing {
                    c.writing = true;
                    // Stop reading until the client has taken what it is owed.
                    let _ = self.conns.set_interest(ctx, key, Interest::WRITE);
                }
                return;
            }
            Flush::Failed => return self.close(ctx, key),
        }
        let next = c.next;
        if c.writing {
            c.writing = false;
            let _ = self.conns.set_interest(ctx, key, Interest::READ);
        }
        match next {
            Next::Read => {}
            Next::Yield | Next::Pause => {
                // Let the other connections run first; the rest of the input (or of
                // a paused `get`) waits.
                if let Some(id) = self.conns.source(key) {
                    let _ = ctx.activate(id, Ready::READABLE);
                }
            }
            Next::Close(_) => self.close(ctx, key),
        }
    }
}

impl Memcached {
    /// Completion I/O: a new connection is watched for reading and for its sends'
    /// completions; the backend receives for it (nothing of this is armed per request).
    fn completion_watch() -> Watch {
        Watch::new(Interest::READ | Interest::WRITE | Interest::COMPLETION)
    }

    /// [`flush_and_continue`](Self::flush_and_continue) under completion I/O: send the
    /// replies (or wait for the send in flight), then act on what the engine asked for.
    fn send_and_continue(&mut self, ctx: &mut Ctx<Self>, key: Key) {
        let Some(id) = self.conns.source(key) else {
            return;
        };
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        match c.send(ctx, id) {
            Flush::Done => {}
            Flush::Blocked => return, // the send's completion comes back as writable
            Flush::Failed => return self.close(ctx, key),
        }
        if c.read_off {
            c.read_off = false;
            let _ = self
                .conns
                .set_interest(ctx, key, Self::completion_watch().interest());
        }
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        // More to do (the rest of a yielded batch, a paused `get`, input that came
        // during the send): after the other connections.
        let more = match c.next {
            Next::Close(_) => return self.close(ctx, key),
            Next::Yield | Next::Pause => true,
            Next::Read => c.start < c.input.len(),
        };
        if more {
            let _ = ctx.activate(id, Ready::READABLE);
        }
    }

    /// [`readable`](Memcached::readable) under completion I/O: take what the backend
    /// received (also while a reply is in flight, so its queue drains), and process it
    /// once the replies owed are sent.
    fn readable_completion(&mut self, ctx: &mut Ctx<Self>, key: Key) {
        let Some(id) = self.conns.source(key) else {
            return;
        };
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.start == c.input.len() && c.next != Next::Pause {
            c.input.clear();
            c.start = 0;
        }
        let eof = match c.take(ctx, id) {
            Ok((_, eof)) => eof,
            Err(_) => return self.close(ctx, key),
        };
        if c.input.len() == c.input.capacity() && !c.read_off {
            // Full: stop reading until it is processed (the backend keeps what comes).
            c.read_off = true;
            let _ = self
                .conns
                .set_interest(ctx, key, Interest::WRITE | Interest::COMPLETION);
        }
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.sending || !c.out.is_empty() {
            return; // processed once the replies owed are sent
        }
        if c.start == c.input.len() && c.next != Next::Pause {
            if eof {
                self.close(ctx, key);
            }
            return;
        }
        c.process(&self.shared);
        self.send_and_continue(ctx, key);
    }

    /// [`writable`](Memcached::writable) under completion I/O: a send finished.
    fn sent(&mut self, ctx: &mut Ctx<Self>, key: Key) {
        let Some(id) = self.conns.source(key) else {
            return;
        };
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if let Some((tx, r)) = ctx.send_done(id) {
            c.tx = tx;
            c.sending = false;
            if r.is_err() {
                return self.close(ctx, key);
            }
        }
        self.send_and_continue(ctx, key);
    }
}

#[event_machine]
impl Memcached {
    #[on_start]
    fn start(&mut self, ctx: &mut Ctx<Self>) {
        for l in std::mem::take(&mut self.unregistered) {
            // Without the `#[on_timeout]`'s idle timeout: that is for pauses only.
            if let Err(e) = self.listeners.insert_with(ctx, l, Watch::read()) {
                eprintln!("memcached: cannot watch a listener: {e}");
            }
        }
    }

    #[on_read(listeners)]
    fn accept(&mut self, key: Key, ctx: &mut Ctx<Self>) {
        // A bounded batch per wake-up, so a busy listener cannot starve connections.
        for _ in 0..64 {
            let Some(listener) = self.listeners.get(key) else {
                return;
            };
            #[cfg(not(feature = "fault-injection"))]
            let accepted = listener.accept();
            #[cfg(feature = "fault-injection")]
            let accepted = faults::accept(listener);
            match accepted {
                Ok((stream, _)) => {
                    if self.shared.curr_connections() >= self.max_conns {
                        // memcached's "maxconns_fast": tell the client and hang up.
                        let _ = (&stream).write(TOO_MANY);
                        self.shared
                            .rejected_connections
                            .fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    if <ServerBackend as Backend>::MAX_FD
                        .is_some_and(|max| evloop::raw_source(&stream) > max)
                    {
                        // The backend cannot watch this fd (select(2) past FD_SETSIZE):
                        // to the client, as to memcached's, the server is full.
                        let _ = (&stream).write(TOO_MANY);
                        self.shared
                            .rejected_connections
                            .fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    if stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    let fd = evloop::raw_source(&stream);
                    let mut conn = Conn::new(stream, self.shared.config.reqs_per_event);
                    // A full slab drops the connection (closing it), not the server.
                    let inserted = if ctx.completion_io() {
                        conn.completion = true;
                        self.conns.insert_with(ctx, conn, Self::completion_watch())
                    } else {
                        self.conns.insert(ctx, conn)
                    };
                    match inserted {
                        Ok(_) => {
                            self.shared.opened();
                            if self.shared.verbosity() > 1 {
                                eprintln!("<{fd} new auto-negotiating client connection");
                            }
                        }
                        Err(e) => {
                            if self.shared.verbosity() > 0 {
                                eprintln!("memcached: refusing a connection: {e}");
                            }
                        }
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                // That connection failed or went away before it was taken (or a
                // signal interrupted): on to the next one.
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EINTR | libc::ECONNABORTED | libc::EPROTO | libc::EPERM)
                    ) => {}
                Err(e) => {
                    // EMFILE, ENFILE, ENOBUFS, ENOMEM (or anything that would fail
                    // again at once): the listener stays readable, so returning would
                    // spin. Stop accepting until a connection closes.
                    if self.shared.verbosity() > 0 {
                        eprintln!(
                            "memcached: accept: {e}; not accepting until a connection closes"
                        );
                    }
                    self.pause_accepting(ctx);
                    return;
                }
            }
        }
    }

    /// Accepting is paused: resume if a connection (of any loop) has closed since, or
    /// after [`ACCEPT_PAUSE_MAX`]. (The idle timeout is only set during a pause, every
    /// `ACCEPT_RETRY`; the insert does not use this default.)
    #[on_timeout(listeners, ms = 10)]
    fn accept_paused(&mut self, _key: Key, ctx: &mut Ctx<Self>) {
        let Some((since, closed)) = self.accept_paused else {
            return;
        };
        if self.shared.closed_connections.load(Ordering::Relaxed) != closed
            || since.elapsed() >= ACCEPT_PAUSE_MAX
        {
            self.resume_accepting(ctx);
        }
    }

    #[on_read(conns)]
    fn readable(&mut self, key: Key, ctx: &mut Ctx<Self>) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.completion {
            return self.readable_completion(ctx, key);
        }
        if !c.out.is_empty() {
            // Still owed output (a hang-up or error reported while writing): flushing
            // finds out. Nothing more is read or processed until it is written.
            return self.flush_and_continue(ctx, key);
        }
        // A paused `get` goes on before anything more is read.
        if c.start == c.input.len() && c.next != Next::Pause {
            c.input.clear();
            c.start = 0;
            match c.fill() {
                Ok(0) => return self.close(ctx, key),
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
                    return
                }
                Err(_) => return self.close(ctx, key),
            }
        }
        c.process(&self.shared);
        self.flush_and_continue(ctx, key);
    }

    #[on_write(conns)]
    fn writable(&mut self, key: Key, ctx: &mut Ctx<Self>) {
        if self.conns.get(key).is_some_and(|c| c.completion) {
            return self.sent(ctx, key);
        }
        self.flush_and_continue(ctx, key);
    }

    #[on_signal(SIGINT)]
    fn interrupt(&mut self, ctx: &mut Ctx<Self>) {
        ctx.exit();
    }

    #[on_signal(SIGTERM)]
    fn terminate(&mut self, ctx: &mut Ctx<Self>) {
        ctx.exit();
    }

    #[on_wake]
    fn stop(&mut self, ctx: &mut Ctx<Self>) {
        ctx.exit();
    }
}

/// A built server for `config`: run it with [`EventLoop::run`] (on this thread or
/// another); stop it with the handle's `wake()`.
pub fn server(config: &Config) -> io::Result<(EventLoop<Memcached>, WakeHandle)> {
    let mut el = listening(Memcached::bind(config)?).map_err(io::Error::other)?;
    let stop = el.ctx().wake_handle();
    Ok((el, stop))
}

/// The loop of `m`, built: its setup watches the listeners (`#[on_start]`). If one could
/// not be watched (the kernel refused, as it may for lack of memory; the handler says
/// so), an error, as memcached will not run without one of its listeners ("failed to
/// create listening connection"), instead of a server that accepts nothing.
fn listening(m: Memcached) -> evloop::Result<EventLoop<Memcached>> {
    let el = m.event_loop()?;
    let m = el.machine();
    if m.listeners.len() < m.addrs.len() {
        return Err(evloop::Error::Io(io::Error::other(
            "failed to create listening connection",
        )));
    }
    Ok(el)
}

/// `RLIMIT_NOFILE` could not be raised to what `-c` needs: memcached's
/// [`RLIMIT_MESSAGE`], and [`main_with_args`] exits with [`EX_OSERR`] as memcached does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimitError {
    /// The limit needed ([`fds_needed`]).
    pub needed: u64,
}

impl std::fmt::Display for FdLimitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(RLIMIT_MESSAGE)
    }
}

impl std::error::Error for FdLimitError {}

/// Descriptors open now: stdio and whatever was inherited (3 where they cannot be
/// listed).
fn open_fds() -> u64 {
    ["/proc/self/fd", "/dev/fd"]
        .iter()
        .find_map(|dir| std::fs::read_dir(dir).ok())
        // Less the one the listing itself holds open.
        .map_or(3, |d| (d.count() as u64).saturating_sub(1))
}

/// The `RLIMIT_NOFILE` that `-c` needs: the connections, plus the server's own
/// descriptors (memcached's `reserved_fds`): those open now, and for each loop its
/// listeners (one per address) and [`LOOP_FDS`]; plus [`FD_HEADROOM`] (among them the
/// one that accepts and refuses a connection past `-c`).
pub fn fds_needed(config: &Config, addresses: usize) -> u64 {
    let loops = u64::from(config.threads.max(1));
    max_conns(config) as u64 + open_fds() + loops * (LOOP_FDS + addresses as u64) + FD_HEADROOM
}

/// Raise `RLIMIT_NOFILE` to `needed` if it is lower (the soft limit, and the hard one
/// if that is lower too, which only a privileged process may), as memcached raises it
/// to `-c`. Never lowers it.
#[cfg(windows)]
pub fn raise_fd_limit(_needed: u64) -> Result<(), FdLimitError> {
    Ok(()) // Windows has no per-process descriptor limit to raise
}

/// See the Unix definition above.
#[cfg(unix)]
pub fn raise_fd_limit(needed: u64) -> Result<(), FdLimitError> {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `rl` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } != 0 {
        return Err(FdLimitError { needed });
    }
    let need = needed as libc::rlim_t;
    if rl.rlim_cur == libc::RLIM_INFINITY || rl.rlim_cur >= need {
        return Ok(());
    }
    rl.rlim_cur = need;
    if rl.rlim_max != libc::RLIM_INFINITY && rl.rlim_max < need {
        rl.rlim_max = need;
    }
    // SAFETY: `rl` is a valid rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rl) } != 0 {
        return Err(FdLimitError { needed });
    }
    Ok(())
}

/// `-t N` with N > 1: N loops on N threads ([`Workers`]), each with a listener on every
/// address from a [`SharedPort`] (its own `SO_REUSEPORT` socket where the kernel spreads
/// the connections, a duplicate of one shared socket elsewhere), all serving one
/// [`Shared`] store. Returns the workers and the addresses they listen on.
pub fn spawn_workers(config: &Config) -> io::Result<(Workers<Memcached>, Vec<SocketAddr>)> {
    let shared = Arc::new(Shared::new(config));
    // One `SharedPort` per address, bound here so that port 0 is resolved once.
    let mut ports = listen_addrs(config)?
        .into_iter()
        .map(SharedPort::bind)
        .collect::<io::Result<Vec<_>>>()?;
    let addrs: Vec<SocketAddr> = ports.iter().map(SharedPort::local_addr).collect();
    let workers = Workers::builder()
        .stop_on(&[libc::SIGINT, libc::SIGTERM])
        .spawn_with(
            config.threads as usize,
            |_| {
                let listeners = ports
                    .iter_mut()
                    .map(SharedPort::listener)
                    .collect::<io::Result<Vec<_>>>()?;
                Ok(Memcached::from_listeners(listeners, shared.clone())?)
            },
            listening,
        )
        .map_err(io::Error::other)?;
    Ok((workers, addrs))
}

/// Serve `config` until SIGINT/SIGTERM: one loop on this thread, or with `-t N` (N > 1)
/// N worker loops (see [`spawn_workers`]).
pub fn run(config: &Config) -> io::Result<()> {
    if config.udp_port != 0 {
        eprintln!(
            "memcached: warning: UDP is not supported; -U {} ignored",
            config.udp_port
        );
    }
    if config.max_connections as usize > max_conns(config) {
        eprintln!(
            "memcached: warning: -c {} lowered to {}",
            config.max_connections,
            max_conns(config)
        );
    }
    let needed = fds_needed(config, listen_addrs(config)?.len());
    raise_fd_limit(needed).map_err(io::Error::other)?;
    if config.threads > 1 {
        let (workers, addrs) = spawn_workers(config)?;
        if config.verbose > 0 {
            for a in &addrs {
                eprintln!(
                    "memcached: listening on {a} with {} worker threads",
                    workers.len()
                );
            }
        }
        let stopped = workers.run().map_err(io::Error::other)?;
        if config.verbose > 0 {
            eprintln!("memcached: stopped ({:?})", stopped.reason);
        }
        for r in stopped.results {
            r.map_err(io::Error::other)?;
        }
        return Ok(());
    }
    let (mut el, _stop) = server(config)?;
    if config.verbose > 0 {
        for a in el.machine().local_addrs() {
            eprintln!(
                "memcached: listening on {a} ({} backend)",
                <DefaultBackend as Backend>::NAME
            );
        }
    }
    let exit = el.run().map_err(io::Error::other)?;
    if config.verbose > 0 {
        let m = el.machine();
        eprintln!(
            "memcached: stopped ({exit:?}); {} connections were open",
            m.open_connections()
        );
    }
    Ok(())
}

/// The program: parse memcached's flags (without the program name), then serve.
/// Returns the exit status.
pub fn main_with_args<I, S>(args: I) -> i32
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    match parse_args(args) {
        Ok(Command::Help) => {
            print!("memcached {DEFAULT_VERSION} (evloop)\n{}", usage());
            0
        }
        Ok(Command::Version) => {
            println!("memcached {DEFAULT_VERSION}");
            0
        }
        Ok(Command::Run(config)) => match run(&config) {
            Ok(()) => 0,
            Err(e) if e.get_ref().is_some_and(|e| e.is::<FdLimitError>()) => {
                // As memcached: its message alone, and EX_OSERR.
                eprintln!("{RLIMIT_MESSAGE}");
                EX_OSERR
            }
            Err(e) => {
                eprintln!("memcached: {e}");
                1
            }
        },
        Err(e) => {
            eprintln!("{e}");
            // As memcached: EX_USAGE for what getopt refuses, 1 for a bad value.
            let m = e.message();
            let getopt = [
                "invalid option",
                "unrecognized option",
                "option ",
                "unexpected",
            ];
            if getopt.iter().any(|p| m.starts_with(p)) {
                64
            } else {
                1
            }
        }
    }
}
