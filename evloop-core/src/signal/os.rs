//! The few signal facts that differ between systems: the real-time range and where a
//! thread's `errno` lives.

/// The lowest and highest real-time signal, where the system has them (and they fit
/// under the registry's `MAX_SIGNAL`): Linux and Android (glibc's `SIGRTMIN()` already
/// skips the ones it keeps), illumos and Solaris (asked of `sysconf`). FreeBSD numbers
/// them 65 to 126, beyond the registry's table; macOS, NetBSD (for the libc crate),
/// OpenBSD and DragonFly have none.
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "illumos",
    target_os = "solaris"
))]
pub(crate) fn realtime_range() -> Option<(i32, i32)> {
    Some((libc::SIGRTMIN(), libc::SIGRTMAX()))
}

/// The lowest and highest real-time signal, where the system has them.
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "illumos",
    target_os = "solaris"
)))]
pub(crate) fn realtime_range() -> Option<(i32, i32)> {
    None
}

/// This thread's `errno`.
pub(crate) fn errno_ptr() -> *mut libc::c_int {
    // SAFETY: each function returns the calling thread's errno location; no arguments.
    unsafe {
        #[cfg(any(target_os = "linux", target_os = "android", target_os = "emscripten"))]
        return libc::__errno_location();
        #[cfg(any(
            target_os = "freebsd",
            target_os = "dragonfly",
            target_os = "macos",
            target_os = "ios",
            target_os = "tvos",
            target_os = "watchos",
            target_os = "visionos"
        ))]
        return libc::__error();
        #[cfg(any(target_os = "openbsd", target_os = "netbsd"))]
        return libc::__errno();
        #[cfg(any(target_os = "illumos", target_os = "solaris"))]
        return libc::___errno();
    }
}
