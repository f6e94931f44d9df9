//! kqueue(2): the default backend on macOS, iOS, FreeBSD, NetBSD, OpenBSD and DragonFly.
//!
//! * `backend.rs`: the `Kqueue` type and its kernel calls (kqueue targets only).
//! * `records.rs`: the pure logic (change records per interest transition, receipts,
//!   decoding and merging of returned records), compiled on kqueue targets and, for its
//!   unit tests, everywhere.
//! * `fd.rs`: the kqueue descriptor, which is not inherited across `fork()` (also used
//!   by the EVFILT_USER [`Waker`](crate::Waker)).

#[cfg(any(
    all(test, unix),
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
mod records;

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
mod backend;
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
mod fd;

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
pub use backend::Kqueue;
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
pub(crate) use fd::KqueueFd;
