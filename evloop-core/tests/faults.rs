//! Under injected faults (`evloop_backends::fault`, the `fault-injection` feature; run by
//! `.ci/faults`): bytes pushed through buffered connections by short reads and writes,
//! `EAGAIN` and spurious wake-ups arrive complete and in order; a registration refused
//! with `ENOMEM`/`ENOSPC` comes back to whoever registered and leaves the loop as it was;
//! an injected `ECONNRESET` reaches the handler of the connection it hit, also when it
//! hits the last flush of a connection closing; an injected `EMFILE` on accept is
//! reported to the accepting handler and accepting goes on; output that drains after the
//! handlers still reports `DRAINED`. No test spins: each bounds the loop's waits by the
//! work it did.
//!
//! Each test sets its own rates on its thread (`fault::set_thread_config`), with the seed
//! of `EVLOOP_FAULT_SEED` (or the default), so a failure is replayed by running the test
//! again with the seed it printed.

// Not ported to Windows yet: Unix sockets, pipes, signals, fork or the Unix-only core
// modules (the Windows backend runs the conformance suite: `conformance.rs`).
#![cfg(unix)]

use std::fs::File;
use std::io::{IoSlice, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use evloop_backends::fault::{self, Config, Counts, Fault, FaultInjecting};
use evloop_core::buffered::{BufConfig, BufConn, BufSlab};
use evloop_core::{
    AcceptError, Backend, Ctx, DefaultBackend, Error, Event, EventLoop, Exit, Key, Listener,
    ListenerBuilder, Machine, Result, Source, Token, Watch,
};

type Faulty = FaultInjecting<DefaultBackend>;

/// Tag 0, never a collection's: the guard timer.
const GUARD: Token = Token(1);
const GUARD_AFTER: Duration = Duration::from_secs(10);

/// The seed of this run, with `rates` (parts per million) for `faults`.
fn config(faults: &[(Fault, u32)]) -> Config {
    let mut cfg = Config::new(Config::from_env().seed());
    for &(f, rate) in faults {
        cfg = cfg.with_rate(f, rate);
    }
    cfg
}

/// Run `body` with `cfg` on this thread; report what it injected.
fn with_faults<T>(name: &str, cfg: Config, body: impl FnOnce() -> T) -> (T, Counts) {
    fault::set_thread_config(Some(cfg));
    let before = fault::thread_counts();
    let out = body();
    let injected = fault::thread_counts().since(&before);
    fault::set_thread_config(None);
    eprintln!("{name}: seed {:#x}: {injected}", cfg.seed());
    (out, injected)
}

/// The byte at position `i` of every test stream: position-dependent, so a lost,
/// repeated or reordered byte shows.
fn pattern(i: u64) -> u8 {
    (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8 ^ i as u8
}

fn check(bytes: &[u8], at: u64, what: &str) {
    for (j, &b) in bytes.iter().enumerate() {
        let i = at + j as u64;
        assert_eq!(
            b,
            pattern(i),
            "{what}: byte {i} is wrong (lost or reordered data)"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Bytes through buffered connections
// ---------------------------------------------------------------------------------------

/// Two buffered connections on the two ends of one stream: the sender queues `total`
/// bytes of the pattern (plain writes, `writev`, and `sendfile` from a file holding the
/// pattern) and checks what comes back; the echo end checks what it gets and sends it back.
struct Pump<S> {
    conns: BufSlab<S>,
    sender: Key,
    echo: Key,
    file: File,
    total: u64,
    /// Bytes the sender queued, the echo end received, the sender got back.
    sent: u64,
    echoed: u64,
    back: u64,
    top_ups: u64,
    /// Dispatches that moved at least one byte, and all of them.
    progress: u64,
    dispatches: u64,
}

impl<S: Read + Write + AsFd> Pump<S> {
    fn top_up(&mut self) {
        let Some(c) = self.conns.get_mut(self.sender) else {
            return;
        };
        let mut chunk = [0u8; 4096];
        while self.sent < self.total {
            self.top_ups += 1;
            let left = self.total - self.sent;
            // Every fifth top-up sends from the file, when none is being sent already.
            if self.top_ups.is_multiple_of(5) {
                let len = left.min(64 * 1024);
                let file = self.file.try_clone().expect("dup the pattern file");
                if c.send_file(file, self.sent, len).is_ok() {
                    self.sent += len;
                    continue;
                }
            }
            let k = (c.output().free() as u64).min(left).min(chunk.len() as u64) as usize;
            if k == 0 {
                return;
            }
            for (j, b) in chunk[..k].iter_mut().enumerate() {
                *b = pattern(self.sent + j as u64);
            }
            if self.top_ups.is_multiple_of(2) && k > 1 {
                // Two borrowed slices, written with one writev when nothing is queued.
                let (a, b) = chunk[..k].split_at(k / 2);
                c.write_slices(&[IoSlice::new(a), IoSlice::new(b)])
                    .expect("fits: k <= free");
            } else {
                c.write(&chunk[..k]).expect("fits: k <= free");
            }
            self.sent += k as u64;
        }
    }
}

impl<S: Read + Write + AsFd> Machine for Pump<S> {
    type Backend = Faulty;

    fn setup(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        self.conns.attach(ctx, 1, Watch::read())?;
        ctx.add_timer(GUARD, GUARD_AFTER)?;
        Ok(())
    }

    fn dispatch(&mut self, ctx: &mut Ctx<Self>, ev: Event) {
        if ev.token == GUARD {
            let state: Vec<_> = [self.sender, self.echo]
                .iter()
                .map(|&k| {
                    let c = self.conns.get(k).unwrap();
                    format!(
                        "in {} out {} pending {} wanted {:?} events {:?}",
                        c.input().len(),
                        c.output().len(),
                        c.pending(),
                        c.wanted(),
                        c.events()
                    )
                })
                .collect();
            panic!(
                "stalled: sent {} echoed {} back {} of {}; sender: {}; echo: {}\n{}",
                self.sent,
                self.echoed,
                self.back,
                self.total,
                state[0],
                state[1],
                ctx.dump()
            );
        }
        let Some(key) = self.conns.entry(ev.token) else {
            return;
        };
        self.dispatches += 1;
        let _ = self.conns.before_dispatch(ctx, key, ev.ready);
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        let events = c.events();
        assert!(
            !events.is_error() && !events.is_eof(),
            "benign faults only, yet {events:?}: {:?}",
            c.error()
        );
        let moved_before = self.echoed + self.back;
        if key == self.echo {
            let (input, output) = c.buffers();
            let n = output.push(input.as_slice());
            check(&input.as_slice()[..n], self.echoed, "the echo end");
            input.consume(n);
            self.echoed += n as u64;
        } else {
            let input = c.input_mut();
            let n = input.len();
            check(input.as_slice(), self.back, "the sender");
            input.consume(n);
            self.back += n as u64;
            self.top_up();
        }
        if self.echoed + self.back > moved_before || events.is_drained() {
            self.progress += 1;
        }
        self.conns.after_dispatch(ctx, key);
        if self.back == self.total {
            ctx.exit();
        }
    }
}

/// `pump` at three rates of every benign fault, each over a fresh pair from `pair`.
fn pump<S: Read + Write + AsFd>(name: &str, pair: impl Fn() -> (S, S)) {
    let path = std::env::temp_dir().join(format!("evloop-faults-{name}-{}", std::process::id()));
    let body: Vec<u8> = (0..TOTAL).map(pattern).collect();
    std::fs::write(&path, &body).unwrap();
    let file = File::open(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(file.read_at(&mut [0u8; 1], TOTAL - 1).unwrap(), 1);
    for rate in [100_000, 300_000, 600_000] {
        let (a, b) = pair();
        let name = format!("{name} at {}%", rate / 10_000);
        pump_at(&name, a, b, file.try_clone().unwrap(), rate);
    }
}

/// Bytes pushed each way by `pump`.
const TOTAL: u64 = 1 << 20;

fn pump_at<S: Read + Write + AsFd>(name: &str, a: S, b: S, file: File, rate: u32) {
    let cfg = config(&[]).with_benign_rate(rate);
    let (mut el, injected) = with_faults(name, cfg, || {
        let mut el = EventLoop::new(Pump {
            conns: BufSlab::with_capacity(2, BufConfig::new(1024, 4096)),
            sender: Key::SINGLE,
            echo: Key::SINGLE,
            file,
            total: TOTAL,
            sent: 0,
            echoed: 0,
            back: 0,
            top_ups: 0,
            progress: 0,
            dispatches: 0,
        })
        .unwrap();
        let (m, ctx) = el.parts();
        // The sender reads what comes back whatever it has queued (its write high
        // watermark is its whole output buffer): were it to pause reading while its
        // output is high, as the echo end does, both ends could end up waiting for the
        // other to read, with both socket buffers full (with or without faults).
        let sender_cfg = BufConfig::new(1024, 4096).write_watermarks(0, 4096);
        let conn = BufConn::new(a, &sender_cfg).unwrap();
        m.sender = m.conns.insert_conn(ctx, conn).unwrap();
        m.echo = m.conns.insert(ctx, b).unwrap();
        m.top_up();
        let sender = m.sender;
        m.conns.flush(ctx, sender).unwrap();
        assert_eq!(el.run().unwrap(), Exit::Exited);
        el
    });
    let waits = el.ctx().backend().waits();
    let m = el.machine();
    assert_eq!((m.sent, m.echoed, m.back), (TOTAL, TOTAL, TOTAL));
    // No spinning: a wait that led to no progress is a fault's doing, and at these rates
    // faults hold up at most a few dispatches in a row.
    assert!(
        waits <= 10 * m.progress + 100,
        "{waits} waits for {} dispatches that moved bytes ({} in all)",
        m.progress,
        m.dispatches
    );
    for f in [Fault::ShortRead, Fault::ShortWrite, Fault::Eagain] {
        assert!(injected.get(f) > 0, "no {} injected: {injected}", f.name());
    }
}

#[test]
fn a_unix_stream_through_buffered_connections_loses_and_reorders_nothing() {
    pump("unix", || UnixStream::pair().unwrap());
}

#[test]
fn a_tcp_stream_through_buffered_connections_loses_and_reorders_nothing() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    pump("tcp", || {
        let a = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        (a, listener.accept().unwrap().0)
    });
}

// ---------------------------------------------------------------------------------------
// Registration failures
// ---------------------------------------------------------------------------------------

/// Logs every event; nothing else.
#[derive(Default)]
struct Log {
    events: Vec<Event>,
    conns: BufSlab<UnixStream>,
    listener: Option<Listener>,
}

impl Machine for Log {
    type Backend = Faulty;
    fn dispatch(&mut self, _: &mut Ctx<Self>, ev: Event) {
        self.events.push(ev);
    }
}

fn is_enomem(e: &Error) -> bool {
    matches!(e, Error::Io(e) if matches!(e.raw_os_error(), Some(libc::ENOMEM | libc::ENOSPC)))
}

#[test]
fn a_refused_registration_is_returned_to_the_caller_and_changes_nothing() {
    let always = config(&[(Fault::Enomem, 1_000_000)]);
    let never = config(&[]);

    // Building a loop registers its wake fd: refused, the build fails.
    let (r, _) = with_faults("enomem at build", always, || EventLoop::new(Log::default()));
    assert!(matches!(&r, Err(e) if is_enomem(e)), "{:?}", r.err());

    let mut el = EventLoop::new(Log::default()).unwrap();
    let (a, mut a_peer) = UnixStream::pair().unwrap();
    let (b, _b_peer) = UnixStream::pair().unwrap();
    let mut listener = Listener::tcp("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let ((), injected) = with_faults("enomem", always, || {
        let ctx = el.ctx();
        let before = (ctx.source_count(), ctx.backend().len());
        // A plain source, a buffered connection, a listener: each caller gets the error.
        let e = ctx.add_io(&a, Token(7), Watch::read()).unwrap_err();
        assert!(is_enomem(&e), "{e:?}");
        let (m, ctx) = el.parts();
        let e = m.conns.insert(ctx, b).unwrap_err();
        assert!(is_enomem(&e), "{e:?}");
        assert!(m.conns.is_empty());
        let e = listener.attach(ctx, 3, Watch::read()).unwrap_err();
        assert!(is_enomem(&e), "{e:?}");
        // ...and the loop has nothing more than before.
        assert_eq!((ctx.source_count(), ctx.backend().len()), before);
        assert_eq!(ctx.source_of(&a), None);
    });
    assert_eq!(injected.get(Fault::Enomem), 3);

    // Without the fault the same fds register and work.
    let ((), _) = with_faults("after enomem", never, || {
        let (m, ctx) = el.parts();
        let id = ctx.add_io(&a, Token(7), Watch::read()).unwrap();
        listener.attach(ctx, 3, Watch::read()).unwrap();
        m.listener = Some(listener);
        a_peer.write_all(b"x").unwrap();
        let _client = TcpStream::connect(addr).unwrap();
        let end = Instant::now() + Duration::from_secs(10);
        while el.machine().events.len() < 2 {
            assert!(Instant::now() < end, "events never came");
            el.poll(Some(Duration::from_secs(1))).unwrap();
        }
        let tokens: Vec<_> = el.machine().events.iter().map(|e| e.token).collect();
        assert!(tokens.contains(&Token(7)) && tokens.contains(&Token::tagged(3, 0)));
        el.ctx().remove(id).unwrap();
    });
}

/// Registrations refused at random among many: every `Ok` source works, every `Err`
/// left nothing behind, and the loop's count of sources matches a model all along.
#[test]
fn random_registration_failures_leave_a_consistent_loop() {
    let cfg = config(&[(Fault::Enomem, 300_000)]);
    let mut el = EventLoop::new(Log::default()).unwrap();
    let ((), injected) = with_faults("random enomem", cfg, || {
        let mut live = Vec::new();
        let mut refused = 0;
        for i in 0..400u64 {
            let (s, peer) = UnixStream::pair().unwrap();
            match el.ctx().add_io(&s, Token(i), Watch::read()) {
                Ok(id) => live.push((id, i, s, peer)),
                Err(e) => {
                    assert!(is_enomem(&e), "{e:?}");
                    refused += 1;
                }
            }
            // Remove one now and then: the model follows.
            if i % 7 == 0 && !live.is_empty() {
                // The socket stays open until it is removed (the contract): closed first,
                // its number could already name another test's file.
                let (id, _, s, peer) = live.swap_remove(0);
                el.ctx().remove(id).unwrap();
                drop((s, peer));
            }
            assert_eq!(el.ctx().source_count(), live.len());
            assert_eq!(el.ctx().backend().len(), live.len() + 1); // + the wake fd
        }
        assert!(refused > 0);
        for (_, _, _, peer) in &mut live {
            peer.write_all(b"x").unwrap();
        }
        let mut seen = std::collections::HashSet::new();
        let end = Instant::now() + Duration::from_secs(10);
        while seen.len() < live.len() {
            assert!(
                Instant::now() < end,
                "{} of {} sources fired",
                seen.len(),
                live.len()
            );
            el.poll(Some(Duration::from_secs(1))).unwrap();
            for ev in el.machine_mut().events.drain(..) {
                seen.insert(ev.token.0);
            }
            // Level-triggered: read what fired, or it keeps firing.
            for (_, i, s, _) in &mut live {
                if seen.contains(i) {
                    let _ = s.set_nonblocking(true);
                    let _ = s.read(&mut [0u8; 8]);
                }
            }
        }
        let want: std::collections::HashSet<_> = live.iter().map(|l| l.1).collect();
        assert_eq!(seen, want, "exactly the registered sources fired");
    });
    assert!(injected.get(Fault::Enomem) > 0);
}

// ---------------------------------------------------------------------------------------
// Connection resets
// ---------------------------------------------------------------------------------------

/// How a client connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// Everything came back.
    Echoed,
    /// Its I/O failed, and its handler was told.
    Failed,
    /// Its server went away (after a failure of its own) before everything came back.
    Eof,
}

/// Resets injected on this thread so far.
fn resets() -> u64 {
    fault::thread_counts().get(Fault::Reset)
}

/// Clients (tag 1) send the pattern and check the echo; servers (tag 2) echo, and close
/// after flushing once their client is gone. A connection whose own I/O got an injected
/// reset owes its handler an `ERROR`: the test keeps the list.
struct Resets {
    clients: BufSlab<UnixStream>,
    servers: BufSlab<UnixStream>,
    per_client: u64,
    /// Per client (by key index): bytes sent, bytes back, how it ended.
    sent: Vec<u64>,
    back: Vec<u64>,
    ends: Vec<Option<End>>,
    /// Connections (tag, index) whose I/O got an injected reset not yet reported.
    owed: Vec<(u16, u32)>,
    /// ERRORs seen by handlers: for an injected reset, and as its consequence (the peer
    /// of a failed connection is closed under it: `EPIPE` or a real `ECONNRESET`).
    errors_seen: u64,
}

impl Resets {
    /// Note an injected reset during `key`'s I/O since `before` (resets then).
    fn note(&mut self, tag: u16, key: Key, before: u64) {
        if resets() > before {
            assert_eq!(resets(), before + 1, "one connection fails once");
            self.owed.push((tag, key.index()));
        }
    }

    /// `key`'s handler sees `ERROR`: what it owed is paid.
    fn error_seen(&mut self, tag: u16, key: Key, e: Option<&std::io::Error>) {
        use std::io::ErrorKind::{BrokenPipe, ConnectionReset};
        let kind = e.map(|e| e.kind());
        assert!(
            matches!(kind, Some(ConnectionReset | BrokenPipe)),
            "only resets and their consequences: {e:?}"
        );
        self.errors_seen += 1;
        self.owed.retain(|&o| o != (tag, key.index()));
    }

    fn client(&mut self, ctx: &mut Ctx<Self>, key: Key, ready: evloop_core::Ready) {
        let before = resets();
        let _ = self.clients.before_dispatch(ctx, key, ready);
        self.note(1, key, before);
        let i = key.index() as usize;
        let Some(c) = self.clients.get_mut(key) else {
            return;
        };
        let events = c.events();
        let n = c.input().len();
        check(c.input().as_slice(), self.back[i], "a client");
        c.input_mut().consume(n);
        self.back[i] += n as u64;
        let end = if events.is_error() {
            let e = c
                .error()
                .map(|e| std::io::Error::new(e.kind(), e.to_string()));
            self.error_seen(1, key, e.as_ref());
            Some(End::Failed)
        } else if self.back[i] == self.per_client {
            Some(End::Echoed)
        } else if events.is_eof() {
            Some(End::Eof)
        } else {
            let mut chunk = [0u8; 512];
            let left = self.per_client - self.sent[i];
            let k = (c.output().free() as u64).min(left).min(512) as usize;
            for (j, b) in chunk[..k].iter_mut().enumerate() {
                *b = pattern(self.sent[i] + j as u64);
            }
            c.write(&chunk[..k]).unwrap();
            self.sent[i] += k as u64;
            None
        };
        if let Some(end) = end {
            assert!(self.ends[i].is_none(), "client {i} ended twice");
            self.ends[i] = Some(end);
            self.clients.remove(ctx, key).unwrap(); // closed: its server sees EOF
            if self.ends.iter().all(Option::is_some) {
                ctx.exit();
            }
            return;
        }
        let before = resets();
        self.clients.after_dispatch(ctx, key);
        self.note(1, key, before);
    }

    fn server(&mut self, ctx: &mut Ctx<Self>, key: Key, ready: evloop_core::Ready) {
        let before = resets();
        let _ = self.servers.before_dispatch(ctx, key, ready);
        self.note(2, key, before);
        let Some(c) = self.servers.get_mut(key) else {
            return; // flushed and closed
        };
        let events = c.events();
        if events.is_error() {
            let e = c
                .error()
                .map(|e| std::io::Error::new(e.kind(), e.to_string()));
            self.error_seen(2, key, e.as_ref());
            self.servers.remove(ctx, key).unwrap();
            return;
        }
        let (input, output) = c.buffers();
        let n = output.push(input.as_slice());
        input.consume(n);
        if events.is_eof() {
            c.close_after_flush();
        }
        let before = resets();
        self.servers.after_dispatch(ctx, key);
        self.note(2, key, before);
    }
}

impl Machine for Resets {
    type Backend = Faulty;

    fn setup(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        self.clients.attach(ctx, 1, Watch::read())?;
        self.servers.attach(ctx, 2, Watch::read())?;
        ctx.add_timer(GUARD, GUARD_AFTER)?;
        Ok(())
    }

    fn dispatch(&mut self, ctx: &mut Ctx<Self>, ev: Event) {
        assert_ne!(ev.token, GUARD, "stalled: {:?}", self.ends);
        if let Some(key) = self.clients.entry(ev.token) {
            self.client(ctx, key, ev.ready);
        } else if let Some(key) = self.servers.entry(ev.token) {
            self.server(ctx, key, ev.ready);
        }
    }
}

#[test]
fn a_reset_reaches_the_handler_of_the_connection_it_hit() {
    const CLIENTS: usize = 40;
    const PER_CLIENT: u64 = 64 * 1024;
    // Resets are rare next to reads and writes: some connections finish, some fail.
    let cfg = config(&[(Fault::Reset, 2_000)]).with_benign_rate(200_000);
    let (el, injected) = with_faults("reset", cfg, || {
        let mut el = EventLoop::new(Resets {
            // Clients read whatever they have queued (see `pump`).
            clients: BufSlab::with_capacity(
                CLIENTS,
                BufConfig::new(1024, 4096).write_watermarks(0, 4096),
            ),
            servers: BufSlab::with_capacity(CLIENTS, BufConfig::new(1024, 4096)),
            per_client: PER_CLIENT,
            sent: vec![0; CLIENTS],
            back: vec![0; CLIENTS],
            ends: vec![None; CLIENTS],
            owed: Vec::new(),
            errors_seen: 0,
        })
        .unwrap();
        let (m, ctx) = el.parts();
        for _ in 0..CLIENTS {
            let (c, s) = UnixStream::pair().unwrap();
            let key = m.clients.insert(ctx, c).unwrap();
            m.servers.insert(ctx, s).unwrap();
            // The first bytes, to start the exchange.
            let first: Vec<u8> = (0..512).map(pattern).collect();
            m.clients.get_mut(key).unwrap().write(&first).unwrap();
            m.sent[key.index() as usize] = 512;
            let before = resets();
            m.clients.flush(ctx, key).unwrap();
            m.note(1, key, before);
        }
        assert_eq!(el.run().unwrap(), Exit::Exited);
        el
    });
    let m = el.machine();
    let count = |e| m.ends.iter().filter(|&&x| x == Some(e)).count();
    eprintln!(
        "reset: clients {} echoed, {} failed, {} cut off; {} resets injected, {} errors seen",
        count(End::Echoed),
        count(End::Failed),
        count(End::Eof),
        injected.get(Fault::Reset),
        m.errors_seen
    );
    assert!(injected.get(Fault::Reset) > 0, "no reset injected");
    assert!(count(End::Echoed) > 0, "no connection finished");
    assert!(m.errors_seen >= injected.get(Fault::Reset));
    // Every injected reset failed one connection, and its handler heard of it.
    assert!(
        m.owed.is_empty(),
        "resets never reported to their connection's handler: {:?}",
        m.owed
    );
}

/// The flush of a connection closing after its last reply fails: the handler hears of
/// it (`ERROR`) before the connection goes, rather than the reply vanishing unreported.
#[test]
fn a_failed_flush_before_close_is_reported_to_the_handler() {
    struct Closer {
        conns: BufSlab<UnixStream>,
        seen: Vec<evloop_core::buffered::BufEvents>,
        error: Option<std::io::ErrorKind>,
    }
    impl Machine for Closer {
        type Backend = Faulty;
        fn setup(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
            self.conns.attach(ctx, 1, Watch::read())?;
            ctx.add_timer(GUARD, GUARD_AFTER).map(|_| ())
        }
        fn dispatch(&mut self, ctx: &mut Ctx<Self>, ev: Event) {
            assert_ne!(ev.token, GUARD, "stalled: {:?}", self.seen);
            let Some(key) = self.conns.entry(ev.token) else {
                return;
            };
            let _ = self.conns.before_dispatch(ctx, key, ev.ready);
            let Some(c) = self.conns.get_mut(key) else {
                return;
            };
            self.seen.push(c.events());
            if c.events().is_error() {
                self.error = c.error().map(|e| e.kind());
                fault::set_thread_config(Some(config(&[])));
            } else if c.events().is_data() {
                c.write(b"bye\n").unwrap();
                c.close_after_flush();
                // The flush after this handler fails.
                fault::set_thread_config(Some(config(&[(Fault::Reset, 1_000_000)])));
            }
            self.conns.after_dispatch(ctx, key);
            if self.conns.is_empty() {
                ctx.exit();
            }
        }
    }
    let ((), _) = with_faults("failed flush", config(&[]), || {
        let mut el = EventLoop::new(Closer {
            conns: BufSlab::with_capacity(1, BufConfig::default()),
            seen: Vec::new(),
            error: None,
        })
        .unwrap();
        let (a, mut peer) = UnixStream::pair().unwrap();
        let (m, ctx) = el.parts();
        m.conns.insert(ctx, a).unwrap();
        peer.write_all(b"hi\n").unwrap();
        assert_eq!(el.run().unwrap(), Exit::Exited);
        let m = el.machine();
        assert_eq!(
            m.error,
            Some(std::io::ErrorKind::ConnectionReset),
            "the handler never heard of the failed flush: {:?}",
            m.seen
        );
        // Removed once the handler was told, and counted as closed (failed while closing).
        assert!(m.conns.is_empty());
        assert_eq!(m.conns.closed(), 1);
    });
}

// ---------------------------------------------------------------------------------------
// EMFILE on accept
// ---------------------------------------------------------------------------------------

/// Accepts, answers `ok` and closes; logs every report's error.
struct Acceptor {
    listener: Listener,
    answered: u64,
    fd_limit_reports: u64,
    other_errors: Vec<String>,
    want: u64,
}

impl Machine for Acceptor {
    type Backend = Faulty;
    fn setup(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        self.listener.attach(ctx, 1, Watch::read())?;
        ctx.add_timer(GUARD, GUARD_AFTER).map(|_| ())
    }
    fn dispatch(&mut self, ctx: &mut Ctx<Self>, ev: Event) {
        assert_ne!(
            ev.token,
            GUARD,
            "stalled: {} answered, {:?}",
            self.answered,
            self.listener.stats()
        );
        let ready = self.listener.before_dispatch(ctx, Key::SINGLE, ev.ready);
        if !ready.is_readable() {
            return;
        }
        let answered = &mut self.answered;
        let r = self.listener.accept(ctx, |_, c| {
            let mut s = c.into_tcp();
            // A fresh socket takes 3 bytes at once (the injected faults are the loop's
            // own I/O's, not this plain write's).
            s.write_all(b"ok\n").unwrap();
            *answered += 1;
        });
        match r.error {
            Some(AcceptError::FdLimit { errno }) => {
                assert_eq!(errno, libc::EMFILE);
                self.fd_limit_reports += 1;
            }
            Some(e) => self.other_errors.push(e.to_string()),
            None => {}
        }
        if self.answered >= self.want {
            ctx.exit();
        }
    }
}

/// An injected `EMFILE` on accept: the accepting handler gets `AcceptError::FdLimit`,
/// the listener drops one pending client with its reserve fd (that client sees the
/// connection closed, not a hang) or pauses, and accepting goes on: every client is
/// answered or dropped, none is left hanging, and the loop does not spin.
#[test]
fn emfile_on_accept_reaches_the_acceptor_and_accepting_goes_on() {
    for reserve in [true, false] {
        const CLIENTS: u64 = 60;
        let name = if reserve {
            "emfile, reserve fd"
        } else {
            "emfile, pause"
        };
        let cfg = config(&[(Fault::Emfile, 200_000)]).with_benign_rate(100_000);
        let listener = ListenerBuilder::new()
            .reserve_fd(reserve)
            .pause(Duration::from_millis(5))
            .tcp("127.0.0.1:0".parse().unwrap())
            .unwrap();
        let addr = listener.local_addr().unwrap();
        // Clients one after another on their own thread (no faults there): each reads
        // until the server answers or closes.
        let clients = std::thread::spawn(move || {
            let (mut ok, mut dropped) = (0u64, 0u64);
            let mut answered_want = CLIENTS;
            while answered_want > 0 {
                let mut c = TcpStream::connect(addr).unwrap();
                c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                let mut got = Vec::new();
                match c.read_to_end(&mut got) {
                    Ok(_) if got == b"ok\n" => {
                        ok += 1;
                        answered_want -= 1;
                    }
                    Ok(_) if got.is_empty() => dropped += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => dropped += 1,
                    other => panic!("client: {other:?} {got:?}"),
                }
            }
            (ok, dropped)
        });
        let (mut el, injected) = with_faults(name, cfg, || {
            let mut el = EventLoop::new(Acceptor {
                listener,
                answered: 0,
                fd_limit_reports: 0,
                other_errors: Vec::new(),
                want: CLIENTS,
            })
            .unwrap();
            assert_eq!(el.run().unwrap(), Exit::Exited);
            el
        });
        let (ok, dropped) = clients.join().unwrap();
        let waits = el.ctx().backend().waits();
        let m = el.machine();
        let stats = m.listener.stats();
        eprintln!(
            "{name}: {stats:?}, {} FdLimit reports, {waits} waits",
            m.fd_limit_reports
        );
        assert!(m.other_errors.is_empty(), "{:?}", m.other_errors);
        assert!(injected.get(Fault::Emfile) > 0, "no EMFILE injected");
        assert!(m.fd_limit_reports > 0 && stats.exhausted > 0);
        assert_eq!(ok, CLIENTS);
        assert_eq!(m.answered, CLIENTS);
        assert_eq!(
            dropped, stats.dropped,
            "every dropped client saw its connection closed"
        );
        if reserve {
            // (It may pause too: when the accept that frees the reserve fails as well.)
            assert!(stats.dropped > 0, "the reserve fd dropped clients");
        } else {
            assert!(stats.paused > 0 && stats.dropped == 0, "{stats:?}");
        }
        // Bounded: a few waits per client, pauses included.
        assert!(waits <= 20 * CLIENTS, "{waits} waits for {CLIENTS} clients");
    }
}

// ---------------------------------------------------------------------------------------
// DRAINED when the drain completes after the handlers
// ---------------------------------------------------------------------------------------

/// Output that had to wait drains in the flush after the handlers (not in the one before
/// them): `DRAINED` still reaches the handlers, in a dispatch of its own. A producer that
/// writes its next chunk on `DRAINED` would otherwise wait forever.
#[test]
fn output_drained_after_the_handlers_still_reports_drained() {
    const CHUNK: usize = 8 * 1024;
    struct Producer {
        conns: BufSlab<UnixStream>,
        chunks_left: u32,
        drained: u32,
        dispatches: u32,
    }
    impl Machine for Producer {
        type Backend = Faulty;
        fn setup(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
            self.conns.attach(ctx, 1, Watch::read())?;
            ctx.add_timer(GUARD, Duration::from_secs(10)).map(|_| ())
        }
        fn dispatch(&mut self, ctx: &mut Ctx<Self>, ev: Event) {
            assert_ne!(
                ev.token, GUARD,
                "DRAINED lost: {} chunks left, {} DRAINED",
                self.chunks_left, self.drained
            );
            let Some(key) = self.conns.entry(ev.token) else {
                return;
            };
            self.dispatches += 1;
            let _ = self.conns.before_dispatch(ctx, key, ev.ready);
            // The flush before this handler failed with EAGAIN; the one after it works...
            fault::set_thread_config(Some(config(&[])));
            let Some(c) = self.conns.get_mut(key) else {
                return;
            };
            if c.events().is_drained() {
                self.drained += 1;
                if self.chunks_left == 0 {
                    ctx.exit();
                } else {
                    self.chunks_left -= 1;
                    c.write(&[7u8; CHUNK]).unwrap();
                    // ...unless a new chunk was queued: it waits, for a writable turn
                    // whose flush fails too.
                    fault::set_thread_config(Some(config(&[(Fault::Eagain, 1_000_000)])));
                }
            }
            self.conns.after_dispatch(ctx, key);
        }
    }
    let eagain = config(&[(Fault::Eagain, 1_000_000)]);
    let ((), _) = with_faults("drained", eagain, || {
        let mut el = EventLoop::new(Producer {
            conns: BufSlab::with_capacity(1, BufConfig::new(1024, 4 * CHUNK)),
            chunks_left: 3,
            drained: 0,
            dispatches: 0,
        })
        .unwrap();
        let (a, peer) = UnixStream::pair().unwrap();
        let (m, ctx) = el.parts();
        let key = m.conns.insert(ctx, a).unwrap();
        m.conns.get_mut(key).unwrap().write(&[7u8; CHUNK]).unwrap();
        m.conns.flush(ctx, key).unwrap(); // EAGAIN: the output waits
        assert_eq!(m.conns.get(key).unwrap().pending(), CHUNK as u64);
        assert_eq!(el.run().unwrap(), Exit::Exited);
        assert_eq!(el.machine().drained, 4);
        drop(peer);
    });
}
