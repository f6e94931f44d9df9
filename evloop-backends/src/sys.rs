//! Thin helpers over `libc`: errno to `io::Error`, timeout conversion, the open-file limit.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// Call a libc function, turning a `-1` return into `Err(io::Error::last_os_error())`.
///
/// The macro does not hide the call's `unsafe`: it expands to a plain call of
/// `libc::$fn`, which compiles only inside an `unsafe` block written at the call site.
/// So every call site is an `unsafe` block of its own, and clippy's
/// `undocumented_unsafe_blocks` (denied in the workspace) makes each one carry a
/// `// SAFETY:` comment saying why *its* arguments satisfy the libc contract:
///
/// ```text
/// // SAFETY: `fd` is an open fd this backend owns; F_GETFD takes no pointer.
/// let flags = unsafe { syscall!(fcntl(fd, libc::F_GETFD)) }?;
/// ```
///
/// The block covers the argument expressions and the `-1` check too; keep the
/// arguments plain (no unrelated unsafe operations in them).
macro_rules! syscall {
    ($fn:ident ( $($arg:expr),* $(,)? )) => {{
        let res = libc::$fn($($arg),*);
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
    // SAFETY: F_GETFD takes no third argument and only reads the fd table; `fd` may be
    // any integer (closed or never opened gives EBADF), nothing is read or written
    // through it.
    unsafe { syscall!(fcntl(fd, libc::F_GETFD)) }.map(|_| ())
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

/// Convert an optional timeout to the `timespec` of `kevent(2)` (and `port_getn(3C)`):
/// `None` is "wait forever" (a null pointer for the caller), zero stays zero (a poll).
///
/// `timespec` has nanosecond resolution, like [`Duration`], so nothing is rounded: a
/// non-zero timeout stays non-zero (never a busy loop). A timeout beyond `max_secs`
/// seconds (and beyond `time_t`) is clamped to `max_secs`: the caller wakes early, sees
/// its deadline has not passed, and waits again. Each backend passes the largest value
/// its kernels accept.
#[cfg(any(
    test,
    target_os = "macos",
    target_os = "ios",
    target_os = "tvos",
    target_os = "watchos",
    target_os = "visionos",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly",
    target_os = "illumos",
    target_os = "solaris"
))]
pub(crate) fn timeout_timespec(timeout: Option<Duration>, max_secs: u64) -> Option<libc::timespec> {
    let d = timeout?;
    let max = max_secs.min(libc::time_t::MAX as u64);
    let (secs, nanos) = if d.as_secs() >= max {
        (max, 0)
    } else {
        (d.as_secs(), d.subsec_nanos())
    };
    Some(libc::timespec {
        tv_sec: secs as libc::time_t,
        tv_nsec: nanos as _,
    })
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
    fn timespec_keeps_nanoseconds_and_zero() {
        let ts = |d| timeout_timespec(Some(d), u64::MAX).map(|t| (t.tv_sec, t.tv_nsec));
        assert_eq!(
            ts(Duration::from_nanos(1)),
            Some((0, 1)),
            "never rounded down to zero"
        );
        assert_eq!(ts(Duration::from_micros(1)), Some((0, 1_000)));
        assert_eq!(ts(Duration::new(1, 500_000_000)), Some((1, 500_000_000)));
        assert_eq!(ts(Duration::ZERO), Some((0, 0)), "zero stays a poll");
        assert!(timeout_timespec(None, 100).is_none(), "None waits forever");
    }

    #[test]
    fn timespec_clamps_huge_timeouts() {
        let t = timeout_timespec(Some(Duration::MAX), 100_000_000).unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (100_000_000, 0));
        let t = timeout_timespec(Some(Duration::new(100_000_000, 5)), 100_000_000).unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (100_000_000, 0));
        let t = timeout_timespec(Some(Duration::new(99_999_999, 5)), 100_000_000).unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (99_999_999, 5));
        // Whatever the caller asks, the result fits `time_t`.
        let t = timeout_timespec(Some(Duration::MAX), u64::MAX).unwrap();
        assert_eq!(t.tv_sec, libc::time_t::MAX);
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
