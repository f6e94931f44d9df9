//! OS readiness mechanisms for evloop, behind one contract.
//!
//! The [`Backend`] trait (in [`contract`]) is the whole interface: register, modify and
//! deregister an fd with an [`Interest`] and a 64-bit token, then [`Backend::wait`] into a
//! fixed-capacity event buffer. Implementations, one file each:
//!
//! | backend | file | where |
//! |---|---|---|
//! | [`Epoll`] | `src/epoll.rs` | Linux, Android (default there) |
//! | [`Poll`] | `src/poll.rs` | every Unix |
//! | [`Select`] | `src/select.rs` | every Unix (fds below `FD_SETSIZE`) |
//!
//! [`DefaultBackend`] is chosen at compile time: the platform's best mechanism, unless the
//! `backend-poll` or `backend-select` cargo feature forces a portable one. A program can
//! also name any backend as a type parameter. The cross-thread wake is [`Waker`]
//! (`src/waker/`: eventfd on Linux, a self-pipe elsewhere).
//!
//! ```
//! use evloop_backends::{Backend, DefaultBackend};
//! let b = DefaultBackend::new(128).unwrap();
//! println!("using {}", DefaultBackend::NAME);
//! assert_eq!(b.len(), 0);
//! ```
#![deny(missing_docs)]

// The change list serves the kernel-state backends: epoll now, kqueue and event ports
// when they land.
#[cfg(any(target_os = "linux", target_os = "android"))]
mod changelist;
pub mod contract;
mod sys;
mod waker;

#[cfg(any(target_os = "linux", target_os = "android"))]
mod epoll;
mod poll;
mod select;

pub use contract::{Backend, Event, Interest, Ready};
#[cfg(any(target_os = "linux", target_os = "android"))]
pub use epoll::Epoll;
pub use poll::Poll;
pub use select::Select;
pub use sys::open_file_limit;
pub use waker::{wake_raw, Waker};

/// The backend used when a program names none: chosen by `#[cfg]` for the target, or
/// forced by the `backend-select` / `backend-poll` features.
#[cfg(feature = "backend-select")]
pub type DefaultBackend = Select;

/// The backend used when a program names none: chosen by `#[cfg]` for the target, or
/// forced by the `backend-select` / `backend-poll` features.
#[cfg(all(feature = "backend-poll", not(feature = "backend-select")))]
pub type DefaultBackend = Poll;

/// The backend used when a program names none: chosen by `#[cfg]` for the target, or
/// forced by the `backend-select` / `backend-poll` features.
#[cfg(all(
    any(target_os = "linux", target_os = "android"),
    not(any(feature = "backend-poll", feature = "backend-select"))
))]
pub type DefaultBackend = Epoll;

/// The backend used when a program names none: chosen by `#[cfg]` for the target, or
/// forced by the `backend-select` / `backend-poll` features.
#[cfg(all(
    unix,
    not(any(target_os = "linux", target_os = "android")),
    not(any(feature = "backend-poll", feature = "backend-select"))
))]
pub type DefaultBackend = Poll;

#[cfg(not(unix))]
compile_error!("evloop-backends supports Unix targets for now (epoll, poll, select); the Windows backend is not written yet");
