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
//!         ctx.register(&self.sock, SOCK, Watch::read())?;
//!         Ok(())
//!     }
//!     fn dispatch(&mut self, ctx: &mut Ctx<Self>, ev: Event) {
//!         let mut buf = [0u8; 4096];
//!         match self.sock.read(&mut buf) {
//!             Ok(0) => { let _ = ctx.deregister(ev.source); } // EOF: nothing left to watch
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
pub mod __private {
    pub use evloop_backends;
    pub use evloop_core;
}
