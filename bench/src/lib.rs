//! Shared helpers for the pipe-chain benchmark binaries (`pipechain`, `pipechain-mio`).
//!
//! The protocol is libevent's `test/bench.c` as extended by libev's author (see
//! `bench/README.md`, "The pipe chain"): `n` non-blocking AF_UNIX socketpairs, a persistent read
//! watcher on each read end, a read handler that reads one byte and forwards one byte to the
//! next pair while `writes_left > 0`, and per iteration a timed *setup* (delete + add every
//! watcher, then one non-blocking pass of the loop) and a timed *run* (write one byte into `a`
//! evenly spaced pipes, then run the loop once at a time until `a + w` bytes were read).
//!
//! This crate only holds what every implementation shares: option parsing, the open-file
//! limit, socketpair creation, one-byte read/write helpers, a deterministic PRNG for the
//! random 60..120 s timeouts, and the statistics / `SUMMARY` line. Each binary keeps its own
//! event-loop code so that it reads the way a user of that library would write it.
//!
//! Unix only: AF_UNIX socket pairs, and the C loops it is compared with.
#![cfg(unix)]

use std::ffi::c_void;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Which evloop API flavour a binary should exercise (`--api trait|macro|raw|completion`).
///
/// Binaries that have only one way of registering handlers (such as the mio one) accept the
/// flag and ignore it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// Handlers implemented through the trait-based API (the default).
    Trait,
    /// Handlers declared through the procedural-macro API.
    Macro,
    /// A hand-written trait impl with no collection: the token is the pipe index (the
    /// leanest form, to show what a `Slab` costs).
    Raw,
    /// `raw`, with the backend's completion I/O (io_uring): each byte is received into
    /// the backend's buffer ring and sent as a submission, no `read` or `write` call.
    Completion,
}

impl fmt::Display for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Api::Trait => "trait",
            Api::Macro => "macro",
            Api::Raw => "raw",
            Api::Completion => "completion",
        })
    }
}

/// Command-line options shared by every pipe-chain binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `-n`: number of socketpairs ("pipes"). Default 100.
    pub pipes: usize,
    /// `-a`: number of pipes that get a byte at the start of each run. Default 1.
    pub active: usize,
    /// `-w`: number of forwarded writes per run. Default 100.
    pub writes: usize,
    /// `-t`: give every watcher a (never-firing) 60..120 s timeout, re-armed per event.
    pub timeouts: bool,
    /// `-i`: number of iterations. Default 25.
    pub iters: usize,
    /// `-b`: backend name, interpreted by the binary. Default [`NATIVE_BACKEND`].
    pub backend: String,
    /// `--api`: API flavour. Default [`Api::Trait`].
    pub api: Api,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            pipes: 100,
            active: 1,
            writes: 100,
            timeouts: false,
            iters: 25,
            backend: NATIVE_BACKEND.to_owned(),
            api: Api::Trait,
        }
    }
}

/// The name of this platform's native readiness mechanism, as `-b` takes it: what `-b`
/// defaults to (`epoll` on Linux, `kqueue` on macOS and the BSDs, `event_ports` on
/// illumos and Solaris, `poll` elsewhere).
///
/// ```
/// # #[cfg(target_os = "linux")]
/// assert_eq!(evloop_bench::NATIVE_BACKEND, "epoll");
/// assert_eq!(evloop_bench::Options::default().backend, evloop_bench::NATIVE_BACKEND);
/// ```
pub const NATIVE_BACKEND: &str = if cfg!(any(target_os = "linux", target_os = "android")) {
    "epoll"
} else if cfg!(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "tvos",
    target_os = "watchos",
    target_os = "visionos",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
)) {
    "kqueue"
} else if cfg!(any(target_os = "illumos", target_os = "solaris")) {
    "event_ports"
} else {
    "poll"
};

/// The usage text printed on a usage error or for `-h`.
pub const USAGE: &str = "usage: PROG [-n pipes] [-a active] [-w writes] [-t] [-i iterations] \
[-b epoll|uring|kqueue|event_ports|devpoll|poll|select] [--api trait|macro|raw]";

impl Options {
    /// Parses options from an argument list that does *not* include the program name.
    ///
    /// Values may be given as a separate argument (`-n 100`) or attached (`-n100`,
    /// `--api=macro`). Returns `Ok(None)` for `-h`/`--help`, and an error message for an
    /// unknown flag, a missing or malformed value, or inconsistent values (`n < 1`,
    /// `a < 1`, `a > n`, `i < 1`).
    pub fn parse_from<I, S>(args: I) -> Result<Option<Options>, String>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut opts = Options::default();
        let mut it = args.into_iter().map(Into::into);
        while let Some(arg) = it.next() {
            // Split "-n100" / "--api=macro" into flag and attached value.
            let (flag, attached) = if let Some(rest) = arg.strip_prefix("--") {
                match rest.split_once('=') {
                    Some((f, v)) => (format!("--{f}"), Some(v.to_owned())),
                    None => (arg.clone(), None),
                }
            } else if arg.starts_with('-') && arg.len() > 2 {
                (arg[..2].to_owned(), Some(arg[2..].to_owned()))
            } else {
                (arg.clone(), None)
            };
            let mut value = |name: &str| -> Result<String, String> {
                match attached.clone() {
                    Some(v) => Ok(v),
                    None => it
                        .next()
                        .ok_or_else(|| format!("option {name} needs a value")),
                }
            };
            match flag.as_str() {
                "-n" => opts.pipes = parse_count("-n", &value("-n")?)?,
                "-a" => opts.active = parse_count("-a", &value("-a")?)?,
                "-w" => opts.writes = parse_count("-w", &value("-w")?)?,
                "-i" => opts.iters = parse_count("-i", &value("-i")?)?,
                "-b" => opts.backend = value("-b")?,
                "--api" => {
                    opts.api = match value("--api")?.as_str() {
                        "trait" => Api::Trait,
                        "macro" => Api::Macro,
                        "raw" => Api::Raw,
                        "completion" => Api::Completion,
                        other => {
                            return Err(format!(
                                "--api must be trait, macro, raw or completion, not {other:?}"
                            ))
                        }
                    }
                }
                "-t" if attached.is_none() => opts.timeouts = true,
                "-h" | "--help" if attached.is_none() => return Ok(None),
                _ => return Err(format!("unknown option {arg:?}")),
            }
        }
        if opts.pipes < 1 || opts.active < 1 || opts.iters < 1 {
            return Err("-n, -a and -i must be at least 1".to_owned());
        }
        if opts.active > opts.pipes {
            return Err("-a must not exceed -n".to_owned());
        }
        Ok(Some(opts))
    }

    /// Parses `std::env::args()`; prints usage and exits with status 2 on a usage error
    /// (status 0 for `-h`).
    pub fn from_env() -> Options {
        match Options::parse_from(std::env::args().skip(1)) {
            Ok(Some(opts)) => opts,
            Ok(None) => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            Err(msg) => usage_error(&msg),
        }
    }

    /// Indices of the pipes that get the initial byte of a run: `i * (n / a)` for `i < a`.
    pub fn active_indices(&self) -> impl Iterator<Item = usize> {
        let step = self.pipes / self.active;
        (0..self.active).map(move |i| i * step)
    }

    /// Number of bytes (events) one run must read: `a + w`.
    pub fn events_per_run(&self) -> usize {
        self.active + self.writes
    }
}

fn parse_count(name: &str, s: &str) -> Result<usize, String> {
    s.parse::<usize>()
        .map_err(|_| format!("option {name} needs a non-negative integer, not {s:?}"))
}

/// Prints `msg` and the usage text to stderr and exits with status 2.
pub fn usage_error(msg: &str) -> ! {
    eprintln!("error: {msg}\n{USAGE}");
    std::process::exit(2);
}

/// Raises the soft `RLIMIT_NOFILE` limit to the hard limit and returns the new soft limit.
///
/// Each pipe costs two descriptors, so `-n 9980` needs the limit raised.
pub fn raise_nofile_limit() -> io::Result<libc::rlim_t> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit struct for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: `lim` is a valid rlimit struct; setrlimit only reads it.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(lim.rlim_cur)
}

/// Creates `n` non-blocking, close-on-exec AF_UNIX SOCK_STREAM socketpairs.
///
/// Returns `(read_end, write_end)` per pipe. Both ends are bidirectional sockets; the
/// benchmark only reads from the first and writes to the second.
pub fn socketpairs(n: usize) -> io::Result<Vec<(OwnedFd, OwnedFd)>> {
    let mut pairs = Vec::with_capacity(n);
    for _ in 0..n {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` is a valid, writable array of two c_ints, as socketpair requires.
        let rc = unsafe { libc::socketpair(libc::AF_UNIX, SOCKETPAIR_TYPE, 0, fds.as_mut_ptr()) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: socketpair succeeded, so both descriptors are open and owned by nobody else.
        let pair = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        #[cfg(any(
            target_os = "macos",
            target_os = "ios",
            target_os = "tvos",
            target_os = "watchos",
            target_os = "visionos"
        ))]
        for fd in [&pair.0, &pair.1] {
            set_cloexec_nonblock(fd.as_raw_fd())?;
        }
        pairs.push(pair);
    }
    Ok(pairs)
}

/// The socketpair(2) type: non-blocking and close-on-exec in the call where the system
/// takes those flags there (not Apple's: there they are set with `fcntl` afterwards).
#[cfg(not(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "tvos",
    target_os = "watchos",
    target_os = "visionos"
)))]
const SOCKETPAIR_TYPE: libc::c_int = libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
#[cfg(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "tvos",
    target_os = "watchos",
    target_os = "visionos"
))]
const SOCKETPAIR_TYPE: libc::c_int = libc::SOCK_STREAM;

/// Make `fd` non-blocking and close-on-exec (for systems whose socketpair(2) does not
/// take the flags).
#[cfg(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "tvos",
    target_os = "watchos",
    target_os = "visionos"
))]
fn set_cloexec_nonblock(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on an open fd we own; only its flags change.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        if fl < 0
            || libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK) < 0
            || libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) < 0
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Outcome of a one-byte [`read_byte`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    /// One byte was read.
    Byte,
    /// Nothing to read (`EAGAIN`/`EWOULDBLOCK`); not a failure.
    WouldBlock,
    /// End of file: the peer was closed. Counts as a failure.
    Eof,
    /// Any other error (`EINTR` is retried). Counts as a failure.
    Failed,
}

/// Reads one byte from `fd` with a single `read(2)` (retrying on `EINTR`).
pub fn read_byte(fd: RawFd) -> ReadOutcome {
    let mut b = 0u8;
    loop {
        // SAFETY: `b` is a valid, writable 1-byte buffer; an invalid fd only yields EBADF.
        let r = unsafe { libc::read(fd, (&mut b as *mut u8).cast::<c_void>(), 1) };
        match r {
            1 => return ReadOutcome::Byte,
            0 => return ReadOutcome::Eof,
            _ => match io::Error::last_os_error().kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => return ReadOutcome::WouldBlock,
                _ => return ReadOutcome::Failed,
            },
        }
    }
}

/// Writes one byte (`'e'`) to `fd` with a single `write(2)` (retrying on `EINTR`).
///
/// Returns `false` if the byte was not written (any error, including `EAGAIN`: a lost byte
/// would make the run wait forever, so callers count it as a failure and expect one byte
/// less).
pub fn write_byte(fd: RawFd) -> bool {
    let b = b'e';
    loop {
        // SAFETY: `b` is a valid 1-byte buffer; an invalid fd only yields EBADF.
        let r = unsafe { libc::write(fd, (&b as *const u8).cast::<c_void>(), 1) };
        if r == 1 {
            return true;
        }
        if r < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        return false;
    }
}

/// Convenience: the raw read and write descriptors of a pipe list, in the same order.
pub fn raw_fds(pairs: &[(OwnedFd, OwnedFd)]) -> Vec<(RawFd, RawFd)> {
    pairs
        .iter()
        .map(|(r, w)| (r.as_raw_fd(), w.as_raw_fd()))
        .collect()
}

/// A tiny deterministic PRNG (xorshift64*), used for the random timeouts.
#[derive(Debug, Clone)]
pub struct XorShift {
    state: u64,
}

impl XorShift {
    /// Creates a generator; a zero seed is replaced by a fixed non-zero constant.
    pub fn new(seed: u64) -> XorShift {
        XorShift {
            state: if seed == 0 {
                0x9E37_79B9_7F4A_7C15
            } else {
                seed
            },
        }
    }

    /// Returns the next 64-bit value.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Returns a value uniformly-ish distributed in `lo..hi` (`hi > lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo)
    }

    /// A random benchmark timeout in `60 s .. 120 s`, with microsecond resolution.
    pub fn timeout(&mut self) -> Duration {
        Duration::from_micros(self.range(60_000_000, 120_000_000))
    }
}

impl Default for XorShift {
    fn default() -> Self {
        XorShift::new(0x0123_4567_89AB_CDEF)
    }
}

/// Median of `v` (mean of the two middle values for an even length); 0 for an empty slice.
pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

/// Minimum of `v`; 0 for an empty slice.
pub fn min(v: &[f64]) -> f64 {
    v.iter().copied().reduce(f64::min).unwrap_or(0.0)
}

/// Collects per-iteration timings and counters, then prints the report.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Setup time of each iteration, in microseconds.
    pub setup_us: Vec<f64>,
    /// Run time of each iteration, in microseconds.
    pub run_us: Vec<f64>,
    /// Number of timeouts that fired (must stay 0).
    pub timeouts_fired: u64,
    /// Number of failed reads/writes (other than `EAGAIN` on read) or other errors.
    pub failures: u64,
}

impl Report {
    /// Creates an empty report with room for `iters` iterations.
    pub fn new(iters: usize) -> Report {
        Report {
            setup_us: Vec::with_capacity(iters),
            run_us: Vec::with_capacity(iters),
            timeouts_fired: 0,
            failures: 0,
        }
    }

    /// Records one iteration's setup and run durations.
    pub fn record(&mut self, setup: Duration, run: Duration) {
        self.setup_us.push(setup.as_secs_f64() * 1e6);
        self.run_us.push(run.as_secs_f64() * 1e6);
    }

    /// Formats the `SUMMARY` line (without trailing newline).
    pub fn summary_line(&self, impl_name: &str, backend: &str, opts: &Options) -> String {
        let run_med = median(&self.run_us);
        format!(
            "SUMMARY impl={impl_name} backend={backend} n={} a={} w={} t={} iters={} \
             setup_us_med={:.1} setup_us_min={:.1} run_us_med={:.1} run_us_min={:.1} \
             run_ns_per_event={:.1} timeouts_fired={} failures={}",
            opts.pipes,
            opts.active,
            opts.writes,
            u8::from(opts.timeouts),
            self.run_us.len(),
            median(&self.setup_us),
            min(&self.setup_us),
            run_med,
            min(&self.run_us),
            run_med * 1000.0 / opts.events_per_run() as f64,
            self.timeouts_fired,
            self.failures,
        )
    }

    /// Prints one `setup_us run_us` line per iteration and then the `SUMMARY` line to stdout.
    ///
    /// Returns the process exit code: 0, or 1 if any timeout fired or anything failed.
    pub fn print(&self, impl_name: &str, backend: &str, opts: &Options) -> i32 {
        use std::io::Write;
        let stdout = io::stdout();
        let mut out = stdout.lock();
        for (s, r) in self.setup_us.iter().zip(&self.run_us) {
            // A closed stdout must not turn into a panic; the exit code still reports.
            let _ = writeln!(out, "{s:.1} {r:.1}");
        }
        let _ = writeln!(out, "{}", self.summary_line(impl_name, backend, opts));
        let _ = out.flush();
        if self.timeouts_fired > 0 || self.failures > 0 {
            1
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_flags() {
        let o = Options::parse_from(Vec::<String>::new()).unwrap().unwrap();
        assert_eq!(o, Options::default());
        let o = Options::parse_from(["-n", "1000", "-a100", "-w", "5", "-t", "-i", "3"])
            .unwrap()
            .unwrap();
        assert_eq!(
            (o.pipes, o.active, o.writes, o.timeouts, o.iters),
            (1000, 100, 5, true, 3)
        );
        let o = Options::parse_from(["-b", "poll", "--api=macro"])
            .unwrap()
            .unwrap();
        assert_eq!((o.backend.as_str(), o.api), ("poll", Api::Macro));
        let o = Options::parse_from(["--api", "trait"]).unwrap().unwrap();
        assert_eq!(o.api, Api::Trait);
        assert!(Options::parse_from(["-x"]).is_err());
        assert!(Options::parse_from(["-n"]).is_err());
        assert!(Options::parse_from(["-n", "abc"]).is_err());
        assert!(Options::parse_from(["--api", "other"]).is_err());
        assert!(Options::parse_from(["-n", "2", "-a", "3"]).is_err());
        assert!(Options::parse_from(["-tx"]).is_err());
        assert_eq!(Options::parse_from(["-h"]).unwrap(), None);
    }

    #[test]
    fn active_spacing() {
        let o = Options::parse_from(["-n", "10", "-a", "3"])
            .unwrap()
            .unwrap();
        assert_eq!(o.active_indices().collect::<Vec<_>>(), vec![0, 3, 6]);
        assert_eq!(o.events_per_run(), 103);
    }

    #[test]
    fn stats() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
        assert_eq!(min(&[3.0, 1.0, 2.0]), 1.0);
    }

    #[test]
    fn prng_timeouts_in_range() {
        let mut r = XorShift::default();
        for _ in 0..10_000 {
            let t = r.timeout();
            assert!(t >= Duration::from_secs(60) && t < Duration::from_secs(120));
        }
    }

    #[test]
    fn summary_format() {
        let o = Options::parse_from(["-n", "20", "-a", "2", "-w", "48"])
            .unwrap()
            .unwrap();
        let mut r = Report::new(1);
        r.record(Duration::from_micros(10), Duration::from_micros(100));
        assert_eq!(
            r.summary_line("x", "epoll", &o),
            "SUMMARY impl=x backend=epoll n=20 a=2 w=48 t=0 iters=1 setup_us_med=10.0 \
             setup_us_min=10.0 run_us_med=100.0 run_us_min=100.0 run_ns_per_event=2000.0 \
             timeouts_fired=0 failures=0"
        );
    }

    #[test]
    fn pipes_roundtrip() {
        let pairs = socketpairs(2).unwrap();
        let fds = raw_fds(&pairs);
        assert_eq!(read_byte(fds[0].0), ReadOutcome::WouldBlock);
        assert!(write_byte(fds[0].1));
        assert_eq!(read_byte(fds[0].0), ReadOutcome::Byte);
        assert!(raise_nofile_limit().unwrap() >= 2);
    }
}
