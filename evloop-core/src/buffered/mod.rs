//! Buffered connections (libevent's bufferevent and evbuffer, redesigned).
//!
//! | item | what |
//! |---|---|
//! | [`Buffer`] | a fixed-capacity byte queue: lines ([`Eol`]), exact reads, peek, search, consume |
//! | [`BufConn`] | a stream with an input and an output buffer, watermarks, timeouts, `writev`, `sendfile`, flush-and-close, non-blocking connect |
//! | [`BufSlab`] | a collection of them for `#[event_machine]`: handlers get the bytes already read |
//! | [`BufPair`] | two connected in-memory ends, to test protocol code ([`BufIo`]) |
//!
//! Nothing here allocates per event: each buffer is allocated once, when its
//! connection is made, at the capacity its [`BufConfig`] says (under io_uring's
//! completion I/O, a connection's send buffer is allocated by its first send and reused).
//!
//! On a backend with completion I/O (io_uring), a [`BufSlab`] lets the backend do its
//! connections' reads and writes (`completion.rs`): same handlers, no `read` or `write`
//! syscall per request.
//!
//! ```
//! use evloop_core::buffered::{Buffer, Eol};
//! let mut input = Buffer::with_capacity(64);
//! input.extend(b"get key\r\n").unwrap();
//! assert_eq!(input.read_line(Eol::Crlf).unwrap(), Some(&b"get key"[..]));
//! ```

mod buffer;
mod completion;
mod conn;
mod pair;
mod with_state;

pub use buffer::{Buffer, BufferFull, Eol, LineTooLong};
pub use conn::{BufConfig, BufConn, BufEvents, BufSlab};
pub use pair::{BufIo, BufPair, PairEnd};
pub use with_state::WithState;
