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

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Highest signal number we handle (Linux's SIGRTMAX is 64).
pub(crate) const MAX_SIGNAL: usize = 64;
/// How many loops can watch one signal at the same time.
pub(crate) const MAX_SUBSCRIBERS: usize = 32;

struct Entry {
    fds: [AtomicI32; MAX_SUBSCRIBERS],
    counts: [AtomicU32; MAX_SUBSCRIBERS],
    installed: AtomicBool,
    prev: UnsafeCell<MaybeUninit<libc::sigaction>>,
}

// SAFETY: `prev` is written only under LOCK while our handler is not installed for this
// signal (so no handler can be reading it) and read by the handler only while installed.
// The atomics are Sync on their own.
unsafe impl Sync for Entry {}

#[allow(clippy::declare_interior_mutable_const)]
const ENTRY: Entry = Entry {
    fds: [const { AtomicI32::new(-1) }; MAX_SUBSCRIBERS],
    counts: [const { AtomicU32::new(0) }; MAX_SUBSCRIBERS],
    installed: AtomicBool::new(false),
    prev: UnsafeCell::new(MaybeUninit::uninit()),
};

static TABLE: [Entry; MAX_SIGNAL + 1] = [ENTRY; MAX_SIGNAL + 1];
static LOCK: Mutex<()> = Mutex::new(());
static IN_HANDLER: AtomicUsize = AtomicUsize::new(0);

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
pub(crate) fn subscribe(signo: i32, wake_fd: RawFd) -> Result<usize, Refusal> {
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
            e.fds[slot].store(-1, Ordering::Release);
            return Err(err);
        }
    }
    Ok(slot)
}

/// Point a subscription at a new wake fd (after fork, the loop gets a fresh one).
pub(crate) fn rebind(signo: i32, slot: usize, wake_fd: RawFd) {
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    TABLE[signo as usize].fds[slot].store(wake_fd, Ordering::Release);
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
    while IN_HANDLER.load(Ordering::SeqCst) != 0 {
        std::thread::yield_now();
    }
    let any_left = e.fds.iter().any(|fd| fd.load(Ordering::Relaxed) >= 0);
    if !any_left && e.installed.load(Ordering::Relaxed) {
        // SAFETY: `prev` was filled by `install` for this signal (installed == true) and
        // is a valid sigaction; restoring it is what sigaction(2) is for.
        unsafe {
            let prev = (*e.prev.get()).as_ptr();
            libc::sigaction(signo, prev, std::ptr::null_mut());
        }
        e.installed.store(false, Ordering::Release);
    }
}

fn install(signo: i32, e: &Entry) -> Result<(), Refusal> {
    // SAFETY: we hold LOCK and our handler is not installed for `signo`, so nothing reads
    // `prev` concurrently; sigaction with a null new action only reads the current one
    // into the valid, writable `prev` storage.
    unsafe {
        if libc::sigaction(signo, std::ptr::null(), (*e.prev.get()).as_mut_ptr()) != 0 {
            return Err(Refusal::Invalid);
        }
    }
    std::sync::atomic::fence(Ordering::SeqCst);
    // SAFETY: a zeroed sigaction is a valid starting point; every field we rely on is
    // set below.
    let mut new: libc::sigaction = unsafe { std::mem::zeroed() };
    new.sa_sigaction = handler as *const () as usize;
    // Run on the thread's normal stack (not SA_ONSTACK: Rust's per-thread alternate
    // stack is a few KiB, and two nested kernel signal frames overflow it), with every
    // signal blocked while this short handler runs, so deliveries never nest.
    new.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
    // SAFETY: `new.sa_mask` is a valid sigset_t to initialise.
    unsafe { libc::sigfillset(&mut new.sa_mask) };
    e.installed.store(true, Ordering::Release);
    // SAFETY: `new` is a fully initialised sigaction whose handler is an
    // `extern "C" fn(c_int, *mut siginfo_t, *mut c_void)`, matching SA_SIGINFO.
    if unsafe { libc::sigaction(signo, &new, std::ptr::null_mut()) } != 0 {
        e.installed.store(false, Ordering::Release);
        return Err(Refusal::Invalid);
    }
    Ok(())
}

extern "C" fn handler(signo: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let errno = super::os::errno_ptr();
    // SAFETY: `errno` points to this thread's errno; a signal handler saves and restores
    // it so the interrupted code finds it as it left it.
    let saved_errno = unsafe { *errno };
    if signo > 0 && (signo as usize) <= MAX_SIGNAL {
        let e = &TABLE[signo as usize];
        IN_HANDLER.fetch_add(1, Ordering::SeqCst);
        for i in 0..MAX_SUBSCRIBERS {
            let fd = e.fds[i].load(Ordering::SeqCst);
            if fd >= 0 {
                e.counts[i].fetch_add(1, Ordering::AcqRel);
                evloop_backends::wake_raw(fd);
            }
        }
        IN_HANDLER.fetch_sub(1, Ordering::SeqCst);
        if e.installed.load(Ordering::Acquire) {
            // SAFETY: while installed, `prev` holds the sigaction that was in place before
            // ours and is not written (writers hold LOCK and only write when not installed).
            let prev = unsafe { (*e.prev.get()).assume_init_ref() };
            chain(prev, signo, info, ctx);
        }
    }
    // SAFETY: see above.
    unsafe { *errno = saved_errno };
}

/// Call the previously installed handler, if it was a function (not SIG_DFL/SIG_IGN:
/// the default action of a signal someone is watching is exactly what watching replaces).
fn chain(prev: &libc::sigaction, signo: i32, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let h = prev.sa_sigaction;
    if h == libc::SIG_DFL || h == libc::SIG_IGN {
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
