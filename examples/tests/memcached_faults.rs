//! The memcached example under injected faults (the `fault-injection` feature; `.ci/faults`
//! runs this with two seeds). Its loop then runs over `FaultInjecting<DefaultBackend>`,
//! and its reads, writes and accepts ask the fault hooks first. Each server here runs on
//! a thread of its own, set up without faults and then serving with the faults its test
//! asks for, with the seed of `EVLOOP_FAULT_SEED` and the benign faults at the rate of
//! `EVLOOP_FAULT_RATE`; every reply is checked byte for byte against what the engine
//! alone (`Connection::process`, no server, no faults) makes of the same requests.
//!
//! * Benign faults (waits interrupted or woken early, short reads and writes, `EAGAIN`
//!   after readiness): long pipelined scripts of sets, gets, multi-gets (one past the
//!   keys-per-call limit), appends, counters and deletes, values of 0 bytes to 300 KB
//!   (gets of them past the output limit), from four clients at once, sent in pieces of
//!   random sizes, get exactly the engine's replies. Then, with those clients idle and
//!   one that does not read a 30 MB reply, the server's thread uses almost no CPU (it
//!   does not spin); then that client gets its reply complete and the idle ones are
//!   served again.
//! * `ECONNRESET` on the server's reads and writes: each connection it hits is closed and
//!   its client got a prefix of its replies; every other connection gets them all.
//! * `EMFILE` on accept: every one pauses accepting (`listen_disabled_num` counts them
//!   all), accepting resumes, and every client is served in full.
//! * `ENOMEM`/`ENOSPC` registering a new connection: exactly that many connections are
//!   closed unserved, the server goes on, and every other one is served in full.
#![cfg(target_os = "linux")] // a thread's CPU clock

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::thread::JoinHandleExt;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use evloop::backends::fault::{self, Config, Counts, Fault};
use evloop::{Exit, WakeHandle};
use evloop_examples::memcached::{self, Shared, KEYS_PER_CALL, OUT_LIMIT, READ_SIZE};
use evloop_memcache_engine::{
    parse_args, Command, Config as ServerConfig, Connection, Environment, Next, ServerStats,
};

/// Every wait below gives up after this.
const DEADLINE: Duration = Duration::from_secs(30);
/// The server's flags (`-m 128`: every script's values fit, nothing is evicted).
const FLAGS: &[&str] = &[
    "-l",
    "127.0.0.1",
    "-p",
    "0",
    "-U",
    "0",
    "-t",
    "1",
    "-m",
    "128",
    "-v",
];
/// The big values' size: a `get` of a few of them is past the output limit.
const BIG: usize = 300_000;

fn server_config() -> ServerConfig {
    let Ok(Command::Run(config)) = parse_args(FLAGS) else {
        panic!("flags {FLAGS:?}")
    };
    config
}

/// This run's faults: the seed of `EVLOOP_FAULT_SEED`, the benign faults at the rate of
/// `EVLOOP_FAULT_RATE` (as `.ci/faults` sets them; 10% by default), and `extra`.
fn faults(extra: &[(Fault, u32)]) -> Config {
    let env = Config::from_env();
    let rate = Fault::ALL
        .map(|f| env.rate(f))
        .into_iter()
        .max()
        .unwrap_or(0);
    let mut cfg = Config::new(env.seed()).with_benign_rate(rate);
    for &(f, per_million) in extra {
        cfg = cfg.with_rate(f, per_million);
    }
    cfg
}

// ---------------------------------------------------------------------------------------
// The server, on a thread of its own
// ---------------------------------------------------------------------------------------

struct Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: WakeHandle,
    thread: Option<JoinHandle<Counts>>,
}

impl Server {
    /// The example built and run on a new thread: set up (its listener, signals and
    /// wake-up registered) without faults, then serving with `faults`.
    fn start(name: &str, faults: Config) -> Server {
        let (tx, rx) = mpsc::channel();
        let name = name.to_owned();
        let thread = std::thread::Builder::new()
            .name(format!("server {name}"))
            .spawn(move || {
                fault::set_thread_config(Some(Config::new(faults.seed())));
                let (mut el, stop) = memcached::server(&server_config()).unwrap();
                let m = el.machine();
                tx.send((m.local_addrs()[0], m.shared().clone(), stop))
                    .unwrap();
                fault::set_thread_config(Some(faults));
                let before = fault::thread_counts();
                let exit = el.run();
                let injected = fault::thread_counts().since(&before);
                fault::set_thread_config(None);
                eprintln!("{name}: seed {:#x}: {injected}", faults.seed());
                assert_eq!(exit.unwrap(), Exit::Exited);
                injected
            })
            .unwrap();
        let (addr, shared, stop) = rx.recv_timeout(DEADLINE).expect("the server started");
        Server {
            addr,
            shared,
            stop,
            thread: Some(thread),
        }
    }

    /// CPU time (user and system) the server's thread has used so far.
    fn cpu(&self) -> Duration {
        let t = self.thread.as_ref().unwrap().as_pthread_t();
        let mut clock: libc::clockid_t = 0;
        // SAFETY: `t` is a thread not joined yet (joined only by `stop`); `clock` is
        // writable.
        assert_eq!(unsafe { libc::pthread_getcpuclockid(t, &mut clock) }, 0);
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is writable.
        assert_eq!(unsafe { libc::clock_gettime(clock, &mut ts) }, 0);
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }

    fn stats(&self) -> ServerStats {
        self.shared.server_stats()
    }

    /// Waits (polling its statistics, until [`DEADLINE`]) until `cond` holds.
    fn wait_for(&self, what: &str, cond: impl Fn(&ServerStats) -> bool) {
        let deadline = Instant::now() + DEADLINE;
        while !cond(&self.stats()) {
            assert!(Instant::now() < deadline, "{what}: {:?}", self.stats());
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Stops it; what it injected while serving.
    fn stop(mut self) -> Counts {
        self.stop.wake().unwrap();
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = self.stop.wake();
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Requests, and the engine's replies to them
// ---------------------------------------------------------------------------------------

/// xorshift64*: the scripts' choices.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() >> 11) as usize % n
    }
}

/// `len` bytes, each depending on its position and on `tag` (every byte value, `\r` and
/// `\n` among them): a lost, repeated or reordered byte shows.
fn value(tag: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| {
            let x = (tag << 32 ^ i).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            (x >> 56) as u8 ^ i as u8
        })
        .collect()
}

fn set(s: &mut Vec<u8>, verb: &str, key: &str, flags: u32, data: &[u8], noreply: bool) {
    let nr = if noreply { " noreply" } else { "" };
    s.extend(format!("{verb} {key} {flags} 0 {}{nr}\r\n", data.len()).into_bytes());
    s.extend_from_slice(data);
    s.extend_from_slice(b"\r\n");
}

/// A script of `ops` pipelined commands on keys of its own (prefix `p`), from `seed`:
/// values of the sizes in `sizes`, and with `big` two values of [`BIG`] bytes, gets of
/// several of them at once (past the output limit) and rare gets of more keys than one
/// call looks up.
fn script(p: &str, seed: u64, ops: usize, sizes: &[usize], big: bool) -> Vec<u8> {
    const KEYS: usize = 40;
    let mut r = Rng::new(seed);
    let mut s = Vec::new();
    let key = |i: usize| format!("{p}:k{i}");
    set(&mut s, "set", &format!("{p}:n"), 0, b"5", false);
    if big {
        for b in 0..2 {
            set(
                &mut s,
                "set",
                &format!("{p}:big{b}"),
                7,
                &value(seed ^ b, BIG),
                false,
            );
        }
    }
    for op in 0..ops {
        let tag = seed << 16 ^ op as u64;
        let k = key(r.below(KEYS));
        match r.below(100) {
            0..=29 => {
                let len = sizes[r.below(sizes.len())];
                let flags = r.next() as u32;
                set(&mut s, "set", &k, flags, &value(tag, len), r.below(6) == 0);
            }
            30..=51 => s.extend(format!("get {k}\r\n").into_bytes()),
            52..=61 => {
                // A few keys, some never set.
                let n = 2 + r.below(9);
                let keys: Vec<String> = (0..n).map(|_| key(r.below(KEYS + 5))).collect();
                s.extend(format!("get {}\r\n", keys.join(" ")).into_bytes());
            }
            62..=64 if big => {
                let keys: Vec<String> = (0..3 + r.below(8))
                    .map(|_| format!("{p}:big{}", r.below(2)))
                    .collect();
                s.extend(format!("get {}\r\n", keys.join(" ")).into_bytes());
            }
            65..=70 => {
                let verb = if r.below(2) == 0 { "append" } else { "prepend" };
                let len = 1 + r.below(100);
                set(&mut s, verb, &k, 0, &value(tag, len), false);
            }
            71..=75 => s.extend(format!("delete {k}\r\n").into_bytes()),
            76..=82 => {
                let verb = if r.below(3) == 0 { "decr" } else { "incr" };
                s.extend(format!("{verb} {p}:n {}\r\n", r.below(1000)).into_bytes());
            }
            83..=87 => {
                let len = sizes[r.below(sizes.len())].min(1000);
                set(&mut s, "add", &k, 3, &value(tag, len), false);
            }
            88..=91 => s.extend(format!("touch {k} 0\r\n").into_bytes()),
            92..=93 => s.extend(format!("nonsense {op}\r\n").into_bytes()),
            94 if big => {
                // More keys than one `process` call looks up, most of them never set.
                let keys: Vec<String> = (0..KEYS_PER_CALL + 100)
                    .map(|i| key(i % (2 * KEYS)))
                    .collect();
                s.extend(format!("get {}\r\n", keys.join(" ")).into_bytes());
            }
            _ => s.extend(format!("get {k} {p}:n\r\n").into_bytes()),
        }
    }
    s
}

/// The engine alone, as the example's connection runs it but with no server between:
/// the replies a client is owed.
struct Model {
    shared: Shared,
    conn: Connection,
}

impl Model {
    fn new() -> Model {
        Model {
            shared: Shared::new(&server_config()),
            conn: Connection::new(),
        }
    }

    /// The replies to `requests`, fed as the server reads them when nothing fails (up
    /// to a `quit`).
    fn replies(&mut self, requests: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in requests.chunks(READ_SIZE) {
            let mut rest = chunk;
            loop {
                let p = {
                    let mut store = self.shared.store();
                    self.conn.process(rest, &mut out, &mut store, &self.shared)
                };
                rest = &rest[p.consumed..];
                match p.next {
                    Next::Read => break,
                    Next::Yield | Next::Pause if rest.is_empty() => break,
                    Next::Yield | Next::Pause => {}
                    Next::Close(_) => return out,
                }
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------

/// What a client got: the bytes, and why it stopped reading before it had all it was
/// owed (the server closed the connection, or the deadline passed).
struct Got {
    bytes: Vec<u8>,
    end: Option<std::io::Error>,
}

/// Sends `requests` on `stream` in pieces of random sizes (from `seed`), from another
/// thread, while reading here until `want` bytes have come or the server closes.
fn exchange(stream: &TcpStream, requests: Vec<u8>, want: usize, seed: u64) -> Got {
    let mut w = stream.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let mut r = Rng::new(seed);
        let mut rest = &requests[..];
        while !rest.is_empty() {
            let n = (1 + r.below(64 * 1024)).min(rest.len());
            // The server may close a connection (an injected reset, a refused
            // registration): then the reader sees it.
            if w.write_all(&rest[..n]).is_err() {
                return;
            }
            rest = &rest[n..];
        }
    });
    let deadline = Instant::now() + DEADLINE;
    let mut bytes = Vec::with_capacity(want.min(1 << 20));
    let mut buf = vec![0u8; 256 * 1024];
    let end = loop {
        if bytes.len() >= want {
            break None;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break Some(std::io::Error::new(ErrorKind::TimedOut, "deadline"));
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match (&*stream).read(&mut buf) {
            Ok(0) => break Some(ErrorKind::UnexpectedEof.into()),
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => break Some(e),
        }
    };
    writer.join().unwrap();
    Got { bytes, end }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// `bytes` around `at`, escaped.
fn around(bytes: &[u8], at: usize) -> String {
    let from = at.saturating_sub(40);
    let to = (at + 40).min(bytes.len());
    bytes[from..to].escape_ascii().to_string()
}

/// Where `got` first differs from `want` (`None` if `got` is a prefix of `want`).
fn first_difference(got: &[u8], want: &[u8]) -> Option<usize> {
    let common = got.len().min(want.len());
    match got.iter().zip(want).position(|(a, b)| a != b) {
        Some(i) => Some(i),
        None if got.len() > want.len() => Some(common),
        None => None,
    }
}

/// `got` is all of `want`, byte for byte.
fn check_all(what: &str, got: &Got, want: &[u8]) {
    check_prefix(what, got, want);
    assert!(
        got.bytes.len() == want.len(),
        "{what}: {} of {} bytes arrived, then {:?}",
        got.bytes.len(),
        want.len(),
        got.end
    );
}

/// `got` is a prefix of `want`, byte for byte: nothing lost, repeated or reordered.
fn check_prefix(what: &str, got: &Got, want: &[u8]) {
    if let Some(at) = first_difference(&got.bytes, want) {
        panic!(
            "{what}: byte {at} of {} is wrong (of {} owed; then {:?})\n  got:  {}\n  want: {}",
            got.bytes.len(),
            want.len(),
            got.end,
            around(&got.bytes, at),
            around(want, at)
        );
    }
}

/// Sessions on `threads` threads at once, `per_thread` each one after the other: each
/// connects, sends a short script of its own and reads the replies it is owed. Returns,
/// per session, what it got and what it was owed, and how many connections were closed
/// before anything was read from them (retried: `retry_unserved`).
fn sessions(
    addr: SocketAddr,
    threads: u64,
    per_thread: u64,
    retry_unserved: bool,
) -> (Vec<(String, Got, Vec<u8>)>, u64) {
    const SIZES: [usize; 6] = [0, 1, 10, 100, 1_459, 4_096];
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            std::thread::spawn(move || {
                let mut done = Vec::new();
                let mut unserved = 0;
                for n in 0..per_thread {
                    let p = format!("t{t}s{n}");
                    let seed = t << 32 ^ n;
                    let requests = script(&p, seed, 30, &SIZES, false);
                    let want = Model::new().replies(&requests);
                    let got = loop {
                        let got = exchange(&connect(addr), requests.clone(), want.len(), seed);
                        let closed_at_once = got.bytes.is_empty()
                            && got.end.as_ref().is_some_and(|e| {
                                matches!(
                                    e.kind(),
                                    ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset
                                )
                            });
                        if !(retry_unserved && closed_at_once) {
                            break got;
                        }
                        unserved += 1;
                        assert!(unserved < 1000, "{p}: never served");
                    };
                    done.push((p, got, want));
                }
                (done, unserved)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut unserved = 0;
    for h in handles {
        let (done, u) = h.join().unwrap();
        all.extend(done);
        unserved += u;
    }
    (all, unserved)
}

// ---------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------

#[test]
fn pipelined_replies_arrive_byte_for_byte_and_an_idle_server_does_not_spin() {
    const CLIENTS: u64 = 4;
    const SIZES: [usize; 12] = [
        0, 1, 5, 100, 1_000, 1_459, 4_096, 16_383, 16_384, 16_385, 65_536, 100_000,
    ];
    let cfg = faults(&[]);
    let server = Server::start("benign", cfg);

    // Four clients at once, each with its own long pipelined script.
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let addr = server.addr;
            let seed = cfg.seed() ^ c << 40;
            std::thread::spawn(move || {
                let p = format!("c{c}");
                let requests = script(&p, seed, 400, &SIZES, true);
                let mut model = Model::new();
                let want = model.replies(&requests);
                let stream = connect(addr);
                let got = exchange(&stream, requests, want.len(), seed);
                check_all(&format!("client {c}"), &got, &want);
                (stream, model)
            })
        })
        .collect();
    let mut idle: Vec<(TcpStream, Model)> =
        clients.into_iter().map(|c| c.join().unwrap()).collect();

    // One more asks for 100 copies of a big value (30 MB, far past the output limit
    // and the socket's buffers) and reads only the first bytes: the server is left
    // waiting for the socket to take more, the other clients idle.
    let stall = connect(server.addr);
    let mut requests = Vec::new();
    set(&mut requests, "set", "stall", 9, &value(99, BIG), false);
    let keys = vec!["stall"; 100].join(" ");
    requests.extend(format!("get {keys}\r\n").into_bytes());
    let mut model = Model::new();
    let want = model.replies(&requests);
    assert!(want.len() > 100 * OUT_LIMIT);
    (&stall).write_all(&requests).unwrap();
    let mut first = vec![0u8; 100];
    (&stall).read_exact(&mut first).unwrap();
    assert_eq!(first[..], want[..100]);

    // Its CPU time over a window (not a wait for anything: what it does meanwhile is
    // measured). A server that spins on the blocked connection, a listener or a wake-up
    // uses all of it.
    const WINDOW: Duration = Duration::from_millis(500);
    let before = server.cpu();
    let started = Instant::now();
    std::thread::sleep(WINDOW);
    let used = server.cpu() - before;
    let elapsed = started.elapsed();
    eprintln!("server CPU while its clients idle: {used:?} in {elapsed:?}");
    assert!(
        used < elapsed / 5,
        "the server spins: {used:?} of CPU in {elapsed:?} with every client idle"
    );

    // The stalled client reads the rest: all of it, in order.
    let mut rest = Got {
        bytes: first,
        end: None,
    };
    stall.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    while rest.bytes.len() < want.len() {
        match (&stall).read(&mut buf) {
            Ok(0) => break,
            Ok(n) => rest.bytes.extend_from_slice(&buf[..n]),
            Err(e) => {
                rest.end = Some(e);
                break;
            }
        }
    }
    check_all("the stalled client", &rest, &want);

    // The idle clients are served again, then say goodbye.
    for (c, (stream, model)) in idle.iter_mut().enumerate() {
        let requests = format!("get c{c}:n c{c}:k1 c{c}:big0\r\nquit\r\n").into_bytes();
        let want = model.replies(&requests);
        let got = exchange(stream, requests, usize::MAX, c as u64);
        assert_eq!(
            got.end.as_ref().map(|e| e.kind()),
            Some(ErrorKind::UnexpectedEof)
        );
        check_all(&format!("client {c}, again"), &got, &want);
    }
    drop((idle, stall));
    server.wait_for("every connection closed", |s| s.curr_connections == 0);
    let injected = server.stop();
    for f in [Fault::ShortRead, Fault::ShortWrite, Fault::Eagain] {
        assert!(
            cfg.rate(f) == 0 || injected.get(f) > 0,
            "no {} injected: {injected}",
            f.name()
        );
    }
}

#[test]
fn a_reset_closes_only_the_connection_it_hits() {
    let server = Server::start("reset", faults(&[(Fault::Reset, 50_000)]));
    let (done, _) = sessions(server.addr, 3, 10, false);
    let (mut served, mut cut) = (0, 0);
    for (p, got, want) in &done {
        check_prefix(p, got, want);
        if got.bytes.len() == want.len() {
            served += 1;
        } else {
            let kind = got.end.as_ref().map(|e| e.kind());
            assert!(
                matches!(
                    kind,
                    Some(ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset)
                ),
                "{p}: {} of {} bytes, then {:?}",
                got.bytes.len(),
                want.len(),
                got.end
            );
            cut += 1;
        }
    }
    server.wait_for("every connection closed", |s| s.curr_connections == 0);
    let injected = server.stop();
    let resets = injected.get(Fault::Reset);
    eprintln!("{served} sessions served, {cut} cut by {resets} resets");
    assert!(resets > 0, "no reset injected: {injected}");
    assert!(cut <= resets, "{cut} connections cut by {resets} resets");
    assert!(served > 0, "no connection served in full");
}

#[test]
fn emfile_on_accept_pauses_accepting_which_resumes() {
    let server = Server::start("emfile", faults(&[(Fault::Emfile, 200_000)]));
    let (done, unserved) = sessions(server.addr, 3, 8, false);
    assert_eq!(unserved, 0);
    for (p, got, want) in &done {
        check_all(p, got, want);
    }
    // The last of them may have paused accepting again: it resumes by itself.
    let last = connect(server.addr);
    let requests = b"version\r\nquit\r\n".to_vec();
    let want = Model::new().replies(&requests);
    check_all(
        "a client after the others",
        &exchange(&last, requests, usize::MAX, 0),
        &want,
    );
    server.wait_for("every connection closed", |s| s.curr_connections == 0);
    let paused = server.stats().listen_disabled_num;
    let injected = server.stop();
    let emfile = injected.get(Fault::Emfile);
    eprintln!(
        "{} sessions served; accepting paused {paused} times",
        done.len()
    );
    assert!(emfile > 0, "no EMFILE injected: {injected}");
    assert_eq!(paused, emfile, "every EMFILE reaches the acceptor");
}

#[test]
fn a_refused_registration_closes_that_connection_and_the_server_goes_on() {
    let server = Server::start("enomem", faults(&[(Fault::Enomem, 300_000)]));
    let (done, unserved) = sessions(server.addr, 3, 8, true);
    for (p, got, want) in &done {
        check_all(p, got, want);
    }
    server.wait_for("every connection closed", |s| s.curr_connections == 0);
    let stats = server.stats();
    let injected = server.stop();
    let refused = injected.get(Fault::Enomem);
    eprintln!(
        "{} sessions served; {unserved} connections refused",
        done.len()
    );
    assert!(refused > 0, "no registration refused: {injected}");
    assert_eq!(
        unserved, refused,
        "each refused registration closes one connection"
    );
    // Only the registered ones count (and the listener, as memcached counts it).
    assert_eq!(stats.total_connections, done.len() as u64 + 1);
}

/// A listener the loop cannot watch (its registration refused at start) must not leave a
/// server that runs and accepts nothing (its listener closed): memcached does not start
/// then ("failed to create listening connection"), nor does the example. Each seed
/// refuses a different set of the registrations made at start (signals, wake-up,
/// listener); a server that comes up must accept.
#[test]
fn a_listener_that_cannot_be_watched_fails_the_start() {
    let config = server_config();
    let (mut listening, mut no_listener, mut failed) = (0, 0, 0);
    for seed in 0..64 {
        fault::set_thread_config(Some(Config::new(seed).with_rate(Fault::Enomem, 500_000)));
        let built = memcached::server(&config);
        fault::set_thread_config(Some(Config::new(seed)));
        let mut el = match built {
            Ok((el, _)) => el,
            Err(e) if e.to_string() == "failed to create listening connection" => {
                no_listener += 1;
                continue;
            }
            Err(_) => {
                failed += 1;
                continue;
            }
        };
        let client = TcpStream::connect(el.machine().local_addrs()[0]);
        assert!(
            client.is_ok(),
            "seed {seed}: the server started, but does not listen: {client:?}"
        );
        let deadline = Instant::now() + Duration::from_secs(2);
        while el.machine().open_connections() == 0 && Instant::now() < deadline {
            el.poll(Some(Duration::from_millis(100))).unwrap();
        }
        assert_eq!(
            el.machine().open_connections(),
            1,
            "seed {seed}: the server started, but does not accept"
        );
        listening += 1;
    }
    fault::set_thread_config(None);
    eprintln!(
        "{listening} servers started and accepted; {no_listener} refused to start for want \
         of their listener, {failed} for another registration"
    );
    assert!(listening > 0 && no_listener > 0);
}
