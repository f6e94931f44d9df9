//! The pipe-chain benchmark (protocol 1 of bench-protocol.md) on evloop.
//!
//! `--api trait` (the default) is the machine written by hand against
//! `evloop::Machine`; `-b epoll|poll|select` picks the backend by type parameter.

use std::marker::PhantomData;
use std::os::fd::{OwnedFd, RawFd};
use std::time::Instant;

use evloop::{Backend, Ctx, Event, EventLoop, Machine, SourceId, Token, Watch};
use evloop_bench::{write_byte, Api, Options, Report, XorShift};

/// The benchmark's machine: one read source per pipe; the token is the pipe's index.
struct Chain<B> {
    fds: Vec<(RawFd, RawFd)>,
    ids: Vec<SourceId>,
    writes_left: usize,
    reads: usize,
    failures: u64,
    fired: u64,
    timeouts: bool,
    rng: XorShift,
    _b: PhantomData<fn() -> B>,
}

impl<B: Backend> Machine for Chain<B> {
    type Backend = B;

    // The handler every implementation shares: read one byte; if writes are left,
    // write one byte into the next pipe; with -t re-arm this watcher's timeout. Written
    // as lean as the C versions (raw read/write, no modulo).
    #[inline]
    fn dispatch(&mut self, ctx: &mut Ctx<Self>, ev: Event) {
        if ev.ready.is_timeout() {
            self.fired += 1;
        }
        let idx = ev.token.0 as usize;
        let mut byte = 0u8;
        // SAFETY: reads one byte into a valid local; the fd is open for the run.
        let r = unsafe { libc::read(self.fds[idx].0, (&mut byte as *mut u8).cast(), 1) };
        if r != 1 {
            if r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EAGAIN) {
                self.failures += 1;
            }
            return;
        }
        self.reads += 1;
        if self.writes_left > 0 {
            self.writes_left -= 1;
            let next = if idx + 1 == self.fds.len() {
                0
            } else {
                idx + 1
            };
            // SAFETY: writes one byte from a valid local; the fd is open for the run.
            if unsafe { libc::write(self.fds[next].1, (&byte as *const u8).cast(), 1) } != 1 {
                self.failures += 1;
                self.reads += 1; // one byte fewer will ever arrive
            }
        }
        if self.timeouts {
            let t = self.rng.timeout();
            let _ = ctx.set_timeout(ev.source, Some(t));
        }
    }
}

fn run<B: Backend>(opts: &Options, pairs: &[(OwnedFd, OwnedFd)]) -> Report {
    let n = opts.pipes;
    let chain = Chain::<B> {
        fds: evloop_bench::raw_fds(pairs),
        ids: Vec::with_capacity(n),
        writes_left: 0,
        reads: 0,
        failures: 0,
        fired: 0,
        timeouts: opts.timeouts,
        rng: XorShift::default(),
        _b: PhantomData,
    };
    let mut el = EventLoop::<Chain<B>>::builder()
        .sources(n + 16)
        .timers(n + 16)
        .events(1024)
        .build(chain)
        .expect("build loop");
    {
        let (m, ctx) = el.parts();
        for (i, &(r, _)) in m.fds.iter().enumerate() {
            let id = ctx
                .register_raw(r, Token(i as u64), Watch::read())
                .expect("register");
            m.ids.push(id);
        }
    }
    let mut report = Report::new(opts.iters);
    for _ in 0..opts.iters {
        // setup: stop and start every watcher (with -t, a fresh random timeout), then one
        // non-blocking pass so lazily applied changes are charged here.
        let t0 = Instant::now();
        {
            let (m, ctx) = el.parts();
            for &id in &m.ids {
                ctx.stop(id).expect("stop");
                ctx.start(id).expect("start");
                if m.timeouts {
                    ctx.set_timeout(id, Some(m.rng.timeout())).expect("timeout");
                }
            }
        }
        el.run_nowait().expect("nowait");
        let setup = t0.elapsed();

        let t1 = Instant::now();
        {
            let m = el.machine_mut();
            m.reads = 0;
            m.writes_left = opts.writes;
            for i in opts.active_indices() {
                if !write_byte(m.fds[i].1) {
                    m.failures += 1;
                }
            }
        }
        let expect = opts.events_per_run();
        while el.machine().reads < expect {
            el.run_once().expect("run_once");
        }
        let run = t1.elapsed();
        report.record(setup, run);
    }
    let m = el.machine();
    report.failures = m.failures;
    report.timeouts_fired = m.fired;
    report
}

fn main() {
    let opts = Options::from_env();
    if let Api::Macro = opts.api {
        evloop_bench::usage_error("--api macro needs #[event_machine], which is not written yet");
    }
    if let Err(e) = evloop_bench::raise_nofile_limit() {
        eprintln!("warning: cannot raise RLIMIT_NOFILE: {e}");
    }
    let pairs = evloop_bench::socketpairs(opts.pipes).expect("socketpairs");
    let report = match opts.backend.as_str() {
        "epoll" => run::<evloop::Epoll>(&opts, &pairs),
        "poll" => run::<evloop::Poll>(&opts, &pairs),
        "select" => run::<evloop::Select>(&opts, &pairs),
        other => {
            evloop_bench::usage_error(&format!("unknown backend `{other}` (epoll, poll, select)"))
        }
    };
    let backend = opts.backend.clone();
    std::process::exit(report.print("evloop", &backend, &opts));
}
