//! Example servers built on evloop. Each lives in a module here so that its test can
//! drive it in-process; `examples/*.rs` are the thin `main`s that `cargo run --example`
//! starts.

pub mod echo;
