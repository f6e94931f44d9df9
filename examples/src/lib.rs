//! Example servers built on evloop with `#[event_machine]`. Each lives in a module here
//! so that its test can drive it in-process; `examples/*.rs` are the thin `main`s that
//! `cargo run --example` starts.

pub mod chat;
// A Unix daemon (fork, setsid, waitpid, SIGHUP): Unix only.
#[cfg(unix)]
pub mod daemon;
pub mod echo;
pub mod http;
pub mod memcached;
pub mod timers;
pub mod udp;
