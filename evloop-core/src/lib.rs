//! evloop's loop: a statically dispatched event loop over the backends of
//! [`evloop_backends`].
//!
//! A program is a [`Machine`]: a type whose `dispatch` receives `(token, readiness)` and
//! calls its handlers. [`EventLoop`] is generic over the machine, so nothing between the
//! kernel and a handler is dynamic: no `dyn`, no function pointer, no box, and no heap
//! allocation after construction.
//!
//! | file | what |
//! |---|---|
//! | `machine.rs` | the [`Machine`] trait and [`Event`] |
//! | `ctx.rs` | [`Ctx`]: sources, timers, signals, activation, control |
//! | `event_loop.rs` | [`EventLoop`], [`Builder`], [`Exit`]: running |
//! | `slab.rs` | [`Slab`] and [`Key`]: collections of sources |
//! | `source.rs` | [`Source`]: a watchable field, single or collection |
//! | `timer/` | the indexed 4-ary heap and common-timeout queues |
//! | `signal/` | the process-wide sigaction registry (`registry.rs`), the Windows console's events as signals (`console.rs`) |
//! | `ready_queue.rs` | per-priority dispatch queues |
//! | `wake.rs` | [`WakeHandle`]: cross-thread wake and activation |
//! | `channel.rs` | [`channel`]: a fixed-capacity cross-thread channel whose receiver is a source |
//! | `workers.rs` | [`workers::Workers`]: one loop per thread, one shutdown for all |
//! | `buffered/` | [`buffered`]: fixed-capacity buffers, buffered connections, [`buffered::BufSlab`] |
//! | `listener.rs` | [`Listener`]: batched `accept4` (`accept` on Windows), fd-exhaustion recovery |
//! | `socket/` | the socket calls (per-OS flags, port sharing) of the listener, the workers and `BufConn`: `unix.rs`, `windows.rs` |
//! | `sys/` | what differs between Unix and Windows: [`AsSource`], raw handles, the per-handle source index, the channel's wake |
//!
//! ```
//! use evloop_core::*;
//! struct Nothing;
//! impl Machine for Nothing {
//!     type Backend = DefaultBackend;
//!     fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {}
//! }
//! assert_eq!(EventLoop::new(Nothing).unwrap().run().unwrap(), Exit::Empty);
//! ```
#![deny(missing_docs)]

pub mod buffered;
pub mod channel;
mod ctx;
mod error;
mod event_loop;
mod listener;
mod machine;
mod ready_queue;
mod signal;
mod slab;
mod socket;
mod source;
mod sys;
mod timer;
mod token;
mod wake;
mod watch;
pub mod workers;

pub use ctx::{Ctx, Dump};
pub use error::{Error, Result};
pub use event_loop::{Builder, EventLoop, Exit};
#[cfg(windows)]
pub use evloop_backends::Afd;
#[cfg(any(target_os = "linux", target_os = "android"))]
pub use evloop_backends::Epoll;
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
pub use evloop_backends::Kqueue;
pub use evloop_backends::{
    Backend, DefaultBackend, Interest, OwnedSource, RawSource, Ready, Received,
};
#[cfg(any(target_os = "illumos", target_os = "solaris"))]
pub use evloop_backends::{DevPoll, EventPorts};
#[cfg(unix)]
pub use evloop_backends::{Poll, Select};
#[cfg(target_os = "linux")]
pub use evloop_backends::{Uring, UringOrEpoll};
pub use listener::{AcceptError, AcceptReport, Accepted, Listener, ListenerBuilder, ListenerStats};
pub use machine::{Event, Machine};
pub use signal::{can_watch_signal, realtime_signals, signal_number, SIGNALS};
pub use slab::{Key, Slab};
pub use source::{kind, Source};
pub use sys::{raw_source, AsSource, BorrowedSource};
pub use token::{SourceId, Token};
pub use wake::WakeHandle;
pub use watch::Watch;
