//! The cross-thread (and signal-handler) wake: an fd the loop watches, which any thread
//! can make readable. Repeated wakes before the loop drains it coalesce into one
//! readiness. Linux uses an `eventfd`; other systems a non-blocking self-pipe.

#[cfg_attr(any(target_os = "linux", target_os = "android"), path = "eventfd.rs")]
#[cfg_attr(not(any(target_os = "linux", target_os = "android")), path = "pipe.rs")]
mod imp;

pub use imp::{wake_raw, Waker};
