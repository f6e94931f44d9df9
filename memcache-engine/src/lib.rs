//! The I/O-free engine of evloop's memcached example: memcached 1.6's ASCII protocol
//! and item store, byte for byte, without sockets, threads or an event loop.
//!
//! | module | what |
//! |---|---|
//! | [`protocol`] | [`Connection`]: per-connection parser; bytes in, replies out |
//! | [`output`] | [`Output`], what replies go to: a `Vec<u8>`, or [`Replies`], which refers to stored values |
//! | [`store`] | [`Store`]: items, expiry, CAS, `flush_all`, LRU eviction, statistics |
//! | [`config`] | [`parse_args`]: memcached's command-line flags |
//!
//! A server owns one [`Store`] (behind a `Mutex` if several threads share it) and one
//! [`Connection`] per client, and implements [`Environment`] to report what only it
//! knows (pid, connections, rusage):
//!
//! ```
//! use evloop_memcache_engine::{parse_args, Command, Connection, Next, ServerStats, Store};
//! let Command::Run(config) = parse_args(["-m", "16", "-t", "1"]).unwrap() else { unreachable!() };
//! let mut store = Store::new(config.store_config());
//! let env = ServerStats { threads: config.threads, ..ServerStats::default() };
//!
//! let mut conn = Connection::new().with_reqs_per_event(config.reqs_per_event);
//! let mut out = Vec::new();
//! // On readable: hand over what was read.
//! let p = conn.process(b"set x 0 0 1\r\n1\r\nincr x 41\r\nquit\r\n", &mut out, &mut store, &env);
//! // Then write `out` and act on `p.next`.
//! assert_eq!(out, b"STORED\r\n42\r\n");
//! assert_eq!(p.next, Next::Close(evloop_memcache_engine::CloseReason::Quit));
//! ```
//!
//! # Where the engine differs from memcached
//!
//! - Memory: `-m` limits the sum of memcached's item sizes ([`Store::item_size`]) with
//!   one LRU; memcached's slab allocator reaches its limit (and starts evicting)
//!   earlier, per slab class. `stats bytes`, `curr_items`, `total_items` and
//!   `evictions` are counted as memcached counts them, against that simpler limit.
//! - Not implemented (they reply `ERROR`): `watch`, `lru`,
//!   `lru_crawler`, `slabs`, `extstore`, `refresh_certs`, and `stats` sub-commands
//!   other than `reset`, `detail` and `settings`; the binary protocol (deprecated by
//!   memcached) and UDP.
//! - `stats` lists all of memcached 1.6.18's general fields, in its order; those that
//!   have no meaning here (slab rebalancing, logger, libevent...) report memcached's
//!   figures for the equivalent configuration.
#![deny(missing_docs)]

mod cnum;
pub mod config;
pub mod output;
pub mod protocol;
pub mod store;

pub use config::{parse_args, Command, Config, ConfigError};
pub use output::{Output, Replies};
pub use protocol::{
    CloseReason, Connection, Environment, Next, Progress, ServerStats, DEFAULT_VERSION,
};
pub use store::{Clock, ManualClock, SharedValue, Store, StoreConfig, SystemClock};
