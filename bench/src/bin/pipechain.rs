//! The pipe-chain benchmark (described in `bench/README.md`) on evloop.
//!
//! Three machines run the same handler:
//! * `--api trait` (the default): written by hand against `evloop::Machine`, keeping
//!   the read ends in a `Slab` and dispatching through `Source::entry`, which is exactly
//!   the shape `#[event_machine]` generates: comparing it with `--api macro` measures
//!   what the macro costs, nothing else;
//! * `--api macro`: the same machine declared with `#[event_machine]`;
//! * `--api raw`: by hand with no collection at all (the token is the pipe index): the
//!   leanest form, to show what a `Slab` costs;
//! * `--api completion`: `raw` on the backend's completion I/O (`-b uring`): both ends
//!   of every socketpair registered with `Interest::COMPLETION`, each byte taken with
//!   `recv_take` and forwarded with `send` (one send buffer per write end, reused), so
//!   no `read` or `write` call is made: the kernel does both inside the loop's wait.
//!
//! `-b epoll|uring|poll|select` picks the backend, by type parameter.

// Unix only so far (Unix sockets, signals, or the Unix-only core modules); on Windows the
// binary runs nothing.
#[cfg(unix)]
mod unix {
    #[allow(unused_imports)]
    use super::*;

    use std::marker::PhantomData;
    use std::os::fd::{AsRawFd, OwnedFd, RawFd};
    use std::time::Instant;

    use evloop::prelude::*;
    use evloop_bench::{write_byte, Api, Options, Report, XorShift};

    /// Capacity of the pipe slabs: the largest n that fits the fd limit is 9980.
    const MAX_PIPES: usize = 10_000;

    /// What every variant shares: the write ends and the counters.
    struct Common {
        wfds: Vec<RawFd>,
        writes_left: usize,
        reads: usize,
        failures: u64,
        fired: u64,
        timeouts: bool,
        rng: XorShift,
    }

    impl Common {
        /// The handler every implementation shares: read one byte; if writes are left,
        /// write one byte into the next pipe; with -t re-arm this watcher's timeout. Written
        /// as lean as the C versions (raw read/write, no modulo).
        #[inline(always)]
        fn on_readable<M: Machine>(&mut self, idx: usize, rfd: RawFd, ctx: &mut Ctx<M>, ev: Event) {
            if ev.ready.is_timeout() {
                self.fired += 1;
            }
            let mut byte = 0u8;
            // SAFETY: reads one byte into a valid local; the fd is open for the run.
            let r = unsafe { libc::read(rfd, (&mut byte as *mut u8).cast(), 1) };
            if r != 1 {
                if r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EAGAIN) {
                    self.failures += 1;
                }
                return;
            }
            self.reads += 1;
            if self.writes_left > 0 {
                self.writes_left -= 1;
                let next = if idx + 1 == self.wfds.len() {
                    0
                } else {
                    idx + 1
                };
                // SAFETY: writes one byte from a valid local; the fd is open for the run.
                if unsafe { libc::write(self.wfds[next], (&byte as *const u8).cast(), 1) } != 1 {
                    self.failures += 1;
                    self.reads += 1; // one byte fewer will ever arrive
                }
            }
            if self.timeouts {
                let t = self.rng.timeout();
                let _ = ctx.set_idle_timeout(ev.source, Some(t));
            }
        }
    }

    /// How the driver reaches into a variant.
    trait Variant: Machine {
        fn new(common: Common) -> Self;
        fn common(&mut self) -> &mut Common;
        /// Register the read ends; return their sources in pipe order.
        fn add_pipes(&mut self, ctx: &mut Ctx<Self>, reads: Vec<OwnedFd>) -> Vec<SourceId>;
        /// Loop sources per pipe (the completion variant registers both ends).
        const SOURCES_PER_PIPE: usize = 1;
    }

    /// `Variant` for a machine that keeps its read ends in `pipes: Slab<OwnedFd, _>` (the
    /// trait and macro variants, which must differ in nothing but how they are declared).
    macro_rules! slab_variant {
        ($chain:ident) => {
            impl<B: Backend> Variant for $chain<B> {
                fn new(c: Common) -> Self {
                    $chain {
                        c,
                        pipes: Slab::with_capacity(MAX_PIPES),
                        _b: PhantomData,
                    }
                }
                fn common(&mut self) -> &mut Common {
                    &mut self.c
                }
                fn add_pipes(&mut self, ctx: &mut Ctx<Self>, reads: Vec<OwnedFd>) -> Vec<SourceId> {
                    reads
                        .into_iter()
                        .map(|fd| {
                            let key = self.pipes.insert(ctx, fd).expect("insert");
                            self.pipes.source(key).expect("live")
                        })
                        .collect()
                }
            }
        };
    }

    /// `--api raw`: by hand, the token is the pipe index.
    mod raw {
        use super::*;

        pub struct Chain<B> {
            pub c: Common,
            pub rfds: Vec<OwnedFd>,
            pub _b: PhantomData<fn() -> B>,
        }

        impl<B: Backend> Machine for Chain<B> {
            type Backend = B;

            #[inline]
            fn dispatch(&mut self, ctx: &mut Ctx<Self>, ev: Event) {
                let idx = ev.token.0 as usize;
                let rfd = self.rfds[idx].as_raw_fd();
                self.c.on_readable(idx, rfd, ctx, ev);
            }
        }

        impl<B: Backend> Variant for Chain<B> {
            fn new(c: Common) -> Self {
                Chain {
                    c,
                    rfds: Vec::new(),
                    _b: PhantomData,
                }
            }
            fn common(&mut self) -> &mut Common {
                &mut self.c
            }
            fn add_pipes(&mut self, ctx: &mut Ctx<Self>, reads: Vec<OwnedFd>) -> Vec<SourceId> {
                self.rfds = reads;
                self.rfds
                    .iter()
                    .enumerate()
                    .map(|(i, fd)| {
                        ctx.add_io(fd, Token(i as u64), Watch::read())
                            .expect("register")
                    })
                    .collect()
            }
        }
    }

    /// `--api completion`: `raw` with the backend doing the I/O.
    mod completion {
        use super::*;

        pub struct Chain<B> {
            pub c: Common,
            pub rfds: Vec<OwnedFd>,
            /// Per write end: its source, its send buffer between sends, and bytes owed
            /// while a send is in flight.
            pub wids: Vec<SourceId>,
            pub spare: Vec<Vec<u8>>,
            pub owed: Vec<u32>,
            pub _b: PhantomData<fn() -> B>,
        }

        impl<B: Backend> Chain<B> {
            /// Send `k` bytes to write end `w` now, or owe them until its send finishes.
            fn forward(&mut self, ctx: &mut Ctx<Self>, w: usize, k: u32) {
                let mut buf = std::mem::take(&mut self.spare[w]);
                if buf.capacity() == 0 {
                    self.owed[w] += k; // a send is in flight: after it
                    return;
                }
                buf.clear();
                buf.resize(k as usize, 1);
                if let Err((buf, _)) = ctx.send(self.wids[w], buf) {
                    self.c.failures += 1;
                    self.spare[w] = buf;
                }
            }
        }

        impl<B: Backend> Machine for Chain<B> {
            type Backend = B;

            #[inline]
            fn dispatch(&mut self, ctx: &mut Ctx<Self>, ev: Event) {
                let n = self.rfds.len();
                let idx = ev.token.0 as usize;
                if idx >= n {
                    // A write end's send finished: its buffer comes back, and what it owes
                    // goes out.
                    let w = idx - n;
                    if let Some((buf, r)) = ctx.send_done(ev.source) {
                        if r.is_err() {
                            self.c.failures += 1;
                        }
                        self.spare[w] = buf;
                        let k = std::mem::take(&mut self.owed[w]);
                        if k > 0 {
                            self.forward(ctx, w, k);
                        }
                    }
                    return;
                }
                let c = &mut self.c;
                if ev.ready.is_timeout() {
                    c.fired += 1;
                }
                let mut bytes = [0u8; 64];
                let got = match ctx.recv_take(ev.source, &mut bytes) {
                    Ok(r) => r.len,
                    Err(_) => {
                        c.failures += 1;
                        0
                    }
                };
                let mut k = 0;
                for _ in 0..got {
                    c.reads += 1;
                    if c.writes_left > 0 {
                        c.writes_left -= 1;
                        k += 1;
                    }
                }
                if k > 0 {
                    let next = if idx + 1 == n { 0 } else { idx + 1 };
                    self.forward(ctx, next, k);
                }
                if self.c.timeouts && got > 0 {
                    let t = self.c.rng.timeout();
                    let _ = ctx.set_idle_timeout(ev.source, Some(t));
                }
            }
        }

        impl<B: Backend> Variant for Chain<B> {
            const SOURCES_PER_PIPE: usize = 2;

            fn new(c: Common) -> Self {
                Chain {
                    c,
                    rfds: Vec::new(),
                    wids: Vec::new(),
                    spare: Vec::new(),
                    owed: Vec::new(),
                    _b: PhantomData,
                }
            }
            fn common(&mut self) -> &mut Common {
                &mut self.c
            }
            fn add_pipes(&mut self, ctx: &mut Ctx<Self>, reads: Vec<OwnedFd>) -> Vec<SourceId> {
                assert!(
                    ctx.completion_io(),
                    "--api completion needs a backend with completion I/O (-b uring)"
                );
                let n = reads.len();
                let read = Watch::new(Interest::READ | Interest::COMPLETION);
                let write = Watch::new(Interest::WRITE | Interest::COMPLETION);
                for (i, &w) in self.c.wfds.iter().enumerate() {
                    let id = ctx
                        .add_io_raw(w, Token((n + i) as u64), write)
                        .expect("register a write end");
                    self.wids.push(id);
                    self.spare.push(Vec::with_capacity(64));
                    self.owed.push(0);
                }
                self.rfds = reads;
                self.rfds
                    .iter()
                    .enumerate()
                    .map(|(i, fd)| ctx.add_io(fd, Token(i as u64), read).expect("register"))
                    .collect()
            }
        }
    }

    /// `--api trait`: by hand, in the shape `#[event_machine]` generates.
    mod by_trait {
        use super::*;

        const PIPES: u16 = 1;

        pub struct Chain<B> {
            pub c: Common,
            pub pipes: Slab<OwnedFd>,
            pub _b: PhantomData<fn() -> B>,
        }

        impl<B: Backend> Chain<B> {
            #[inline(always)]
            fn readable(&mut self, key: Key, ctx: &mut Ctx<Self>, ev: Event) {
                let rfd = self.pipes.get(key).map_or(-1, |fd| fd.as_raw_fd());
                self.c.on_readable(key.index() as usize, rfd, ctx, ev);
            }
        }

        impl<B: Backend> Machine for Chain<B> {
            type Backend = B;

            fn setup(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
                Source::attach(&mut self.pipes, ctx, PIPES, Watch::read())
            }

            #[inline]
            fn dispatch(&mut self, ctx: &mut Ctx<Self>, ev: Event) {
                if ev.token.tag() == PIPES {
                    if let Some(key) = Source::entry(&self.pipes, ev.token) {
                        if ev.ready.intersects(
                            Ready::READABLE
                                | Ready::READ_CLOSED
                                | Ready::HUP
                                | Ready::ERROR
                                | Ready::PRIORITY,
                        ) {
                            self.readable(key, ctx, ev);
                        }
                    }
                }
            }
        }

        slab_variant!(Chain);
    }

    /// `--api macro`: the same machine, declared.
    mod by_macro {
        use super::*;

        #[event_machine(backend = B, sources = 10_016, timers = 10_016, events = 1024)]
        pub struct Chain<B: Backend> {
            pub c: Common,
            pub pipes: Slab<OwnedFd>,
            pub _b: PhantomData<fn() -> B>,
        }

        #[event_machine]
        impl<B: Backend> Chain<B> {
            #[on_read(pipes)]
            fn readable(&mut self, key: Key, ctx: &mut Ctx<Self>, ev: Event) {
                let rfd = self.pipes.get(key).map_or(-1, |fd| fd.as_raw_fd());
                self.c.on_readable(key.index() as usize, rfd, ctx, ev);
            }
        }

        slab_variant!(Chain);
    }

    fn run<V: Variant>(opts: &Options) -> Report {
        let n = opts.pipes;
        let pairs = evloop_bench::socketpairs(n).expect("socketpairs");
        let (reads, writes): (Vec<OwnedFd>, Vec<OwnedFd>) = pairs.into_iter().unzip();
        let common = Common {
            wfds: writes.iter().map(|fd| fd.as_raw_fd()).collect(),
            writes_left: 0,
            reads: 0,
            failures: 0,
            fired: 0,
            timeouts: opts.timeouts,
            rng: XorShift::default(),
        };
        let mut el = EventLoop::<V>::builder()
            .sources(V::SOURCES_PER_PIPE * n + 16)
            .timers(n + 16)
            .events(1024)
            .build(V::new(common))
            .expect("build loop");
        let ids = {
            let (m, ctx) = el.parts();
            m.add_pipes(ctx, reads)
        };
        let mut report = Report::new(opts.iters);
        for _ in 0..opts.iters {
            // setup: stop and start every watcher (with -t, a fresh random timeout), then one
            // non-blocking pass so lazily applied changes are charged here.
            let t0 = Instant::now();
            {
                let (m, ctx) = el.parts();
                let c = m.common();
                for &id in &ids {
                    ctx.stop(id).expect("stop");
                    ctx.start(id).expect("start");
                    if c.timeouts {
                        ctx.set_idle_timeout(id, Some(c.rng.timeout()))
                            .expect("timeout");
                    }
                }
            }
            el.run_nowait().expect("nowait");
            let setup = t0.elapsed();

            let t1 = Instant::now();
            {
                let c = el.machine_mut().common();
                c.reads = 0;
                c.writes_left = opts.writes;
                for i in opts.active_indices() {
                    if !write_byte(c.wfds[i]) {
                        c.failures += 1;
                    }
                }
            }
            let expect = opts.events_per_run();
            while el.machine_mut().common().reads < expect {
                el.run_once().expect("run_once");
            }
            let run = t1.elapsed();
            report.record(setup, run);
        }
        let c = el.machine_mut().common();
        report.failures = c.failures;
        report.timeouts_fired = c.fired;
        drop(writes);
        report
    }

    fn run_api<B: Backend>(opts: &Options) -> Report {
        match opts.api {
            Api::Trait => run::<by_trait::Chain<B>>(opts),
            Api::Macro => run::<by_macro::Chain<B>>(opts),
            Api::Raw => run::<raw::Chain<B>>(opts),
            Api::Completion => run::<completion::Chain<B>>(opts),
        }
    }

    pub fn main() {
        let opts = Options::from_env();
        if opts.pipes > MAX_PIPES {
            evloop_bench::usage_error(&format!("-n is at most {MAX_PIPES}"));
        }
        if let Err(e) = evloop_bench::raise_nofile_limit() {
            eprintln!("warning: cannot raise RLIMIT_NOFILE: {e}");
        }
        let report = match opts.backend.as_str() {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            "epoll" => run_api::<evloop::Epoll>(&opts),
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
            "kqueue" => run_api::<evloop::Kqueue>(&opts),
            #[cfg(any(target_os = "illumos", target_os = "solaris"))]
            "event_ports" => run_api::<evloop::EventPorts>(&opts),
            #[cfg(any(target_os = "illumos", target_os = "solaris"))]
            "devpoll" => run_api::<evloop::DevPoll>(&opts),
            #[cfg(target_os = "linux")]
            "uring" => run_api::<evloop::Uring>(&opts),
            "poll" => run_api::<evloop::Poll>(&opts),
            "select" => run_api::<evloop::Select>(&opts),
            other => evloop_bench::usage_error(&format!(
                "unknown backend `{other}` (here: {}, poll, select)",
                evloop_bench::NATIVE_BACKEND
            )),
        };
        let backend = opts.backend.clone();
        std::process::exit(report.print("evloop", &backend, &opts));
    }
}

fn main() {
    #[cfg(unix)]
    unix::main();
    #[cfg(not(unix))]
    println!("pipechain: SKIPPED (Unix only): nothing ran");
}
