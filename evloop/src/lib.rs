//! # evloop
//!
//! libevent's job (run handlers when an fd is ready, a timer expires or a signal
//! arrives, over the best mechanism the OS has) with the wiring resolved at compile time:
//! the loop is generic over your [`Machine`], so every dispatch is a direct call, and
//! nothing is allocated per event.
//!
//! This is the one crate to depend on. It re-exports the loop ([`evloop_core`]) and the
//! OS mechanisms ([`backends`]).
//!
//! ```
//! use evloop::{Ctx, DefaultBackend, Event, EventLoop, Exit, Machine, Result, Token, Watch};
//! use std::io::{Read, Write};
//! use std::os::unix::net::UnixStream;
//!
//! /// Counts bytes until the peer hangs up.
//! struct Counter { sock: UnixStream, bytes: usize }
//! const SOCK: Token = Token(0);
//!
//! impl Machine for Counter {
//!     type Backend = DefaultBackend;
//!     fn setup(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
//!         ctx.add_io(&self.sock, SOCK, Watch::read())?;
//!         Ok(())
//!     }
//!     fn dispatch(&mut self, ctx: &mut Ctx<Self>, ev: Event) {
//!         let mut buf = [0u8; 4096];
//!         match self.sock.read(&mut buf) {
//!             Ok(0) => { let _ = ctx.remove(ev.source); } // EOF: nothing left to watch
//!             Ok(n) => self.bytes += n,
//!             Err(_) => {}
//!         }
//!     }
//! }
//!
//! let (a, mut b) = UnixStream::pair().unwrap();
//! b.write_all(b"hello").unwrap();
//! drop(b);
//! let mut el = EventLoop::new(Counter { sock: a, bytes: 0 }).unwrap();
//! assert_eq!(el.run().unwrap(), Exit::Empty);
//! assert_eq!(el.machine().bytes, 5);
//! ```
#![deny(missing_docs)]

pub use evloop_core::*;

/// The OS readiness mechanisms and their contract ([`backends::Backend`]).
pub mod backends {
    pub use evloop_backends::*;
}

/// What generated code refers to. Not a public API: names here may change at any time.
#[doc(hidden)]
pub mod __private;

pub use evloop_macros::event_machine;
pub use evloop_macros::{
    after_wait, before_wait, on_idle, on_read, on_signal, on_start, on_timeout, on_timer, on_wake,
    on_write,
};

/// Everything a machine needs, in one `use evloop::prelude::*;`: the attributes and the
/// types their handlers see, and [`Listener`](crate::Listener) (with its builder), the
/// listening socket that does not spin when descriptors run out.
///
/// ```
/// use evloop::prelude::*;
///
/// #[event_machine]
/// struct Once { fired: bool }
///
/// #[event_machine]
/// impl Once {
///     #[on_timer(1, once)]
///     fn fire(&mut self, _ctx: &mut Ctx<Self>) { self.fired = true; }
/// }
///
/// assert!(Once { fired: false }.run().unwrap().fired);
/// ```
pub mod prelude {
    #[cfg(windows)]
    pub use crate::Afd;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub use crate::Epoll;
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
    pub use crate::Kqueue;
    pub use crate::{
        after_wait, before_wait, event_machine, on_idle, on_read, on_signal, on_start, on_timeout,
        on_timer, on_wake, on_write,
    };
    pub use crate::{
        Backend, Ctx, DefaultBackend, Error, Event, EventLoop, Exit, Interest, Key, Listener,
        ListenerBuilder, Machine, Ready, Result, Slab, Source, SourceId, Token, WakeHandle, Watch,
    };
    #[cfg(any(target_os = "illumos", target_os = "solaris"))]
    pub use crate::{DevPoll, EventPorts};
    #[cfg(unix)]
    pub use crate::{Poll, Select};
    #[cfg(target_os = "linux")]
    pub use crate::{Uring, UringOrEpoll};
}

/// The attribute reference, compiled and run as doctests here (the macro crate cannot run
/// examples that need this crate).
#[cfg(doctest)]
#[doc = include_str!("../../evloop-macros/doc/event_machine.md")]
pub struct EventMachineDoc;

/// The README's example, compiled as a doctest so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoc;
