//! Subscribing and unsubscribing a signal over and over while another process floods
//! this one with it: the signal registry's handler must never read a previous action
//! while it is rewritten, never lose a delivery, and give the disposition back.
//!
//! Each case runs in a process of its own (this program re-executes itself with
//! `EVLOOP_CHURN_CASE=<case>`), so a crash or a death by a signal's default action shows
//! up as that case failing. In the case's process:
//!
//! * a *previous* handler is installed first: one of two counting handlers (a
//!   one-argument one and an `SA_SIGINFO` one that checks its `siginfo_t`), alternated
//!   between rounds so that every fresh install records a different previous action;
//! * a churn thread (with the signal blocked, so that every handler runs on the main
//!   thread, concurrently with the churn) loops: set the previous handler, build an
//!   `EventLoop`, `add_signal`, run it until the signal is dispatched at least once,
//!   then `ctx.remove` it and drop it (or just drop it: every other round);
//! * a forked child sends the signal to this process as fast as it can (`kill`, or for
//!   a real-time signal `sigqueue`, which refuses rather than coalesces when the queue
//!   is full), for at most `STORM_FOR` and `MAX_SENT` successful calls (longer, up to
//!   `STORM_UNTIL_CHURNED`, until a churn loop has dispatched it once), and reports how
//!   many succeeded.
//!
//! What is asserted, once the sender has exited and every pending signal was delivered:
//!
//! * every delivery runs either the previous handler directly, or our handler, which
//!   counts it for the subscribed loop (if any) and chains to the previous handler exactly
//!   once. So the loops' total (what they dispatched) is at most the previous handler's
//!   count, and the previous handler never sees a bad `siginfo_t`;
//! * for a real-time signal, which the kernel queues instead of coalescing, every
//!   successful `sigqueue` is exactly one delivery: the previous handler's count equals the
//!   number sent. A delivery dropped (our handler ran but did not chain) fails this;
//! * for a standard signal (coalesced while pending), `1 <= count <= sent`;
//! * the final disposition is the previous handler installed last;
//! * the process is never killed (the parent sees the case exit successfully).
//!
//! `harness = false`: a plain program printing one line per case and a final
//! `N passed, N failed`; it exits non-zero on failure. Arguments: `--list`, or words
//! selecting the cases whose name contains one of them.

// Unix signals: the whole test is Unix only (Windows's console events are tested apart).
#[cfg(unix)]
mod unix {

    use std::ffi::c_void;
    use std::mem::MaybeUninit;
    use std::process::{Command, Stdio};
    use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
    use std::sync::mpsc;
    use std::thread;
    use std::time::{Duration, Instant};

    use evloop_core::{realtime_signals, Ctx, DefaultBackend, Event, EventLoop, Machine, Token};

    /// How long the sender floods at most.
    const STORM_FOR: Duration = Duration::from_millis(1500);
    /// How many successful sends the sender makes at most.
    const MAX_SENT: u64 = 1_000_000;
    /// How long the sender keeps flooding past `STORM_FOR` and `MAX_SENT` while no loop of
    /// the churn thread has dispatched the signal yet (a busy machine can hold the churn
    /// thread off for the whole storm: then there was no churn to test).
    const STORM_UNTIL_CHURNED: Duration = Duration::from_secs(8);
    /// A case's process that takes longer than this is killed and the case fails.
    const CASE_DEADLINE: Duration = Duration::from_secs(60);
    /// How long a round may wait for its first dispatch while the storm runs, and how long
    /// the pending signals may take to arrive after it.
    const EVENT_DEADLINE: Duration = Duration::from_secs(10);

    const CASE_ENV: &str = "EVLOOP_CHURN_CASE";

    // ---------------------------------------------------------------------------------------
    // The previous handlers
    // ---------------------------------------------------------------------------------------

    /// The signal of the running case (for the handlers to check).
    static SIGNO: AtomicI32 = AtomicI32::new(0);
    /// Deliveries that reached a previous handler with the right signal.
    static HITS: AtomicU64 = AtomicU64::new(0);
    /// Calls of a previous handler with a wrong signal number or `siginfo_t`.
    static BAD: AtomicU64 = AtomicU64::new(0);
    /// Set by the main thread when the sender has exited: the churn thread stops.
    static STOP: AtomicBool = AtomicBool::new(false);

    /// A flag in memory shared with the forked sender: set once a churn loop dispatched the
    /// signal (so the storm may end).
    fn churned_flag() -> &'static AtomicU64 {
        static FLAG: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        let addr = *FLAG.get_or_init(|| {
            // SAFETY: an anonymous shared mapping of one page, never unmapped; it aliases
            // nothing in this process, and the forked sender inherits it.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    4096,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            assert_ne!(p, libc::MAP_FAILED, "mmap");
            p as usize
        });
        // SAFETY: the page is mapped for the life of the process, zeroed (a valid AtomicU64)
        // and suitably aligned; it is only accessed atomically.
        unsafe { &*(addr as *const AtomicU64) }
    }

    extern "C" fn prev_plain(signo: libc::c_int) {
        if signo == SIGNO.load(Ordering::Relaxed) {
            HITS.fetch_add(1, Ordering::SeqCst);
        } else {
            BAD.fetch_add(1, Ordering::SeqCst);
        }
    }

    extern "C" fn prev_siginfo(signo: libc::c_int, info: *mut libc::siginfo_t, _: *mut c_void) {
        // SAFETY: installed with SA_SIGINFO, so the kernel (or a chaining handler) passes a
        // valid siginfo_t; a handler called with a one-argument action's arguments gets
        // garbage here, which is what this check exists to catch.
        let ok = !info.is_null() && unsafe { (*info).si_signo } == signo;
        if ok && signo == SIGNO.load(Ordering::Relaxed) {
            HITS.fetch_add(1, Ordering::SeqCst);
        } else {
            BAD.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Which previous handler is installed.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Prev {
        Plain,
        Siginfo,
    }

    impl Prev {
        fn for_round(round: u64) -> Prev {
            if round.is_multiple_of(2) {
                Prev::Plain
            } else {
                Prev::Siginfo
            }
        }

        fn addr(self) -> libc::sighandler_t {
            match self {
                Prev::Plain => prev_plain as *const () as libc::sighandler_t,
                Prev::Siginfo => prev_siginfo as *const () as libc::sighandler_t,
            }
        }

        fn flags(self) -> libc::c_int {
            match self {
                Prev::Plain => libc::SA_RESTART,
                Prev::Siginfo => libc::SA_SIGINFO | libc::SA_RESTART,
            }
        }
    }

    fn set_prev(signo: i32, prev: Prev) {
        // SAFETY: all-zero is a valid sigaction; the fields that matter are set below.
        let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
        act.sa_sigaction = prev.addr();
        act.sa_flags = prev.flags();
        // SAFETY: `act.sa_mask` is a valid sigset_t to initialise.
        unsafe { libc::sigemptyset(&mut act.sa_mask) };
        // SAFETY: `act` is fully initialised and its handler's signature matches its flags
        // (one argument without SA_SIGINFO, three with it).
        let rc = unsafe { libc::sigaction(signo, &act, std::ptr::null_mut()) };
        assert_eq!(rc, 0, "sigaction({signo}) install");
    }

    fn current_action(signo: i32) -> libc::sigaction {
        let mut old = MaybeUninit::<libc::sigaction>::zeroed();
        // SAFETY: a null new action only reads the current one into valid, writable storage.
        let rc = unsafe { libc::sigaction(signo, std::ptr::null(), old.as_mut_ptr()) };
        assert_eq!(rc, 0, "sigaction({signo}) read");
        // SAFETY: zero-initialised, then filled by sigaction: a valid sigaction.
        unsafe { old.assume_init() }
    }

    /// Whether `signo` is pending for this thread or the process.
    fn pending(signo: i32) -> bool {
        let mut set = MaybeUninit::<libc::sigset_t>::zeroed();
        // SAFETY: sigpending writes one sigset_t into valid, writable storage.
        assert_eq!(unsafe { libc::sigpending(set.as_mut_ptr()) }, 0);
        // SAFETY: `set` was initialised by sigpending; sigismember only reads it.
        unsafe { libc::sigismember(set.as_ptr(), signo) == 1 }
    }

    // ---------------------------------------------------------------------------------------
    // The loop
    // ---------------------------------------------------------------------------------------

    /// Sums the arrivals its loop dispatches.
    struct Counter {
        total: u64,
    }

    impl Machine for Counter {
        type Backend = DefaultBackend;
        fn dispatch(&mut self, _: &mut Ctx<Self>, ev: Event) {
            self.total += u64::from(ev.count);
        }
    }

    struct Churned {
        rounds: u64,
        dispatched: u64,
        last: Prev,
    }

    /// The churn thread's body: subscribe and unsubscribe `signo` until `STOP`.
    fn churn(signo: i32, ready: mpsc::Sender<()>) -> Churned {
        // Every delivery runs on another thread, concurrently with the (un)subscribing here.
        let mut set = MaybeUninit::<libc::sigset_t>::zeroed();
        // SAFETY: `set` is valid, writable storage for a sigset_t, initialised by
        // sigemptyset before sigaddset and pthread_sigmask read it.
        let rc = unsafe {
            libc::sigemptyset(set.as_mut_ptr());
            libc::sigaddset(set.as_mut_ptr(), signo);
            libc::pthread_sigmask(libc::SIG_BLOCK, set.as_ptr(), std::ptr::null_mut())
        };
        assert_eq!(rc, 0, "block the signal in the churn thread");
        ready.send(()).expect("main thread");
        let mut c = Churned {
            rounds: 0,
            dispatched: 0,
            last: Prev::Plain,
        };
        // At least two rounds, whenever the storm ends: on a busy 2-core machine the first
        // round can last the whole storm (one CI run under poll saw 1 round, 99 dispatched),
        // and a second subscribe and unsubscribe is the churn this test is about.
        while c.rounds < 2 || !STOP.load(Ordering::SeqCst) {
            // No loop watches the signal here: change the previous action, so that the
            // next install records a different one.
            c.last = Prev::for_round(c.rounds);
            set_prev(signo, c.last);
            let mut el = EventLoop::new(Counter { total: 0 }).expect("build the loop");
            let id = el.ctx().add_signal(signo, Token(1)).expect("add_signal");
            let deadline = Instant::now() + EVENT_DEADLINE;
            while el.machine().total == 0 && !STOP.load(Ordering::SeqCst) {
                assert!(
                    Instant::now() < deadline,
                    "round {}: no signal dispatched within {EVENT_DEADLINE:?} while the storm ran",
                    c.rounds
                );
                el.poll(Some(Duration::from_millis(10))).expect("poll");
            }
            if el.machine().total > 0 {
                churned_flag().store(1, Ordering::SeqCst);
            }
            if c.rounds.is_multiple_of(2) {
                el.ctx().remove(id).expect("deregister");
            }
            // Dropping the loop unsubscribes what is left.
            c.dispatched += el.into_machine().total;
            c.rounds += 1;
        }
        c
    }

    // ---------------------------------------------------------------------------------------
    // The sender
    // ---------------------------------------------------------------------------------------

    fn monotonic_ns() -> u64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; clock_gettime is async-signal-safe.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    }

    /// Send `signo` to `pid`: with `sigqueue` if `queued` (a real-time signal: it fails with
    /// EAGAIN when the receiver's queue is full, where `kill` would succeed and silently
    /// coalesce the signal), else with `kill`. Async-signal-safe.
    fn send(pid: libc::pid_t, signo: i32, queued: bool) -> libc::c_int {
        #[cfg(any(
            target_os = "linux",
            target_os = "android",
            target_os = "illumos",
            target_os = "solaris"
        ))]
        if queued {
            let value = libc::sigval {
                sival_ptr: std::ptr::null_mut(),
            };
            // SAFETY: sigqueue(3) with our parent's pid, a signal it catches and a null value
            // (never dereferenced by anyone).
            return unsafe { libc::sigqueue(pid, signo, value) };
        }
        // Only the systems above have real-time signals a loop can watch.
        let _ = queued;
        // SAFETY: kill(2) with our parent's pid and a signal it catches.
        unsafe { libc::kill(pid, signo) }
    }

    /// Fork a child that sends `signo` to this process as fast as it can (see [`send`]) and
    /// writes the number of successful sends (a `u64`) to `report` before it exits. Returns
    /// its pid. The child only makes async-signal-safe calls (this process has threads).
    fn spawn_sender(signo: i32, queued: bool, report: libc::c_int) -> libc::pid_t {
        // SAFETY: getpid has no preconditions.
        let target = unsafe { libc::getpid() };
        let until = monotonic_ns() + STORM_FOR.as_nanos() as u64;
        let until_churned = monotonic_ns() + STORM_UNTIL_CHURNED.as_nanos() as u64;
        let churned = churned_flag();
        churned.store(0, Ordering::SeqCst);
        // SAFETY: the child runs only async-signal-safe code (kill or sigqueue,
        // clock_gettime, write, _exit) on values computed before the fork, and never
        // returns into Rust code.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
        if pid == 0 {
            let mut sent: u64 = 0;
            let mut status = 0;
            loop {
                let now = monotonic_ns();
                let normal = sent < MAX_SENT && now < until;
                // Atomic load: async-signal-safe.
                if !normal && (churned.load(Ordering::SeqCst) != 0 || now >= until_churned) {
                    break;
                }
                if send(target, signo, queued) == 0 {
                    sent += 1;
                } else if std::io::Error::last_os_error().raw_os_error() != Some(libc::EAGAIN) {
                    // EAGAIN: the real-time queue is full, try again; anything else fails.
                    status = 2;
                    break;
                }
            }
            let bytes = sent.to_ne_bytes();
            // SAFETY: writes the 8 bytes of `bytes`, alive on this frame, to the pipe's
            // write end inherited from the parent; then ends the child without running
            // anything of the parent's (no destructors, no atexit handlers).
            unsafe {
                if libc::write(report, bytes.as_ptr().cast(), 8) != 8 {
                    status = 3;
                }
                libc::_exit(status);
            }
        }
        pid
    }

    /// Read the sender's report and reap it.
    fn finish_sender(pid: libc::pid_t, report: libc::c_int) -> u64 {
        let mut buf = [0u8; 8];
        let mut got = 0;
        while got < 8 {
            // SAFETY: reads into the unfilled rest of `buf`, valid and writable.
            let n = unsafe { libc::read(report, buf[got..].as_mut_ptr().cast(), 8 - got) };
            if n > 0 {
                got += n as usize;
            } else if n == 0
                || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted
            {
                panic!("the sender's report is missing ({got} of 8 bytes)");
            }
        }
        let mut status = 0;
        // SAFETY: `pid` is our own child, not yet reaped; `status` is valid, writable storage.
        while unsafe { libc::waitpid(pid, &mut status, 0) } < 0 {
            assert_eq!(
                std::io::Error::last_os_error().kind(),
                std::io::ErrorKind::Interrupted,
                "waitpid"
            );
        }
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "the sender failed (wait status {status:#x})"
        );
        u64::from_ne_bytes(buf)
    }

    // ---------------------------------------------------------------------------------------
    // A case
    // ---------------------------------------------------------------------------------------

    /// Run the churn against a storm of `signo`. `queued`: the kernel queues every send
    /// of it (a real-time signal), so deliveries can be counted exactly.
    fn storm(signo: i32, queued: bool) -> String {
        SIGNO.store(signo, Ordering::SeqCst);
        // The previous handler is in place before anything else can send the signal.
        set_prev(signo, Prev::Plain);
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two fds pipe(2) writes.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
        let (read_end, write_end) = (fds[0], fds[1]);

        let (ready_tx, ready_rx) = mpsc::channel();
        let churner = thread::spawn(move || churn(signo, ready_tx));
        ready_rx
            .recv_timeout(EVENT_DEADLINE)
            .expect("the churn thread is ready");
        let started = Instant::now();
        let sender = spawn_sender(signo, queued, write_end);
        // SAFETY: our copy of the write end: closing it lets a dead sender read as EOF.
        unsafe { libc::close(write_end) };
        let sent = finish_sender(sender, read_end);
        // SAFETY: the read end, ours and no longer used.
        unsafe { libc::close(read_end) };
        STOP.store(true, Ordering::SeqCst);
        let churned = churner.join().expect("the churn thread");
        let stormed = started.elapsed();

        // Everything sent is delivered by now or pending (one pending instance for a standard
        // signal, a queue of them for a real-time one), and only this thread can take it:
        // each system call returns only after the handlers of what it found pending ran.
        let deadline = Instant::now() + EVENT_DEADLINE;
        while pending(signo) {
            assert!(
                Instant::now() < deadline,
                "signal {signo}: still pending after {EVENT_DEADLINE:?} ({} of {sent} seen)",
                HITS.load(Ordering::SeqCst)
            );
            thread::yield_now();
        }
        let hits = HITS.load(Ordering::SeqCst);
        let line = format!(
            "signal {signo}: {sent} sent in {stormed:?}, {hits} reached the previous handler, \
             {} dispatched by {} loops",
            churned.dispatched, churned.rounds
        );
        println!("{line}");

        let bad = BAD.load(Ordering::SeqCst);
        assert_eq!(bad, 0, "a previous handler got {bad} bad calls ({line})");
        assert!(sent > 0, "the sender sent nothing");
        assert!(
            churned.rounds >= 2 && churned.dispatched > 0,
            "no churn happened during the storm"
        );
        assert!(
            churned.dispatched <= hits,
            "the loops saw more deliveries than the previous handler: some were not chained"
        );
        if queued {
            assert_eq!(
                hits, sent,
                "every queued signal is one delivery and must reach the previous handler once"
            );
        } else {
            assert!(hits >= 1 && hits <= sent, "deliveries out of range");
        }
        let now = current_action(signo);
        assert!(
            now.sa_sigaction == churned.last.addr()
                && now.sa_flags & libc::SA_SIGINFO == churned.last.flags() & libc::SA_SIGINFO,
            "the final disposition is not the previous handler ({:?}): handler {:#x}, flags {:#x}",
            churned.last,
            now.sa_sigaction,
            now.sa_flags
        );
        line
    }

    fn churn_standard() -> String {
        storm(libc::SIGUSR1, false)
    }

    fn churn_realtime() -> String {
        match realtime_signals() {
            Some((min, _)) => storm(min, true),
            None => "no real-time signals here: skipped".to_string(),
        }
    }

    type Case = (&'static str, fn() -> String);

    fn cases() -> Vec<Case> {
        vec![
            ("churn_standard", churn_standard),
            ("churn_realtime", churn_realtime),
        ]
    }

    // ---------------------------------------------------------------------------------------
    // The runner: one process per case
    // ---------------------------------------------------------------------------------------

    /// Run case `name` in a child process; `Err` describes how it failed.
    fn run_isolated(name: &str) -> Result<String, String> {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let child = Command::new(exe)
            .env(CASE_ENV, name)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawn: {e}"))?;
        let pid = child.id() as libc::pid_t;
        let (tx, rx) = mpsc::channel();
        let waiter = thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        let (out, timed_out) = match rx.recv_timeout(CASE_DEADLINE) {
            Ok(out) => (out, false),
            Err(_) => {
                // SAFETY: `pid` is our own child, not yet reaped (the waiter has not returned).
                unsafe { libc::kill(pid, libc::SIGKILL) };
                (rx.recv().map_err(|e| e.to_string())?, true)
            }
        };
        waiter.join().map_err(|_| "waiter thread".to_string())?;
        let out = out.map_err(|e| format!("wait: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if timed_out || !out.status.success() {
            return Err(format!(
                "{} (timed out: {timed_out})\n--- stdout ---\n{stdout}--- stderr ---\n{stderr}",
                out.status
            ));
        }
        Ok(format!("ok {name}: {}", stdout.trim_end()))
    }

    pub fn main() {
        if let Ok(name) = std::env::var(CASE_ENV) {
            let (_, case) = cases()
                .into_iter()
                .find(|(n, _)| *n == name)
                .expect("a known case");
            case();
            return;
        }
        let args: Vec<String> = std::env::args().skip(1).collect();
        let cases = cases();
        if args.iter().any(|a| a == "--list") {
            for &(name, _) in &cases {
                println!("{name}: test");
            }
            return;
        }
        // Positional arguments select cases by substring; flags (as libtest's) are ignored.
        let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
        let (mut passed, mut failed) = (0, 0);
        for (name, _) in cases {
            if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
                continue;
            }
            match run_isolated(name) {
                Ok(line) => {
                    println!("{line}");
                    passed += 1;
                }
                Err(e) => {
                    println!("FAILED {name}: {e}");
                    failed += 1;
                }
            }
        }
        println!("{passed} passed, {failed} failed");
        if failed > 0 {
            std::process::exit(1);
        }
    }
}

fn main() {
    #[cfg(unix)]
    unix::main();
    #[cfg(not(unix))]
    println!("signal_churn: SKIPPED (Unix only): nothing ran");
}
