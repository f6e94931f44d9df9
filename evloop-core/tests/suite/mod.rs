//! The conformance suite of the core loop: every test is generic over the backend and is
//! instantiated once per backend by `conformance.rs`.

pub mod activation;
pub mod control;
pub mod errors;
pub mod handlers_changing_loop;
pub mod introspection;
pub mod io;
pub mod priorities;
// Counts the process's open fds: Unix only (see `conformance.rs`).
#[cfg(unix)]
pub mod resources;
pub mod slab;
pub mod timers;
pub mod util;
