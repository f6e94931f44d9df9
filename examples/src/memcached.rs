//! The flagship example: a memcached 1.6 server, byte for byte in its replies, in one
//! `#[event_machine]`.
//!
//! The protocol, the item store and the command line are the I/O-free engine of
//! [`evloop_memcache_engine`]; this module is the I/O around it:
//!
//! * a [`Slab`] of listening sockets (one per `-l` address) and a [`Slab`] of client
//!   connections, as many as `-c` says (allocated once, when the server starts; the
//!   loop's tables are sized from the two slabs' capacities);
//! * each [`Conn`] owns its socket, its engine [`Connection`] (the parser state) and two
//!   buffers allocated once, when the client first sends something: a 16 KiB input
//!   buffer (memcached's read size) and an output buffer; both are then reused for
//!   every request, so serving a `get` allocates nothing. (Not at accept: an idle
//!   connection then costs no memory beyond its slab entry, allocated with the slab;
//!   see `bench/memcached.sh` for the RSS with 10k idle connections.)
//! * on readable: one `read`, then [`Connection::process`], then write the replies;
//!   when the socket will not take them all, the connection stops reading and watches
//!   for writability until they are flushed (a client that does not read makes the
//!   server hold at most one batch of replies for it, and never stalls the others);
//! * [`Next::Yield`] (memcached's requests-per-event budget, `-R`): the unprocessed
//!   input stays in the buffer and the connection re-activates itself, so it runs
//!   again in the next iteration, after the other ready connections;
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
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use evloop::prelude::*;
use evloop::workers::{SharedPort, Workers};
use evloop::Ready;
use evloop_memcache_engine::config::usage;
use evloop_memcache_engine::{
    parse_args, Command, Config, Connection, Environment, Next, ServerStats, Store, DEFAULT_VERSION,
};

/// The input buffer: memcached reads at most 16 KiB at a time, and the engine
/// reproduces memcached exactly when it is fed one such read per call.
pub const READ_SIZE: usize = 16 * 1024;
/// The output buffer's initial capacity; a bigger batch of replies (large values)
/// grows it, and it is shrunk back to this once flushed.
pub const OUT_SIZE: usize = 16 * 1024;
/// An output buffer larger than this after a flush is shrunk back to [`OUT_SIZE`].
const OUT_KEEP: usize = 256 * 1024;

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
    }
}

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
            accepting_conns: true,
            listen_disabled_num: 0,
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
    }

    fn set_verbosity(&self, level: u32) {
        self.verbosity.store(level, Ordering::Relaxed);
    }
}

/// One client: its socket, its protocol state, and its buffers.
pub struct Conn {
    stream: TcpStream,
    engine: Connection,
    /// Bytes read; `input[start..]` are not processed yet (left by a yield).
    input: Vec<u8>,
    start: usize,
    /// Replies; `out[sent..]` are not written yet.
    out: Vec<u8>,
    sent: usize,
    /// What the last `process` asked for, acted on once `out` is flushed.
    next: Next,
    /// Watching for writability (output is blocked).
    writing: bool,
}

impl AsFd for Conn {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

impl Conn {
    fn new(stream: TcpStream, reqs_per_event: u32) -> Conn {
        Conn {
            stream,
            engine: Connection::new().with_reqs_per_event(reqs_per_event),
            // Allocated by the first read (see `fill`), then kept.
            input: Vec::new(),
            start: 0,
            out: Vec::new(),
            sent: 0,
            next: Next::Read,
            writing: false,
        }
    }

    /// One `read(2)` into the free end of the input buffer; the first allocates the
    /// buffers (they are reused from then on).
    fn fill(&mut self) -> io::Result<usize> {
        if self.input.capacity() == 0 {
            self.input.reserve_exact(READ_SIZE);
            self.out.reserve_exact(OUT_SIZE);
        }
        let spare = self.input.spare_capacity_mut();
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

    /// Write what is pending in `out`.
    fn flush(&mut self) -> Flush {
        while self.sent < self.out.len() {
            match (&self.stream).write(&self.out[self.sent..]) {
                Ok(0) => return Flush::Failed,
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Flush::Blocked,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Flush::Failed,
            }
        }
        self.out.clear();
        self.sent = 0;
        if self.out.capacity() > OUT_KEEP {
            self.out.shrink_to(OUT_SIZE);
        }
        Flush::Done
    }
}

enum Flush {
    Done,
    Blocked,
    Failed,
}

/// The server: its listeners, its connections, and the [`Shared`] store and
/// statistics.
#[event_machine(timers = 16)]
pub struct Memcached {
    listeners: Slab<TcpListener>,
    conns: Slab<Conn>,
    /// Bound but not yet registered (the loop registers them when it starts).
    unregistered: Vec<TcpListener>,
    addrs: Vec<SocketAddr>,
    shared: Arc<Shared>,
    max_conns: u64,
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
                eprintln!("<{} connection closed.", c.stream.as_raw_fd());
            }
        }
    }

    /// Flush the output of `key`, then act on what the engine asked for.
    fn flush_and_continue(&mut self, ctx: &mut Ctx<Self>, key: Key) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
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
            Next::Yield => {
                // Let the other connections run first; the rest of the input waits
                // in the buffer.
                if let Some(id) = self.conns.source(key) {
                    let _ = ctx.activate(id, Ready::READABLE);
                }
            }
            Next::Close(_) => self.close(ctx, key),
        }
    }
}

#[event_machine]
impl Memcached {
    #[on_start]
    fn start(&mut self, ctx: &mut Ctx<Self>) {
        for l in std::mem::take(&mut self.unregistered) {
            if let Err(e) = self.listeners.insert(ctx, l) {
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
            match listener.accept() {
                Ok((stream, _)) => {
                    if self.shared.curr_connections() >= self.max_conns {
                        // memcached's "maxconns_fast": tell the client and hang up.
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
                    let fd = stream.as_raw_fd();
                    let conn = Conn::new(stream, self.shared.config.reqs_per_event);
                    // A full slab drops the connection (closing it), not the server.
                    match self.conns.insert(ctx, conn) {
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
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    // EMFILE and friends: try again on the next readiness.
                    if self.shared.verbosity() > 0 {
                        eprintln!("memcached: accept: {e}");
                    }
                    return;
                }
            }
        }
    }

    #[on_read(conns)]
    fn readable(&mut self, key: Key, ctx: &mut Ctx<Self>) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.sent < c.out.len() {
            // Still owed output (a hang-up or error reported while writing): flushing
            // finds out.
            return self.flush_and_continue(ctx, key);
        }
        if c.start == c.input.len() {
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
        let p = {
            let shared = &*self.shared;
            let mut store = shared.store();
            c.engine
                .process(&c.input[c.start..], &mut c.out, &mut store, shared)
        };
        c.start += p.consumed;
        c.next = p.next;
        if c.start == c.input.len() {
            c.input.clear();
            c.start = 0;
        }
        self.flush_and_continue(ctx, key);
    }

    #[on_write(conns)]
    fn writable(&mut self, key: Key, ctx: &mut Ctx<Self>) {
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
    let mut el = Memcached::bind(config)?
        .event_loop()
        .map_err(io::Error::other)?;
    let stop = el.ctx().wake_handle();
    Ok((el, stop))
}

/// Raise the soft limit on open files to the hard limit (memcached raises it to fit
/// `-c` connections).
fn raise_fd_limit() {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `rl` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } == 0 && rl.rlim_cur < rl.rlim_max {
        rl.rlim_cur = rl.rlim_max;
        // SAFETY: `rl` is a valid rlimit.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rl) };
    }
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
            Memcached::event_loop,
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
    raise_fd_limit();
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
