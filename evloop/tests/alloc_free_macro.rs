//! No heap allocation per event for a machine written with `#[event_machine]`, under
//! every backend: the generated `setup`/`dispatch` must cost what a hand-written
//! `Machine` costs (evloop-core's `alloc_free.rs` checks the hand-written one).
//!
//! A counting global allocator wraps the system one. The machine mixes what the macro
//! generates: a chain of socketpairs in a `Slab` passing bytes along (`#[on_read]` with a
//! key, per-entry idle timeouts re-armed by every event), a single source that keeps
//! timing out (`#[on_timeout]`), a periodic and a re-armed one-shot timer (with
//! priorities), signals raised from handlers (`#[on_signal]`, also real-time), manual
//! activation of a timer source, wakes through a `WakeHandle` (`#[on_wake]`), and the
//! `before_wait` / `after_wait` hooks. After a warm-up round, the allocator's counters
//! must not move while at least `EVENTS` events are dispatched. A self-check runs the
//! same machine with a handler that allocates and expects the counter to move.
//!
//! `harness = false`: a plain program printing one line per case and a final
//! `N passed, N failed`; it exits non-zero on failure. Arguments: `--list`, or words
//! selecting the cases whose name contains one of them.

#[cfg(unix)]
#[path = "../../evloop-core/tests/support/cases.rs"]
mod cases;
#[cfg(unix)]
#[path = "../../evloop-core/tests/support/counting_alloc.rs"]
mod counting_alloc;

// Unix only so far (Unix sockets, signals, or the Unix-only core modules); on Windows the
// binary runs nothing.
#[cfg(unix)]
mod unix {
    #[allow(unused_imports)]
    use super::*;

    use std::io::{Read, Write};
    use std::marker::PhantomData;
    use std::os::unix::net::UnixStream;
    use std::time::Instant;

    use evloop::prelude::*;

    // ---------------------------------------------------------------------------------------
    // The counting allocator
    // ---------------------------------------------------------------------------------------

    use counting_alloc::counters;

    // ---------------------------------------------------------------------------------------
    // The machine
    // ---------------------------------------------------------------------------------------

    /// Socketpairs in the byte chain.
    const CHAIN: usize = 8;

    /// Dispatch counts per kind.
    const KINDS: usize = 9;
    const KIND_NAMES: [&str; KINDS] = [
        "chain", "idle", "periodic", "oneshot", "sigusr1", "sigrt", "wake", "before", "after",
    ];

    #[event_machine(backend = B, sources = 64, timers = 64, events = 64, priorities = 3, activations = 64)]
    struct Mix<B: Backend> {
        /// Read ends of the chain, watched; `writers[i]` feeds `chain` entry `i + 1`.
        chain: Slab<UnixStream>,
        writers: Vec<UnixStream>,
        idle: UnixStream,
        oneshot: Option<SourceId>,
        handle: Option<WakeHandle>,
        stats: [u64; KINDS],
        base: [u64; KINDS],
        events: u64,
        target: u64,
        alloc_in_handler: bool,
        fail: Option<&'static str>,
        _b: PhantomData<fn() -> B>,
    }

    impl<B: Backend> Mix<B> {
        fn new() -> std::io::Result<(Self, Vec<UnixStream>)> {
            let mut readers = Vec::with_capacity(CHAIN);
            let mut writers = Vec::with_capacity(CHAIN);
            for _ in 0..CHAIN {
                let (r, w) = UnixStream::pair()?;
                r.set_nonblocking(true)?;
                w.set_nonblocking(true)?;
                readers.push(r);
                writers.push(w);
            }
            let (idle, idle_peer) = UnixStream::pair()?;
            std::mem::forget(idle_peer); // kept open for the whole process
            let m = Mix {
                chain: Slab::with_capacity(CHAIN),
                writers,
                idle,
                oneshot: None,
                handle: None,
                stats: [0; KINDS],
                base: [0; KINDS],
                events: 0,
                target: 0,
                alloc_in_handler: false,
                fail: None,
                _b: PhantomData,
            };
            Ok((m, readers))
        }

        fn failed(&mut self, ctx: &mut Ctx<Self>, why: &'static str) {
            if self.fail.is_none() {
                self.fail = Some(why);
            }
            ctx.exit();
        }

        /// Count one event of `kind`; exit once the round is complete.
        fn count(&mut self, ctx: &mut Ctx<Self>, kind: usize) {
            self.stats[kind] += 1;
            if kind >= 7 {
                return; // hooks are not events
            }
            self.events += 1;
            if self.alloc_in_handler {
                std::hint::black_box(Box::new(self.events));
            }
            if self.events >= self.target && self.stats.iter().zip(&self.base).all(|(s, b)| s > b) {
                ctx.exit();
            }
        }
    }

    #[event_machine]
    impl<B: Backend> Mix<B> {
        #[on_start]
        fn started(&mut self, ctx: &mut Ctx<Self>) {
            self.handle = Some(ctx.wake_handle());
        }

        #[on_read(chain, priority = 1)]
        fn link(&mut self, key: Key, ctx: &mut Ctx<Self>) {
            self.count(ctx, 0);
            let mut b = [0u8; 1];
            let Some(r) = self.chain.get(key) else {
                return self.failed(ctx, "chain: stale key dispatched");
            };
            match (&*r).read(&mut b) {
                Ok(1) => {}
                Ok(_) => return self.failed(ctx, "chain: EOF"),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(_) => return self.failed(ctx, "chain: read error"),
            }
            let next = (key.index() as usize + 1) % CHAIN;
            if (&self.writers[next]).write(&b).ok() != Some(1) {
                return self.failed(ctx, "chain: write error");
            }
            let n = self.stats[0];
            if n.is_multiple_of(50) {
                raise(libc::SIGUSR1);
            }
            if n.is_multiple_of(77) {
                raise(second_signal());
            }
            if n.is_multiple_of(10) {
                if let Some(id) = self.oneshot {
                    if ctx.activate(id, Ready::EMPTY).is_err() {
                        return self.failed(ctx, "activate");
                    }
                }
            }
            if n.is_multiple_of(20) {
                if let Some(h) = &self.handle {
                    if h.wake().is_err() {
                        self.failed(ctx, "WakeHandle::wake");
                    }
                }
            }
        }

        #[on_timeout(chain, ms = 60_000)]
        fn link_idle(&mut self, _key: Key, ctx: &mut Ctx<Self>) {
            self.failed(ctx, "chain: an entry timed out");
        }

        #[on_read(idle)]
        fn idle_readable(&mut self, ctx: &mut Ctx<Self>) {
            self.failed(ctx, "idle: readable");
        }

        #[on_timeout(idle, ms = 3)]
        fn idle_timeout(&mut self, ctx: &mut Ctx<Self>, ev: Event) {
            if !ev.ready.is_timeout() {
                return self.failed(ctx, "idle: not a timeout");
            }
            self.count(ctx, 1);
        }

        #[on_timer(1, priority = 2)]
        fn periodic(&mut self, ctx: &mut Ctx<Self>) {
            self.count(ctx, 2);
        }

        #[on_timer(2, once, priority = 0)]
        fn oneshot(&mut self, ctx: &mut Ctx<Self>, ev: Event) {
            self.oneshot = Some(ev.source);
            self.count(ctx, 3);
            if ev.ready.is_timeout() && ctx.reset_timer(ev.source).is_err() {
                self.failed(ctx, "reset_timer");
            }
        }

        #[on_signal(SIGUSR1)]
        fn usr1(&mut self, ctx: &mut Ctx<Self>) {
            self.count(ctx, 4);
        }

        #[cfg_attr(
            any(
                target_os = "linux",
                target_os = "android",
                target_os = "illumos",
                target_os = "solaris"
            ),
            on_signal(SIGRTMIN + 2, priority = 0)
        )]
        #[cfg_attr(
            not(any(
                target_os = "linux",
                target_os = "android",
                target_os = "illumos",
                target_os = "solaris"
            )),
            on_signal(SIGUSR2, priority = 0)
        )]
        fn rt(&mut self, ctx: &mut Ctx<Self>) {
            self.count(ctx, 5);
        }

        #[on_wake]
        fn woken(&mut self, ctx: &mut Ctx<Self>) {
            self.count(ctx, 6);
        }

        #[before_wait]
        fn before(&mut self, ctx: &mut Ctx<Self>) {
            self.count(ctx, 7);
        }

        #[after_wait]
        fn after(&mut self, ctx: &mut Ctx<Self>) {
            self.count(ctx, 8);
        }
    }

    /// The second signal the machine watches (`rt`): a real-time one where the system has
    /// real-time signals, `SIGUSR2` elsewhere.
    #[cfg(any(
        target_os = "linux",
        target_os = "android",
        target_os = "illumos",
        target_os = "solaris"
    ))]
    fn second_signal() -> i32 {
        libc::SIGRTMIN() + 2
    }

    /// The second signal the machine watches (`rt`): a real-time one where the system has
    /// real-time signals, `SIGUSR2` elsewhere.
    #[cfg(not(any(
        target_os = "linux",
        target_os = "android",
        target_os = "illumos",
        target_os = "solaris"
    )))]
    fn second_signal() -> i32 {
        libc::SIGUSR2
    }

    fn raise(signo: i32) {
        // SAFETY: the signals raised here are watched by the loop under test; raise(3) runs
        // its handler, which only bumps an atomic and writes the wake fd.
        unsafe { libc::raise(signo) };
    }

    // ---------------------------------------------------------------------------------------
    // The cases
    // ---------------------------------------------------------------------------------------

    /// Dispatched events in the measured window.
    const EVENTS: u64 = 120_000;
    const WARMUP: u64 = 5_000;
    const SELF_CHECK_EVENTS: u64 = 3_000;

    type Round = counting_alloc::Round<KINDS>;

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

    /// Build the loop, warm it up, and measure one round of `events` dispatches.
    fn measure<B: Backend>(events: u64, alloc_in_handler: bool) -> Result<Round, String> {
        let (machine, readers) = Mix::<B>::new().map_err(|e| format!("socketpairs: {e}"))?;
        let mut el = machine.event_loop().map_err(|e| format!("build: {e}"))?;
        {
            let (m, ctx) = el.parts();
            for r in readers {
                m.chain.insert(ctx, r).map_err(|e| format!("insert: {e}"))?;
            }
        }
        // Two bytes travel the chain.
        for i in [0, CHAIN / 2] {
            (&el.machine().writers[i])
                .write_all(&[1])
                .map_err(|e| e.to_string())?;
        }
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
        let r = run_round(&mut el);
        let elapsed = t0.elapsed();
        let (a1, d1) = counters();
        r?;
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

    fn alloc_free<B: Backend>() -> Result<String, String> {
        let r = measure::<B>(EVENTS, false)?;
        counting_alloc::judge_alloc_free("alloc_free_macro", B::NAME, &r, &KIND_NAMES, EVENTS)
    }

    fn self_check<B: Backend>() -> Result<String, String> {
        let r = measure::<B>(SELF_CHECK_EVENTS, true)?;
        counting_alloc::judge_self_check(B::NAME, &r)
    }

    type CaseFn = fn() -> Result<String, String>;
    use cases::Case;

    /// The cases that do not depend on a backend (none here).
    const FIRST_CASES: [Case; 0] = [];

    /// One backend's two cases (`alloc_free_macro_<name>`, `alloc_free_macro_self_check_<name>`), and the
    /// table of every backend this target has: one line per backend.
    macro_rules! backend_cases {
        ($($(#[$cfg:meta])* $name:literal => $backend:ty;)*) => {
            /// Every case, in order: `std_check` where there is one, then per backend.
            fn cases() -> Vec<Case> {
                let mut cases: Vec<Case> = FIRST_CASES.to_vec();
                $(
                    $(#[$cfg])*
                    cases.extend_from_slice(&[
                        (concat!("alloc_free_macro_", $name), alloc_free::<$backend> as CaseFn),
                        (concat!("alloc_free_macro_self_check_", $name), self_check::<$backend>),
                    ]);
                )*
                cases
            }
        };
    }

    backend_cases! {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        "epoll" => evloop::Epoll;
        #[cfg(target_os = "linux")]
        "uring" => evloop::Uring;
        "poll" => evloop::Poll;
        "select" => evloop::Select;
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
        "kqueue" => evloop::Kqueue;
        #[cfg(any(target_os = "illumos", target_os = "solaris"))]
        "event_ports" => evloop::EventPorts;
        #[cfg(any(target_os = "illumos", target_os = "solaris"))]
        "devpoll" => evloop::DevPoll;
    }

    pub fn main() {
        cases::main(cases());
    }
}

fn main() {
    #[cfg(unix)]
    unix::main();
    #[cfg(not(unix))]
    println!("alloc_free_macro: SKIPPED (Unix only): nothing ran");
}
