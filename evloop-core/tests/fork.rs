//! `fork()` and `EventLoop::reinit_after_fork`, under every backend.
//!
//! Each test runs in a process of its own (the `#[test]` function re-executes this test
//! binary with `--exact <its name>` and `EVLOOP_FORK_CHILD=<its name>`), so the process
//! that forks runs nothing but that test. The forked child runs a small body that reports
//! through its exit status (`libc::_exit`, never unwinding into the test harness it was
//! copied from); the parent waits for it with a deadline and then checks its own loop.

// Not ported to Windows yet: Unix sockets, pipes, signals, fork or the Unix-only core
// modules (the Windows backend runs the conformance suite: `conformance.rs`).
#![cfg(unix)]

use std::io::{Read, Write};
use std::marker::PhantomData;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

use evloop_core::{Backend, Builder, Ctx, Event, EventLoop, Exit, Machine, Ready, Token, Watch};

// ---------------------------------------------------------------------------------------
// One process per test
// ---------------------------------------------------------------------------------------

#[macro_use]
#[path = "support/subprocess.rs"]
mod subprocess;

const CHILD_ENV: &str = "EVLOOP_FORK_CHILD";
/// How long the forked child may take.
const FORK_DEADLINE: Duration = Duration::from_secs(10);

fn isolated(name: &str, body: fn()) {
    subprocess::isolated(CHILD_ENV, name, body);
}

/// Every body, as one `#[test]` each (see `isolated_tests!`), under the backend given.
macro_rules! fork_tests {
    ($backend:ty) => {
        isolated_tests! { $backend;
            fork_child_sockets_deliver,
            fork_child_timers_fire,
            fork_parent_wake_not_taken_by_child,
            fork_child_wake_does_not_reach_parent,
            fork_child_signals_delivered,
            fork_child_forks_again,
        }
    };
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod epoll_fork {
    fork_tests!(evloop_core::Epoll);
}

mod poll_fork {
    fork_tests!(evloop_core::Poll);
}

mod select_fork {
    fork_tests!(evloop_core::Select);
}

#[cfg(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "tvos",
    target_os = "watchos",
    target_os = "visionos",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
))]
mod kqueue_fork {
    fork_tests!(evloop_core::Kqueue);
}

#[cfg(any(target_os = "illumos", target_os = "solaris"))]
mod event_ports_fork {
    fork_tests!(evloop_core::EventPorts);
}

#[cfg(any(target_os = "illumos", target_os = "solaris"))]
mod devpoll_fork {
    fork_tests!(evloop_core::DevPoll);
}

// ---------------------------------------------------------------------------------------
// fork helpers
// ---------------------------------------------------------------------------------------

/// A forked child: its pid, and the read end of a pipe whose only writer is the child
/// (EOF = the child is gone).
struct Forked {
    pid: libc::pid_t,
    gone: OwnedFd,
}

/// Fork; in the child run `body` and `_exit` with 0 if it returned, 101 if it panicked.
/// The child never returns from here.
fn fork_child(body: impl FnOnce()) -> Forked {
    let (gone_r, gone_w) = pipe();
    // SAFETY: the process that forks runs only this test (see `isolated`); the child
    // only runs `body` and then `_exit`s, never returning into the harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        drop(gone_r);
        let r = panic::catch_unwind(AssertUnwindSafe(body));
        let code = if r.is_ok() { 0 } else { 101 };
        // SAFETY: `_exit` ends the child at once, without running the harness's (the
        // parent's) atexit handlers or destructors.
        unsafe { libc::_exit(code) };
    }
    drop(gone_w);
    Forked { pid, gone: gone_r }
}

impl Forked {
    /// Wait (with a deadline) for the child to exit; returns its exit code.
    fn wait(self) -> i32 {
        let mut buf = [0u8; 1];
        let r = read_timeout(self.gone.as_raw_fd(), &mut buf, FORK_DEADLINE);
        if r != Some(0) {
            // SAFETY: `pid` is our child, not reaped yet.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
        }
        let mut status = 0;
        // SAFETY: waits for our own child; `status` is valid, writable storage.
        let rc = unsafe { libc::waitpid(self.pid, &mut status, 0) };
        assert_eq!(rc, self.pid, "waitpid: {}", std::io::Error::last_os_error());
        assert_eq!(
            r,
            Some(0),
            "the forked child did not exit within {FORK_DEADLINE:?}"
        );
        assert!(
            libc::WIFEXITED(status),
            "the forked child was killed by signal {}",
            libc::WTERMSIG(status)
        );
        libc::WEXITSTATUS(status)
    }

    fn assert_success(self, what: &str) {
        let code = self.wait();
        assert_eq!(
            code, 0,
            "the forked child failed: {what} (exit code {code})"
        );
    }
}

/// A close-on-exec pipe: (read end, write end). `std::io::pipe` uses `pipe2(O_CLOEXEC)`
/// where the system has it and `pipe` + `fcntl` elsewhere (macOS).
fn pipe() -> (OwnedFd, OwnedFd) {
    let (r, w) = std::io::pipe().expect("pipe");
    (OwnedFd::from(r), OwnedFd::from(w))
}

/// Read into `buf` once `fd` is readable; `None` if it is not within `timeout`.
fn read_timeout(fd: RawFd, buf: &mut [u8], timeout: Duration) -> Option<usize> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut p, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        if n <= 0 {
            return None;
        }
        // SAFETY: `buf` is valid, writable memory of its length.
        let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if r < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        return usize::try_from(r).ok();
    }
}

fn send(fd: &OwnedFd, byte: u8) {
    // SAFETY: writes one byte from a valid buffer.
    let n = unsafe { libc::write(fd.as_raw_fd(), (&byte as *const u8).cast(), 1) };
    assert_eq!(n, 1, "write: {}", std::io::Error::last_os_error());
}

fn expect(fd: &OwnedFd, byte: u8, what: &str) {
    let mut buf = [0u8; 1];
    let r = read_timeout(fd.as_raw_fd(), &mut buf, FORK_DEADLINE);
    assert_eq!(r, Some(1), "waiting for {what}");
    assert_eq!(buf[0], byte, "waiting for {what}");
}

fn raise(signo: i32) {
    // SAFETY: raise(3) on a signal the loop under test catches.
    let rc = unsafe { libc::raise(signo) };
    assert_eq!(rc, 0);
}

// ---------------------------------------------------------------------------------------
// A machine that records every dispatch and drains its sockets
// ---------------------------------------------------------------------------------------

const GUARD: Token = Token(1 << 40);
const GUARD_AFTER: Duration = Duration::from_secs(5);
const SOCK: u64 = 1 << 20;

#[derive(Clone, Copy, Debug)]
struct Seen {
    token: Token,
    ready: Ready,
    count: u32,
    at: Instant,
    /// For a socket: the last byte read.
    byte: Option<u8>,
}

type Done = Box<dyn FnMut(&[Seen]) -> bool>;

struct Rec<B> {
    seen: Vec<Seen>,
    done: Done,
    /// Sockets whose token is `Token(SOCK + index)`; drained when readable.
    socks: Vec<UnixStream>,
    _b: PhantomData<fn() -> B>,
}

impl<B: Backend> Machine for Rec<B> {
    type Backend = B;
    fn dispatch(&mut self, ctx: &mut Ctx<Self>, ev: Event) {
        let mut byte = None;
        if ev.token.0 >= SOCK && ev.ready.is_readable() {
            if let Some(s) = self.socks.get_mut((ev.token.0 - SOCK) as usize) {
                let mut buf = [0u8; 64];
                if let Ok(n) = s.read(&mut buf) {
                    byte = buf[..n].last().copied();
                }
            }
        }
        self.seen.push(Seen {
            token: ev.token,
            ready: ev.ready,
            count: ev.count,
            at: Instant::now(),
            byte,
        });
        if ev.token == GUARD || (self.done)(&self.seen) {
            ctx.exit();
        }
    }
}

fn build<B: Backend>(socks: Vec<UnixStream>) -> EventLoop<Rec<B>> {
    for s in &socks {
        s.set_nonblocking(true).expect("nonblocking");
    }
    Builder::new()
        .build(Rec {
            seen: Vec::new(),
            done: Box::new(|_| false),
            socks,
            _b: PhantomData,
        })
        .expect("build the loop")
}

fn run_until<B: Backend>(
    el: &mut EventLoop<Rec<B>>,
    what: &str,
    done: impl FnMut(&[Seen]) -> bool + 'static,
) -> Vec<Seen> {
    el.machine_mut().done = Box::new(done);
    el.machine_mut().seen.clear();
    let guard = el.ctx().add_timer(GUARD, GUARD_AFTER).expect("guard timer");
    let exit = el.run().expect("run");
    el.ctx().remove(guard).expect("remove the guard timer");
    let seen = std::mem::take(&mut el.machine_mut().seen);
    assert!(
        !seen.iter().any(|s| s.token == GUARD),
        "{} backend: timed out waiting for {what}; dispatched: {seen:#?}",
        B::NAME
    );
    assert_eq!(exit, Exit::Exited);
    seen
}

fn has(seen: &[Seen], t: Token) -> bool {
    seen.iter().any(|s| s.token == t)
}

fn got_byte(seen: &[Seen], t: Token, b: u8) -> bool {
    seen.iter().any(|s| s.token == t && s.byte == Some(b))
}

fn sock(i: usize) -> Token {
    Token(SOCK + i as u64)
}

// ---------------------------------------------------------------------------------------
// The bodies
// ---------------------------------------------------------------------------------------

fn fork_child_sockets_deliver<B: Backend>() {
    let (a0, mut b0) = UnixStream::pair().expect("socketpair");
    let (a1, mut b1) = UnixStream::pair().expect("socketpair");
    let (a2, mut b2) = UnixStream::pair().expect("socketpair");
    let mut el = build::<B>(vec![a0, a1, a2]);
    let (r0, r1, w1) = {
        let (m, ctx) = el.parts();
        (
            ctx.add_io(&m.socks[0], sock(0), Watch::read())
                .expect("register"),
            ctx.add_io(&m.socks[1], sock(1), Watch::read())
                .expect("register"),
            ctx.add_io(&m.socks[1], Token(99), Watch::write())
                .expect("a second source on one fd"),
        )
    };
    // The loop works before the fork.
    b0.write_all(b"p").unwrap();
    run_until(&mut el, "socket 0 before the fork", |s| {
        got_byte(s, sock(0), b'p')
    });

    let child = fork_child(|| {
        el.reinit_after_fork().expect("reinit_after_fork");
        // Sockets registered before the fork still deliver.
        b0.write_all(b"c").unwrap();
        b1.write_all(b"d").unwrap();
        run_until(&mut el, "both sockets in the child", |s| {
            got_byte(s, sock(0), b'c') && got_byte(s, sock(1), b'd') && has(s, Token(99))
        });
        // Change the registrations in the child: were the kernel objects still shared with
        // the parent (an epoll set is inherited across fork), this would change the
        // parent's: removing fds from its set, adding one to it.
        el.ctx().remove(r0).expect("deregister in the child");
        el.ctx()
            .set_interest(w1, evloop_core::Interest::NONE)
            .expect("set_interest");
        el.ctx().remove(r1).expect("deregister in the child");
        el.ctx().remove(w1).expect("deregister in the child");
        let (m, ctx) = el.parts();
        ctx.add_io(&m.socks[2], sock(2), Watch::read())
            .expect("register in the child");
        b2.write_all(b"e").unwrap();
        run_until(&mut el, "socket 2 in the child", |s| {
            got_byte(s, sock(2), b'e')
        });
        // The sockets registered before are gone from the child's loop.
        b0.write_all(b"x").unwrap();
        let t = el
            .ctx()
            .add_timer(Token(7), Duration::from_millis(30))
            .expect("timer");
        let seen = run_until(&mut el, "the timer", |s| has(s, Token(7)));
        assert!(
            !has(&seen, sock(0)),
            "a removed source fired in the child: {seen:#?}"
        );
        el.ctx().remove(t).expect("deregister");
        // Take the byte meant for nobody, so the parent does not see it.
        let mut buf = [0u8; 8];
        let _ = el.machine_mut().socks[0].read(&mut buf);
    });
    child.assert_success("sockets in the child");

    // The parent's registrations are untouched by what the child did.
    b0.write_all(b"q").unwrap();
    b1.write_all(b"r").unwrap();
    let seen = run_until(&mut el, "both sockets in the parent", |s| {
        got_byte(s, sock(0), b'q') && got_byte(s, sock(1), b'r') && has(s, Token(99))
    });
    assert!(
        !has(&seen, sock(2)),
        "the child's registration leaked into the parent: {seen:#?}"
    );
    // And with nothing written, nothing is readable in the parent.
    let t = el
        .ctx()
        .add_timer(Token(7), Duration::from_millis(30))
        .expect("timer");
    let seen = run_until(&mut el, "the timer", |s| has(s, Token(7)));
    el.ctx().remove(t).expect("deregister");
    assert!(!has(&seen, sock(0)) && !has(&seen, sock(2)), "{seen:#?}");
}

fn fork_child_timers_fire<B: Backend>() {
    const ONCE: Token = Token(1);
    const TICK: Token = Token(2);
    const AFTER: Token = Token(3);
    const DELAY: Duration = Duration::from_millis(60);
    let t0 = Instant::now();
    let mut el = build::<B>(vec![]);
    el.ctx().refresh_now();
    el.ctx().add_timer(ONCE, DELAY).expect("timer");
    el.ctx()
        .add_periodic(TICK, Duration::from_millis(5))
        .expect("periodic");
    fn check(seen: &[Seen], t0: Instant) {
        let once = seen
            .iter()
            .find(|s| s.token == ONCE)
            .expect("the one-shot timer");
        assert!(
            once.at - t0 >= DELAY,
            "the one-shot timer fired early: {:?}",
            once.at - t0
        );
        assert_eq!(once.ready, Ready::TIMEOUT);
        assert!(seen.iter().filter(|s| s.token == TICK).count() >= 3);
    }
    let child = fork_child(|| {
        el.reinit_after_fork().expect("reinit_after_fork");
        el.ctx()
            .add_timer(AFTER, Duration::from_millis(10))
            .expect("timer after fork");
        let seen = run_until(&mut el, "the timers in the child", |s| {
            has(s, ONCE) && has(s, AFTER) && s.iter().filter(|s| s.token == TICK).count() >= 3
        });
        check(&seen, t0);
    });
    child.assert_success("timers in the child");
    let seen = run_until(&mut el, "the timers in the parent", |s| {
        has(s, ONCE) && s.iter().filter(|s| s.token == TICK).count() >= 3
    });
    check(&seen, t0);
    assert!(!has(&seen, AFTER), "the child's timer fired in the parent");
}

fn fork_parent_wake_not_taken_by_child<B: Backend>() {
    // The parent wakes its loop while the child's loop waits: if the child still watched
    // the parent's wake fd (an eventfd shared across fork), it would drain it and the
    // parent's wake would be lost.
    const WAKE: Token = Token(1);
    let mut el = build::<B>(vec![]);
    el.ctx().add_wake(WAKE).expect("add_wake");
    let parent_handle = el.ctx().wake_handle();
    let (to_child_r, to_child_w) = pipe();
    let (to_parent_r, to_parent_w) = pipe();
    let child = fork_child(|| {
        el.reinit_after_fork().expect("reinit_after_fork");
        send(&to_parent_w, b'R');
        expect(&to_child_r, b'W', "the parent's wake");
        // Wait a while: the parent's wake must not reach this loop.
        let n = el.poll(Some(Duration::from_millis(50))).expect("poll");
        assert_eq!(n, 0, "the parent's wake was dispatched in the child");
        assert!(el.machine().seen.is_empty());
        // The child's own wakes work.
        let h = el.ctx().wake_handle();
        h.wake().expect("wake");
        let seen = run_until(&mut el, "the child's wake", |s| has(s, WAKE));
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].ready, Ready::WAKE);
    });
    expect(&to_parent_r, b'R', "the child's reinit");
    parent_handle.wake().expect("wake");
    send(&to_child_w, b'W');
    child.assert_success("wakes in the child");
    let seen = run_until(&mut el, "the parent's wake", |s| has(s, WAKE));
    assert_eq!(seen.len(), 1, "{seen:#?}");
}

fn fork_child_wake_does_not_reach_parent<B: Backend>() {
    // The child wakes its loop, activates a source through its handle, and catches a
    // signal: none of it may make the parent's loop readable.
    const WAKE: Token = Token(1);
    const USER: Token = Token(2);
    let mut el = build::<B>(vec![]);
    el.ctx().add_wake(WAKE).expect("add_wake");
    let user = el.ctx().add_user(USER).expect("add_user");
    el.ctx()
        .add_signal(libc::SIGUSR1, Token(3))
        .expect("add_signal");
    // A handle taken before the fork keeps the old wake fd alive in the child too.
    let _before_fork = el.ctx().wake_handle();
    let child = fork_child(|| {
        el.reinit_after_fork().expect("reinit_after_fork");
        let h = el.ctx().wake_handle();
        h.wake().expect("wake");
        h.activate(user).expect("activate");
        raise(libc::SIGUSR1);
        let seen = run_until(&mut el, "wake, activation and signal in the child", |s| {
            has(s, WAKE) && has(s, USER) && has(s, Token(3))
        });
        assert_eq!(seen.len(), 3, "{seen:#?}");
        // Once more, left pending when the child exits: were the child's wake fd the
        // parent's, the parent's loop would now be readable.
        h.wake().expect("wake");
        h.activate(user).expect("activate");
        raise(libc::SIGUSR1);
    });
    child.assert_success("wakes in the child");
    // Nothing is pending in the parent: a wait runs its full length.
    let t = Instant::now();
    let n = el.poll(Some(Duration::from_millis(100))).expect("poll");
    let waited = t.elapsed();
    assert_eq!(n, 0);
    assert!(
        waited >= Duration::from_millis(100),
        "the parent's loop was woken after {waited:?}: the child's wake reached it"
    );
    // And the parent's own wake still works.
    el.ctx().wake_handle().wake().expect("wake");
    let seen = run_until(&mut el, "the parent's wake", |s| has(s, WAKE));
    assert_eq!(seen.len(), 1);
}

fn fork_child_signals_delivered<B: Backend>() {
    const SIG: Token = Token(1);
    let mut el = build::<B>(vec![]);
    el.ctx().add_signal(libc::SIGUSR1, SIG).expect("add_signal");
    let child = fork_child(|| {
        el.reinit_after_fork().expect("reinit_after_fork");
        for _ in 0..3 {
            raise(libc::SIGUSR1);
        }
        let seen = run_until(&mut el, "SIGUSR1 in the child", |s| has(s, SIG));
        assert_eq!(seen.len(), 1, "{seen:#?}");
        assert_eq!(seen[0].count, 3);
        // A signal added after the fork works too.
        el.ctx()
            .add_signal(libc::SIGUSR2, Token(2))
            .expect("add_signal in the child");
        raise(libc::SIGUSR2);
        raise(libc::SIGUSR1);
        run_until(&mut el, "both signals in the child", |s| {
            has(s, SIG) && has(s, Token(2))
        });
    });
    child.assert_success("signals in the child");
    raise(libc::SIGUSR1);
    let seen = run_until(&mut el, "SIGUSR1 in the parent", |s| has(s, SIG));
    assert_eq!(seen[0].count, 1, "{seen:#?}");
}

fn fork_child_forks_again<B: Backend>() {
    // reinit_after_fork in a grandchild whose loop was itself reinitialised.
    let (a, mut b) = UnixStream::pair().expect("socketpair");
    let mut el = build::<B>(vec![a]);
    {
        let (m, ctx) = el.parts();
        ctx.add_io(&m.socks[0], sock(0), Watch::read())
            .expect("register");
    }
    el.ctx().add_wake(Token(1)).expect("add_wake");
    let child = fork_child(|| {
        el.reinit_after_fork().expect("reinit_after_fork");
        let grandchild = fork_child(|| {
            el.reinit_after_fork().expect("reinit_after_fork again");
            b.write_all(b"g").unwrap();
            el.ctx().wake_handle().wake().expect("wake");
            run_until(&mut el, "socket and wake in the grandchild", |s| {
                got_byte(s, sock(0), b'g') && has(s, Token(1))
            });
        });
        grandchild.assert_success("the grandchild");
        b.write_all(b"c").unwrap();
        el.ctx().wake_handle().wake().expect("wake");
        run_until(&mut el, "socket and wake in the child", |s| {
            got_byte(s, sock(0), b'c') && has(s, Token(1))
        });
    });
    child.assert_success("the child");
    b.write_all(b"p").unwrap();
    let seen = run_until(&mut el, "the socket in the parent", |s| {
        got_byte(s, sock(0), b'p')
    });
    assert!(
        !has(&seen, Token(1)),
        "a wake from a child reached the parent: {seen:#?}"
    );
}
