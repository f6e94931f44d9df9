//! The evloop book, as a crate, so that its code cannot rot.
//!
//! The chapters are the Markdown files next to this one, rendered by mdBook
//! (`book/book.toml`). Each is also included here as the documentation of one item, so
//! `cargo test -p evloop-book` compiles every Rust code block of every chapter as a
//! doctest and runs it (unless the block is marked `no_run`, `ignore` or `compile_fail`,
//! each with its reason in the text). Add a chapter to `SUMMARY.md` and here.

#[doc = include_str!("intro.md")]
pub struct Introduction;

#[doc = include_str!("getting-started.md")]
pub struct GettingStarted;

#[doc = include_str!("handlers.md")]
pub struct HandlersReference;

#[doc = include_str!("dynamic-sources.md")]
pub struct DynamicSources;

#[doc = include_str!("compile-errors.md")]
pub struct CompileErrors;

#[doc = include_str!("expansion.md")]
pub struct HowItExpands;

#[doc = include_str!("by-hand.md")]
pub struct TheLoopByHand;

#[doc = include_str!("backends.md")]
pub struct Backends;

#[doc = include_str!("io-uring.md")]
pub struct IoUring;

#[doc = include_str!("windows.md")]
pub struct Windows;

#[doc = include_str!("timers.md")]
pub struct Timers;

#[doc = include_str!("signals.md")]
pub struct Signals;

#[doc = include_str!("loop-control.md")]
pub struct LoopControl;

#[doc = include_str!("buffered-io.md")]
pub struct BufferedIo;

#[doc = include_str!("listeners.md")]
pub struct Listeners;

#[doc = include_str!("one-loop-per-core.md")]
pub struct OneLoopPerCore;

#[doc = include_str!("migrating.md")]
pub struct ComingFromLibeventAndLibev;

#[doc = include_str!("memcached.md")]
pub struct AMemcachedServer;
