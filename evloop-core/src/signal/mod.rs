//! Signals, delivered in loop context.
//!
//! [`registry`] holds the process-wide part (one `sigaction` per signal, atomics, chaining
//! and restoring). A loop subscribes its wake fd for each signal it watches; when the
//! wake fd fires, the loop takes each watched signal's counter and dispatches the signal
//! source once with `Ready::SIGNAL` and the number of arrivals in `Event::count`.

#[cfg(windows)]
pub(crate) mod console;
#[cfg(unix)]
mod os;
#[cfg(unix)]
pub(crate) mod registry;
/// The process-wide part, by platform: `sigaction` on Unix, the console control handler on
/// Windows (`console.rs`); both have the same functions.
#[cfg(windows)]
pub(crate) use console as registry;

/// The lowest and highest real-time signal (`SIGRTMIN()`, `SIGRTMAX()`) a loop can
/// watch on this system, or `None` where it has none a loop can watch (macOS, the BSDs).
///
/// ```
/// let rt = evloop_core::realtime_signals();
/// # #[cfg(target_os = "linux")]
/// assert_eq!(rt, Some((libc::SIGRTMIN(), libc::SIGRTMAX())));
/// # #[cfg(target_os = "macos")]
/// assert_eq!(rt, None);
/// # let _ = rt;
/// ```
pub fn realtime_signals() -> Option<(i32, i32)> {
    #[cfg(unix)]
    return os::realtime_range();
    #[cfg(windows)]
    return None;
}

/// The number of a signal by its name (`"SIGHUP"`, `"HUP"`, `"SIGRTMIN+2"`), as this
/// system numbers it; `None` for an unknown name.
///
/// ```
/// assert_eq!(evloop_core::signal_number("SIGHUP"), Some(libc::SIGHUP));
/// assert_eq!(evloop_core::signal_number("TERM"), Some(libc::SIGTERM));
/// # #[cfg(target_os = "linux")]
/// assert_eq!(evloop_core::signal_number("SIGRTMIN+1"), Some(libc::SIGRTMIN() + 1));
/// assert_eq!(evloop_core::signal_number("SIGHUB"), None);
/// ```
pub fn signal_number(name: &str) -> Option<i32> {
    let n = name.strip_prefix("SIG").unwrap_or(name);
    if let Some(rest) = n.strip_prefix("RTMIN") {
        let (min, max) = realtime_signals()?;
        let off: i32 = if rest.is_empty() {
            0
        } else {
            rest.strip_prefix('+')?.parse().ok()?
        };
        let s = min + off;
        return (s <= max).then_some(s);
    }
    if let Some(rest) = n.strip_prefix("RTMAX") {
        let (min, max) = realtime_signals()?;
        let off: i32 = if rest.is_empty() {
            0
        } else {
            rest.strip_prefix('-')?.parse().ok()?
        };
        let s = max - off;
        return (s >= min).then_some(s);
    }
    SIGNALS
        .iter()
        .find(|(name, _)| name.strip_prefix("SIG") == Some(n))
        .map(|&(_, s)| s)
}

/// Every signal [`signal_number`] knows by name (besides `SIGRTMIN+n` and `SIGRTMAX-n`),
/// with this system's number for it. `#[on_signal]` accepts the names of those a loop
/// can watch ([`can_watch_signal`]) and explains the others; a test in `evloop-macros`
/// keeps its table in step with this one.
///
/// ```
/// assert!(evloop_core::SIGNALS.contains(&("SIGHUP", libc::SIGHUP)));
/// ```
#[cfg(unix)]
pub const SIGNALS: &[(&str, i32)] = &[
    ("SIGHUP", libc::SIGHUP),
    ("SIGINT", libc::SIGINT),
    ("SIGQUIT", libc::SIGQUIT),
    ("SIGILL", libc::SIGILL),
    ("SIGTRAP", libc::SIGTRAP),
    ("SIGABRT", libc::SIGABRT),
    ("SIGBUS", libc::SIGBUS),
    ("SIGFPE", libc::SIGFPE),
    ("SIGKILL", libc::SIGKILL),
    ("SIGUSR1", libc::SIGUSR1),
    ("SIGSEGV", libc::SIGSEGV),
    ("SIGUSR2", libc::SIGUSR2),
    ("SIGPIPE", libc::SIGPIPE),
    ("SIGALRM", libc::SIGALRM),
    ("SIGTERM", libc::SIGTERM),
    ("SIGCHLD", libc::SIGCHLD),
    ("SIGCONT", libc::SIGCONT),
    ("SIGSTOP", libc::SIGSTOP),
    ("SIGTSTP", libc::SIGTSTP),
    ("SIGTTIN", libc::SIGTTIN),
    ("SIGTTOU", libc::SIGTTOU),
    ("SIGURG", libc::SIGURG),
    ("SIGXCPU", libc::SIGXCPU),
    ("SIGXFSZ", libc::SIGXFSZ),
    ("SIGVTALRM", libc::SIGVTALRM),
    ("SIGPROF", libc::SIGPROF),
    ("SIGWINCH", libc::SIGWINCH),
    ("SIGIO", libc::SIGIO),
    ("SIGSYS", libc::SIGSYS),
];

/// Every signal [`signal_number`] knows by name on Windows: the console events a loop
/// can watch (`SIGINT` for Ctrl-C, `SIGBREAK` for Ctrl-Break, `SIGHUP` for the console
/// closing, `SIGTERM` for logoff and shutdown) and the C runtime's synchronous signals,
/// which it cannot.
///
/// ```
/// assert!(evloop_core::SIGNALS.contains(&("SIGINT", 2)));
/// ```
#[cfg(windows)]
pub const SIGNALS: &[(&str, i32)] = &[
    ("SIGHUP", registry::SIGHUP),
    ("SIGINT", registry::SIGINT),
    ("SIGILL", 4),
    ("SIGFPE", 8),
    ("SIGSEGV", 11),
    ("SIGTERM", registry::SIGTERM),
    ("SIGBREAK", registry::SIGBREAK),
    ("SIGABRT", 22),
];

/// Whether a loop can watch `signo` on this system: not `SIGKILL` or `SIGSTOP` (the
/// kernel never lets a process catch them), not a synchronous fault (`SIGSEGV`,
/// `SIGBUS`, `SIGILL`, `SIGFPE`: the faulting code cannot wait for the loop), and a
/// number this system has (real-time ones included). [`Ctx::add_signal`](crate::Ctx::add_signal)
/// refuses the others with a clear error.
///
/// ```
/// assert!(evloop_core::can_watch_signal(libc::SIGHUP));
/// assert!(!evloop_core::can_watch_signal(libc::SIGKILL));
/// assert!(!evloop_core::can_watch_signal(libc::SIGSEGV));
/// assert!(!evloop_core::can_watch_signal(0));
/// ```
pub fn can_watch_signal(signo: i32) -> bool {
    registry::check(signo).is_ok()
}
