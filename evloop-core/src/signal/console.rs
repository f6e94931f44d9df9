//! Signals on Windows: the console's control events, delivered in loop context like Unix
//! signals. Windows has no `sigaction`; a console program gets Ctrl-C, Ctrl-Break and the
//! console's close, logoff and shutdown events through a control handler, which the
//! system calls on a thread of its own (not inside interrupted code, so it may take a
//! lock). Ours counts the event for every loop watching it and wakes them; the loops
//! dispatch it like a Unix signal (`Ready::SIGNAL`, with the count).
//!
//! | console event | signal |
//! |---|---|
//! | `CTRL_C_EVENT` | `SIGINT` (2) |
//! | `CTRL_BREAK_EVENT` | `SIGBREAK` (21) |
//! | `CTRL_CLOSE_EVENT` | `SIGHUP` (1): the console window is closing |
//! | `CTRL_LOGOFF_EVENT`, `CTRL_SHUTDOWN_EVENT` | `SIGTERM` (15) |
//!
//! An event nobody watches is passed on (the handler returns `FALSE`), so the default
//! (ending the process) still applies. For a watched close, logoff or shutdown event,
//! Windows ends the process as soon as the handler returns; so the handler does not
//! return: its thread waits (as libuv's does) while the loops handle the event, and the
//! process ends when the program exits, or when Windows's own time limit for these events
//! runs out (about 5 s for a close, longer for a shutdown). A loop has that long to clean
//! up.
//!
//! `AllocConsole`, `AttachConsole` and `FreeConsole` clear a process's control handlers:
//! a program that calls them after a loop first watched one of these signals stops
//! hearing them.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use evloop_backends::Waker;
use windows_sys::Win32::System::Console::{
    SetConsoleCtrlHandler, CTRL_BREAK_EVENT, CTRL_CLOSE_EVENT, CTRL_C_EVENT, CTRL_LOGOFF_EVENT,
    CTRL_SHUTDOWN_EVENT,
};

/// Highest signal number we handle.
pub(crate) const MAX_SIGNAL: usize = 31;
/// How many loops can watch one signal at the same time.
pub(crate) const MAX_SUBSCRIBERS: usize = 32;

pub(crate) const SIGHUP: i32 = 1;
pub(crate) const SIGINT: i32 = 2;
pub(crate) const SIGTERM: i32 = 15;
pub(crate) const SIGBREAK: i32 = 21;

/// Why a signal cannot be watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Not a signal a loop can watch on Windows.
    Invalid,
    /// A signal Windows has that cannot be watched (the C runtime's synchronous ones).
    Refused,
    /// Too many loops already watch it.
    Busy,
}

struct Sub {
    signo: i32,
    slot: usize,
    waker: Waker,
    count: AtomicU32,
}

/// Every subscription (taken by the control handler's thread and by loops).
static SUBS: Mutex<Vec<Sub>> = Mutex::new(Vec::new());
static INSTALLED: Mutex<bool> = Mutex::new(false);

/// Whether `signo` may be watched by a loop on Windows.
pub(crate) fn check(signo: i32) -> Result<(), Refusal> {
    match signo {
        SIGHUP | SIGINT | SIGTERM | SIGBREAK => Ok(()),
        // SIGILL, SIGFPE, SIGSEGV, SIGABRT: the C runtime's, raised in the faulting code.
        4 | 8 | 11 | 22 => Err(Refusal::Refused),
        _ => Err(Refusal::Invalid),
    }
}

fn signal_of(ctrl: u32) -> Option<i32> {
    match ctrl {
        CTRL_C_EVENT => Some(SIGINT),
        CTRL_BREAK_EVENT => Some(SIGBREAK),
        CTRL_CLOSE_EVENT => Some(SIGHUP),
        CTRL_LOGOFF_EVENT | CTRL_SHUTDOWN_EVENT => Some(SIGTERM),
        _ => None,
    }
}

/// The console control handler: count and wake, on the system's handler thread.
unsafe extern "system" fn on_console_event(ctrl: u32) -> windows_sys::core::BOOL {
    let Some(signo) = signal_of(ctrl) else {
        return 0;
    };
    let mut heard = false;
    {
        let subs = SUBS.lock().unwrap_or_else(|e| e.into_inner());
        for s in subs.iter().filter(|s| s.signo == signo) {
            s.count.fetch_add(1, Ordering::AcqRel);
            let _ = s.waker.wake();
            heard = true;
        }
    }
    if heard
        && matches!(
            ctrl,
            CTRL_CLOSE_EVENT | CTRL_LOGOFF_EVENT | CTRL_SHUTDOWN_EVENT
        )
    {
        // Returning would end the process now; the loops need time to run their
        // handlers. The process ends when the program exits or Windows's limit for this
        // event runs out. (The lock is released: loops may still unsubscribe.)
        loop {
            std::thread::park();
        }
    }
    i32::from(heard)
}

fn install() -> Result<(), Refusal> {
    let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    if !*installed {
        // SAFETY: registers a function with the right signature; it stays valid for the
        // life of the process (never removed).
        if unsafe { SetConsoleCtrlHandler(Some(on_console_event), 1) } == 0 {
            return Err(Refusal::Refused);
        }
        *installed = true;
    }
    Ok(())
}

/// Subscribe `waker`'s loop to `signo`; returns its slot.
pub(crate) fn subscribe(signo: i32, waker: &Waker) -> Result<usize, Refusal> {
    check(signo)?;
    install()?;
    let mut subs = SUBS.lock().unwrap_or_else(|e| e.into_inner());
    let slot = (0..MAX_SUBSCRIBERS)
        .find(|&k| !subs.iter().any(|s| s.signo == signo && s.slot == k))
        .ok_or(Refusal::Busy)?;
    let waker = waker.try_clone().map_err(|_| Refusal::Refused)?;
    subs.push(Sub {
        signo,
        slot,
        waker,
        count: AtomicU32::new(0),
    });
    Ok(slot)
}

/// Arrivals of `signo` for the subscriber in `slot` since the last call.
pub(crate) fn take(signo: i32, slot: usize) -> u32 {
    let subs = SUBS.lock().unwrap_or_else(|e| e.into_inner());
    subs.iter()
        .find(|s| s.signo == signo && s.slot == slot)
        .map_or(0, |s| s.count.swap(0, Ordering::AcqRel))
}

/// Remove a subscription.
pub(crate) fn unsubscribe(signo: i32, slot: usize) {
    SUBS.lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|s| !(s.signo == signo && s.slot == slot));
}
