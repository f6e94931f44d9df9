//! No heap allocation per event, in steady state, under every backend.
//!
//! A counting global allocator wraps the system one. A machine mixes everything a loop
//! dispatches: a chain of socketpairs passing bytes along (the pipe-chain benchmark),
//! per-source idle timeouts re-armed on every event, one-shot and periodic timers, a
//! source that keeps timing out, signals raised from handlers, manual activation,
//! activation and wakes through a `WakeHandle` (from the loop's own thread), a `Slab` of
//! pre-created socketpairs inserted and removed over and over, and priorities. After a
//! warm-up round (one-time growth), the allocator's counters must not move while at
//! least `EVENTS` events are dispatched. A self-check runs the same machine with a
//! handler that allocates and expects the counter to move, so the test is known to
//! catch an allocation on the dispatch path.
//!
//! `harness = false`: this is a plain program printing one line per case and a final
//! `N passed, N failed`; it exits non-zero on failure. Arguments: `--list`, or words
//! selecting the cases whose name contains one of them.

#[cfg(unix)]
#[path = "support/cases.rs"]
mod cases;
#[cfg(unix)]
#[path = "support/counting_alloc.rs"]
mod counting_alloc;

// Unix only so far (Unix sockets, signals, or the Unix-only core modules); on Windows the
// binary runs nothing.
#[cfg(unix)]
mod unix {
    #[allow(unused_imports)]
    use super::*;

    use std::io::{Read, Write};
    use std::marker::PhantomData;
    use std::os::fd::{AsFd, BorrowedFd};
    use std::os::unix::net::UnixStream;
    use std::time::{Duration, Instant};

    use evloop_core::{
        Backend, Builder, Ctx, Event, EventLoop, Exit, Machine, Ready, Slab, Source, SourceId,
        Token, WakeHandle, Watch,
    };

    // ---------------------------------------------------------------------------------------
    // The counting allocator
    // ---------------------------------------------------------------------------------------

    use counting_alloc::counters;

    // ---------------------------------------------------------------------------------------
    // The machine
    // ---------------------------------------------------------------------------------------

    /// Socketpairs in the byte chain.
    const CHAIN: usize = 8;
    /// Pre-created socketpairs churned through the slab.
    const CHURN: usize = 12;
    const CHAIN_TAG: u16 = 1;
    const SLAB_TAG: u16 = 2;
    const ONESHOT: Token = Token(1);
    const PERIODIC: Token = Token(2);
    const IDLE: Token = Token(3);
    const SIG1: Token = Token(4);
    const SIG2: Token = Token(5);
    const USER: Token = Token(6);
    const USER_HI: Token = Token(7);
    const REMOTE: Token = Token(8);
    const WAKE: Token = Token(9);

    /// Dispatch counts per kind.
    const KINDS: usize = 11;
    const KIND_NAMES: [&str; KINDS] = [
        "chain", "slab", "oneshot", "periodic", "idle", "sigusr1", "sigusr2", "user", "user_hi",
        "remote", "wake",
    ];

    /// A socket stored in the slab, with the index of its pre-created pair.
    struct Conn {
        sock: UnixStream,
        idx: usize,
    }

    impl AsFd for Conn {
        fn as_fd(&self) -> BorrowedFd<'_> {
            self.sock.as_fd()
        }
    }

    struct Mix<B> {
        chain_r: Vec<UnixStream>,
        chain_w: Vec<UnixStream>,
        chain_ids: [Option<SourceId>; CHAIN],
        idle: UnixStream,
        _idle_peer: UnixStream,
        /// Slab churn: `pool[i]` is out of the slab, `peers[i]` is its other end.
        pool: Vec<Option<Conn>>,
        peers: Vec<UnixStream>,
        slab: Slab<Conn>,
        churn_next: usize,
        user: Option<SourceId>,
        user_hi: Option<SourceId>,
        remote: Option<SourceId>,
        handle: Option<WakeHandle>,
        stats: [u64; KINDS],
        /// `stats` when the current round started.
        base: [u64; KINDS],
        events: u64,
        target: u64,
        alloc_in_handler: bool,
        fail: Option<&'static str>,
        _b: PhantomData<fn() -> B>,
    }

    impl<B: Backend> Mix<B> {
        fn new() -> std::io::Result<Self> {
            let mut chain_r = Vec::with_capacity(CHAIN);
            let mut chain_w = Vec::with_capacity(CHAIN);
            for _ in 0..CHAIN {
                let (r, w) = UnixStream::pair()?;
                r.set_nonblocking(true)?;
                w.set_nonblocking(true)?;
                chain_r.push(r);
                chain_w.push(w);
            }
            let mut pool = Vec::with_capacity(CHURN);
            let mut peers = Vec::with_capacity(CHURN);
            for idx in 0..CHURN {
                let (a, b) = UnixStream::pair()?;
                a.set_nonblocking(true)?;
                b.set_nonblocking(true)?;
                pool.push(Some(Conn { sock: a, idx }));
                peers.push(b);
            }
            let (idle, idle_peer) = UnixStream::pair()?;
            Ok(Mix {
                chain_r,
                chain_w,
                chain_ids: [None; CHAIN],
                idle,
                _idle_peer: idle_peer,
                pool,
                peers,
                slab: Slab::with_capacity(CHURN),
                churn_next: 0,
                user: None,
                user_hi: None,
                remote: None,
                handle: None,
                stats: [0; KINDS],
                base: [0; KINDS],
                events: 0,
                target: 0,
                alloc_in_handler: false,
                fail: None,
                _b: PhantomData,
            })
        }

        fn failed(&mut self, ctx: &mut Ctx<Self>, why: &'static str) {
            if self.fail.is_none() {
                self.fail = Some(why);
            }
            ctx.exit();
        }

        /// Every kind was dispatched since the round started.
        fn all_kinds(&self) -> bool {
            self.stats.iter().zip(&self.base).all(|(s, b)| s > b)
        }

        fn on_chain(&mut self, ctx: &mut Ctx<Self>, ev: Event, i: usize) {
            self.stats[0] += 1;
            if !ev.ready.is_readable() {
                return;
            }
            let mut b = [0u8; 1];
            match (&self.chain_r[i]).read(&mut b) {
                Ok(1) => {}
                Ok(_) => return self.failed(ctx, "chain: EOF"),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(_) => return self.failed(ctx, "chain: read error"),
            }
            let next = (i + 1) % CHAIN;
            if (&self.chain_w[next]).write(&b).ok() != Some(1) {
                return self.failed(ctx, "chain: write error");
            }
            // The idle timeout, re-armed per event (two durations: two timer queues).
            let idle = if self.events.is_multiple_of(2) {
                Duration::from_secs(60)
            } else {
                Duration::from_secs(61)
            };
            if ctx.set_idle_timeout(ev.source, Some(idle)).is_err() {
                return self.failed(ctx, "set_idle_timeout");
            }
            let n = self.stats[0];
            if n.is_multiple_of(50) {
                // SAFETY: SIGUSR1 is watched by this loop; raise(3) runs its handler, which
                // only bumps an atomic and writes the wake fd.
                unsafe { libc::raise(libc::SIGUSR1) };
            }
            if n.is_multiple_of(77) {
                // SAFETY: as above, for SIGUSR2.
                unsafe { libc::raise(libc::SIGUSR2) };
            }
            if n.is_multiple_of(10) {
                if let Some(id) = self.user {
                    if ctx.activate(id, Ready::EMPTY).is_err() {
                        return self.failed(ctx, "activate user");
                    }
                }
            }
            if n.is_multiple_of(13) {
                if let Some(id) = self.user_hi {
                    if ctx.activate(id, Ready::READABLE).is_err() {
                        return self.failed(ctx, "activate user_hi");
                    }
                }
            }
            if n.is_multiple_of(16) {
                if let (Some(h), Some(id)) = (&self.handle, self.remote) {
                    if h.activate(id).is_err() {
                        return self.failed(ctx, "WakeHandle::activate");
                    }
                }
            }
            if n.is_multiple_of(20) {
                if let Some(h) = &self.handle {
                    if h.wake().is_err() {
                        return self.failed(ctx, "WakeHandle::wake");
                    }
                }
            }
            if n.is_multiple_of(30) && ctx.set_priority(ev.source, (n / 30 % 3) as u8).is_err() {
                return self.failed(ctx, "set_priority");
            }
            if n.is_multiple_of(4) {
                self.churn(ctx, false);
            }
            if n.is_multiple_of(9) {
                self.churn(ctx, true);
            }
        }

        /// Put the next pre-created socket into the slab, with a byte waiting on it (so it is
        /// dispatched and taken out again), or insert and remove it at once.
        fn churn(&mut self, ctx: &mut Ctx<Self>, and_remove: bool) {
            let k = self.churn_next;
            self.churn_next = (k + 1) % CHURN;
            let Some(conn) = self.pool[k].take() else {
                return;
            };
            if !and_remove && (&self.peers[k]).write(&[1]).ok() != Some(1) {
                return self.failed(ctx, "churn: write error");
            }
            let w = Watch::read().priority((k % 3) as u8);
            let key = match self.slab.insert_with(ctx, conn, w) {
                Ok(key) => key,
                Err(_) => return self.failed(ctx, "slab insert"),
            };
            if and_remove {
                match self.slab.remove(ctx, key) {
                    Ok(conn) => self.pool[k] = Some(conn),
                    Err(_) => self.failed(ctx, "slab remove"),
                }
            }
        }

        fn on_slab(&mut self, ctx: &mut Ctx<Self>, ev: Event) {
            self.stats[1] += 1;
            let Some(key) = self.slab.key_of(ev.token) else {
                return self.failed(ctx, "slab: stale token dispatched");
            };
            let mut buf = [0u8; 16];
            if let Some(conn) = self.slab.get(key) {
                let _ = (&conn.sock).read(&mut buf);
            }
            match self.slab.remove(ctx, key) {
                Ok(conn) => {
                    let idx = conn.idx;
                    self.pool[idx] = Some(conn);
                }
                Err(_) => self.failed(ctx, "slab remove"),
            }
        }
    }

    impl<B: Backend> Machine for Mix<B> {
        type Backend = B;

        fn setup(&mut self, ctx: &mut Ctx<Self>) -> evloop_core::Result<()> {
            self.slab.attach(ctx, SLAB_TAG, Watch::read())?;
            for i in 0..CHAIN {
                let w = Watch::read()
                    .timeout(Duration::from_secs(60))
                    .priority((i % 3) as u8);
                self.chain_ids[i] =
                    Some(ctx.add_io(&self.chain_r[i], Token::tagged(CHAIN_TAG, i as u64), w)?);
            }
            ctx.add_io(
                &self.idle,
                IDLE,
                Watch::read().timeout(Duration::from_millis(3)),
            )?;
            ctx.add_timer(ONESHOT, Duration::from_millis(2))?;
            ctx.add_periodic(PERIODIC, Duration::from_millis(1))?;
            ctx.add_signal(libc::SIGUSR1, SIG1)?;
            ctx.add_signal(libc::SIGUSR2, SIG2)?;
            self.user = Some(ctx.add_user(USER)?);
            let hi = ctx.add_user(USER_HI)?;
            ctx.set_priority(hi, 0)?;
            self.user_hi = Some(hi);
            self.remote = Some(ctx.add_user(REMOTE)?);
            ctx.add_wake(WAKE)?;
            self.handle = Some(ctx.wake_handle());
            Ok(())
        }

        fn dispatch(&mut self, ctx: &mut Ctx<Self>, ev: Event) {
            self.events += 1;
            if self.alloc_in_handler {
                std::hint::black_box(Box::new(self.events));
            }
            match ev.token {
                t if t.tag() == CHAIN_TAG => self.on_chain(ctx, ev, t.payload() as usize),
                t if t.tag() == SLAB_TAG => self.on_slab(ctx, ev),
                ONESHOT => {
                    self.stats[2] += 1;
                    if ctx.reset_timer(ev.source).is_err() {
                        self.failed(ctx, "reset_timer");
                    }
                }
                PERIODIC => self.stats[3] += 1,
                IDLE => {
                    self.stats[4] += 1;
                    if !ev.ready.is_timeout() {
                        self.failed(ctx, "idle source: not a timeout");
                    }
                }
                SIG1 => self.stats[5] += 1,
                SIG2 => self.stats[6] += 1,
                USER => self.stats[7] += 1,
                USER_HI => self.stats[8] += 1,
                REMOTE => self.stats[9] += 1,
                WAKE => self.stats[10] += 1,
                _ => self.failed(ctx, "unknown token"),
            }
            if self.events >= self.target && self.all_kinds() {
                ctx.exit();
            }
        }
    }

    // ---------------------------------------------------------------------------------------
    // The cases
    // ---------------------------------------------------------------------------------------

    /// Dispatched events in the measured window.
    const EVENTS: u64 = 120_000;
    const WARMUP: u64 = 5_000;
    const SELF_CHECK_EVENTS: u64 = 3_000;

    type Round = counting_alloc::Round<KINDS>;

    /// Build the loop, warm it up, and measure one round of `events` dispatches.
    fn measure<B: Backend>(events: u64, alloc_in_handler: bool) -> Result<Round, String> {
        let machine = Mix::<B>::new().map_err(|e| format!("socketpairs: {e}"))?;
        let mut el = Builder::new()
            .sources(64)
            .timers(64)
            .events(64)
            .priorities(3)
            .activations(64)
            .build(machine)
            .map_err(|e| format!("build: {e}"))?;
        // Two bytes travel the chain.
        for i in [0, CHAIN / 2] {
            (&el.machine().chain_w[i])
                .write_all(&[1])
                .map_err(|e| e.to_string())?;
        }
        // Warm-up: every kind dispatched at least once, every one-time growth done.
        el.machine_mut().target = WARMUP;
        run_round(&mut el)?;
        // The measured window: nothing in here may allocate, this code included.
        let m = el.machine_mut();
        m.base = m.stats;
        m.target = m.events + events;
        m.alloc_in_handler = alloc_in_handler;
        let start_events = m.events;
        let (a0, d0) = counters();
        let t0 = Instant::now();
        let r = el.run();
        let elapsed = t0.elapsed();
        let (a1, d1) = counters();
        let exit = r.map_err(|e| format!("run: {e}"))?;
        if let Some(why) = el.machine().fail {
            return Err(format!("the machine failed: {why}"));
        }
        if exit != Exit::Exited {
            return Err(format!("run returned {exit:?}"));
        }
        let m = el.machine();
        let mut stats = [0; KINDS];
        for (i, s) in stats.iter_mut().enumerate() {
            *s = m.stats[i] - m.base[i];
        }
        Ok(Round {
            events: m.events - start_events,
            allocs: a1 - a0,
            deallocs: d1 - d0,
            elapsed,
            stats,
        })
    }

    fn run_round<B: Backend>(el: &mut EventLoop<Mix<B>>) -> Result<(), String> {
        let exit = el.run().map_err(|e| format!("run: {e}"))?;
        if let Some(why) = el.machine().fail {
            return Err(format!("the machine failed: {why}"));
        }
        if exit != Exit::Exited {
            return Err(format!("run returned {exit:?}"));
        }
        Ok(())
    }

    fn alloc_free<B: Backend>() -> Result<String, String> {
        let r = measure::<B>(EVENTS, false)?;
        counting_alloc::judge_alloc_free("alloc_free", B::NAME, &r, &KIND_NAMES, EVENTS)
    }

    fn self_check<B: Backend>() -> Result<String, String> {
        let r = measure::<B>(SELF_CHECK_EVENTS, true)?;
        counting_alloc::judge_self_check(B::NAME, &r)
    }

    /// What std does for the operations the machine uses, so a failure above can be told
    /// apart from std allocating behind our back.
    fn std_check() -> Result<String, String> {
        let (a0, _) = counters();
        let (a, b) = UnixStream::pair().map_err(|e| e.to_string())?;
        a.set_nonblocking(true).map_err(|e| e.to_string())?;
        let (a1, _) = counters();
        let mut buf = [0u8; 4];
        for _ in 0..100 {
            (&b).write_all(&[7]).map_err(|e| e.to_string())?;
            (&a).read_exact(&mut buf[..1]).map_err(|e| e.to_string())?;
            let e = (&a).read(&mut buf).unwrap_err();
            if e.kind() != std::io::ErrorKind::WouldBlock {
                return Err(format!("unexpected {e}"));
            }
        }
        // SAFETY: SIGUSR1 is ignored for the call, then the default action is restored.
        unsafe {
            libc::signal(libc::SIGUSR1, libc::SIG_IGN);
            libc::raise(libc::SIGUSR1);
            libc::signal(libc::SIGUSR1, libc::SIG_DFL);
        }
        let (a2, _) = counters();
        let line = format!(
            "std check: UnixStream::pair + set_nonblocking: {} allocations; 100 x (write, read, WouldBlock) + raise: {} allocations",
            a1 - a0,
            a2 - a1
        );
        if a2 != a1 {
            return Err(format!("{line}: std allocates on the I/O path"));
        }
        Ok(line)
    }

    type CaseFn = fn() -> Result<String, String>;
    use cases::Case;

    /// The cases that do not depend on a backend.
    const FIRST_CASES: [Case; 1] = [("alloc_free_std_check", std_check)];

    /// One backend's two cases (`alloc_free_<name>`, `alloc_free_self_check_<name>`), and the
    /// table of every backend this target has: one line per backend.
    macro_rules! backend_cases {
        ($($(#[$cfg:meta])* $name:literal => $backend:ty;)*) => {
            /// Every case, in order: `std_check` where there is one, then per backend.
            fn cases() -> Vec<Case> {
                let mut cases: Vec<Case> = FIRST_CASES.to_vec();
                $(
                    $(#[$cfg])*
                    cases.extend_from_slice(&[
                        (concat!("alloc_free_", $name), alloc_free::<$backend> as CaseFn),
                        (concat!("alloc_free_self_check_", $name), self_check::<$backend>),
                    ]);
                )*
                cases
            }
        };
    }

    backend_cases! {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        "epoll" => evloop_core::Epoll;
        #[cfg(target_os = "linux")]
        "uring" => evloop_core::Uring;
        "poll" => evloop_core::Poll;
        "select" => evloop_core::Select;
        #[cfg(any(
            target_os = "macos",
            target_os = "ios",
            target_os = "tvos",
            target_os = "watchos",
            target_os = "visionos",
            target_os = "freebsd",
            target_os = "netbsd",
            target_os = "openbsd",
            target_os = "dragonfly"
        ))]
        "kqueue" => evloop_core::Kqueue;
        #[cfg(any(target_os = "illumos", target_os = "solaris"))]
        "event_ports" => evloop_core::EventPorts;
        #[cfg(any(target_os = "illumos", target_os = "solaris"))]
        "devpoll" => evloop_core::DevPoll;
    }

    pub fn main() {
        cases::main(cases());
    }
}

fn main() {
    #[cfg(unix)]
    unix::main();
    #[cfg(not(unix))]
    println!("alloc_free: SKIPPED (Unix only): nothing ran");
}
