//! OS readiness mechanisms for evloop, behind one contract.
//!
//! The [`Backend`] trait (in [`contract`]) is the whole interface: register, modify and
//! deregister an fd with an [`Interest`] and a 64-bit token, then [`Backend::wait`] into a
//! fixed-capacity event buffer. Implementations, one file (or folder) each:
//!
//! | backend | file | where |
//! |---|---|---|
//! | `Epoll` | `src/epoll.rs` | Linux, Android (default there) |
//! | `Uring`, `UringOrEpoll` | `src/uring/` | Linux 5.13 or later (`backend-uring` feature, or by type; `UringOrEpoll` falls back to epoll where io_uring is refused) |
//! | `Kqueue` | `src/kqueue/` | macOS, iOS, FreeBSD, NetBSD, OpenBSD, DragonFly (default there) |
//! | `EventPorts` | `src/event_ports/` | illumos, Solaris (default there) |
//! | `DevPoll` | `src/devpoll/` | illumos, Solaris (`backend-devpoll` feature, or by type) |
//! | [`Poll`] | `src/poll.rs` | every Unix |
//! | [`Select`] | `src/select.rs` | every Unix (fds below `FD_SETSIZE`) |
//! | `Afd` | `src/windows/` | Windows (default there): `\\Device\\Afd` poll requests over an I/O completion port |
//!
//! [`DefaultBackend`] is chosen at compile time: the platform's best mechanism, unless the
//! `backend-poll`, `backend-select`, `backend-uring` or `backend-devpoll` cargo feature
//! forces another. A
//! program can also name any backend as a type parameter. The cross-thread wake is
//! [`Waker`] (`src/waker/`). With the `fault-injection` feature, `fault::FaultInjecting`
//! (`src/fault.rs`) wraps any backend and injects the failures an OS may produce.
//!
//! ```
//! use evloop_backends::{Backend, DefaultBackend};
//! let b = DefaultBackend::new(128).unwrap();
//! println!("using {}", DefaultBackend::NAME);
//! assert_eq!(b.len(), 0);
//! ```
#![deny(missing_docs)]

// The change list serves the kernel-state backends (epoll; kqueue, event ports and /dev/poll
// add themselves to this cfg as they start using it).
#[cfg(any(
    all(test, unix),
    target_os = "linux",
    target_os = "android",
    target_os = "illumos",
    target_os = "solaris",
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
mod changelist;
pub mod contract;
#[cfg(all(unix, feature = "fault-injection"))]
pub mod fault;
#[cfg(unix)]
mod sys;
mod waker;

#[cfg(any(target_os = "linux", target_os = "android"))]
mod epoll;
#[cfg(target_os = "linux")]
mod uring;
// Each of these folders holds the backend (compiled for its targets) and its pure logic
// (record translation and decoding, compiled for its targets and for tests everywhere).
mod devpoll;
mod event_ports;
mod kqueue;
#[cfg(unix)]
mod poll;
#[cfg(unix)]
mod select;
// The Windows backend's event mapping is pure and tested everywhere; the rest is Windows.
mod windows;

pub use contract::{Backend, BackendEvent, Interest, OwnedSource, RawSource, Ready, Received};
#[cfg(any(target_os = "illumos", target_os = "solaris"))]
pub use devpoll::DevPoll;
#[cfg(any(target_os = "linux", target_os = "android"))]
pub use epoll::Epoll;
#[cfg(any(target_os = "illumos", target_os = "solaris"))]
pub use event_ports::EventPorts;
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
pub use kqueue::Kqueue;
#[cfg(unix)]
pub use poll::Poll;
#[cfg(unix)]
pub use select::Select;
#[cfg(unix)]
pub use sys::open_file_limit;
#[cfg(target_os = "linux")]
pub use uring::{Uring, UringOrEpoll};
#[cfg(unix)]
pub use waker::wake_raw;
pub use waker::Waker;
#[cfg(windows)]
pub use windows::Afd;

/// The backend used when a program names none: chosen by `#[cfg]` for the target, or
/// forced by a `backend-*` feature (`backend-select` wins over `backend-poll`, which wins
/// over `backend-uring` and `backend-devpoll`; those two apply to different targets, each
/// ignored elsewhere).
///
/// | target | default |
/// |---|---|
/// | Linux | `Epoll` (`Uring` with `backend-uring`) |
/// | Android | `Epoll` |
/// | macOS, iOS, FreeBSD, NetBSD, OpenBSD, DragonFly | `Kqueue` |
/// | illumos, Solaris | `EventPorts` (`DevPoll` with `backend-devpoll`) |
/// | any other Unix | [`Poll`] |
/// | Windows | `Afd` (the `backend-*` features are ignored there) |
///
/// ```
/// use evloop_backends::{Backend, DefaultBackend};
/// # #[cfg(all(target_os = "linux", not(any(feature = "backend-poll", feature = "backend-select", feature = "backend-uring"))))]
/// assert_eq!(DefaultBackend::NAME, "epoll");
/// ```
#[cfg(all(unix, feature = "backend-select"))]
pub type DefaultBackend = Select;

/// The backend used when a program names none (see the first definition).
#[cfg(all(unix, feature = "backend-poll", not(feature = "backend-select")))]
pub type DefaultBackend = Poll;

/// The backend used when a program names none (see the first definition).
#[cfg(windows)]
pub type DefaultBackend = Afd;

/// The backend used when a program names none (see the first definition).
#[cfg(all(
    any(target_os = "illumos", target_os = "solaris"),
    feature = "backend-devpoll",
    not(any(feature = "backend-poll", feature = "backend-select"))
))]
pub type DefaultBackend = DevPoll;

/// The backend used when a program names none (see the first definition).
#[cfg(all(
    target_os = "linux",
    feature = "backend-uring",
    not(any(feature = "backend-poll", feature = "backend-select"))
))]
pub type DefaultBackend = Uring;

/// The backend used when a program names none (see the first definition).
#[cfg(all(
    any(target_os = "linux", target_os = "android"),
    not(any(feature = "backend-poll", feature = "backend-select")),
    not(all(target_os = "linux", feature = "backend-uring"))
))]
pub type DefaultBackend = Epoll;

/// The backend used when a program names none (see the first definition).
#[cfg(all(
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
    not(any(feature = "backend-poll", feature = "backend-select"))
))]
pub type DefaultBackend = Kqueue;

/// The backend used when a program names none (see the first definition).
#[cfg(all(
    any(target_os = "illumos", target_os = "solaris"),
    not(any(
        feature = "backend-poll",
        feature = "backend-select",
        feature = "backend-devpoll"
    ))
))]
pub type DefaultBackend = EventPorts;

/// The backend used when a program names none (see the first definition).
#[cfg(all(
    unix,
    not(any(
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
        target_os = "dragonfly",
        target_os = "illumos",
        target_os = "solaris"
    )),
    not(any(feature = "backend-poll", feature = "backend-select"))
))]
pub type DefaultBackend = Poll;

/// `a == b`, at compile time.
const fn same_name(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The backend each target gets by default, checked when the crate is compiled for that
/// target (`cargo check --target ...` fails if the cfg ladder above picks another).
const EXPECTED_DEFAULT: &str = if cfg!(windows) {
    "afd"
} else if cfg!(feature = "backend-select") {
    "select"
} else if cfg!(feature = "backend-poll") {
    "poll"
} else if cfg!(all(target_os = "linux", feature = "backend-uring")) {
    "io_uring"
} else if cfg!(any(target_os = "linux", target_os = "android")) {
    "epoll"
} else if cfg!(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "tvos",
    target_os = "watchos",
    target_os = "visionos",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
)) {
    "kqueue"
} else if cfg!(all(
    any(target_os = "illumos", target_os = "solaris"),
    feature = "backend-devpoll"
)) {
    "/dev/poll"
} else if cfg!(any(target_os = "illumos", target_os = "solaris")) {
    "event ports"
} else {
    "poll"
};

const _: () = assert!(
    same_name(<DefaultBackend as Backend>::NAME, EXPECTED_DEFAULT),
    "DefaultBackend is not the backend this target should get by default"
);

#[cfg(not(any(unix, windows)))]
compile_error!("evloop-backends supports Unix (epoll, io_uring, kqueue, event ports, /dev/poll, poll, select) and Windows (AFD over an I/O completion port)");
