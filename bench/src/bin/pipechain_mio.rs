//! Pipe-chain benchmark on mio 1.x (`impl=mio backend=epoll`).
//!
//! Written the way a mio user would: raw descriptors registered through
//! [`mio::unix::SourceFd`], and since mio is edge-triggered, every readiness event is
//! drained until `WouldBlock`; each byte read counts as one event and forwards one byte, so
//! the work matches the level-triggered handlers of the other implementations. mio has no
//! timers, so `-t` uses a `BinaryHeap` of `(deadline, pipe, generation)` with lazy deletion,
//! re-armed (pushed again) on every event, and the poll timeout is taken from its top.

// Unix only so far (Unix sockets, signals, or the Unix-only core modules); on Windows the
// binary runs nothing.
#[cfg(unix)]
mod unix {
    #[allow(unused_imports)]
    use super::*;

    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    use std::io;
    use std::os::fd::RawFd;
    use std::time::{Duration, Instant};

    use evloop_bench::{raise_nofile_limit, raw_fds, read_byte, socketpairs, write_byte};
    use evloop_bench::{Options, ReadOutcome, Report, XorShift};
    use mio::unix::SourceFd;
    use mio::{Events, Interest, Poll, Token};

    /// Per-pipe timeouts for `-t`: a min-heap with lazy deletion.
    struct Timers {
        heap: BinaryHeap<Reverse<(Instant, usize, u64)>>,
        /// Current generation of each pipe's timer; heap entries with another one are stale.
        generation: Vec<u64>,
        /// Current deadline of each pipe, used to rebuild the heap when stale entries pile up.
        deadline: Vec<Instant>,
        /// Whether each pipe's timer is armed (not yet fired).
        armed: Vec<bool>,
        rng: XorShift,
        fired: u64,
    }

    impl Timers {
        fn new(n: usize) -> Timers {
            Timers {
                heap: BinaryHeap::with_capacity(4 * n + 64),
                generation: vec![0; n],
                deadline: vec![Instant::now(); n],
                armed: vec![false; n],
                rng: XorShift::default(),
                fired: 0,
            }
        }

        /// (Re-)arms pipe `idx` with a fresh random 60..120 s timeout from `now`.
        fn arm(&mut self, idx: usize, now: Instant) {
            let when = now + self.rng.timeout();
            self.generation[idx] += 1;
            self.deadline[idx] = when;
            self.armed[idx] = true;
            if self.heap.len() >= 4 * self.generation.len() + 64 {
                // Too many stale entries: rebuild from the live deadlines (amortised O(1)).
                let heap = std::mem::take(&mut self.heap);
                let mut v = heap.into_vec();
                v.clear();
                v.extend(
                    self.deadline
                        .iter()
                        .zip(&self.generation)
                        .enumerate()
                        .filter(|&(i, _)| self.armed[i])
                        .map(|(i, (&d, &g))| Reverse((d, i, g))),
                );
                self.heap = BinaryHeap::from(v);
            } else {
                self.heap.push(Reverse((when, idx, self.generation[idx])));
            }
        }

        /// Drops stale entries from the top and returns the poll timeout to the nearest live
        /// deadline.
        fn poll_timeout(&mut self, now: Instant) -> Option<Duration> {
            while let Some(Reverse((when, idx, generation))) = self.heap.peek().copied() {
                if self.generation[idx] != generation {
                    self.heap.pop();
                    continue;
                }
                return Some(when.saturating_duration_since(now));
            }
            None
        }

        /// Counts (and disarms) every live timer whose deadline has passed.
        fn expire(&mut self, now: Instant) {
            while let Some(Reverse((when, idx, generation))) = self.heap.peek().copied() {
                if self.generation[idx] != generation {
                    self.heap.pop();
                } else if when <= now {
                    self.heap.pop();
                    self.generation[idx] += 1;
                    self.armed[idx] = false;
                    self.fired += 1;
                } else {
                    break;
                }
            }
        }
    }

    /// Benchmark state shared by the read handler.
    struct Chain {
        fds: Vec<(RawFd, RawFd)>,
        writes_left: usize,
        /// Bytes read during the current run.
        count: usize,
        /// Bytes the current run expects to read (reduced by failed writes).
        expected: usize,
        failures: u64,
        timers: Option<Timers>,
        /// Time read once after each poll returned (one clock read per loop pass).
        now: Instant,
    }

    impl Chain {
        /// Handles a readiness event on pipe `idx`: drain it until `WouldBlock`, one byte (one
        /// protocol event) at a time.
        fn on_readable(&mut self, idx: usize, now: Instant) {
            let n = self.fds.len();
            loop {
                match read_byte(self.fds[idx].0) {
                    ReadOutcome::Byte => {}
                    ReadOutcome::WouldBlock => return,
                    ReadOutcome::Eof | ReadOutcome::Failed => {
                        self.failures += 1;
                        return;
                    }
                }
                self.count += 1;
                if self.writes_left > 0 {
                    let next = if idx + 1 == n { 0 } else { idx + 1 };
                    if !write_byte(self.fds[next].1) {
                        self.failures += 1;
                        self.expected -= 1;
                    }
                    self.writes_left -= 1;
                }
                if let Some(t) = self.timers.as_mut() {
                    t.arm(idx, now);
                }
            }
        }

        /// One `poll` call with the timer-derived timeout, then dispatch of its events.
        fn turn(
            &mut self,
            poll: &mut Poll,
            events: &mut Events,
            timeout: Option<Duration>,
        ) -> io::Result<()> {
            poll.poll(events, timeout)?;
            let now = Instant::now();
            self.now = now;
            for ev in events.iter() {
                self.on_readable(ev.token().0, now);
            }
            if let Some(t) = self.timers.as_mut() {
                t.expire(now);
            }
            Ok(())
        }
    }

    pub fn main() {
        let opts = Options::from_env();
        if opts.backend != evloop_bench::NATIVE_BACKEND {
            evloop_bench::usage_error(&format!(
                "pipechain-mio supports only -b {} (mio uses the platform's mechanism)",
                evloop_bench::NATIVE_BACKEND
            ));
        }
        if let Err(e) = raise_nofile_limit() {
            eprintln!("warning: cannot raise RLIMIT_NOFILE: {e}");
        }
        let code = match run(&opts) {
            Ok(report) => report.print("mio", evloop_bench::NATIVE_BACKEND, &opts),
            Err(e) => {
                eprintln!("pipechain-mio: {e}");
                1
            }
        };
        std::process::exit(code);
    }

    fn run(opts: &Options) -> io::Result<Report> {
        let n = opts.pipes;
        let pairs = socketpairs(n)?;
        let mut poll = Poll::new()?;
        let mut events = Events::with_capacity(1024);
        let mut chain = Chain {
            fds: raw_fds(&pairs),
            writes_left: 0,
            count: 0,
            expected: 0,
            failures: 0,
            timers: opts.timeouts.then(|| Timers::new(n)),
            now: Instant::now(),
        };
        let registry = poll.registry();
        for (i, &(rfd, _)) in chain.fds.iter().enumerate() {
            registry.register(&mut SourceFd(&rfd), Token(i), Interest::READABLE)?;
        }
        let mut report = Report::new(opts.iters);

        for _ in 0..opts.iters {
            // Setup: delete and re-add every watcher (with a fresh timeout), then one
            // non-blocking poll.
            let t0 = Instant::now();
            for (i, &(rfd, _)) in chain.fds.iter().enumerate() {
                let registry = poll.registry();
                registry.deregister(&mut SourceFd(&rfd))?;
                registry.register(&mut SourceFd(&rfd), Token(i), Interest::READABLE)?;
            }
            if let Some(t) = chain.timers.as_mut() {
                for i in 0..n {
                    t.arm(i, t0);
                }
            }
            chain.count = 0;
            chain.expected = 0;
            chain.turn(&mut poll, &mut events, Some(Duration::ZERO))?;
            let t1 = Instant::now();

            // Run: one byte into `a` evenly spaced pipes, then poll until `a + w` bytes are read.
            chain.count = 0;
            chain.expected = opts.events_per_run();
            for i in opts.active_indices() {
                if !write_byte(chain.fds[i].1) {
                    chain.failures += 1;
                    chain.expected -= 1;
                }
            }
            chain.writes_left = opts.writes;
            while chain.count < chain.expected {
                // The timeout is taken from the time cached after the previous poll, as
                // libev and libevent do.
                let now = chain.now;
                let timeout = chain.timers.as_mut().and_then(|t| t.poll_timeout(now));
                chain.turn(&mut poll, &mut events, timeout)?;
            }
            let t2 = Instant::now();
            report.record(t1 - t0, t2 - t1);
        }
        report.failures = chain.failures;
        report.timeouts_fired = chain.timers.as_ref().map_or(0, |t| t.fired);
        Ok(report)
    }
}

fn main() {
    #[cfg(unix)]
    unix::main();
    #[cfg(not(unix))]
    println!("pipechain_mio: SKIPPED (Unix only): nothing ran");
}
