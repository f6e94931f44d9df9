//! The cross-thread (and signal-handler) wake: an fd the loop watches, which any thread
//! can make readable. Repeated wakes before the loop drains it coalesce into one
//! readiness. Linux uses an `eventfd`; kqueue systems a small kqueue with one
//! `EVFILT_USER` event (falling back to a pipe on kernels without it); other Unix systems
//! a non-blocking self-pipe. On Windows a waker is no handle at all: registered with the
//! `Afd` backend, it posts a completion to that backend's port (`iocp.rs`).

#[cfg_attr(any(target_os = "linux", target_os = "android"), path = "eventfd.rs")]
#[cfg_attr(
    any(
        target_os = "macos",
        target_os = "ios",
        target_os = "tvos",
        target_os = "watchos",
        target_os = "visionos",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "openbsd",
        target_os = "dragonfly"
    ),
    path = "kqueue.rs"
)]
#[cfg_attr(windows, path = "iocp.rs")]
#[cfg_attr(
    not(any(
        windows,
        target_os = "linux",
        target_os = "android",
        target_os = "macos",
        target_os = "ios",
        target_os = "tvos",
        target_os = "watchos",
        target_os = "visionos",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "openbsd",
        target_os = "dragonfly"
    )),
    path = "pipe.rs"
)]
mod imp;

#[cfg(unix)]
pub use imp::wake_raw;
pub use imp::Waker;
#[cfg(windows)]
pub(crate) use imp::WakerRef;
