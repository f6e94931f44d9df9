//! Thin helpers over `libc`: errno to `io::Error`, timeout conversion, the open-file limit.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// Call a libc function, turning a `-1` return into `Err(io::Error::last_os_error())`.
macro_rules! syscall {
    ($fn:ident ( $($arg:expr),* $(,)? )) => {{
        // SAFETY: each call site passes arguments that satisfy the libc contract of
        // `$fn`; the caller's own `// SAFETY:` comment explains why.
        #[allow(unused_unsafe, clippy::undocumented_unsafe_blocks)]
        let res = unsafe { libc::$fn($($arg),*) };
        if res == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}
pub(crate) use syscall;

/// How many file descriptors this process may have open, for sizing fd-indexed tables
/// so that steady state never grows them.
///
/// This is the soft `RLIMIT_NOFILE` limit, clamped to `64..=65536` so that an unlimited
/// or huge limit does not size a huge table. If `getrlimit` fails, the answer is 1024.
///
/// ```
/// let n = evloop_backends::open_file_limit();
/// assert!((64..=1 << 16).contains(&n));
/// ```
pub fn open_file_limit() -> usize {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `rl` is a valid, writable rlimit struct.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } == 0;
    let lim = if ok { rl.rlim_cur as usize } else { 1024 };
    lim.clamp(64, 1 << 16)
}

/// The error for registering a negative fd.
pub(crate) fn negative_fd(fd: RawFd) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("cannot register negative fd {fd}"),
    )
}

/// The error for registering an fd twice (the contract allows one registration per fd).
pub(crate) fn already_registered(fd: RawFd) -> io::Error {
    io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("fd {fd} is already registered"),
    )
}

/// The error for modifying or deregistering an fd that is not registered.
pub(crate) fn not_registered(fd: RawFd) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("fd {fd} is not registered"),
    )
}

/// `Ok` if `fd` names an open file description (for backends with no kernel object to
/// refuse a closed fd at registration).
pub(crate) fn check_open(fd: RawFd) -> io::Result<()> {
    syscall!(fcntl(fd, libc::F_GETFD)).map(|_| ())
}

/// The longest timeout any of our kernel calls accepts, in milliseconds (`int` ms).
pub(crate) const MAX_TIMEOUT_MS: i32 = i32::MAX;

/// Convert an optional timeout to the `int` milliseconds of epoll_wait/poll.
///
/// `None` is "wait forever" (-1). A non-zero timeout below one millisecond rounds *up*
/// to 1 ms (rounding down to 0 would turn a short timer into a busy loop), and a timeout
/// beyond `i32::MAX` ms (about 24.8 days) is clamped: the caller wakes early, sees its
/// deadline has not passed, and waits again.
pub(crate) fn timeout_ms(timeout: Option<Duration>) -> i32 {
    match timeout {
        None => -1,
        Some(d) => {
            let ms = d.as_millis();
            let ms = if d.subsec_nanos() % 1_000_000 != 0 {
                ms + 1
            } else {
                ms
            };
            if ms > MAX_TIMEOUT_MS as u128 {
                MAX_TIMEOUT_MS
            } else {
                ms as i32
            }
        }
    }
}

/// Deadline bookkeeping for retrying a wait after `EINTR` with the time that remains.
pub(crate) struct Deadline {
    end: Option<std::time::Instant>,
}

impl Deadline {
    /// A deadline `timeout` from now (`None`: no deadline).
    pub(crate) fn new(timeout: Option<Duration>) -> Self {
        let end = match timeout {
            Some(d) if !d.is_zero() => std::time::Instant::now().checked_add(d),
            _ => None,
        };
        Deadline { end }
    }

    /// The timeout to use when retrying after `EINTR`: what is left of the original one.
    /// `original` is what the first call was given.
    pub(crate) fn remaining(&self, original: Option<Duration>) -> Option<Duration> {
        match (original, self.end) {
            (None, _) => None,
            (Some(d), None) => Some(d), // zero, or too far to represent: unchanged
            (Some(_), Some(end)) => Some(end.saturating_duration_since(std::time::Instant::now())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_millisecond_rounds_up() {
        assert_eq!(timeout_ms(Some(Duration::from_micros(1))), 1);
        assert_eq!(timeout_ms(Some(Duration::from_nanos(999_999))), 1);
        assert_eq!(timeout_ms(Some(Duration::from_micros(1500))), 2);
        assert_eq!(timeout_ms(Some(Duration::from_millis(3))), 3);
        assert_eq!(timeout_ms(Some(Duration::ZERO)), 0);
        assert_eq!(timeout_ms(None), -1);
    }

    #[test]
    fn huge_timeouts_clamp() {
        assert_eq!(timeout_ms(Some(Duration::MAX)), i32::MAX);
        assert_eq!(
            timeout_ms(Some(Duration::from_secs(86_400 * 365))),
            i32::MAX
        );
    }
}
