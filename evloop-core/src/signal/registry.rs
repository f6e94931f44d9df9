//! The process-wide half of signal handling: one real `sigaction` per signal number,
//! shared by every loop in the process.
//!
//! The installed handler runs with every signal blocked (deliveries never nest) on the
//! interrupted thread's own stack, and does only async-signal-safe work: for each loop subscribed to
//! the signal it bumps that loop's pending counter (an atomic) and writes to the loop's
//! wake fd; then it chains to the handler that was installed before ours. It takes no
//! lock and allocates nothing, and it saves and restores `errno`. Everything else (which
//! handler runs, with what count) happens later in the loop's own context.
//!
//! Subscribing and unsubscribing take a mutex (never touched by the handler). The first
//! subscriber of a signal installs our handler, remembering the previous action; the last
//! one to leave restores that action exactly. An unsubscribing loop waits until no
//! handler is running before it returns, so its wake fd can be closed safely afterwards.
//!
//! # What a running handler may read, and when it is written
//!
//! Every handler is *counted* in `IN_HANDLER` while it touches shared state: it
//! increments the count on entry, loads the subscribers' wake fds and writes to them,
//! **copies** the previous action onto its own stack, decrements the count, and only
//! then chains to the copy. Whoever changes what a counted handler may be reading waits
//! for the count to reach zero first, under `LOCK`:
//!
//! * `unsubscribe` and `rebind` clear or replace a wake fd, then wait: a handler that
//!   loaded the old fd has finished writing to it before the loop may close it.
//! * `install` is the only writer of a previous action. The previous action is kept in
//!   two slots and `current` says which one is published; `install` waits, then writes
//!   the *unpublished* slot, then publishes it. A handler loads `current` only while
//!   counted: counted before the wait ended, it is finished before the write starts;
//!   counted after, it reads the slot that was published (not being written) or the
//!   new one (written before it was published). So no handler ever reads a slot while
//!   it is written, and no handler is ever left without a previous action to chain to.
//!
//! The handler chains to the published previous action even when our handler is no
//! longer installed: a delivery the kernel routed to our handler just before the last
//! subscriber restored the previous action may start running just after. It still goes
//! to that previous action (which is what the restore made current), so every delivery
//! reaches a subscribed loop or the previous action (or both), none is dropped (a
//! previous `SIG_DFL` or `SIG_IGN` is, as always, not called).
//!
//! Why chain from a copy, after the count is released, rather than keep the count held
//! across the chained call: the previous handler is someone else's code. It may block
//! (wait for another thread, or simply take long), and every `subscribe`/`unsubscribe`
//! in the process would spin for as long; if it waits for the thread that is
//! unsubscribing, that is a deadlock. It may `siglongjmp` out (a shell-style SIGINT
//! handler), and the count would never come down: every later `unsubscribe` would
//! hang. Chaining from a copy keeps the counted section to our own short, non-blocking
//! code. The price is that a chained call may still be running, on another thread, when
//! `unsubscribe` returns; that is harmless, since the previous handler is the program's
//! own function, called for a delivery that happened while ours was installed.
//!
//! After `fork()` the child has only the forking thread, which is not inside a handler
//! (the counted section makes no calls that could fork): a handler running on another
//! thread of the parent at that moment would leave the child's count stuck above zero
//! for good, so a `pthread_atfork` child hook resets it.

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU8, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Highest signal number we handle (Linux's SIGRTMAX is 64).
pub(crate) const MAX_SIGNAL: usize = 64;
/// How many loops can watch one signal at the same time.
pub(crate) const MAX_SUBSCRIBERS: usize = 32;

/// `Entry::current` before any previous action was published.
const NO_PREV: u8 = u8::MAX;

struct Entry {
    fds: [AtomicI32; MAX_SUBSCRIBERS],
    counts: [AtomicU32; MAX_SUBSCRIBERS],
    /// Our handler is this signal's disposition (read and written under `LOCK` only).
    installed: AtomicBool,
    /// The action in place before ours, in two slots (see the module docs): `current` is
    /// the published one, the other is the one `install` writes next.
    prev: [UnsafeCell<MaybeUninit<libc::sigaction>>; 2],
    /// Index of the published slot of `prev`, or `NO_PREV`. Written under `LOCK` only.
    current: AtomicU8,
}

// SAFETY: `prev[i]` is written only by `install`, under LOCK, when `i` is not the
// published slot and after every counted handler has left (IN_HANDLER == 0); handlers
// read only the slot published when they were counted, and `unsubscribe` reads it under
// LOCK. So no slot is ever read while it is written (module docs). The atomics are Sync
// on their own.
unsafe impl Sync for Entry {}

#[allow(clippy::declare_interior_mutable_const)]
const ENTRY: Entry = Entry {
    fds: [const { AtomicI32::new(-1) }; MAX_SUBSCRIBERS],
    counts: [const { AtomicU32::new(0) }; MAX_SUBSCRIBERS],
    installed: AtomicBool::new(false),
    prev: [const { UnsafeCell::new(MaybeUninit::uninit()) }; 2],
    current: AtomicU8::new(NO_PREV),
};

static TABLE: [Entry; MAX_SIGNAL + 1] = [ENTRY; MAX_SIGNAL + 1];
static LOCK: Mutex<()> = Mutex::new(());
/// How many handlers are inside their counted section (module docs).
static IN_HANDLER: AtomicUsize = AtomicUsize::new(0);
/// Whether the `pthread_atfork` hook is registered (written under LOCK).
static ATFORK: AtomicBool = AtomicBool::new(false);

/// Wait until no handler is inside its counted section. Called under LOCK.
fn wait_for_handlers() {
    while IN_HANDLER.load(Ordering::SeqCst) != 0 {
        std::thread::yield_now();
    }
}

/// In a forked child, only the forking thread exists and it is not inside a handler.
extern "C" fn reset_after_fork() {
    IN_HANDLER.store(0, Ordering::SeqCst);
}

/// Why a signal cannot be watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Not a valid signal number on this system.
    Invalid,
    /// A signal the loop refuses to catch (uncatchable, or synchronous faults that must
    /// be handled in signal context).
    Refused,
    /// Too many loops already watch it.
    Busy,
}

/// Whether `signo` may be watched by a loop.
pub(crate) fn check(signo: i32) -> Result<(), Refusal> {
    let highest = super::os::realtime_range().map_or(31, |(_, max)| max);
    if signo <= 0 || signo as usize > MAX_SIGNAL || signo > highest {
        return Err(Refusal::Invalid);
    }
    if matches!(
        signo,
        libc::SIGKILL | libc::SIGSTOP | libc::SIGSEGV | libc::SIGBUS | libc::SIGILL | libc::SIGFPE
    ) {
        return Err(Refusal::Refused);
    }
    // glibc reserves the first two real-time signals for its own use (SIGRTMIN() already
    // excludes them; numbers between 31 and SIGRTMIN are not for applications).
    if let Some((min, _)) = super::os::realtime_range() {
        if signo > 31 && signo < min {
            return Err(Refusal::Invalid);
        }
    }
    Ok(())
}

/// Subscribe a wake fd to `signo`; returns the subscriber index.
pub(crate) fn subscribe(signo: i32, waker: &evloop_backends::Waker) -> Result<usize, Refusal> {
    let wake_fd = waker.wake_fd();
    check(signo)?;
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let e = &TABLE[signo as usize];
    let slot = e
        .fds
        .iter()
        .position(|fd| fd.load(Ordering::Relaxed) < 0)
        .ok_or(Refusal::Busy)?;
    e.counts[slot].store(0, Ordering::Relaxed);
    e.fds[slot].store(wake_fd, Ordering::Release);
    if !e.installed.load(Ordering::Relaxed) {
        if let Err(err) = install(signo, e) {
            e.fds[slot].store(-1, Ordering::SeqCst);
            // A stray handler may have loaded the fd meanwhile: the caller may close it
            // once we return.
            wait_for_handlers();
            return Err(err);
        }
    }
    Ok(slot)
}

/// Point a subscription at a new wake fd (after fork, the loop gets a fresh one).
pub(crate) fn rebind(signo: i32, slot: usize, waker: &evloop_backends::Waker) {
    let wake_fd = waker.wake_fd();
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    TABLE[signo as usize].fds[slot].store(wake_fd, Ordering::SeqCst);
    // A handler that loaded the old fd may still be writing to it: wait it out, so the
    // caller may close the old one.
    wait_for_handlers();
}

/// Take the number of deliveries since the last call.
pub(crate) fn take(signo: i32, slot: usize) -> u32 {
    TABLE[signo as usize].counts[slot].swap(0, Ordering::AcqRel)
}

/// Remove a subscription; restores the previous action when it was the last one.
pub(crate) fn unsubscribe(signo: i32, slot: usize) {
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let e = &TABLE[signo as usize];
    e.fds[slot].store(-1, Ordering::SeqCst);
    // A handler that loaded the old fd may still be writing to it: wait it out.
    wait_for_handlers();
    let any_left = e.fds.iter().any(|fd| fd.load(Ordering::Relaxed) >= 0);
    if !any_left && e.installed.load(Ordering::Relaxed) {
        let cur = e.current.load(Ordering::SeqCst);
        // `install` published a slot before it installed our handler.
        debug_assert!(cur != NO_PREV);
        // SAFETY: `cur` is the published slot, filled by `install` with the valid
        // sigaction that was in place before ours; we hold LOCK, so `install` (the only
        // writer) is not running, and handlers only read it. sigaction(2) only reads the
        // new action and writes nothing (null old-action pointer).
        unsafe {
            let prev = (*e.prev[usize::from(cur)].get()).as_ptr();
            libc::sigaction(signo, prev, std::ptr::null_mut());
        }
        e.installed.store(false, Ordering::Relaxed);
        // `current` stays published: a delivery routed to our handler before the restore
        // may start running after it, and chains to the action just restored.
    }
}

/// Read the current action of `signo` into a fresh `prev` slot, publish it, and install
/// our handler. Called under LOCK, while our handler is not installed.
fn install(signo: i32, e: &Entry) -> Result<(), Refusal> {
    if !ATFORK.load(Ordering::Relaxed) {
        // SAFETY: registers a child hook, a plain `extern "C" fn()` that only stores to an
        // atomic (async-signal-safe, as the child of a multithreaded fork requires).
        if unsafe { libc::pthread_atfork(None, None, Some(reset_after_fork)) } == 0 {
            ATFORK.store(true, Ordering::Relaxed);
        }
    }
    // The unpublished slot: 1 if slot 0 is published, else 0 (also the first time).
    let next = u8::from(e.current.load(Ordering::SeqCst) == 0);
    let slot = e.prev[usize::from(next)].get();
    // A handler counted two installs ago may still be copying `slot` (then published).
    wait_for_handlers();
    // SAFETY: we hold LOCK (no other writer) and `slot` is not the published slot, so a
    // handler counted from now on reads the other one; every handler counted before has
    // left (just waited). sigaction with a null new action only writes the current one
    // into `slot`, valid and writable storage for one sigaction.
    if unsafe { libc::sigaction(signo, std::ptr::null(), (*slot).as_mut_ptr()) } != 0 {
        return Err(Refusal::Invalid);
    }
    // Publish: a handler that loads `current` (SeqCst) and sees `next` also sees the
    // slot's contents.
    e.current.store(next, Ordering::SeqCst);
    // SAFETY: a zeroed sigaction is a valid starting point; every field we rely on is
    // set below.
    let mut new: libc::sigaction = unsafe { std::mem::zeroed() };
    new.sa_sigaction = handler_addr();
    // Run on the thread's normal stack (not SA_ONSTACK: Rust's per-thread alternate
    // stack is a few KiB, and two nested kernel signal frames overflow it), with every
    // signal blocked while this short handler runs, so deliveries never nest.
    new.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
    // SAFETY: `new.sa_mask` is a valid sigset_t to initialise.
    unsafe { libc::sigfillset(&mut new.sa_mask) };
    // SAFETY: `new` is a fully initialised sigaction whose handler is an
    // `extern "C" fn(c_int, *mut siginfo_t, *mut c_void)`, matching SA_SIGINFO.
    if unsafe { libc::sigaction(signo, &new, std::ptr::null_mut()) } != 0 {
        return Err(Refusal::Invalid);
    }
    e.installed.store(true, Ordering::Relaxed);
    Ok(())
}

fn handler_addr() -> libc::sighandler_t {
    handler as *const () as libc::sighandler_t
}

extern "C" fn handler(signo: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let errno = super::os::errno_ptr();
    // SAFETY: `errno` points to this thread's errno; a signal handler saves and restores
    // it so the interrupted code finds it as it left it.
    let saved_errno = unsafe { *errno };
    if signo > 0 && (signo as usize) <= MAX_SIGNAL {
        let e = &TABLE[signo as usize];
        // The counted section: our own code only, no call that blocks or jumps out.
        IN_HANDLER.fetch_add(1, Ordering::SeqCst);
        for i in 0..MAX_SUBSCRIBERS {
            let fd = e.fds[i].load(Ordering::SeqCst);
            if fd >= 0 {
                e.counts[i].fetch_add(1, Ordering::AcqRel);
                // SAFETY: a non-negative entry is the `Waker::wake_fd` of a subscribed
                // loop, stored by `subscribe`/`rebind`. The loop closes that waker only
                // after `unsubscribe` (or `rebind`, for the old fd) has replaced the entry
                // and waited for IN_HANDLER to reach 0, and we are counted in IN_HANDLER
                // until after this call, so the fd is still open here. wake_raw is
                // async-signal-safe (one write or kevent).
                unsafe { evloop_backends::wake_raw(fd) };
            }
        }
        let cur = e.current.load(Ordering::SeqCst);
        let prev = if cur == NO_PREV {
            None
        } else {
            // SAFETY: we are counted in IN_HANDLER and loaded `cur` while counted, so
            // `install` will not write this slot before we leave (it writes only the
            // unpublished slot, after waiting for IN_HANDLER == 0), and its contents,
            // written before `cur` was published, are a valid sigaction. A plain copy
            // onto our stack: no allocation, no lock.
            Some(unsafe { std::ptr::read((*e.prev[usize::from(cur)].get()).as_ptr()) })
        };
        IN_HANDLER.fetch_sub(1, Ordering::SeqCst);
        // Chain from the copy, uncounted: the previous handler may block or jump out.
        if let Some(prev) = prev {
            chain(&prev, signo, info, ctx);
        }
    }
    // SAFETY: see above.
    unsafe { *errno = saved_errno };
}

/// Call the previously installed handler, if it was a function (not SIG_DFL/SIG_IGN:
/// the default action of a signal someone is watching is exactly what watching replaces),
/// and not our own handler (which could be "previous" only if someone re-installed it
/// behind our back: calling it would recurse forever).
fn chain(prev: &libc::sigaction, signo: i32, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let h = prev.sa_sigaction;
    if h == libc::SIG_DFL || h == libc::SIG_IGN || h == handler_addr() {
        return;
    }
    if prev.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: with SA_SIGINFO the previous owner installed a three-argument handler.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(h) };
        f(signo, info, ctx);
    } else {
        // SAFETY: without SA_SIGINFO the previous owner installed a one-argument handler.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(h) };
        f(signo);
    }
}
