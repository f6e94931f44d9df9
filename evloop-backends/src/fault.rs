//! Fault injection (the `fault-injection` cargo feature, off by default): a backend that
//! wraps another and fails the ways an OS may, at points a seeded generator chooses, and
//! the hooks through which evloop-core's own socket I/O fails the same ways.
//!
//! A loop, its handlers and evloop's buffered connections and listeners must survive
//! every one of these with no panic, no lost or reordered byte, no spinning, and each
//! error reaching the handler that owns the operation. [`FaultInjecting<B>`] is an
//! ordinary [`Backend`], so any machine (or any test generic over `B: Backend`) runs
//! under it by naming it as its backend.
//!
//! # What is injected, and where
//!
//! | fault ([`Fault`]) | name | where | what the code above it sees |
//! |---|---|---|---|
//! | [`Eintr`](Fault::Eintr) | `eintr` | [`FaultInjecting::wait`](Backend::wait), timeout not zero | nothing: as the [contract](crate::contract) requires of every backend, the interrupted wait is retried with the time that remains (it polls once, then waits the rest) |
//! | [`Spurious`](Fault::Spurious) | `spurious` | [`FaultInjecting::wait`](Backend::wait), timeout not zero | the wait returns at once: with what is ready now, or (counted only then) early with no event, the contract's "the caller wakes early and waits again" |
//! | [`Enomem`](Fault::Enomem) | `enomem` | [`FaultInjecting::register`](Backend::register) | the registration fails with `ENOMEM` or `ENOSPC` (epoll's "too many watches") and nothing is registered |
//! | [`ShortRead`](Fault::ShortRead) | `short_read` | [`before_read`] | a read returns fewer bytes than were available (at least one) |
//! | [`ShortWrite`](Fault::ShortWrite) | `short_write` | [`before_write`] | a write takes only a prefix (at least one byte) |
//! | [`Eagain`](Fault::Eagain) | `eagain` | [`before_read`], [`before_write`], [`before_accept`] | `WouldBlock` although readiness was reported |
//! | [`Reset`](Fault::Reset) | `reset` | [`before_read`], [`before_write`] | the connection fails with `ECONNRESET` |
//! | [`Emfile`](Fault::Emfile) | `emfile` | [`before_accept`] | `accept` finds no free descriptor (`EMFILE`) |
//!
//! The socket faults are injected by evloop-core itself, which calls [`before_read`],
//! [`before_write`] and [`before_accept`] before each read, write (`write`, `writev`,
//! `sendfile`) and accept of a buffered connection or a `Listener` when its own
//! `fault-injection` feature is on; code that does its own I/O can call them too.
//!
//! Not injected: readiness for an fd that is not ready. The contract does not allow a
//! backend to report it, so the wrapper does not; the `eagain` fault shows a handler of
//! evloop's buffered I/O and listeners the same thing (`WouldBlock` after readiness).
//!
//! # Benign faults and failures
//!
//! `eintr`, `spurious`, `short_read`, `short_write` and `eagain` are *benign*
//! ([`Fault::is_benign`]): a correct program's results do not change, only the path to
//! them. `enomem`, `reset` and `emfile` make an operation fail for real (a registration
//! refused, a connection lost, a client dropped by the listener's reserve-fd recovery),
//! so a test must expect them: they are off unless asked for.
//!
//! # Scope, seed and rates
//!
//! Faults are decided per thread: each thread has its own generator (a xorshift, seeded
//! from the configuration's seed when the thread is armed by its first live
//! [`FaultInjecting`], or when [`set_thread_config`] is called), so a single-threaded
//! test sees the same faults at the same points on every run with the same seed. The
//! socket hooks inject only on a thread where a [`FaultInjecting`] backend is alive
//! ([`is_armed`]): the thread that created it, and from its first wait on another thread
//! (a loop built on one thread and run on another) that one instead. Other loops and
//! tests in the same process are left alone.
//!
//! The configuration is the thread's own ([`set_thread_config`]) if it has one, else
//! [`Config::from_env`]:
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `EVLOOP_FAULT_SEED` | the seed, decimal or `0x` hex | [`Config::DEFAULT_SEED`] |
//! | `EVLOOP_FAULT_RATE` | probability of each fault at each point where it can happen, `0` to `1` | `0.1` |
//! | `EVLOOP_FAULT_KINDS` | the faults to inject, by name, comma-separated, or `all` | the benign ones |
//! | `EVLOOP_FAULT_REPORT` | if set (and not `0`), the process prints its [`counts`] on stderr when it exits, one line `evloop-fault-counts: eintr=N spurious=N ...` | unset |
//!
//! ```
//! use evloop_backends::fault::{self, FaultInjecting};
//! use evloop_backends::{Backend, Interest, Poll};
//! use std::io::Write;
//! use std::os::fd::AsRawFd;
//! use std::time::Duration;
//!
//! let mut b = FaultInjecting::<Poll>::new(8).unwrap();
//! let (a, mut peer) = std::os::unix::net::UnixStream::pair().unwrap();
//! b.register(a.as_raw_fd(), 1, Interest::READ).unwrap(); // benign faults only: never fails
//! peer.write_all(b"x").unwrap();
//! // A wait may wake early with nothing: wait again, as the loop does.
//! while b.wait(Some(Duration::from_secs(5))).unwrap() == 0 {}
//! assert!(b.event(0).ready.is_readable());
//! println!("faults: {}", fault::thread_counts());
//! ```

use std::cell::Cell;
use std::fmt;
use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Once, OnceLock};
use std::time::{Duration, Instant};

use crate::contract::{Backend, BackendEvent, Interest};

/// Rates are in parts per million.
const MILLION: u32 = 1_000_000;

/// One kind of injected fault (see the [module docs](self) for where each happens).
///
/// ```
/// use evloop_backends::fault::Fault;
/// assert_eq!(Fault::ShortRead.name(), "short_read");
/// assert_eq!(Fault::from_name("emfile"), Some(Fault::Emfile));
/// assert!(Fault::Eagain.is_benign() && !Fault::Reset.is_benign());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// A wait interrupted by a signal (`EINTR`), retried with the time that remains.
    Eintr,
    /// A wait that returns early with no event.
    Spurious,
    /// A registration refused with `ENOMEM` or `ENOSPC`.
    Enomem,
    /// A read that returns fewer bytes than were available.
    ShortRead,
    /// A write that takes only a prefix.
    ShortWrite,
    /// A read, write or accept that fails with `EAGAIN` (`WouldBlock`) after readiness.
    Eagain,
    /// A read or write that fails with `ECONNRESET`.
    Reset,
    /// An accept that fails with `EMFILE`.
    Emfile,
}

impl Fault {
    /// Every kind, in the order [`Counts`] prints them.
    ///
    /// ```
    /// use evloop_backends::fault::Fault;
    /// assert_eq!(Fault::ALL.len(), 8);
    /// assert_eq!(Fault::ALL[0], Fault::Eintr);
    /// ```
    pub const ALL: [Fault; 8] = [
        Fault::Eintr,
        Fault::Spurious,
        Fault::Enomem,
        Fault::ShortRead,
        Fault::ShortWrite,
        Fault::Eagain,
        Fault::Reset,
        Fault::Emfile,
    ];

    /// The name used by `EVLOOP_FAULT_KINDS` and by [`Counts`]' `Display`.
    ///
    /// ```
    /// assert_eq!(evloop_backends::fault::Fault::Eintr.name(), "eintr");
    /// ```
    pub const fn name(self) -> &'static str {
        match self {
            Fault::Eintr => "eintr",
            Fault::Spurious => "spurious",
            Fault::Enomem => "enomem",
            Fault::ShortRead => "short_read",
            Fault::ShortWrite => "short_write",
            Fault::Eagain => "eagain",
            Fault::Reset => "reset",
            Fault::Emfile => "emfile",
        }
    }

    /// The kind with this [`name`](Self::name).
    ///
    /// ```
    /// use evloop_backends::fault::Fault;
    /// assert_eq!(Fault::from_name("spurious"), Some(Fault::Spurious));
    /// assert_eq!(Fault::from_name("EINTR"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Fault> {
        Fault::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Whether a correct program's results stay the same under this fault (only the way
    /// to them changes): true for `eintr`, `spurious`, `short_read`, `short_write` and
    /// `eagain`; false for `enomem`, `reset` and `emfile`, which make an operation fail.
    ///
    /// ```
    /// use evloop_backends::fault::Fault;
    /// let benign: Vec<_> = Fault::ALL.into_iter().filter(|f| f.is_benign()).collect();
    /// assert_eq!(benign.len(), 5);
    /// ```
    pub const fn is_benign(self) -> bool {
        !matches!(self, Fault::Enomem | Fault::Reset | Fault::Emfile)
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// Which faults to inject, how often, and the seed of the generator that chooses where.
/// Rates are in parts per million: the probability that the fault happens at each point
/// where it can.
///
/// ```
/// use evloop_backends::fault::{Config, Fault};
/// let cfg = Config::new(42)
///     .with_benign_rate(200_000) // 20% of every benign fault
///     .with_rate(Fault::Reset, 1_000); // and one read or write in a thousand resets
/// assert_eq!(cfg.seed(), 42);
/// assert_eq!(cfg.rate(Fault::ShortWrite), 200_000);
/// assert_eq!(cfg.rate(Fault::Emfile), 0);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    seed: u64,
    rates: [u32; 8],
}

impl Config {
    /// The seed when `EVLOOP_FAULT_SEED` is not set.
    ///
    /// ```
    /// use evloop_backends::fault::Config;
    /// # if std::env::var_os("EVLOOP_FAULT_SEED").is_none() {
    /// assert_eq!(Config::from_env().seed(), Config::DEFAULT_SEED);
    /// # }
    /// ```
    pub const DEFAULT_SEED: u64 = 0x5eed_f417;

    /// The rate of each benign fault when `EVLOOP_FAULT_RATE` is not set: 10%.
    ///
    /// ```
    /// assert_eq!(evloop_backends::fault::Config::DEFAULT_RATE, 100_000);
    /// ```
    pub const DEFAULT_RATE: u32 = 100_000;

    /// A configuration with this seed that injects nothing (add rates with
    /// [`with_rate`](Self::with_rate)).
    ///
    /// ```
    /// use evloop_backends::fault::{Config, Fault};
    /// assert!(Fault::ALL.iter().all(|&f| Config::new(1).rate(f) == 0));
    /// ```
    pub const fn new(seed: u64) -> Config {
        Config {
            seed,
            rates: [0; 8],
        }
    }

    /// This configuration with `fault` injected at `per_million` (capped at 1,000,000:
    /// every time).
    ///
    /// ```
    /// use evloop_backends::fault::{Config, Fault};
    /// let always = Config::new(1).with_rate(Fault::Enomem, 2_000_000);
    /// assert_eq!(always.rate(Fault::Enomem), 1_000_000);
    /// ```
    pub const fn with_rate(mut self, fault: Fault, per_million: u32) -> Config {
        self.rates[fault.index()] = if per_million > MILLION {
            MILLION
        } else {
            per_million
        };
        self
    }

    /// This configuration with every benign fault ([`Fault::is_benign`]) at
    /// `per_million`.
    ///
    /// ```
    /// use evloop_backends::fault::{Config, Fault};
    /// let cfg = Config::new(1).with_benign_rate(50_000);
    /// assert_eq!(cfg.rate(Fault::Eintr), 50_000);
    /// assert_eq!(cfg.rate(Fault::Enomem), 0);
    /// ```
    pub const fn with_benign_rate(mut self, per_million: u32) -> Config {
        let mut i = 0;
        while i < Fault::ALL.len() {
            if Fault::ALL[i].is_benign() {
                self = self.with_rate(Fault::ALL[i], per_million);
            }
            i += 1;
        }
        self
    }

    /// The configuration the environment asks for (see the [module docs](self)):
    /// `EVLOOP_FAULT_SEED`, `EVLOOP_FAULT_RATE`, `EVLOOP_FAULT_KINDS`.
    ///
    /// # Panics
    ///
    /// If one of them is set to something it cannot parse: a fault run with a typo in
    /// its configuration must not pass as a run with faults.
    ///
    /// ```
    /// let cfg = evloop_backends::fault::Config::from_env();
    /// println!("seed {:#x}", cfg.seed());
    /// ```
    pub fn from_env() -> Config {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let seed = var("EVLOOP_FAULT_SEED").map_or(Config::DEFAULT_SEED, |v| {
            parse_seed(v.trim()).unwrap_or_else(|| {
                panic!("EVLOOP_FAULT_SEED={v:?}: expected a decimal or 0x-hex u64")
            })
        });
        let rate = var("EVLOOP_FAULT_RATE").map_or(Config::DEFAULT_RATE, |v| {
            parse_rate(v.trim()).unwrap_or_else(|| {
                panic!("EVLOOP_FAULT_RATE={v:?}: expected a probability from 0 to 1, e.g. 0.1")
            })
        });
        let mut cfg = Config::new(seed);
        match var("EVLOOP_FAULT_KINDS") {
            None => cfg = cfg.with_benign_rate(rate),
            Some(kinds) if kinds.trim() == "all" => {
                for f in Fault::ALL {
                    cfg = cfg.with_rate(f, rate);
                }
            }
            Some(kinds) => {
                for name in kinds.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                    let f = Fault::from_name(name).unwrap_or_else(|| {
                        panic!(
                            "EVLOOP_FAULT_KINDS: unknown fault {name:?} (known: {}, or all)",
                            Fault::ALL.map(Fault::name).join(", ")
                        )
                    });
                    cfg = cfg.with_rate(f, rate);
                }
            }
        }
        cfg
    }

    /// The seed.
    ///
    /// ```
    /// assert_eq!(evloop_backends::fault::Config::new(9).seed(), 9);
    /// ```
    pub const fn seed(&self) -> u64 {
        self.seed
    }

    /// The rate of `fault`, in parts per million.
    ///
    /// ```
    /// use evloop_backends::fault::{Config, Fault};
    /// assert_eq!(Config::new(1).with_rate(Fault::Reset, 10).rate(Fault::Reset), 10);
    /// ```
    pub const fn rate(&self, fault: Fault) -> u32 {
        self.rates[fault.index()]
    }
}

fn parse_seed(v: &str) -> Option<u64> {
    match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

fn parse_rate(v: &str) -> Option<u32> {
    let p: f64 = v.parse().ok()?;
    (0.0..=1.0)
        .contains(&p)
        .then(|| (p * f64::from(MILLION)).round() as u32)
}

/// How many faults of each kind were injected.
///
/// ```
/// use evloop_backends::fault::{self, Fault};
/// let before = fault::counts();
/// let now = fault::counts();
/// assert!(now.get(Fault::Eintr) >= before.get(Fault::Eintr));
/// println!("{}", now.since(&before)); // "eintr=0 spurious=0 enomem=0 ..."
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts([u64; 8]);

impl Counts {
    /// Faults of this kind.
    ///
    /// ```
    /// use evloop_backends::fault::{Counts, Fault};
    /// assert_eq!(Counts::default().get(Fault::Reset), 0);
    /// ```
    pub const fn get(&self, fault: Fault) -> u64 {
        self.0[fault.index()]
    }

    /// Faults of every kind.
    ///
    /// ```
    /// assert_eq!(evloop_backends::fault::Counts::default().total(), 0);
    /// ```
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// What was injected since `earlier` was taken.
    ///
    /// ```
    /// use evloop_backends::fault;
    /// let before = fault::thread_counts();
    /// assert_eq!(fault::thread_counts().since(&before).total(), 0); // no loop ran here
    /// ```
    pub fn since(&self, earlier: &Counts) -> Counts {
        let mut c = *self;
        for (n, e) in c.0.iter_mut().zip(earlier.0) {
            *n = n.saturating_sub(e);
        }
        c
    }
}

/// `eintr=N spurious=N enomem=N short_read=N short_write=N eagain=N reset=N emfile=N`.
impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, fault) in Fault::ALL.into_iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{}={}", fault.name(), self.get(fault))?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Per-thread state, process-wide totals
// ---------------------------------------------------------------------------------------

struct ThreadState {
    /// Set by `set_thread_config`; else the environment's.
    config: Cell<Option<Config>>,
    /// xorshift64* state (never zero).
    rng: Cell<u64>,
    counts: Cell<[u64; 8]>,
}

thread_local! {
    static STATE: ThreadState = const {
        ThreadState {
            config: Cell::new(None),
            rng: Cell::new(0),
            counts: Cell::new([0; 8]),
        }
    };
}

static TOTALS: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];

thread_local! {
    /// Live `FaultInjecting` backends that arm this thread. Shared with them: a backend
    /// that moves on to another thread (or is dropped there) disarms this one from there.
    static ARMED: Arc<AtomicU32> = Arc::new(AtomicU32::new(0));
}

fn env_config() -> Config {
    static ENV: OnceLock<Config> = OnceLock::new();
    *ENV.get_or_init(Config::from_env)
}

fn config_of(s: &ThreadState) -> Config {
    s.config.get().unwrap_or_else(env_config)
}

/// splitmix64 of the seed: any seed (zero included) gives a well-mixed, non-zero state.
fn seed_state(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) | 1
}

fn next(s: &ThreadState) -> u64 {
    let mut x = s.rng.get();
    if x == 0 {
        x = seed_state(config_of(s).seed);
    }
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    s.rng.set(x);
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// Whether `fault` happens now, by this thread's configuration and generator (not
/// counted yet: see [`record`]).
fn decide(fault: Fault) -> bool {
    STATE
        .try_with(|s| {
            let rate = config_of(s).rate(fault);
            rate != 0 && (next(s) >> 11) % u64::from(MILLION) < u64::from(rate)
        })
        .unwrap_or(false)
}

/// Count one injected `fault`, on this thread and in the process.
fn record(fault: Fault) {
    let _ = STATE.try_with(|s| {
        let mut c = s.counts.get();
        c[fault.index()] += 1;
        s.counts.set(c);
    });
    TOTALS[fault.index()].fetch_add(1, Ordering::Relaxed);
}

/// [`decide`], and [`record`] if it happens.
fn roll(fault: Fault) -> bool {
    let yes = decide(fault);
    if yes {
        record(fault);
    }
    yes
}

/// A number in `1..=max` (`max` at least 1), from this thread's generator.
fn some_of(max: usize) -> usize {
    let r = STATE.try_with(next).unwrap_or(0);
    1 + (r >> 11) as usize % max
}

/// Arm the calling thread for one more backend (seeding its generator if it was not
/// armed); returns the thread's count, which the backend decrements to disarm it, from
/// whichever thread it is on then.
fn arm() -> Option<Arc<AtomicU32>> {
    let armed = ARMED.try_with(Arc::clone).ok()?;
    if armed.fetch_add(1, Ordering::Relaxed) == 0 {
        let _ = STATE.try_with(|s| s.rng.set(seed_state(config_of(s).seed)));
    }
    report_at_exit_if_asked();
    Some(armed)
}

fn disarm(armed: Option<Arc<AtomicU32>>) {
    if let Some(armed) = armed {
        armed.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Whether the calling thread has a live [`FaultInjecting`] backend (created here and not
/// waited on elsewhere since, or last waited on here), so that the socket hooks
/// ([`before_read`], [`before_write`], [`before_accept`]) inject faults here.
///
/// ```
/// use evloop_backends::{fault, Backend, Poll};
/// use std::time::Duration;
/// assert!(!fault::is_armed());
/// let b = fault::FaultInjecting::<Poll>::new(8).unwrap();
/// assert!(fault::is_armed());
/// // Built here, run on another thread: that thread is armed once it waits.
/// let b = std::thread::spawn(move || {
///     let mut b = b;
///     b.wait(Some(Duration::ZERO)).unwrap();
///     assert!(fault::is_armed());
///     b
/// })
/// .join()
/// .unwrap();
/// assert!(!fault::is_armed());
/// drop(b);
/// assert!(!fault::is_armed());
/// ```
pub fn is_armed() -> bool {
    ARMED
        .try_with(|a| a.load(Ordering::Relaxed) > 0)
        .unwrap_or(false)
}

/// Give the calling thread its own configuration (`None`: back to
/// [`Config::from_env`]) and restart its generator from that configuration's seed. Faults
/// already decided are not undone; the next decision uses the new rates.
///
/// ```
/// use evloop_backends::fault::{self, Config, Fault, FaultInjecting};
/// use evloop_backends::{Backend, Interest, Poll};
/// use std::os::fd::AsRawFd;
///
/// let mut b = FaultInjecting::<Poll>::new(8).unwrap();
/// fault::set_thread_config(Some(Config::new(7).with_rate(Fault::Enomem, 1_000_000)));
/// let (a, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
/// let err = b.register(a.as_raw_fd(), 1, Interest::READ).unwrap_err();
/// assert!(matches!(err.raw_os_error(), Some(libc::ENOMEM | libc::ENOSPC)));
/// assert!(b.is_empty()); // nothing was registered
/// fault::set_thread_config(Some(Config::new(7))); // nothing injected from here on
/// b.register(a.as_raw_fd(), 1, Interest::READ).unwrap();
/// fault::set_thread_config(None);
/// ```
pub fn set_thread_config(config: Option<Config>) {
    let _ = STATE.try_with(|s| {
        s.config.set(config);
        s.rng.set(seed_state(config_of(s).seed));
    });
}

/// The configuration in force on the calling thread (its own, or the environment's).
///
/// ```
/// use evloop_backends::fault::{self, Config};
/// fault::set_thread_config(Some(Config::new(3)));
/// assert_eq!(fault::thread_config(), Config::new(3));
/// fault::set_thread_config(None);
/// assert_eq!(fault::thread_config(), Config::from_env());
/// ```
pub fn thread_config() -> Config {
    STATE.try_with(config_of).unwrap_or_else(|_| env_config())
}

/// Faults injected in this process so far, on every thread.
///
/// ```
/// let total = evloop_backends::fault::counts().total();
/// # let _ = total;
/// ```
pub fn counts() -> Counts {
    let mut c = Counts::default();
    for (n, t) in c.0.iter_mut().zip(&TOTALS) {
        *n = t.load(Ordering::Relaxed);
    }
    c
}

/// Faults injected on the calling thread so far.
///
/// ```
/// use evloop_backends::fault;
/// let mine = fault::thread_counts();
/// assert!(mine.total() <= fault::counts().total());
/// ```
pub fn thread_counts() -> Counts {
    Counts(STATE.try_with(|s| s.counts.get()).unwrap_or([0; 8]))
}

fn report_at_exit_if_asked() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let asked =
            std::env::var_os("EVLOOP_FAULT_REPORT").is_some_and(|v| !v.is_empty() && v != "0");
        if asked {
            // SAFETY: `atexit` only records the function pointer; `print_counts` is an
            // `extern "C" fn()` that never unwinds (it formats and writes, ignoring
            // errors) and touches only statics that live until the process ends.
            unsafe { libc::atexit(print_counts) };
        }
    });
}

extern "C" fn print_counts() {
    use std::io::Write;
    let line = format!(
        "evloop-fault-counts: {} total={} (pid {})\n",
        counts(),
        counts().total(),
        std::process::id()
    );
    let _ = io::stderr().write_all(line.as_bytes());
}

// ---------------------------------------------------------------------------------------
// The socket hooks
// ---------------------------------------------------------------------------------------

/// Ask before reading at most `len` bytes from a socket: `Ok(n)` says how many to ask
/// the read for (`len`, or with a `short_read` fault between 1 and `len - 1`); an error is
/// the result the read must return instead of reading (`eagain`: `WouldBlock`; `reset`:
/// `ECONNRESET`). Injects nothing on a thread that is not [armed](is_armed), or for
/// `len == 0`.
///
/// ```
/// use evloop_backends::fault::{self, Config, Fault, FaultInjecting};
/// use evloop_backends::{Backend, Poll};
///
/// assert_eq!(fault::before_read(100).unwrap(), 100); // not armed: nothing injected
/// let _b = FaultInjecting::<Poll>::new(8).unwrap();
/// fault::set_thread_config(Some(Config::new(1).with_rate(Fault::ShortRead, 1_000_000)));
/// let n = fault::before_read(100).unwrap();
/// assert!((1..100).contains(&n));
/// fault::set_thread_config(Some(Config::new(1).with_rate(Fault::Eagain, 1_000_000)));
/// assert_eq!(fault::before_read(100).unwrap_err().kind(), std::io::ErrorKind::WouldBlock);
/// fault::set_thread_config(None);
/// ```
pub fn before_read(len: usize) -> io::Result<usize> {
    transfer(len, Fault::ShortRead)
}

/// Ask before writing `len` bytes to a socket: `Ok(n)` says how many of them to write
/// (`len`, or with a `short_write` fault a prefix of 1 to `len - 1`); an error is the
/// result the write must return instead (`eagain`: `WouldBlock`; `reset`: `ECONNRESET`).
/// Injects nothing on a thread that is not [armed](is_armed), or for `len == 0`.
///
/// ```
/// use evloop_backends::fault::{self, Config, Fault, FaultInjecting};
/// use evloop_backends::{Backend, Poll};
///
/// let _b = FaultInjecting::<Poll>::new(8).unwrap();
/// fault::set_thread_config(Some(Config::new(1).with_rate(Fault::Reset, 1_000_000)));
/// let err = fault::before_write(10).unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
/// fault::set_thread_config(None);
/// ```
pub fn before_write(len: usize) -> io::Result<usize> {
    transfer(len, Fault::ShortWrite)
}

fn transfer(len: usize, short: Fault) -> io::Result<usize> {
    if len == 0 || !is_armed() {
        return Ok(len);
    }
    if roll(Fault::Reset) {
        return Err(io::Error::from_raw_os_error(libc::ECONNRESET));
    }
    if roll(Fault::Eagain) {
        return Err(io::Error::from_raw_os_error(libc::EAGAIN));
    }
    if len > 1 && roll(short) {
        return Ok(some_of(len - 1));
    }
    Ok(len)
}

/// Ask before accepting a connection: an error is the result the accept must return
/// instead of accepting (`emfile`: `EMFILE`; `eagain`: `EAGAIN`, as if another process
/// took the connection first). Injects nothing on a thread that is not
/// [armed](is_armed).
///
/// ```
/// use evloop_backends::fault::{self, Config, Fault, FaultInjecting};
/// use evloop_backends::{Backend, Poll};
///
/// assert!(fault::before_accept().is_ok());
/// let _b = FaultInjecting::<Poll>::new(8).unwrap();
/// fault::set_thread_config(Some(Config::new(1).with_rate(Fault::Emfile, 1_000_000)));
/// assert_eq!(fault::before_accept().unwrap_err().raw_os_error(), Some(libc::EMFILE));
/// fault::set_thread_config(None);
/// ```
pub fn before_accept() -> io::Result<()> {
    if !is_armed() {
        return Ok(());
    }
    if roll(Fault::Emfile) {
        return Err(io::Error::from_raw_os_error(libc::EMFILE));
    }
    if roll(Fault::Eagain) {
        return Err(io::Error::from_raw_os_error(libc::EAGAIN));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The backend
// ---------------------------------------------------------------------------------------

/// A [`Backend`] that delegates to `B` and injects `eintr` and `spurious` into
/// [`wait`](Backend::wait) and `enomem` into [`register`](Backend::register), at points
/// chosen by the calling thread's generator (see the [module docs](self)). While it is
/// alive, the thread that created it, or from its first wait on another thread that one,
/// is [armed](is_armed): evloop-core's socket I/O on the thread that runs the loop gets
/// the socket faults too.
///
/// It answers for `B` in everything else: the same [`NAME`](Backend::NAME), edge
/// support and fd limit, so code that asks the backend's constants keeps its answers.
///
/// ```
/// use evloop_backends::fault::FaultInjecting;
/// use evloop_backends::{Backend, DefaultBackend};
///
/// // A loop runs under it by naming it: `type Backend = FaultInjecting<DefaultBackend>;`
/// let b = FaultInjecting::<DefaultBackend>::new(64).unwrap();
/// assert_eq!(<FaultInjecting<DefaultBackend> as Backend>::NAME, DefaultBackend::NAME);
/// assert_eq!(b.waits(), 0);
/// ```
pub struct FaultInjecting<B> {
    inner: B,
    waits: u64,
    /// The count of the thread it arms (by `new`, then by `wait` on another thread),
    /// decremented when it moves on and by `drop`.
    armed: Option<Arc<AtomicU32>>,
}

impl<B> FaultInjecting<B> {
    /// The wrapped backend.
    ///
    /// ```
    /// use evloop_backends::fault::FaultInjecting;
    /// use evloop_backends::{Backend, Poll};
    /// let b = FaultInjecting::<Poll>::new(8).unwrap();
    /// assert_eq!(b.inner().len(), 0);
    /// ```
    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// How many times [`wait`](Backend::wait) was called: a loop that spins shows it here.
    ///
    /// ```
    /// use evloop_backends::fault::FaultInjecting;
    /// use evloop_backends::{Backend, Poll};
    /// let mut b = FaultInjecting::<Poll>::new(8).unwrap();
    /// b.wait(Some(std::time::Duration::ZERO)).unwrap();
    /// assert_eq!(b.waits(), 1);
    /// ```
    pub fn waits(&self) -> u64 {
        self.waits
    }
}

impl<B> fmt::Debug for FaultInjecting<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultInjecting")
            .field("waits", &self.waits)
            .finish_non_exhaustive()
    }
}

impl<B> FaultInjecting<B> {
    /// Arm the calling thread instead of the one armed so far, if it is another one.
    fn follow_thread(&mut self) {
        let here = ARMED.try_with(|a| self.armed.as_ref().is_some_and(|mine| Arc::ptr_eq(a, mine)));
        if here == Ok(false) {
            disarm(self.armed.take());
            self.armed = arm();
        }
    }
}

impl<B> Drop for FaultInjecting<B> {
    fn drop(&mut self) {
        disarm(self.armed.take());
    }
}

impl<B: Backend> Backend for FaultInjecting<B> {
    const NAME: &'static str = B::NAME;
    const NATIVE_EDGE: bool = B::NATIVE_EDGE;
    const MAX_FD: Option<RawFd> = B::MAX_FD;

    fn new(event_capacity: usize) -> io::Result<Self> {
        let inner = B::new(event_capacity)?;
        Ok(FaultInjecting {
            inner,
            waits: 0,
            armed: arm(),
        })
    }

    fn register(&mut self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        if roll(Fault::Enomem) {
            // Both are what a registration may fail with when the kernel is short of
            // memory: ENOMEM, or epoll's ENOSPC (max_user_watches reached).
            let errno = if some_of(2) == 1 {
                libc::ENOMEM
            } else {
                libc::ENOSPC
            };
            return Err(io::Error::from_raw_os_error(errno));
        }
        self.inner.register(fd, token, interest)
    }

    fn modify(&mut self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        self.inner.modify(fd, token, interest)
    }

    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        self.inner.deregister(fd)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }

    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        self.waits += 1;
        // The loop runs here: its socket I/O is this thread's.
        self.follow_thread();
        // A zero timeout is a poll: nothing to wake early from, nothing to interrupt.
        if timeout != Some(Duration::ZERO) {
            if decide(Fault::Spurious) {
                // Woken at once: what is ready now (pending changes applied), and if
                // nothing is, back early with nothing.
                let n = self.inner.wait(Some(Duration::ZERO))?;
                if n == 0 {
                    record(Fault::Spurious);
                }
                return Ok(n);
            }
            if decide(Fault::Eintr) {
                // The signal arrives as the wait starts: it polls once, is interrupted,
                // and (as the contract requires) waits again for what is left.
                let end = timeout.and_then(|t| Instant::now().checked_add(t));
                let n = self.inner.wait(Some(Duration::ZERO))?;
                if n > 0 {
                    return Ok(n);
                }
                record(Fault::Eintr);
                let rest = match (timeout, end) {
                    (None, _) => None,
                    (Some(t), None) => Some(t),
                    (Some(_), Some(end)) => Some(end.saturating_duration_since(Instant::now())),
                };
                return self.inner.wait(rest);
            }
        }
        self.inner.wait(timeout)
    }

    fn event(&self, i: usize) -> BackendEvent {
        self.inner.event(i)
    }

    fn pollable_fd(&self) -> Option<BorrowedFd<'_>> {
        self.inner.pollable_fd()
    }

    fn reinit(&mut self) -> io::Result<()> {
        self.inner.reinit()
    }

    fn len(&self) -> usize {
        self.inner.len()
    }

    // Completion I/O passes through: its faults are the kernel's completions (short
    // sends are finished by the backend itself).
    #[inline]
    fn completion_io(&self) -> bool {
        self.inner.completion_io()
    }

    fn recv_take(&mut self, fd: RawFd, buf: &mut [u8]) -> io::Result<crate::Received> {
        self.inner.recv_take(fd, buf)
    }

    fn send(&mut self, fd: RawFd, buf: Vec<u8>) -> Result<(), (Vec<u8>, io::Error)> {
        self.inner.send(fd, buf)
    }

    fn send_done(&mut self, fd: RawFd) -> Option<(Vec<u8>, io::Result<()>)> {
        self.inner.send_done(fd)
    }

    fn accept_take(&mut self, fd: RawFd) -> Option<io::Result<std::os::fd::OwnedFd>> {
        self.inner.accept_take(fd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    #[test]
    fn the_generator_is_reproducible_and_rates_are_roughly_kept() {
        let cfg = Config::new(99).with_rate(Fault::ShortRead, 250_000);
        let run = || {
            set_thread_config(Some(cfg));
            let b = FaultInjecting::<crate::Poll>::new(1).unwrap();
            let picks: Vec<usize> = (0..4000).map(|_| before_read(1000).unwrap()).collect();
            drop(b);
            picks
        };
        let (a, b) = (run(), run());
        assert_eq!(a, b, "same seed, same faults");
        let short = a.iter().filter(|&&n| n < 1000).count();
        assert!((800..1200).contains(&short), "{short} of 4000 at 25%");
        assert!(a.iter().all(|&n| (1..=1000).contains(&n)));
        set_thread_config(None);
    }

    /// A loop built on one thread and run on another (a server built, then moved to its
    /// own thread) gets its socket faults where it runs: the thread that waits on the
    /// backend is the armed one, and the thread it left is not any more.
    #[test]
    fn the_thread_that_waits_is_armed() {
        let b = FaultInjecting::<crate::Poll>::new(1).unwrap();
        assert!(is_armed());
        let (b, there) = thread::spawn(move || {
            let mut b = b;
            let before = is_armed();
            set_thread_config(Some(Config::new(5).with_rate(Fault::ShortRead, MILLION)));
            b.wait(Some(Duration::ZERO)).unwrap();
            let after = is_armed();
            let n = before_read(100).unwrap();
            set_thread_config(None);
            (b, (before, after, n))
        })
        .join()
        .unwrap();
        assert!(!there.0, "not armed before it waits there");
        assert!(there.1, "the thread that waits on the backend is armed");
        assert!(
            there.2 < 100,
            "so its socket I/O gets the faults ({})",
            there.2
        );
        assert!(!is_armed(), "the thread it left is not armed any more");
        drop(b);
        assert!(!is_armed());
        // Dropped on another thread, it disarms the thread it armed.
        let b = FaultInjecting::<crate::Poll>::new(1).unwrap();
        thread::spawn(move || drop(b)).join().unwrap();
        assert!(!is_armed());
    }

    #[test]
    fn rates_parse() {
        assert_eq!(parse_rate("0.1"), Some(100_000));
        assert_eq!(parse_rate("1"), Some(1_000_000));
        assert_eq!(parse_rate("0"), Some(0));
        assert_eq!(parse_rate("1.5"), None);
        assert_eq!(parse_rate("x"), None);
        assert_eq!(parse_seed("0x10"), Some(16));
        assert_eq!(parse_seed("10"), Some(10));
    }
}
