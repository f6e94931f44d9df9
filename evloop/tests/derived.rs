//! Machines written with `#[event_machine]`, run for real: an echo server over
//! 127.0.0.1 (a listener and a `Slab` of connections), timers, idle timeouts, a wake
//! from another thread, the lifecycle hooks, priorities, and `#[cfg]`'d-out handlers.
//! Signals are in `derived_signals.rs` (each test in a process of its own).

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};

/// A connected pair of streams: Unix sockets on Unix, TCP on 127.0.0.1 on Windows.
#[cfg(unix)]
type Stream = std::os::unix::net::UnixStream;
/// A connected pair of streams (see the Unix definition).
#[cfg(windows)]
type Stream = std::net::TcpStream;

#[cfg(unix)]
fn pair() -> (Stream, Stream) {
    Stream::pair().unwrap()
}

#[cfg(windows)]
fn pair() -> (Stream, Stream) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let c = Stream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    (s, c)
}
use std::thread;
use std::time::{Duration, Instant};

use evloop::prelude::*;

// ---------------------------------------------------------------------------------------
// Echo over TCP: a listener and a Slab
// ---------------------------------------------------------------------------------------

#[event_machine(sources = 256)]
struct Echo {
    listener: TcpListener,
    conns: Slab<TcpStream>,
    accepted: usize,
    closed: usize,
    expected: usize,
    echoed: usize,
}

#[event_machine]
impl Echo {
    // A plain `TcpListener`, accepted by hand: `raw_accept` says this handler deals with
    // running out of descriptors itself (here, a test, by failing), which silences the
    // warning that suggests `evloop::Listener`.
    #[on_read(listener, raw_accept)]
    fn accept(&mut self, ctx: &mut Ctx<Self>) {
        loop {
            match self.listener.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(true).unwrap();
                    self.conns.insert(ctx, s).unwrap();
                    self.accepted += 1;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("accept: {e}"),
            }
        }
    }

    #[on_read(conns, peer_closed)]
    fn readable(&mut self, key: Key, ctx: &mut Ctx<Self>) {
        let mut buf = [0u8; 4096];
        loop {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            match conn.read(&mut buf) {
                Ok(0) => {
                    self.conns.remove(ctx, key).unwrap();
                    self.closed += 1;
                    if self.closed == self.expected {
                        ctx.exit();
                    }
                    return;
                }
                Ok(n) => {
                    conn.write_all(&buf[..n]).unwrap();
                    self.echoed += n;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) => panic!("read: {e}"),
            }
        }
    }
}

#[test]
fn echo_over_loopback() {
    const CLIENTS: usize = 40;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let msg = format!("hello from client {i}");
                for _ in 0..3 {
                    s.write_all(msg.as_bytes()).unwrap();
                    let mut back = vec![0u8; msg.len()];
                    s.read_exact(&mut back).unwrap();
                    assert_eq!(back, msg.as_bytes());
                }
                msg.len() * 3
            })
        })
        .collect();
    let echo = Echo {
        listener,
        conns: Slab::with_capacity(128),
        accepted: 0,
        closed: 0,
        expected: CLIENTS,
        echoed: 0,
    }
    .run()
    .unwrap();
    let sent: usize = clients.into_iter().map(|c| c.join().unwrap()).sum();
    assert_eq!(echo.accepted, CLIENTS);
    assert_eq!(echo.closed, CLIENTS);
    assert_eq!(echo.echoed, sent);
    assert!(echo.conns.is_empty());
}

// ---------------------------------------------------------------------------------------
// Timers
// ---------------------------------------------------------------------------------------

#[event_machine]
struct Timers {
    ticks: u32,
    once: u32,
    once_at_tick: Option<u32>,
}

#[event_machine]
impl Timers {
    #[on_timer(2)]
    fn tick(&mut self, ctx: &mut Ctx<Self>, ev: Event) {
        assert!(ev.ready.is_timeout() && ev.count >= 1);
        self.ticks += 1;
        if self.ticks == 20 {
            ctx.exit();
        }
    }

    #[on_timer(15, once)]
    fn warmup(&mut self, _ctx: &mut Ctx<Self>) {
        self.once += 1;
        self.once_at_tick = Some(self.ticks);
    }
}

#[test]
fn timers_periodic_and_once() {
    let t0 = Instant::now();
    let t = Timers {
        ticks: 0,
        once: 0,
        once_at_tick: None,
    }
    .run()
    .unwrap();
    assert_eq!(t.ticks, 20);
    assert_eq!(t.once, 1, "a one-shot timer fires once");
    let at = t.once_at_tick.unwrap();
    assert!(
        (3..=12).contains(&at),
        "one-shot at 15 ms fired after {at} 2-ms ticks"
    );
    assert!(t0.elapsed() >= Duration::from_millis(38));
}

// ---------------------------------------------------------------------------------------
// Idle timeouts
// ---------------------------------------------------------------------------------------

#[event_machine]
struct Idle {
    quiet: Stream,
    chatty: Stream,
    conns: Slab<Stream>,
    started: Option<Instant>,
    quiet_timeout: Option<Duration>,
    chatty_reads: u32,
    chatty_timeouts: u32,
    conn_timeouts: u32,
}

#[event_machine]
impl Idle {
    #[on_read(quiet)]
    fn quiet_readable(&mut self, _ctx: &mut Ctx<Self>) {
        panic!("nothing is ever written to `quiet`");
    }

    #[on_timeout(quiet, ms = 40)]
    fn quiet_idle(&mut self, ctx: &mut Ctx<Self>) {
        self.quiet_timeout = Some(self.started.unwrap().elapsed());
        ctx.exit();
    }

    #[on_read(chatty)]
    fn chatty_readable(&mut self, _ctx: &mut Ctx<Self>) {
        let mut b = [0u8; 64];
        let _ = self.chatty.read(&mut b);
        self.chatty_reads += 1;
    }

    #[on_timeout(chatty, ms = 30)]
    fn chatty_idle(&mut self, _ctx: &mut Ctx<Self>) {
        self.chatty_timeouts += 1;
    }

    #[on_read(conns)]
    fn conn_readable(&mut self, _key: Key, _ctx: &mut Ctx<Self>) {}

    #[on_timeout(conns, ms = 10)]
    fn conn_idle(&mut self, key: Key, ctx: &mut Ctx<Self>) {
        self.conns.remove(ctx, key).unwrap();
        self.conn_timeouts += 1;
    }
}

#[test]
fn idle_timeouts() {
    let (quiet, _q) = pair();
    let (chatty, mut peer) = pair();
    let (c1, _c1) = pair();
    let (c2, _c2) = pair();
    let mut el = Idle {
        quiet,
        chatty,
        conns: Slab::with_capacity(4),
        started: Some(Instant::now()),
        quiet_timeout: None,
        chatty_reads: 0,
        chatty_timeouts: 0,
        conn_timeouts: 0,
    }
    .event_loop()
    .unwrap();
    {
        let (m, ctx) = el.parts();
        m.conns.insert(ctx, c1).unwrap();
        m.conns.insert(ctx, c2).unwrap();
    }
    // Keep `chatty` busy: every 10 ms, below its 30 ms timeout.
    let writer = thread::spawn(move || {
        for _ in 0..6 {
            thread::sleep(Duration::from_millis(5));
            if peer.write_all(b"x").is_err() {
                break;
            }
        }
    });
    el.run().unwrap();
    writer.join().unwrap();
    let m = el.into_machine();
    let t = m.quiet_timeout.expect("the quiet source timed out");
    assert!(t >= Duration::from_millis(40), "timed out after {t:?}");
    assert!(m.chatty_reads >= 1);
    assert_eq!(
        m.conn_timeouts, 2,
        "both idle connections timed out and were removed"
    );
    assert!(m.conns.is_empty());
}

// ---------------------------------------------------------------------------------------
// Wake from another thread
// ---------------------------------------------------------------------------------------

#[event_machine]
struct Woken {
    wakes: u32,
    from: Option<thread::JoinHandle<()>>,
}

#[event_machine]
impl Woken {
    #[on_start]
    fn started(&mut self, ctx: &mut Ctx<Self>) {
        ctx.set_exit_when_empty(false);
        let handle = ctx.wake_handle();
        self.from = Some(thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            handle.wake().unwrap();
        }));
    }

    #[on_wake]
    fn woken(&mut self, ctx: &mut Ctx<Self>, ev: Event) {
        assert!(ev.ready.is_wake());
        self.wakes += 1;
        ctx.exit();
    }
}

#[test]
fn wake_from_another_thread() {
    let w = Woken {
        wakes: 0,
        from: None,
    }
    .run()
    .unwrap();
    assert_eq!(w.wakes, 1);
    w.from.unwrap().join().unwrap();
}

// ---------------------------------------------------------------------------------------
// Lifecycle hooks
// ---------------------------------------------------------------------------------------

#[event_machine]
struct Hooks {
    log: Vec<&'static str>,
    before: u32,
    after: u32,
    idles: u32,
    ticks: u32,
}

#[event_machine]
impl Hooks {
    #[on_start]
    fn started(&mut self, ctx: &mut Ctx<Self>) {
        assert!(ctx.is_idling(), "on_idle turns idling on before on_start");
        self.log.push("start");
    }

    #[before_wait]
    fn prepare(&mut self, _ctx: &mut Ctx<Self>) {
        self.before += 1;
        if self.log.last() != Some(&"before") {
            self.log.push("before");
        }
    }

    #[after_wait]
    fn check(&mut self, _ctx: &mut Ctx<Self>) {
        self.after += 1;
    }

    #[on_idle]
    fn background(&mut self, ctx: &mut Ctx<Self>) {
        self.idles += 1;
        if self.idles == 5 {
            ctx.set_idle(false);
            self.log.push("idle done");
        }
    }

    #[on_timer(5)]
    fn tick(&mut self, ctx: &mut Ctx<Self>) {
        self.ticks += 1;
        if self.ticks == 3 {
            ctx.exit();
        }
    }
}

#[test]
fn lifecycle_hooks() {
    let h = Hooks {
        log: vec![],
        before: 0,
        after: 0,
        idles: 0,
        ticks: 0,
    }
    .run()
    .unwrap();
    assert_eq!(h.log[..2], ["start", "before"]);
    assert_eq!(h.idles, 5, "idle stops when the handler turns it off");
    assert!(h.log.contains(&"idle done"));
    assert_eq!(h.ticks, 3);
    assert!(h.before >= 5 + 3 && h.after >= 5 + 3);
    assert!(h.before >= h.after);
}

// ---------------------------------------------------------------------------------------
// Priorities
// ---------------------------------------------------------------------------------------

#[event_machine(priorities = 5)]
struct Prio {
    order: Vec<u8>,
}

#[event_machine]
impl Prio {
    #[on_timer(3, once, priority = 4)]
    fn least_urgent(&mut self, _ctx: &mut Ctx<Self>) {
        self.order.push(4);
    }

    #[on_timer(3, once, priority = 2)]
    fn middle(&mut self, _ctx: &mut Ctx<Self>) {
        self.order.push(2);
    }

    #[on_timer(3, once, priority = 0)]
    fn most_urgent(&mut self, _ctx: &mut Ctx<Self>) {
        self.order.push(0);
    }
}

#[test]
fn priorities_option() {
    let p = Prio { order: vec![] }.run().unwrap();
    assert_eq!(
        p.order,
        [0, 2, 4],
        "due together, dispatched most urgent first"
    );
}

// ---------------------------------------------------------------------------------------
// #[cfg] on handlers
// ---------------------------------------------------------------------------------------

#[event_machine]
struct Cfgd {
    #[allow(dead_code)] // its only handler is cfg'd out
    sock: Stream,
    ticks: u32,
}

#[event_machine]
impl Cfgd {
    #[cfg(any())]
    #[on_read(sock)]
    fn ghost_reader(&mut self, _ctx: &mut Ctx<Self>) {}

    #[cfg(any())]
    #[on_timer(1)]
    fn ghost_timer(&mut self, _ctx: &mut Ctx<Self>) {}

    #[cfg_attr(any(), on_wake)]
    #[allow(dead_code)]
    fn ghost_wake(&mut self, _ctx: &mut Ctx<Self>) {
        unreachable!("not a handler: its cfg_attr is off");
    }

    #[cfg(not(any()))]
    #[on_timer(2, once)]
    fn real_timer(&mut self, _ctx: &mut Ctx<Self>) {
        self.ticks += 1;
    }
}

#[test]
fn cfgd_out_handlers_are_absent() {
    let (sock, mut peer) = pair();
    peer.write_all(b"readable, but nobody listens").unwrap();
    let mut el = Cfgd { sock, ticks: 0 }.event_loop().unwrap();
    assert_eq!(
        el.ctx().source_count(),
        1,
        "only the compiled-in timer is registered: {}",
        el.ctx().dump()
    );
    el.run().unwrap();
    assert_eq!(el.machine().ticks, 1);
}

// ---------------------------------------------------------------------------------------
// Write readiness, hang-ups, one-shot and edge
// ---------------------------------------------------------------------------------------

#[event_machine]
struct Writer {
    sock: Stream,
    writes: u32,
    hangups: u32,
}

#[event_machine]
impl Writer {
    #[on_write(sock, oneshot)]
    fn writable(&mut self, ctx: &mut Ctx<Self>, ev: Event) {
        if ev.ready.is_hup() || ev.ready.is_error() {
            self.hangups += 1;
            ctx.exit();
            return;
        }
        self.writes += 1;
        if self.writes < 3 {
            // One-shot: re-arm by hand.
            ctx.start(ev.source).unwrap();
        }
    }
}

#[test]
fn oneshot_write_rearmed_by_hand() {
    let (sock, _peer) = pair();
    let mut el = Writer {
        sock,
        writes: 0,
        hangups: 0,
    }
    .event_loop()
    .unwrap();
    for _ in 0..10 {
        el.run_nowait().unwrap();
    }
    assert_eq!(
        el.machine().writes,
        3,
        "disarmed after each dispatch, re-armed twice"
    );
}

/// Hang `peer` up on `sock`, and wait until `sock` knows: a socket pair's close on Unix;
/// on Windows (TCP) a close, then writes until one fails: the peer's system answers a
/// write to a closed socket with a reset (after a plain close, a FIN, the socket would
/// stay writable).
#[cfg(unix)]
fn hang_up(_sock: &Stream, peer: Stream) {
    drop(peer);
}

/// See the Unix definition.
#[cfg(windows)]
fn hang_up(sock: &Stream, peer: Stream) {
    drop(peer);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while (&*sock).write(b"x").is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "no reset after the peer closed"
        );
        std::thread::yield_now();
    }
}

#[event_machine]
struct HupWatcher {
    sock: Stream,
    seen: Ready,
}

#[event_machine]
impl HupWatcher {
    #[on_write(sock)]
    fn writable(&mut self, ctx: &mut Ctx<Self>, ev: Event) {
        self.seen = ev.ready;
        ctx.exit();
    }
}

#[test]
fn write_only_field_hears_hangups() {
    let (sock, peer) = pair();
    hang_up(&sock, peer);
    let m = HupWatcher {
        sock,
        seen: Ready::EMPTY,
    }
    .run()
    .unwrap();
    assert!(
        m.seen.is_hup() || m.seen.is_error(),
        "a write handler without a read handler gets the hang-up: {:?}",
        m.seen
    );
}
