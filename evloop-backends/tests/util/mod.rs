//! Helpers shared by the backend conformance tests: fd plumbing, event expectations,
//! per-backend expectations, and test isolation.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use evloop_backends::{Backend, BackendEvent, Ready};

/// Long enough for anything that is expected to happen; a wait returns as soon as it does.
pub const LONG: Option<Duration> = Some(Duration::from_secs(5));
/// How long "nothing happens" is watched for.
pub const QUIET: Duration = Duration::from_millis(20);

// ---------------------------------------------------------------------------------------
// Isolation
// ---------------------------------------------------------------------------------------

/// Tests in one binary share the process's fd numbers. Tests that close an fd while it is
/// registered, or depend on a closed number staying closed (or being reused by *them*),
/// take this lock exclusively; every other test takes it shared.
static FD_NUMBERS: RwLock<()> = RwLock::new(());

/// Take the fd-number lock shared.
pub fn shared() -> RwLockReadGuard<'static, ()> {
    FD_NUMBERS.read().unwrap_or_else(|e| e.into_inner())
}

/// Take the fd-number lock exclusively.
pub fn exclusive() -> RwLockWriteGuard<'static, ()> {
    FD_NUMBERS.write().unwrap_or_else(|e| e.into_inner())
}

/// How a test body runs.
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// Alongside other shared tests.
    Shared,
    /// Alone in this process (it closes fds while they are registered, forks, ...).
    Exclusive,
    /// In a child process of its own (it changes process-wide state: signal handlers).
    Isolated,
}

/// The name libtest knows a test by, for `--exact`: the `module_path!()` of the test's
/// module without the crate's own name, then the function's name
/// (`epoll_contract::eintr_is_retried_with_the_remaining_time`).
pub fn test_name(module_path: &str, function: &str) -> String {
    match module_path.split_once("::") {
        Some((_crate, path)) => format!("{path}::{function}"),
        None => function.to_string(),
    }
}

/// Run a test body in the given mode. `name` is the test's own full name (for
/// `Isolated`; see [`test_name`]).
pub fn run(mode: Mode, name: &str, body: fn()) {
    match mode {
        Mode::Shared => {
            let _g = shared();
            body();
        }
        Mode::Exclusive => {
            let _g = exclusive();
            body();
        }
        Mode::Isolated => run_isolated(name, body),
    }
}

const CHILD_VAR: &str = "EVLOOP_BACKENDS_ISOLATED_TEST";

/// Run `body` in a fresh copy of this test binary that runs only test `name`, and check
/// that it passed. In that child (recognised by an environment variable) run the body.
pub fn run_isolated(name: &str, body: fn()) {
    if std::env::var(CHILD_VAR).as_deref() == Ok(name) {
        body();
        return;
    }
    // Exclusive: while the child is being spawned it briefly holds copies of our fds,
    // which would delay a peer-close another test is waiting for.
    let _g = exclusive();
    let exe = std::env::current_exe().expect("current_exe");
    let out = Command::new(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_VAR, name)
        .output()
        .expect("spawn the isolated test child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "isolated test {name} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("1 passed"),
        "isolated child did not run test {name}:\n{stdout}"
    );
}

// ---------------------------------------------------------------------------------------
// Per-backend expectations (what the mechanism can and cannot tell)
// ---------------------------------------------------------------------------------------

/// Whether a peer close is seen while unread data is still buffered (select's peek
/// emulation only sees EOF once the data is drained).
pub fn closes_with_data<B: Backend>() -> bool {
    B::NAME != "select"
}

/// Whether the mechanism has an error bit (select reports failures as readable/writable).
pub fn reports_error_bits<B: Backend>() -> bool {
    B::NAME != "select"
}

/// Whether the mechanism has a hang-up bit (select reports a hang-up as readable).
pub fn reports_hup<B: Backend>() -> bool {
    B::NAME != "select"
}

// ---------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------

/// The events of the last wait.
pub fn events<B: Backend>(b: &B, n: usize) -> Vec<BackendEvent> {
    (0..n).map(|i| b.event(i)).collect()
}

/// Wait and return the events.
pub fn wait_events<B: Backend>(b: &mut B, timeout: Option<Duration>) -> Vec<BackendEvent> {
    let n = b
        .wait(timeout)
        .unwrap_or_else(|e| panic!("{}: wait failed: {e}", B::NAME));
    events(b, n)
}

/// Wait (up to [`LONG`]) and expect exactly one event, for `token`; return its readiness.
#[track_caller]
pub fn expect_one<B: Backend>(b: &mut B, token: u64) -> Ready {
    let evs = wait_events(b, LONG);
    assert!(
        evs.len() == 1 && evs[0].token == token,
        "{}: expected one event for token {token}, got {evs:?}",
        B::NAME
    );
    evs[0].ready
}

/// Wait `d` and expect nothing, and that the wait really lasted `d` (no busy loop).
#[track_caller]
pub fn expect_none<B: Backend>(b: &mut B, d: Duration) {
    let start = Instant::now();
    let evs = wait_events(b, Some(d));
    let took = start.elapsed();
    assert!(
        evs.is_empty(),
        "{}: expected no events, got {evs:?}",
        B::NAME
    );
    assert!(
        took >= d,
        "{}: a {d:?} wait with nothing ready returned after {took:?}",
        B::NAME
    );
}

/// Events sorted by token (for comparing sets).
pub fn sorted(mut evs: Vec<BackendEvent>) -> Vec<BackendEvent> {
    evs.sort_by_key(|e| e.token);
    evs
}

// ---------------------------------------------------------------------------------------
// fds
// ---------------------------------------------------------------------------------------

/// The raw fd of anything that has one.
pub fn fd(x: &impl AsRawFd) -> RawFd {
    x.as_raw_fd()
}

/// A connected pair of non-blocking Unix stream sockets (close-on-exec, as std makes them).
pub fn pair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().expect("socketpair");
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    (a, b)
}

/// Write all of `data`.
pub fn send(s: &UnixStream, data: &[u8]) {
    (&*s).write_all(data).expect("send");
}

/// Read what is available now (until `WouldBlock` or EOF).
pub fn read_available(s: &UnixStream) -> Vec<u8> {
    let mut out = vec![];
    let mut buf = [0u8; 4096];
    loop {
        match (&*s).read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return out,
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// Read until EOF, which must come without blocking.
pub fn read_to_eof(s: &UnixStream) -> Vec<u8> {
    let mut out = vec![];
    let mut buf = [0u8; 4096];
    loop {
        match (&*s).read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => panic!("expected data then EOF, got {e} after {out:?}"),
        }
    }
}

/// Write until the socket buffer is full; returns how much was written.
pub fn fill(s: &UnixStream) -> usize {
    let chunk = [0x5au8; 16 * 1024];
    let mut total = 0;
    loop {
        match (&*s).write(&chunk) {
            Ok(n) => total += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return total,
            Err(e) => panic!("fill: {e}"),
        }
    }
}

/// Own a raw fd that was just created.
fn own(fd: RawFd) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by a call that creates a new fd; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A non-blocking, close-on-exec pipe: (read end, write end).
pub fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` has room for the two fds pipe(2) writes.
    let r = unsafe { libc::pipe(fds.as_mut_ptr()) };
    assert_eq!(r, 0, "pipe: {}", io::Error::last_os_error());
    let (rd, wr) = (own(fds[0]).unwrap(), own(fds[1]).unwrap());
    for f in [&rd, &wr] {
        set_cloexec_nonblock(f.as_raw_fd());
    }
    (rd, wr)
}

fn set_cloexec_nonblock(fd: RawFd) {
    // SAFETY: plain fcntl flag calls on an fd we own.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        assert!(fl >= 0);
        assert_eq!(libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK), 0);
        assert_eq!(libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC), 0);
    }
}

/// A close-on-exec duplicate of `fd` on the lowest free number `>= min`.
pub fn dup_at_least(fd: RawFd, min: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC duplicates an open fd; the result is a new fd we own.
    own(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min) })
}

/// A close-on-exec duplicate of `fd` (like dup(2)).
pub fn dup(fd: RawFd) -> OwnedFd {
    dup_at_least(fd, 0).expect("dup")
}

/// Duplicate `fd` onto the number `target`, which must be free (like dup2(2), which
/// would silently close whatever else owned `target`).
pub fn dup_onto(fd: RawFd, target: RawFd) -> OwnedFd {
    assert_ne!(fd, target);
    // SAFETY: F_GETFD only queries the number.
    let in_use = unsafe { libc::fcntl(target, libc::F_GETFD) } != -1;
    assert!(
        !in_use,
        "fd {target} is in use: dup2 onto it would close it under its owner"
    );
    // SAFETY: dup2 onto a number the caller says is free; we take ownership of the result.
    let r = unsafe { libc::dup2(fd, target) };
    let owned = own(r).expect("dup2");
    assert_eq!(owned.as_raw_fd(), target);
    set_cloexec_nonblock(target);
    owned
}

/// Make the file behind `file` be known by the number `n`, which must be free (create
/// `file` while `n` is still taken, so that it cannot land on `n` itself), closing
/// `file`'s original number.
pub fn reuse_number(file: OwnedFd, n: RawFd) -> OwnedFd {
    dup_onto(file.as_raw_fd(), n)
}

/// A duplicate of `fd` numbered at least `min`, raising the soft fd limit if it is in
/// the way; `None` if the hard limit is too low to get there.
pub fn high_fd(fd: RawFd, min: RawFd) -> Option<OwnedFd> {
    if let Ok(f) = dup_at_least(fd, min) {
        return Some(f);
    }
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `rl` is a valid, writable rlimit struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } != 0 {
        return None;
    }
    let want = (min as libc::rlim_t + 64).min(rl.rlim_max);
    if want <= rl.rlim_cur {
        return None;
    }
    rl.rlim_cur = want;
    // SAFETY: `rl` is a valid rlimit struct; raising the soft limit up to the hard one.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rl) } != 0 {
        return None;
    }
    dup_at_least(fd, min).ok()
}

/// write(2) on a raw fd.
pub fn raw_write(fd: RawFd, data: &[u8]) -> io::Result<usize> {
    // SAFETY: writes from a valid buffer of `data.len()` bytes.
    let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// read(2) on a raw fd.
pub fn raw_read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: reads into a valid, writable buffer of `buf.len()` bytes.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Whether `fd` is readable within `ms` milliseconds (a one-fd poll(2)).
pub fn poll_readable(fd: RawFd, ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut p, 1, ms) };
    n == 1 && p.revents & libc::POLLIN != 0
}

/// The `send(2)` flags that ask for an `EPIPE` error instead of `SIGPIPE` when the peer
/// is gone: `MSG_NOSIGNAL`, where the system has it for `send`.
#[cfg(not(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "tvos",
    target_os = "watchos",
    target_os = "visionos"
)))]
pub fn no_signal_flags(_fd: RawFd) -> libc::c_int {
    libc::MSG_NOSIGNAL
}

/// The `send(2)` flags that ask for an `EPIPE` error instead of `SIGPIPE` when the peer
/// is gone: none on Apple's systems, which say it per socket (`SO_NOSIGPIPE`, set here).
#[cfg(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "tvos",
    target_os = "watchos",
    target_os = "visionos"
))]
pub fn no_signal_flags(fd: RawFd) -> libc::c_int {
    let one: libc::c_int = 1;
    // SAFETY: the option value points to a live c_int of the length given.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_NOSIGPIPE,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "SO_NOSIGPIPE: {}", io::Error::last_os_error());
    0
}

/// Rust binaries (test harnesses included) start with SIGPIPE ignored, which is what
/// turns a write to a closed peer into an `EPIPE` error instead of a death.
pub fn assert_sigpipe_ignored() {
    // SAFETY: an all-zero sigaction is a valid out-parameter.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: queries the disposition only (null new action).
    let r = unsafe { libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut old) };
    assert_eq!(r, 0);
    assert_eq!(old.sa_sigaction, libc::SIG_IGN, "SIGPIPE is not ignored");
}

// ---------------------------------------------------------------------------------------
// TCP
// ---------------------------------------------------------------------------------------

/// A loopback port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().unwrap().port()
}

/// Start a non-blocking connect to `127.0.0.1:port`. Returns the socket and the
/// connect(2) outcome (`EINPROGRESS` is the usual one).
pub fn connect_nonblocking(port: u16) -> (OwnedFd, io::Result<()>) {
    // SAFETY: creating a socket has no memory-safety preconditions.
    let s = own(unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) }).expect("socket");
    set_cloexec_nonblock(s.as_raw_fd());
    // SAFETY: an all-zero sockaddr_in is valid; the fields that matter are set below.
    let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sin.sin_family = libc::AF_INET as libc::sa_family_t;
    sin.sin_port = port.to_be();
    sin.sin_addr = libc::in_addr {
        s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
    };
    // SAFETY: `sin` is a valid sockaddr_in and the length passed is its size.
    let r = unsafe {
        libc::connect(
            s.as_raw_fd(),
            (&sin as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    let res = if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    };
    (s, res)
}

/// The pending socket error (`SO_ERROR`), which reading clears.
pub fn so_error(fd: RawFd) -> i32 {
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `err` and `len` are valid, writable, and `len` holds the size of `err`.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    assert_eq!(r, 0, "getsockopt(SO_ERROR): {}", io::Error::last_os_error());
    err
}
