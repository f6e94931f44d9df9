//! Signals, delivered in loop context.
//!
//! [`registry`] holds the process-wide part (one `sigaction` per signal, atomics, chaining
//! and restoring). A loop subscribes its wake fd for each signal it watches; when the
//! wake fd fires, the loop takes each watched signal's counter and dispatches the signal
//! source once with `Ready::SIGNAL` and the number of arrivals in `Event::count`.

mod os;
pub(crate) mod registry;

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
    os::realtime_range()
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
        let (min, max) = os::realtime_range()?;
        let off: i32 = if rest.is_empty() {
            0
        } else {
            rest.strip_prefix('+')?.parse().ok()?
        };
        let s = min + off;
        return (s <= max).then_some(s);
    }
    if let Some(rest) = n.strip_prefix("RTMAX") {
        let (min, max) = os::realtime_range()?;
        let off: i32 = if rest.is_empty() {
            0
        } else {
            rest.strip_prefix('-')?.parse().ok()?
        };
        let s = max - off;
        return (s >= min).then_some(s);
    }
    let s = match n {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "ILL" => libc::SIGILL,
        "TRAP" => libc::SIGTRAP,
        "ABRT" => libc::SIGABRT,
        "BUS" => libc::SIGBUS,
        "FPE" => libc::SIGFPE,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "SEGV" => libc::SIGSEGV,
        "USR2" => libc::SIGUSR2,
        "PIPE" => libc::SIGPIPE,
        "ALRM" => libc::SIGALRM,
        "TERM" => libc::SIGTERM,
        "CHLD" => libc::SIGCHLD,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "TSTP" => libc::SIGTSTP,
        "TTIN" => libc::SIGTTIN,
        "TTOU" => libc::SIGTTOU,
        "URG" => libc::SIGURG,
        "XCPU" => libc::SIGXCPU,
        "XFSZ" => libc::SIGXFSZ,
        "VTALRM" => libc::SIGVTALRM,
        "PROF" => libc::SIGPROF,
        "WINCH" => libc::SIGWINCH,
        "IO" => libc::SIGIO,
        "SYS" => libc::SIGSYS,
        _ => return None,
    };
    Some(s)
}
