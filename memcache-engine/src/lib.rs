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
//! - `stats items` and `stats slabs` report memcached's slab classes (its defaults,
//!   `-n 48 -f 1.25`, 1 MiB pages, items above 512 KiB chunked): the items of each
//!   class, their bytes, the chunks they use and the pages memcached would have taken
//!   for them, and the per-class counters, as memcached does without its LRU
//!   maintainer and crawler. Approximations: `age` (memcached also resets an item's
//!   time when it is fetched more than 60 s after the last reset); while memory is
//!   short, `evicted`, `reclaimed` and the pages (memcached evicts per class, and
//!   takes no more pages than `-m` allows, where the engine evicts from one LRU);
//!   expired and flushed items stay counted until they are fetched or evicted
//!   (memcached also reclaims those at the tail of a class when it stores into it);
//!   and chunks a pending reply still holds are counted free at once.
//! - Not implemented (they reply `ERROR`): `watch`, `lru`,
//!   `lru_crawler`, `slabs`, `extstore`, `refresh_certs`, and `stats` sub-commands
//!   other than `reset`, `detail`, `settings`, `items` and `slabs`; the binary
//!   protocol (deprecated by memcached) and UDP.
//! - `stats` lists all of memcached 1.6.18's general fields, in its order; those that
//!   have no meaning here (slab rebalancing, logger, libevent...) report memcached's
//!   figures for the equivalent configuration.
#![deny(missing_docs)]

mod cnum;
pub mod config;
pub mod output;
pub mod protocol;
mod slabs;
pub mod store;

pub use config::{parse_args, Command, Config, ConfigError};
pub use output::{Output, Replies};
pub use protocol::{
    CloseReason, Connection, Environment, Next, Progress, ServerStats, DEFAULT_VERSION,
};
pub use store::{Clock, ManualClock, SharedValue, Store, StoreConfig, SystemClock};
