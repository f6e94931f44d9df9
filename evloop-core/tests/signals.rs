//! Signal sources, under every backend.
//!
//! Signal dispositions are process-wide, so every test runs in a process of its own: the
//! `#[test]` function re-executes this test binary with `--exact <its name>` and
//! `EVLOOP_SIGNAL_CHILD=<its name>`; in that child the same function runs the real body
//! (one generic body per behaviour, instantiated in one module per backend by
//! `signal_tests!`: `epoll_signals::signal_realtime`, `kqueue_signals::…`). The
//! parent asserts the child's exit status and shows its output on failure.

// Not ported to Windows yet: Unix sockets, pipes, signals, fork or the Unix-only core
// modules (the Windows backend runs the conformance suite: `conformance.rs`).
#![cfg(unix)]

use std::cell::RefCell;
use std::ffi::c_void;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use evloop_core::{
    realtime_signals, signal_number, Backend, Builder, Ctx, Error, Event, EventLoop, Exit, Machine,
    Ready, Token,
};

// ---------------------------------------------------------------------------------------
// One process per test
// ---------------------------------------------------------------------------------------

#[macro_use]
#[path = "support/subprocess.rs"]
mod subprocess;

const CHILD_ENV: &str = "EVLOOP_SIGNAL_CHILD";

/// In the child named `name`, run `body`; anywhere else, run the child and check it.
fn isolated(name: &str, body: fn()) {
    subprocess::isolated(CHILD_ENV, name, body);
}

/// Every body, as one `#[test]` each (see `isolated_tests!`), under the backend given.
macro_rules! signal_tests {
    ($backend:ty) => {
        isolated_tests! { $backend;
            signal_raise_after_register,
            signal_kill_self_after_register,
            signal_several_kinds_any_order,
            signal_coalesces_with_count,
            signal_handler_runs_in_loop_context,
            signal_remove_restores_previous_action,
            signal_drop_restores_previous_action,
            signal_chains_previous_handler,
            signal_removed_never_fires,
            signal_stopped_not_dispatched,
            signal_two_loops_both_hear,
            signal_two_loops_two_threads,
            signal_loop_rebuilt_after_drop,
            signal_during_wait_keeps_timer,
            signal_nested_arrivals,
            signal_storm_from_process,
            signal_storm_from_thread,
            signal_refused_and_invalid,
            signal_realtime,
            signal_same_signal_twice_is_busy,
            signal_sigterm_handler_exits,
        }
    };
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod epoll_signals {
    signal_tests!(evloop_core::Epoll);
}

mod poll_signals {
    signal_tests!(evloop_core::Poll);
}

mod select_signals {
    signal_tests!(evloop_core::Select);
}

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
mod kqueue_signals {
    signal_tests!(evloop_core::Kqueue);
}

#[cfg(any(target_os = "illumos", target_os = "solaris"))]
mod event_ports_signals {
    signal_tests!(evloop_core::EventPorts);
}

#[cfg(any(target_os = "illumos", target_os = "solaris"))]
mod devpoll_signals {
    signal_tests!(evloop_core::DevPoll);
}

// ---------------------------------------------------------------------------------------
// A machine that records every dispatch
// ---------------------------------------------------------------------------------------

/// Fires if something expected never happens; a test that sees it fails.
const GUARD: Token = Token(1 << 40);
const GUARD_AFTER: Duration = Duration::from_secs(5);
/// Ends a "nothing else happens" window.
const QUIET: Token = Token(1 << 41);
const QUIET_FOR: Duration = Duration::from_millis(30);

/// Signal sources use the signal number as their token.
const fn tok(signo: i32) -> Token {
    Token(signo as u64)
}

#[derive(Clone, Copy, Debug)]
struct Seen {
    token: Token,
    ready: Ready,
    count: u32,
    at: Instant,
    /// Dispatched on the thread that built the loop.
    on_loop_thread: bool,
    /// Signals blocked in the handler's thread (bit `n - 1` for signal `n`): inside a
    /// signal handler, that signal would be blocked.
    blocked: u64,
}

type Done = Box<dyn FnMut(&[Seen]) -> bool>;

struct Rec<B> {
    seen: Vec<Seen>,
    done: Done,
    thread: ThreadId,
    _b: PhantomData<fn() -> B>,
}

impl<B: Backend> Machine for Rec<B> {
    type Backend = B;
    fn dispatch(&mut self, ctx: &mut Ctx<Self>, ev: Event) {
        self.seen.push(Seen {
            token: ev.token,
            ready: ev.ready,
            count: ev.count,
            at: Instant::now(),
            on_loop_thread: thread::current().id() == self.thread,
            blocked: blocked_signals(),
        });
        if ev.token == GUARD || (self.done)(&self.seen) {
            ctx.exit();
        }
    }
}

fn build<B: Backend>() -> EventLoop<Rec<B>> {
    Builder::new()
        .build(Rec {
            seen: Vec::new(),
            done: Box::new(|_| false),
            thread: thread::current().id(),
            _b: PhantomData,
        })
        .expect("build the loop")
}

/// Run until `done` says so (checked after each dispatch); fails if that takes longer
/// than `GUARD_AFTER`. Returns what was dispatched.
fn run_until<B: Backend>(
    el: &mut EventLoop<Rec<B>>,
    what: &str,
    done: impl FnMut(&[Seen]) -> bool + 'static,
) -> Vec<Seen> {
    el.machine_mut().done = Box::new(done);
    el.machine_mut().seen.clear();
    let guard = el.ctx().add_timer(GUARD, GUARD_AFTER).expect("guard timer");
    let exit = el.run().expect("run");
    el.ctx().remove(guard).expect("remove the guard timer");
    let seen = std::mem::take(&mut el.machine_mut().seen);
    assert!(
        !seen.iter().any(|s| s.token == GUARD),
        "{} backend: timed out waiting for {what}; dispatched: {seen:#?}",
        B::NAME
    );
    assert_eq!(
        exit,
        Exit::Exited,
        "{} backend: waiting for {what}",
        B::NAME
    );
    seen
}

/// Run for `QUIET_FOR` and return everything dispatched meanwhile (the quiet timer
/// excluded).
fn run_quiet<B: Backend>(el: &mut EventLoop<Rec<B>>) -> Vec<Seen> {
    let quiet = el.ctx().add_timer(QUIET, QUIET_FOR).expect("quiet timer");
    let mut seen = run_until(el, "the quiet timer", |s| {
        s.iter().any(|s| s.token == QUIET)
    });
    el.ctx().remove(quiet).expect("remove the quiet timer");
    seen.retain(|s| s.token != QUIET);
    seen
}

fn dispatches(seen: &[Seen], t: Token) -> usize {
    seen.iter().filter(|s| s.token == t).count()
}

fn total(seen: &[Seen], t: Token) -> u64 {
    seen.iter()
        .filter(|s| s.token == t)
        .map(|s| u64::from(s.count))
        .sum()
}

fn has(seen: &[Seen], t: Token) -> bool {
    seen.iter().any(|s| s.token == t)
}

// ---------------------------------------------------------------------------------------
// Signal plumbing
// ---------------------------------------------------------------------------------------

fn raise(signo: i32) {
    // SAFETY: raise(3) only sends a signal to the calling thread; every signal a test
    // raises is caught or ignored at that point.
    let rc = unsafe { libc::raise(signo) };
    assert_eq!(rc, 0, "raise({signo})");
}

fn kill_self(signo: i32) {
    // SAFETY: kill(2) on our own pid with a signal this test catches.
    let rc = unsafe { libc::kill(libc::getpid(), signo) };
    assert_eq!(rc, 0, "kill(getpid(), {signo})");
}

/// The signals blocked in this thread, bit `n - 1` for signal `n`.
fn blocked_signals() -> u64 {
    let mut set = MaybeUninit::<libc::sigset_t>::zeroed();
    // SAFETY: a null new set only reads the current mask into valid, writable storage.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), set.as_mut_ptr()) };
    assert_eq!(rc, 0);
    let mut bits = 0u64;
    for s in 1..=64 {
        // SAFETY: `set` was initialised by pthread_sigmask; sigismember only reads it.
        if unsafe { libc::sigismember(set.as_ptr(), s) } == 1 {
            bits |= 1 << (s - 1);
        }
    }
    bits
}

fn current_action(signo: i32) -> libc::sigaction {
    let mut old = MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: a null new action only reads the current one into valid, writable storage.
    let rc = unsafe { libc::sigaction(signo, std::ptr::null(), old.as_mut_ptr()) };
    assert_eq!(rc, 0, "sigaction({signo}) read");
    // SAFETY: zero-initialised, then filled by sigaction: a valid sigaction.
    unsafe { old.assume_init() }
}

/// Install an action and return it as the kernel reports it back (glibc adds
/// `SA_RESTORER`, so compare against this, not against what was asked for).
fn set_action(
    signo: i32,
    handler: libc::sighandler_t,
    flags: i32,
    mask: &[i32],
) -> libc::sigaction {
    // SAFETY: all-zero is a valid sigaction; the fields that matter are set below.
    let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
    act.sa_sigaction = handler;
    act.sa_flags = flags;
    // SAFETY: `act.sa_mask` is a valid sigset_t.
    unsafe { libc::sigemptyset(&mut act.sa_mask) };
    for &m in mask {
        // SAFETY: as above; `m` is a valid signal number.
        unsafe { libc::sigaddset(&mut act.sa_mask, m) };
    }
    // SAFETY: `act` is fully initialised; `handler` is SIG_DFL, SIG_IGN, or one of this
    // file's handlers whose signature matches `flags` (SA_SIGINFO or not).
    let rc = unsafe { libc::sigaction(signo, &act, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "sigaction({signo}) install");
    current_action(signo)
}

fn mask_bits(a: &libc::sigaction) -> u64 {
    let mut bits = 0u64;
    for s in 1..=64 {
        // SAFETY: `a.sa_mask` is an initialised sigset_t (from sigaction).
        if unsafe { libc::sigismember(&a.sa_mask, s) } == 1 {
            bits |= 1 << (s - 1);
        }
    }
    bits
}

fn describe(a: &libc::sigaction) -> String {
    format!(
        "handler={:#x} flags={:#x} mask={:#x}",
        a.sa_sigaction,
        a.sa_flags,
        mask_bits(a)
    )
}

/// glibc (x86_64 and others) adds `SA_RESTORER` to every action it installs, so an
/// action never set since exec (flags 0) reads back with it once restored through
/// sigaction(2). It is not part of what a program asks for; ignore it.
const SA_RESTORER: i32 = 0x0400_0000;

fn assert_same_action(signo: i32, got: &libc::sigaction, want: &libc::sigaction, when: &str) {
    assert!(
        got.sa_sigaction == want.sa_sigaction
            && got.sa_flags & !SA_RESTORER == want.sa_flags & !SA_RESTORER
            && mask_bits(got) == mask_bits(want),
        "signal {signo} {when}: action is {}, expected {}",
        describe(got),
        describe(want)
    );
}

/// How often each signal reached this file's own (pre-installed) handlers.
static HITS: [AtomicU32; 65] = [const { AtomicU32::new(0) }; 65];

fn hits(signo: i32) -> u32 {
    HITS[signo as usize].load(Ordering::SeqCst)
}

extern "C" fn siginfo_handler(signo: libc::c_int, _: *mut libc::siginfo_t, _: *mut c_void) {
    if let Some(h) = HITS.get(signo as usize) {
        h.fetch_add(1, Ordering::SeqCst);
    }
}

extern "C" fn plain_handler(signo: libc::c_int) {
    if let Some(h) = HITS.get(signo as usize) {
        h.fetch_add(1, Ordering::SeqCst);
    }
}

fn siginfo_handler_addr() -> libc::sighandler_t {
    siginfo_handler as *const () as libc::sighandler_t
}

fn plain_handler_addr() -> libc::sighandler_t {
    plain_handler as *const () as libc::sighandler_t
}

/// Catch `signo` with this file's counting handler, so it can be raised while no loop
/// watches it without killing the process.
fn catch_with_counter(signo: i32) -> libc::sigaction {
    set_action(
        signo,
        siginfo_handler_addr(),
        libc::SA_SIGINFO | libc::SA_RESTART,
        &[],
    )
}

// ---------------------------------------------------------------------------------------
// The bodies
// ---------------------------------------------------------------------------------------

fn signal_raise_after_register<B: Backend>() {
    let mut el = build::<B>();
    let id = el
        .ctx()
        .add_signal(libc::SIGUSR1, tok(libc::SIGUSR1))
        .expect("add_signal");
    raise(libc::SIGUSR1);
    let seen = run_until(&mut el, "SIGUSR1", |s| has(s, tok(libc::SIGUSR1)));
    assert_eq!(dispatches(&seen, tok(libc::SIGUSR1)), 1, "{seen:#?}");
    let s = seen.iter().find(|s| s.token == tok(libc::SIGUSR1)).unwrap();
    assert!(s.ready.is_signal(), "ready = {:?}", s.ready);
    assert_eq!(s.ready, Ready::SIGNAL, "only SIGNAL is reported");
    assert_eq!(s.count, 1);
    // A second arrival is a second dispatch.
    raise(libc::SIGUSR1);
    let seen = run_until(&mut el, "SIGUSR1 again", |s| has(s, tok(libc::SIGUSR1)));
    assert_eq!(total(&seen, tok(libc::SIGUSR1)), 1);
    el.ctx().remove(id).expect("deregister");
}

fn signal_kill_self_after_register<B: Backend>() {
    // kill(getpid()) may be delivered to any thread of the process (libtest's main
    // thread here): the loop must still hear it.
    let mut el = build::<B>();
    el.ctx()
        .add_signal(libc::SIGUSR2, tok(libc::SIGUSR2))
        .expect("add_signal");
    kill_self(libc::SIGUSR2);
    let seen = run_until(&mut el, "SIGUSR2", |s| has(s, tok(libc::SIGUSR2)));
    assert_eq!(total(&seen, tok(libc::SIGUSR2)), 1, "{seen:#?}");
    assert!(seen.iter().all(|s| s.ready == Ready::SIGNAL));
}

fn signal_several_kinds_any_order<B: Backend>() {
    let sigs = [
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGHUP,
        libc::SIGWINCH,
        libc::SIGALRM,
        libc::SIGPIPE,
        libc::SIGCHLD,
    ];
    let mut el = build::<B>();
    for &s in &sigs {
        el.ctx().add_signal(s, tok(s)).expect("add_signal");
    }
    let orders: [&[usize]; 3] = [
        &[0, 1, 2, 3, 4, 5, 6],
        &[6, 5, 4, 3, 2, 1, 0],
        &[3, 0, 6, 2, 5, 1, 4],
    ];
    for order in orders {
        for &i in order {
            raise(sigs[i]);
        }
        let want = sigs;
        let seen = run_until(&mut el, "every signal", move |s| {
            want.iter().all(|&w| has(s, tok(w)))
        });
        for &s in &sigs {
            assert_eq!(
                dispatches(&seen, tok(s)),
                1,
                "signal {s} in order {order:?}: {seen:#?}"
            );
            assert_eq!(
                total(&seen, tok(s)),
                1,
                "signal {s} in order {order:?}: {seen:#?}"
            );
        }
        assert!(seen.iter().all(|s| s.ready == Ready::SIGNAL), "{seen:#?}");
        // Nothing else is dispatched afterwards.
        let extra = run_quiet(&mut el);
        assert!(extra.is_empty(), "spurious dispatches: {extra:#?}");
    }
}

fn signal_coalesces_with_count<B: Backend>() {
    const N: u32 = 17;
    let mut el = build::<B>();
    el.ctx()
        .add_signal(libc::SIGUSR1, tok(libc::SIGUSR1))
        .expect("add_signal");
    // With the loop not running, every raise is handled synchronously by the calling
    // thread's signal handler: N arrivals.
    for _ in 0..N {
        raise(libc::SIGUSR1);
    }
    let seen = run_until(&mut el, "SIGUSR1", |s| has(s, tok(libc::SIGUSR1)));
    assert_eq!(
        dispatches(&seen, tok(libc::SIGUSR1)),
        1,
        "one dispatch: {seen:#?}"
    );
    assert_eq!(seen[0].count, N, "the count reports every arrival");
    let extra = run_quiet(&mut el);
    assert!(
        extra.is_empty(),
        "no second dispatch for the same burst: {extra:#?}"
    );
    // The counter restarted after the dispatch.
    raise(libc::SIGUSR1);
    raise(libc::SIGUSR1);
    let seen = run_until(&mut el, "SIGUSR1", |s| has(s, tok(libc::SIGUSR1)));
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].count, 2);
}

fn signal_handler_runs_in_loop_context<B: Backend>() {
    let mut el = build::<B>();
    el.ctx()
        .add_signal(libc::SIGUSR1, tok(libc::SIGUSR1))
        .expect("add_signal");
    let normal_mask = blocked_signals();
    assert_eq!(
        normal_mask & (1 << (libc::SIGUSR1 - 1)),
        0,
        "SIGUSR1 blocked by the test runner"
    );
    raise(libc::SIGUSR1);
    // raise() returned: the signal handler ran, but nothing was dispatched inside it.
    assert!(
        el.machine().seen.is_empty(),
        "dispatched from inside raise()"
    );
    let lock = Arc::new(Mutex::new(Vec::<String>::new()));
    let lk = lock.clone();
    // The done check runs in the handler's context: it allocates and takes a lock, which
    // a signal handler must never do.
    let seen = run_until(&mut el, "SIGUSR1", move |s| {
        lk.lock().unwrap().push(format!("{} dispatches", s.len()));
        has(s, tok(libc::SIGUSR1))
    });
    let s = seen[0];
    assert!(s.on_loop_thread, "the handler ran on another thread");
    assert_eq!(
        s.blocked & (1 << (libc::SIGUSR1 - 1)),
        0,
        "SIGUSR1 is blocked in the handler: it runs inside the signal handler"
    );
    assert_eq!(
        s.blocked, normal_mask,
        "the handler runs with the thread's normal mask"
    );
    assert!(!lock.lock().unwrap().is_empty());
    // Same from a signal sent by another thread while the loop waits.
    let sender = thread::spawn(|| kill_self(libc::SIGUSR1));
    let seen = run_until(&mut el, "SIGUSR1 from another thread", |s| {
        has(s, tok(libc::SIGUSR1))
    });
    sender.join().expect("sender");
    assert!(seen[0].on_loop_thread);
    assert_eq!(seen[0].blocked, normal_mask);
}

fn signal_remove_restores_previous_action<B: Backend>() {
    // A three-argument handler with flags and a mask, a one-argument handler, SIG_IGN
    // and SIG_DFL: each comes back exactly.
    let cases: [(i32, libc::sighandler_t, i32, &[i32]); 5] = [
        (
            libc::SIGUSR1,
            siginfo_handler_addr(),
            libc::SA_SIGINFO | libc::SA_RESTART | libc::SA_ONSTACK,
            &[libc::SIGUSR2, libc::SIGHUP],
        ),
        (
            libc::SIGUSR2,
            plain_handler_addr(),
            libc::SA_NODEFER,
            &[libc::SIGWINCH],
        ),
        (libc::SIGHUP, libc::SIG_IGN, 0, &[]),
        (libc::SIGWINCH, libc::SIG_DFL, 0, &[]),
        (libc::SIGTERM, siginfo_handler_addr(), libc::SA_SIGINFO, &[]),
    ];
    let mut el = build::<B>();
    for (signo, handler, flags, mask) in cases {
        let before = set_action(signo, handler, flags, mask);
        for round in 0..2 {
            let id = el.ctx().add_signal(signo, tok(signo)).expect("add_signal");
            let during = current_action(signo);
            assert_ne!(
                during.sa_sigaction, before.sa_sigaction,
                "signal {signo}: watching it installs the loop's handler"
            );
            if round == 0 {
                // While watched, the loop hears it.
                raise(signo);
                let seen = run_until(&mut el, "the signal", move |s| has(s, tok(signo)));
                assert_eq!(total(&seen, tok(signo)), 1);
            }
            el.ctx().remove(id).expect("deregister");
            let after = current_action(signo);
            assert_same_action(signo, &after, &before, "after the source was removed");
        }
    }
    // Restoring one signal touched no other.
    for (signo, handler, _, _) in cases {
        assert_eq!(current_action(signo).sa_sigaction, handler);
    }
}

fn signal_drop_restores_previous_action<B: Backend>() {
    let before1 = set_action(
        libc::SIGUSR1,
        siginfo_handler_addr(),
        libc::SA_SIGINFO | libc::SA_RESTART,
        &[libc::SIGTERM],
    );
    let before2 = set_action(libc::SIGUSR2, libc::SIG_IGN, 0, &[]);
    let before_default = current_action(libc::SIGHUP);
    {
        let mut el = build::<B>();
        for s in [libc::SIGUSR1, libc::SIGUSR2, libc::SIGHUP] {
            el.ctx().add_signal(s, tok(s)).expect("add_signal");
        }
        raise(libc::SIGHUP); // pending, never dispatched: the loop is dropped first
    }
    assert_same_action(
        libc::SIGUSR1,
        &current_action(libc::SIGUSR1),
        &before1,
        "after drop",
    );
    assert_same_action(
        libc::SIGUSR2,
        &current_action(libc::SIGUSR2),
        &before2,
        "after drop",
    );
    assert_same_action(
        libc::SIGHUP,
        &current_action(libc::SIGHUP),
        &before_default,
        "after drop",
    );
}

fn signal_chains_previous_handler<B: Backend>() {
    catch_with_counter(libc::SIGUSR1);
    set_action(libc::SIGUSR2, plain_handler_addr(), libc::SA_RESTART, &[]);
    let mut el = build::<B>();
    el.ctx()
        .add_signal(libc::SIGUSR1, tok(libc::SIGUSR1))
        .expect("add_signal");
    el.ctx()
        .add_signal(libc::SIGUSR2, tok(libc::SIGUSR2))
        .expect("add_signal");
    for _ in 0..3 {
        raise(libc::SIGUSR1);
        raise(libc::SIGUSR2);
    }
    // The previous handlers ran, synchronously, for every arrival.
    assert_eq!(
        hits(libc::SIGUSR1),
        3,
        "the SA_SIGINFO handler installed before was not chained"
    );
    assert_eq!(
        hits(libc::SIGUSR2),
        3,
        "the one-argument handler installed before was not chained"
    );
    let seen = run_until(&mut el, "both signals", |s| {
        has(s, tok(libc::SIGUSR1)) && has(s, tok(libc::SIGUSR2))
    });
    assert_eq!(total(&seen, tok(libc::SIGUSR1)), 3);
    assert_eq!(total(&seen, tok(libc::SIGUSR2)), 3);
    // Process-directed, possibly handled on another thread: the loop's handler wakes the
    // loop before it chains, so the previous handler's count may lag the dispatch a bit.
    kill_self(libc::SIGUSR1);
    let seen = run_until(&mut el, "SIGUSR1", |s| has(s, tok(libc::SIGUSR1)));
    assert_eq!(total(&seen, tok(libc::SIGUSR1)), 1);
    let deadline = Instant::now() + GUARD_AFTER;
    while hits(libc::SIGUSR1) < 4 && Instant::now() < deadline {
        thread::yield_now();
    }
    assert_eq!(
        hits(libc::SIGUSR1),
        4,
        "the previous handler was not chained"
    );
}

fn signal_removed_never_fires<B: Backend>() {
    catch_with_counter(libc::SIGUSR1);
    let mut el = build::<B>();
    // Dispatched once, removed, raised again: never dispatched again.
    let id = el
        .ctx()
        .add_signal(libc::SIGUSR1, tok(libc::SIGUSR1))
        .expect("add_signal");
    raise(libc::SIGUSR1);
    run_until(&mut el, "SIGUSR1", |s| has(s, tok(libc::SIGUSR1)));
    el.ctx().remove(id).expect("deregister");
    let hits_before = hits(libc::SIGUSR1);
    for _ in 0..3 {
        raise(libc::SIGUSR1);
    }
    assert_eq!(
        hits(libc::SIGUSR1),
        hits_before + 3,
        "the previous handler got them back"
    );
    let seen = run_quiet(&mut el);
    assert!(
        !has(&seen, tok(libc::SIGUSR1)),
        "removed source fired: {seen:#?}"
    );

    // Raised (pending in the loop) and removed before the loop ran: never dispatched.
    let id = el
        .ctx()
        .add_signal(libc::SIGUSR1, Token(100))
        .expect("add_signal");
    raise(libc::SIGUSR1);
    el.ctx().remove(id).expect("deregister");
    let seen = run_quiet(&mut el);
    assert!(
        !has(&seen, Token(100)),
        "pending signal of a removed source fired: {seen:#?}"
    );

    // Raised many times, removed, added again under a new token: the old token never
    // shows up.
    let id = el
        .ctx()
        .add_signal(libc::SIGUSR1, Token(101))
        .expect("add_signal");
    for _ in 0..5 {
        raise(libc::SIGUSR1);
    }
    el.ctx().remove(id).expect("deregister");
    el.ctx()
        .add_signal(libc::SIGUSR1, Token(102))
        .expect("add_signal again");
    raise(libc::SIGUSR1);
    let seen = run_until(&mut el, "the new source", |s| has(s, Token(102)));
    let seen_more = run_quiet(&mut el);
    assert!(
        !has(&seen, Token(101)) && !has(&seen_more, Token(101)),
        "{seen:#?} {seen_more:#?}"
    );
    assert_eq!(el.ctx().source_count(), 1);
}

fn signal_stopped_not_dispatched<B: Backend>() {
    let mut el = build::<B>();
    let id = el
        .ctx()
        .add_signal(libc::SIGUSR1, tok(libc::SIGUSR1))
        .expect("add_signal");
    el.ctx().stop(id).expect("stop");
    assert!(!el.ctx().is_active(id));
    raise(libc::SIGUSR1); // still caught by the loop's handler: the process survives
    let seen = run_quiet(&mut el);
    assert!(
        !has(&seen, tok(libc::SIGUSR1)),
        "stopped source fired: {seen:#?}"
    );
    el.ctx().start(id).expect("start");
    raise(libc::SIGUSR1);
    let seen = run_until(&mut el, "SIGUSR1 after start", |s| {
        has(s, tok(libc::SIGUSR1))
    });
    assert_eq!(dispatches(&seen, tok(libc::SIGUSR1)), 1);
}

fn signal_two_loops_both_hear<B: Backend>() {
    let before = catch_with_counter(libc::SIGUSR1);
    let mut a = build::<B>();
    let mut b = build::<B>();
    let ida = a
        .ctx()
        .add_signal(libc::SIGUSR1, Token(1))
        .expect("add_signal a");
    let idb = b
        .ctx()
        .add_signal(libc::SIGUSR1, Token(2))
        .expect("add_signal b");
    raise(libc::SIGUSR1);
    raise(libc::SIGUSR1);
    let sa = run_until(&mut a, "SIGUSR1 in loop a", |s| has(s, Token(1)));
    let sb = run_until(&mut b, "SIGUSR1 in loop b", |s| has(s, Token(2)));
    assert_eq!(total(&sa, Token(1)), 2, "{sa:#?}");
    assert_eq!(total(&sb, Token(2)), 2, "{sb:#?}");
    assert_eq!(
        hits(libc::SIGUSR1),
        2,
        "the previous handler ran once per arrival, not per loop"
    );
    // One loop leaves: the other still hears it, and the disposition stays ours.
    a.ctx().remove(ida).expect("deregister a");
    assert_ne!(
        current_action(libc::SIGUSR1).sa_sigaction,
        before.sa_sigaction
    );
    raise(libc::SIGUSR1);
    let sb = run_until(&mut b, "SIGUSR1 in loop b", |s| has(s, Token(2)));
    assert_eq!(total(&sb, Token(2)), 1);
    let sa = run_quiet(&mut a);
    assert!(sa.is_empty(), "{sa:#?}");
    // The last one leaves: restored.
    b.ctx().remove(idb).expect("deregister b");
    assert_same_action(
        libc::SIGUSR1,
        &current_action(libc::SIGUSR1),
        &before,
        "after both left",
    );
}

fn signal_two_loops_two_threads<B: Backend>() {
    // Loop a runs on another thread, loop b on this one; one process-directed signal
    // reaches both.
    let ready = Arc::new(Barrier::new(2));
    let r2 = ready.clone();
    let other = thread::spawn(move || {
        let mut a = build::<B>();
        a.ctx()
            .add_signal(libc::SIGUSR2, Token(1))
            .expect("add_signal a");
        r2.wait();
        let sa = run_until(&mut a, "SIGUSR2 in loop a", |s| has(s, Token(1)));
        total(&sa, Token(1))
    });
    let mut b = build::<B>();
    b.ctx()
        .add_signal(libc::SIGUSR2, Token(2))
        .expect("add_signal b");
    ready.wait();
    kill_self(libc::SIGUSR2);
    let sb = run_until(&mut b, "SIGUSR2 in loop b", |s| has(s, Token(2)));
    assert_eq!(total(&sb, Token(2)), 1);
    assert_eq!(other.join().expect("loop a's thread"), 1);
}

fn signal_loop_rebuilt_after_drop<B: Backend>() {
    let before = catch_with_counter(libc::SIGUSR1);
    for round in 0..3u64 {
        let mut el = build::<B>();
        el.ctx()
            .add_signal(libc::SIGUSR1, Token(round))
            .expect("add_signal");
        el.ctx()
            .add_signal(libc::SIGUSR2, Token(10 + round))
            .expect("add_signal");
        raise(libc::SIGUSR1);
        raise(libc::SIGUSR2);
        let seen = run_until(&mut el, "both signals", move |s| {
            has(s, Token(round)) && has(s, Token(10 + round))
        });
        assert_eq!(total(&seen, Token(round)), 1, "round {round}: {seen:#?}");
        assert_eq!(
            total(&seen, Token(10 + round)),
            1,
            "round {round}: {seen:#?}"
        );
        drop(el);
        assert_same_action(
            libc::SIGUSR1,
            &current_action(libc::SIGUSR1),
            &before,
            "after drop",
        );
    }
    // Two loops alive, the older one dropped, a new one built: all still hear it.
    let mut a = build::<B>();
    a.ctx()
        .add_signal(libc::SIGUSR1, Token(1))
        .expect("add_signal");
    let mut b = build::<B>();
    b.ctx()
        .add_signal(libc::SIGUSR1, Token(2))
        .expect("add_signal");
    drop(a);
    let mut c = build::<B>();
    c.ctx()
        .add_signal(libc::SIGUSR1, Token(3))
        .expect("add_signal");
    raise(libc::SIGUSR1);
    assert_eq!(
        total(&run_until(&mut b, "b", |s| has(s, Token(2))), Token(2)),
        1
    );
    assert_eq!(
        total(&run_until(&mut c, "c", |s| has(s, Token(3))), Token(3)),
        1
    );
}

fn signal_during_wait_keeps_timer<B: Backend>() {
    const TIMER: Token = Token(7);
    const DELAY: Duration = Duration::from_millis(200);
    const SLACK: Duration = Duration::from_millis(250);
    let mut el = build::<B>();
    el.ctx()
        .add_signal(libc::SIGUSR1, tok(libc::SIGUSR1))
        .expect("add_signal");
    // SAFETY: pthread_self has no preconditions.
    let loop_thread = unsafe { libc::pthread_self() };
    let t0 = Instant::now();
    el.ctx().refresh_now();
    el.ctx().add_timer(TIMER, DELAY).expect("timer");
    // Three signals aimed at the loop's own thread while it waits (each interrupts the
    // wait with EINTR); sleeping here only lets time pass.
    let sender = thread::spawn(move || {
        for _ in 0..3 {
            thread::sleep(Duration::from_millis(30));
            // SAFETY: `loop_thread` is alive until the sender is joined, after the loop
            // ran; SIGUSR1 is caught by the loop's handler.
            let rc = unsafe { libc::pthread_kill(loop_thread, libc::SIGUSR1) };
            assert_eq!(rc, 0);
        }
    });
    let seen = run_until(&mut el, "the timer and three signals", |s| {
        has(s, TIMER) && total(s, tok(libc::SIGUSR1)) == 3
    });
    sender.join().expect("sender");
    let timer = seen.iter().find(|s| s.token == TIMER).unwrap();
    let fired = timer.at - t0;
    assert!(fired >= DELAY, "the timer fired early, after {fired:?}");
    assert!(
        fired < DELAY + SLACK,
        "the timer fired late, after {fired:?}"
    );
    assert_eq!(timer.ready, Ready::TIMEOUT);
    assert_eq!(dispatches(&seen, TIMER), 1);
    let first = seen.iter().find(|s| s.token == tok(libc::SIGUSR1)).unwrap();
    assert!(
        first.at < timer.at,
        "the first signal (sent ~30 ms in) was held back until the timer fired: {seen:#?}"
    );
    assert_eq!(
        total(&seen, tok(libc::SIGUSR1)),
        3,
        "every signal counted: {seen:#?}"
    );
}

/// The chain of `signal_nested_arrivals`: each previous handler raises the next signal.
const NESTED: [i32; 5] = [
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGHUP,
    libc::SIGWINCH,
    libc::SIGALRM,
];

extern "C" fn raise_next_handler(signo: libc::c_int) {
    if let Some(h) = HITS.get(signo as usize) {
        h.fetch_add(1, Ordering::SeqCst);
    }
    if let Some(i) = NESTED.iter().position(|&s| s == signo) {
        if let Some(&next) = NESTED.get(i + 1) {
            // SAFETY: raise(3) is async-signal-safe.
            unsafe { libc::raise(next) };
        }
    }
}

fn signal_nested_arrivals<B: Backend>() {
    // A signal arriving while the handler of another watched signal runs (in a storm
    // this happens all the time; here a previous handler raises the next signal, so it
    // happens every time). Nesting must not exhaust the stack the handler runs on (Rust
    // threads have a small sigaltstack: max(SIGSTKSZ, AT_MINSIGSTKSZ) bytes).
    for &s in &NESTED {
        set_action(
            s,
            raise_next_handler as *const () as libc::sighandler_t,
            0,
            &[],
        );
    }
    let mut el = build::<B>();
    for &s in &NESTED {
        el.ctx().add_signal(s, tok(s)).expect("add_signal");
    }
    for round in 1..=3u32 {
        raise(NESTED[0]);
        for &s in &NESTED {
            assert_eq!(hits(s), round, "signal {s}: previous handler not chained");
        }
        let seen = run_until(&mut el, "every nested signal", |s| {
            NESTED.iter().all(|&n| has(s, tok(n)))
        });
        for &s in &NESTED {
            assert_eq!(total(&seen, tok(s)), 1, "signal {s}: {seen:#?}");
        }
    }
}

fn signal_storm_from_process<B: Backend>() {
    const ROUNDS: u32 = 2000;
    let mut el = build::<B>();
    for s in [libc::SIGUSR1, libc::SIGUSR2, libc::SIGCHLD] {
        el.ctx().add_signal(s, tok(s)).expect("add_signal");
    }
    let script =
        "p=$1; n=$2; i=0; while [ $i -lt $n ]; do kill -USR1 $p; kill -USR2 $p; i=$((i+1)); done";
    let pid = std::process::id().to_string();
    let storm = Rc::new(RefCell::new(
        Command::new("sh")
            .args(["-c", script, "storm", &pid, &ROUNDS.to_string()])
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn sh"),
    ));
    let started = Instant::now();
    let mut exited = None;
    let s2 = storm.clone();
    // SIGCHLD says the storm is over; then both kinds must have been dispatched.
    let seen = run_until(&mut el, "the storm", move |s| {
        if exited.is_none() && s.last().is_some_and(|l| l.token == tok(libc::SIGCHLD)) {
            exited = s2.borrow_mut().try_wait().expect("try_wait");
        }
        if let Some(st) = exited {
            assert!(st.success(), "the storm process failed: {st}");
        }
        exited.is_some() && has(s, tok(libc::SIGUSR1)) && has(s, tok(libc::SIGUSR2))
    });
    let status = storm
        .borrow_mut()
        .wait()
        .expect("wait for the storm process");
    assert!(status.success());
    let (n1, n2) = (
        total(&seen, tok(libc::SIGUSR1)),
        total(&seen, tok(libc::SIGUSR2)),
    );
    println!(
        "{}: storm of {} signals in {:?}: {n1} SIGUSR1 and {n2} SIGUSR2 arrivals in {} dispatches",
        B::NAME,
        2 * ROUNDS,
        started.elapsed(),
        seen.len()
    );
    assert!(n1 > 0 && n2 > 0);
    assert!(
        n1 <= u64::from(ROUNDS) && n2 <= u64::from(ROUNDS),
        "more arrivals than sent"
    );
    // Nothing is stuck afterwards.
    raise(libc::SIGUSR1);
    raise(libc::SIGUSR2);
    let seen = run_until(&mut el, "both signals after the storm", |s| {
        has(s, tok(libc::SIGUSR1)) && has(s, tok(libc::SIGUSR2))
    });
    assert_eq!(total(&seen, tok(libc::SIGUSR1)), 1);
    assert_eq!(total(&seen, tok(libc::SIGUSR2)), 1);
}

fn signal_storm_from_thread<B: Backend>() {
    const ROUNDS: u32 = 5000;
    let mut el = build::<B>();
    for s in [libc::SIGUSR1, libc::SIGUSR2, libc::SIGHUP] {
        el.ctx().add_signal(s, tok(s)).expect("add_signal");
    }
    el.ctx()
        .add_periodic(Token(5), Duration::from_millis(2))
        .expect("periodic");
    let started = Instant::now();
    let storm = thread::spawn(|| {
        for _ in 0..ROUNDS {
            kill_self(libc::SIGUSR1);
            kill_self(libc::SIGUSR2);
        }
        kill_self(libc::SIGHUP); // the end
    });
    let seen = run_until(&mut el, "the storm", |s| {
        has(s, tok(libc::SIGHUP)) && has(s, tok(libc::SIGUSR1)) && has(s, tok(libc::SIGUSR2))
    });
    storm.join().expect("storm thread");
    let (n1, n2) = (
        total(&seen, tok(libc::SIGUSR1)),
        total(&seen, tok(libc::SIGUSR2)),
    );
    let elapsed = started.elapsed();
    println!(
        "{}: storm of {} signals in {elapsed:?}: {n1} SIGUSR1 and {n2} SIGUSR2 arrivals in {} dispatches, {} timer ticks",
        B::NAME,
        2 * ROUNDS,
        seen.len(),
        dispatches(&seen, Token(5))
    );
    assert!(n1 > 0 && n2 > 0);
    if elapsed > Duration::from_millis(20) {
        assert!(has(&seen, Token(5)), "the storm starved the periodic timer");
    }
    raise(libc::SIGUSR1);
    raise(libc::SIGUSR2);
    let seen = run_until(&mut el, "both signals after the storm", |s| {
        has(s, tok(libc::SIGUSR1)) && has(s, tok(libc::SIGUSR2))
    });
    assert!(total(&seen, tok(libc::SIGUSR1)) >= 1);
}

fn signal_refused_and_invalid<B: Backend>() {
    let mut el = build::<B>();
    let user = el.ctx().add_user(Token(50)).expect("add_user");
    let refused = [
        libc::SIGKILL,
        libc::SIGSTOP,
        libc::SIGSEGV,
        libc::SIGBUS,
        libc::SIGILL,
        libc::SIGFPE,
    ];
    let actions: Vec<_> = refused.iter().map(|&s| current_action(s)).collect();
    for &s in &refused {
        match el.ctx().add_signal(s, Token(1)) {
            Err(Error::SignalRefused(n)) => assert_eq!(n, s),
            other => panic!("add_signal({s}) = {other:?}, expected SignalRefused"),
        }
    }
    let mut invalid = vec![0, -1, 65, 999, i32::MIN, i32::MAX];
    match realtime_signals() {
        // glibc keeps the signals below SIGRTMIN (32 and 33) for itself; illumos numbers
        // its own signals (SIGWAITING, SIGLWP, …) there.
        Some((min, _)) => invalid.extend(32..min),
        // Without real-time signals a loop watches only the classic 1 to 31.
        None => invalid.extend(32..=64),
    }
    for &s in &invalid {
        match el.ctx().add_signal(s, Token(1)) {
            Err(Error::InvalidSignal(n)) => assert_eq!(n, s),
            other => panic!("add_signal({s}) = {other:?}, expected InvalidSignal"),
        }
        let e = el.ctx().add_signal(s, Token(1)).unwrap_err();
        assert!(e.to_string().contains(&s.to_string()), "message: {e}");
    }
    // Nothing disturbed: dispositions, the source table, the loop.
    for (i, &s) in refused.iter().enumerate() {
        assert_same_action(
            s,
            &current_action(s),
            &actions[i],
            "after a refused add_signal",
        );
    }
    assert_eq!(el.ctx().source_count(), 1);
    el.ctx().activate(user, Ready::EMPTY).expect("activate");
    el.ctx()
        .add_signal(libc::SIGUSR1, tok(libc::SIGUSR1))
        .expect("a valid signal still works");
    raise(libc::SIGUSR1);
    let seen = run_until(&mut el, "SIGUSR1 and the user source", |s| {
        has(s, tok(libc::SIGUSR1)) && has(s, Token(50))
    });
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert_eq!(el.ctx().source_count(), 2);
}

fn signal_realtime<B: Backend>() {
    let Some((min, max)) = realtime_signals() else {
        // No real-time signals a loop can watch here (macOS, the BSDs): the names are
        // unknown, and that is all there is to check.
        assert_eq!(signal_number("SIGRTMIN"), None);
        assert_eq!(signal_number("SIGRTMAX-1"), None);
        return;
    };
    #[cfg(any(target_os = "linux", target_os = "android"))]
    assert_eq!((min, max), (libc::SIGRTMIN(), libc::SIGRTMAX()));
    let mut sigs: Vec<i32> = (0..4)
        .map(|n| {
            let s = signal_number(&format!("SIGRTMIN+{n}")).expect("SIGRTMIN+n");
            assert_eq!(s, min + n);
            s
        })
        .collect();
    sigs.push(signal_number("SIGRTMAX").expect("SIGRTMAX"));
    assert_eq!(*sigs.last().unwrap(), max);
    let mut el = build::<B>();
    for &s in &sigs {
        el.ctx()
            .add_signal(s, tok(s))
            .expect("add_signal(SIGRTMIN+n)");
    }
    // Real-time signals queue: k raises are k arrivals.
    for (k, &s) in sigs.iter().enumerate() {
        for _ in 0..=k {
            raise(s);
        }
    }
    let want = sigs.clone();
    let seen = run_until(&mut el, "every real-time signal", move |s| {
        want.iter().all(|&w| has(s, tok(w)))
    });
    for (k, &s) in sigs.iter().enumerate() {
        assert_eq!(dispatches(&seen, tok(s)), 1, "signal {s}: {seen:#?}");
        assert_eq!(total(&seen, tok(s)), k as u64 + 1, "signal {s}: {seen:#?}");
    }
}

fn signal_same_signal_twice_is_busy<B: Backend>() {
    let mut el = build::<B>();
    let id = el
        .ctx()
        .add_signal(libc::SIGUSR1, Token(1))
        .expect("add_signal");
    match el.ctx().add_signal(libc::SIGUSR1, Token(2)) {
        Err(Error::SignalBusy(n)) => assert_eq!(n, libc::SIGUSR1),
        other => panic!("second add_signal(SIGUSR1) = {other:?}, expected SignalBusy"),
    }
    assert_eq!(el.ctx().source_count(), 1);
    raise(libc::SIGUSR1);
    let seen = run_until(&mut el, "SIGUSR1", |s| has(s, Token(1)));
    assert!(!has(&seen, Token(2)));
    assert_eq!(total(&seen, Token(1)), 1);
    // Once removed it can be watched again.
    el.ctx().remove(id).expect("deregister");
    el.ctx()
        .add_signal(libc::SIGUSR1, Token(3))
        .expect("add_signal after removal");
    raise(libc::SIGUSR1);
    let seen = run_until(&mut el, "SIGUSR1", |s| has(s, Token(3)));
    assert_eq!(seen.len(), 1, "{seen:#?}");
}

/// Exits the loop from its SIGTERM handler; a periodic timer would keep it running.
struct Term<B> {
    ticks: u32,
    terms: u32,
    _b: PhantomData<fn() -> B>,
}

impl<B: Backend> Machine for Term<B> {
    type Backend = B;
    fn setup(&mut self, ctx: &mut Ctx<Self>) -> evloop_core::Result<()> {
        ctx.add_signal(libc::SIGTERM, Token(1))?;
        ctx.add_periodic(Token(2), Duration::from_millis(1))?;
        Ok(())
    }
    fn dispatch(&mut self, ctx: &mut Ctx<Self>, ev: Event) {
        match ev.token {
            Token(1) => {
                self.terms += ev.count;
                ctx.exit();
            }
            _ => {
                self.ticks += 1;
                if self.ticks == 3 {
                    kill_self(libc::SIGTERM);
                }
                assert!(self.ticks < 5000, "SIGTERM never ended the loop");
            }
        }
    }
}

fn signal_sigterm_handler_exits<B: Backend>() {
    let mut el = EventLoop::new(Term::<B> {
        ticks: 0,
        terms: 0,
        _b: PhantomData,
    })
    .expect("build");
    assert_eq!(el.run().expect("run"), Exit::Exited);
    assert_eq!(el.machine().terms, 1);
    assert!(el.machine().ticks >= 3);
    // Raised before run: the same.
    raise(libc::SIGTERM);
    assert_eq!(el.run().expect("run"), Exit::Exited);
    assert_eq!(el.machine().terms, 2);
    drop(el);
    assert_eq!(current_action(libc::SIGTERM).sa_sigaction, libc::SIG_DFL);
}
