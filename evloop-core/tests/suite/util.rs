//! What every area of the suite shares: one test machine generic over the backend, socket
//! plumbing, bounded waiting, isolation between tests of one binary, and the process's
//! clocks and fd table.
#![allow(dead_code)]

use std::io::{self, ErrorKind, Read, Write};
use std::marker::PhantomData;
use std::net::{TcpListener, TcpStream};
#[cfg(unix)]
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use evloop_core::{Backend, Builder, Ctx, Event, EventLoop, Machine};

/// Long enough for anything that is expected to happen; waits end as soon as it does.
pub const LONG: Duration = Duration::from_secs(10);

/// A test that has not finished after this long is hung: the process is aborted so CI
/// reports it instead of waiting for its own time limit.
const WATCHDOG: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------------------
// The test machine
// ---------------------------------------------------------------------------------------

/// What a [`Harness`] calls for every event, after logging it.
pub type Hook<B, S> = fn(&mut S, &mut Ctx<Harness<B, S>>, &Event);

/// One machine for every test and every backend: it logs each event, then hands it to a
/// per-test hook together with per-test state. Generic over the backend through
/// `PhantomData`, so one test body runs under epoll, poll and select alike.
pub struct Harness<B: Backend, S> {
    /// The test's own state, seen by the hook.
    pub state: S,
    /// Every event dispatched so far, in order.
    pub log: Vec<Event>,
    hook: Hook<B, S>,
    _backend: PhantomData<fn() -> B>,
}

impl<B: Backend, S> Harness<B, S> {
    /// A machine with `state` that calls `hook` for each event.
    pub fn new(state: S, hook: Hook<B, S>) -> Self {
        Harness {
            state,
            log: Vec::new(),
            hook,
            _backend: PhantomData,
        }
    }

    /// The tokens of the logged events, in dispatch order.
    pub fn tokens(&self) -> Vec<u64> {
        self.log.iter().map(|e| e.token.0).collect()
    }
}

impl<B: Backend, S> Machine for Harness<B, S> {
    type Backend = B;

    fn dispatch(&mut self, ctx: &mut Ctx<Self>, ev: Event) {
        self.log.push(ev);
        (self.hook)(&mut self.state, ctx, &ev);
    }
}

/// A hook that does nothing (the log is all the test needs).
pub fn nothing<B: Backend, S>(_: &mut S, _: &mut Ctx<Harness<B, S>>, _: &Event) {}

/// A loop with default capacities around a [`Harness`].
pub fn harness<B: Backend, S>(state: S, hook: Hook<B, S>) -> EventLoop<Harness<B, S>> {
    EventLoop::new(Harness::new(state, hook)).expect("build the loop")
}

/// A loop with the given capacities around a [`Harness`].
pub fn harness_with<B: Backend, S>(
    builder: Builder,
    state: S,
    hook: Hook<B, S>,
) -> EventLoop<Harness<B, S>> {
    builder
        .build(Harness::new(state, hook))
        .expect("build the loop")
}

/// Turn the loop (each turn waits at most until the deadline) until `done` holds; panic
/// naming `what` if it does not within [`LONG`].
pub fn turn_until<M: Machine>(
    el: &mut EventLoop<M>,
    what: &str,
    mut done: impl FnMut(&EventLoop<M>) -> bool,
) {
    let end = Instant::now() + LONG;
    while !done(el) {
        let left = end
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .unwrap_or_else(|| panic!("timed out after {LONG:?} waiting for {what}"));
        el.poll(Some(left)).expect("poll");
    }
}

// ---------------------------------------------------------------------------------------
// Sockets
// ---------------------------------------------------------------------------------------

/// The stream the suite connects in pairs: a Unix stream socket on Unix, TCP on
/// 127.0.0.1 on Windows (which has no socket pairs).
#[cfg(unix)]
pub type Stream = std::os::unix::net::UnixStream;
/// The stream the suite connects in pairs (see the Unix definition).
#[cfg(windows)]
pub type Stream = TcpStream;

/// A connected pair of non-blocking [`Stream`]s.
#[cfg(unix)]
pub fn stream_pair() -> (Stream, Stream) {
    let (a, b) = Stream::pair().expect("socketpair");
    a.set_nonblocking(true).expect("nonblocking");
    b.set_nonblocking(true).expect("nonblocking");
    (a, b)
}

/// A connected pair of non-blocking [`Stream`]s.
#[cfg(windows)]
pub fn stream_pair() -> (Stream, Stream) {
    tcp_pair()
}

/// The raw handle of a source (an fd, or a socket on Windows).
pub fn raw<S: evloop_core::AsSource>(s: &S) -> evloop_core::RawSource {
    #[cfg(unix)]
    return std::os::fd::AsRawFd::as_raw_fd(&s.as_fd());
    #[cfg(windows)]
    return std::os::windows::io::AsRawSocket::as_raw_socket(&s.as_socket());
}

/// A connected pair of non-blocking TCP sockets on 127.0.0.1: (accepted, connecting).
pub fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    for s in [&server, &client] {
        s.set_nonblocking(true).expect("nonblocking");
        s.set_nodelay(true).expect("nodelay");
    }
    (server, client)
}

/// Read everything available without blocking: (bytes read, whether EOF was seen).
pub fn drain(mut r: impl Read) -> (usize, bool) {
    let mut buf = [0u8; 16 * 1024];
    let mut total = 0;
    loop {
        match r.read(&mut buf) {
            Ok(0) => return (total, true),
            Ok(n) => total += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return (total, false),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("read failed: {e}"),
        }
    }
}

/// Write until the socket's buffer is full (`WouldBlock`); returns the bytes written.
pub fn fill(mut w: impl Write) -> usize {
    let chunk = [0x5au8; 64 * 1024];
    let mut total = 0;
    loop {
        match w.write(&chunk) {
            Ok(n) => total += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return total,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("write failed: {e}"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// fds
// ---------------------------------------------------------------------------------------

#[cfg(unix)]
/// How many fds this process has open: `fcntl(F_GETFD)` on every number below the soft
/// limit (at most 65 536), which works on every Unix (macOS and the BSDs have no
/// `/proc/self/fd`) and opens nothing itself, so differences are exact. Only meaningful
/// under [`exclusive`].
pub fn open_fds() -> usize {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `rl` is a valid, writable rlimit.
    let limit = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } == 0 {
        rl.rlim_cur.min(1 << 16) as RawFd
    } else {
        1024
    };
    (0..limit)
        // SAFETY: F_GETFD only asks whether the number is open; it changes nothing.
        .filter(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1)
        .count()
}

#[cfg(unix)]
/// A duplicate of `fd` numbered at least `min`.
pub fn dup_at_least(fd: BorrowedFd<'_>, min: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC only reads `fd`, which is open for the borrow's lifetime.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fcntl just returned this fd; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

#[cfg(unix)]
/// A duplicate of `fd` with exactly the number `target`, which must not be open (callers
/// hold [`exclusive`], so no other test takes that number meanwhile).
pub fn dup_onto(fd: BorrowedFd<'_>, target: RawFd) -> OwnedFd {
    // SAFETY: `target` is closed (see above), so dup2 replaces nothing anyone owns; `fd`
    // is open for the borrow's lifetime.
    let new = unsafe { libc::dup2(fd.as_raw_fd(), target) };
    assert_eq!(new, target, "dup2: {}", io::Error::last_os_error());
    // SAFETY: dup2 just created this fd; nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(new) }
}

#[cfg(unix)]
/// Raise the soft `RLIMIT_NOFILE` to the hard limit; returns the new soft limit.
pub fn raise_fd_limit() -> u64 {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `rl` is a valid, writable rlimit struct.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) }, 0);
    if rl.rlim_cur < rl.rlim_max {
        rl.rlim_cur = rl.rlim_max;
        // SAFETY: `rl` is a valid rlimit struct; raising the soft limit up to the hard
        // one is always permitted.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rl) } != 0 {
            // SAFETY: as above.
            assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) }, 0);
        }
    }
    #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 everywhere
    let soft = rl.rlim_cur as u64;
    soft
}

// ---------------------------------------------------------------------------------------
// Clocks
// ---------------------------------------------------------------------------------------

/// CPU time consumed by the calling thread: what a spinning loop burns and a waiting one
/// does not, whatever else the machine is doing.
#[cfg(unix)]
pub fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(r, 0, "clock_gettime: {}", io::Error::last_os_error());
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// CPU time consumed by the calling thread (kernel and user time, as the system counts
/// it in 100 ns units).
#[cfg(windows)]
pub fn thread_cpu_time() -> Duration {
    use windows_sys::Win32::Foundation::FILETIME;
    use windows_sys::Win32::System::Threading::{GetCurrentThread, GetThreadTimes};
    let zero = FILETIME {
        dwLowDateTime: 0,
        dwHighDateTime: 0,
    };
    let (mut c, mut e, mut k, mut u) = (zero, zero, zero, zero);
    // SAFETY: four valid, writable FILETIMEs; the pseudo-handle names this thread.
    let ok = unsafe { GetThreadTimes(GetCurrentThread(), &mut c, &mut e, &mut k, &mut u) };
    assert_ne!(ok, 0, "GetThreadTimes: {}", io::Error::last_os_error());
    let t = |f: FILETIME| (u64::from(f.dwHighDateTime) << 32) | u64::from(f.dwLowDateTime);
    Duration::from_nanos((t(k) + t(u)) * 100)
}

/// The most CPU an idle loop may burn while it waits for `wall` to pass (a spinning one
/// burns about `wall`).
pub fn idle_cpu_budget(wall: Duration) -> Duration {
    wall / 3
}

// ---------------------------------------------------------------------------------------
// Isolation
// ---------------------------------------------------------------------------------------

/// Tests of one binary share the process's fd numbers. Tests that count open fds, close
/// an fd while it is registered, or need a closed fd number to stay closed take this lock
/// exclusively; every other test takes it shared.
static FD_NUMBERS: RwLock<()> = RwLock::new(());

fn shared() -> RwLockReadGuard<'static, ()> {
    FD_NUMBERS.read().unwrap_or_else(|e| e.into_inner())
}

fn exclusive() -> RwLockWriteGuard<'static, ()> {
    FD_NUMBERS.write().unwrap_or_else(|e| e.into_inner())
}

/// Run one test body: alongside others (`exclusive == false`) or alone, under a watchdog
/// that aborts the process if it hangs.
pub fn run(name: &'static str, exclusive_fds: bool, body: fn()) {
    let (done, rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(WATCHDOG) {
            eprintln!("conformance test {name} hung for {WATCHDOG:?}: aborting");
            std::process::abort();
        }
    });
    if exclusive_fds {
        let _g = exclusive();
        body();
    } else {
        let _g = shared();
        body();
    }
    drop(done);
}
