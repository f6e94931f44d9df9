//! Edge cases of running a loop: embedding sees handler changes, activation cannot
//! starve I/O, a caught panic leaves a usable loop, a stopped signal source does not
//! keep `run` alive.

// Not ported to Windows yet: Unix sockets, pipes, signals, fork or the Unix-only core
// modules (the Windows backend runs the conformance suite: `conformance.rs`).
#![cfg(unix)]

use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use evloop_core::*;

/// After `poll` returns, the kernel already knows about interest changes made by the
/// handlers, so an outer loop waiting on `pollable_fd` is woken by them. For the backends
/// with a pollable fd (the kernel-state ones), one module each below.
fn embedded_poll_applies_handler_interest_changes<B: Backend>() {
    struct M<B> {
        sock: UnixStream,
        id: Option<SourceId>,
        writable_seen: bool,
        _b: std::marker::PhantomData<B>,
    }
    impl<B: Backend> Machine for M<B> {
        type Backend = B;
        fn setup(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
            self.id = Some(ctx.add_io(&self.sock, Token(1), Watch::read())?);
            Ok(())
        }
        fn dispatch(&mut self, ctx: &mut Ctx<Self>, ev: Event) {
            if ev.ready.is_writable() {
                self.writable_seen = true;
            }
            if ev.ready.is_activated() {
                // Ask for writability (the socket is writable right away).
                ctx.set_interest(ev.source, Interest::READ | Interest::WRITE)
                    .unwrap();
            }
        }
    }
    let (a, _b) = UnixStream::pair().unwrap();
    let mut el = EventLoop::new(M::<B> {
        sock: a,
        id: None,
        writable_seen: false,
        _b: std::marker::PhantomData,
    })
    .unwrap();
    let id = el.machine().id.unwrap();
    el.ctx().activate(id, Ready::EMPTY).unwrap();
    assert_eq!(el.poll(Some(Duration::ZERO)).unwrap(), 1);
    // The outer loop: poll(2) on the backend fd must report it readable now.
    let fd = el
        .pollable_fd()
        .unwrap_or_else(|| panic!("{}: a kernel backend has a pollable fd", B::NAME));
    let mut pfd = libc::pollfd {
        fd: std::os::fd::AsRawFd::as_raw_fd(&fd.as_fd()),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut pfd, 1, 5000) };
    assert_eq!(
        n, 1,
        "outer loop not woken by the handler's interest change"
    );
    el.poll(Some(Duration::ZERO)).unwrap();
    assert!(el.machine().writable_seen);
}

/// The per-backend tests of this file, under the backend given: one module per backend
/// with a pollable fd (`epoll_edges::embedded_poll_applies_handler_interest_changes`).
/// poll(2) and select(2) have none; nor has /dev/poll (its fd cannot be polled).
macro_rules! edge_tests {
    ($backend:ty) => {
        #[test]
        fn embedded_poll_applies_handler_interest_changes() {
            super::embedded_poll_applies_handler_interest_changes::<$backend>();
        }
    };
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod epoll_edges {
    edge_tests!(evloop_core::Epoll);
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
mod kqueue_edges {
    edge_tests!(evloop_core::Kqueue);
}

#[cfg(any(target_os = "illumos", target_os = "solaris"))]
mod event_ports_edges {
    edge_tests!(evloop_core::EventPorts);
}

/// A source that re-activates itself runs once per iteration, so I/O still gets
/// through; a more urgent source activated by a handler runs in the same iteration.
#[test]
fn self_activation_yields_to_io_and_urgent_activation_runs_first() {
    struct M {
        spinner: Option<SourceId>,
        urgent: Option<SourceId>,
        order: Vec<&'static str>,
        spins: u32,
        sock: UnixStream,
    }
    const SPIN: Token = Token(1);
    const URGENT: Token = Token(2);
    const SOCK: Token = Token(3);
    impl Machine for M {
        type Backend = DefaultBackend;
        fn setup(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
            self.spinner = Some(ctx.add_user(SPIN)?);
            let u = ctx.add_user(URGENT)?;
            ctx.set_priority(u, 0)?;
            self.urgent = Some(u);
            ctx.add_io(&self.sock, SOCK, Watch::read())?;
            Ok(())
        }
        fn dispatch(&mut self, ctx: &mut Ctx<Self>, ev: Event) {
            match ev.token {
                SPIN => {
                    self.order.push("spin");
                    self.spins += 1;
                    ctx.activate(ev.source, Ready::EMPTY).unwrap();
                    if self.spins == 2 {
                        ctx.activate(self.urgent.unwrap(), Ready::EMPTY).unwrap();
                    }
                }
                URGENT => self.order.push("urgent"),
                SOCK => {
                    self.order.push("io");
                    ctx.exit();
                }
                _ => {}
            }
        }
    }
    let (a, mut b) = UnixStream::pair().unwrap();
    let mut el = EventLoop::new(M {
        spinner: None,
        urgent: None,
        order: vec![],
        spins: 0,
        sock: a,
    })
    .unwrap();
    let spin = el.machine().spinner.unwrap();
    el.ctx().activate(spin, Ready::EMPTY).unwrap();
    // One pass: the spinner runs once (its re-activation waits for the next pass).
    el.run_nowait().unwrap();
    assert_eq!(el.machine().order, ["spin"]);
    // Second pass: spinner again, and the urgent source it activates runs at once.
    el.run_nowait().unwrap();
    assert_eq!(el.machine().order, ["spin", "spin", "urgent"]);
    // With data waiting, I/O is dispatched even though the spinner never stops.
    b.write_all(b"x").unwrap();
    assert_eq!(el.run().unwrap(), Exit::Exited);
    assert!(el.machine().order.contains(&"io"));
}

/// A handler that panics unwinds out of `run`; the caller may catch it and run the
/// loop again.
#[test]
fn loop_is_usable_after_a_caught_panic() {
    struct M {
        calls: u32,
    }
    impl Machine for M {
        type Backend = DefaultBackend;
        fn dispatch(&mut self, ctx: &mut Ctx<Self>, _ev: Event) {
            self.calls += 1;
            if self.calls == 1 {
                panic!("handler failed");
            }
            ctx.exit();
        }
    }
    let mut el = EventLoop::new(M { calls: 0 }).unwrap();
    el.ctx()
        .add_periodic(Token(1), Duration::from_millis(1))
        .unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| el.run()));
    assert!(r.is_err());
    assert_eq!(el.run().unwrap(), Exit::Exited);
    assert_eq!(el.machine().calls, 2);
}

/// A stopped signal source is not active: `run` returns `Empty` instead of waiting.
/// (It installs a signal disposition, which is process-wide: it runs in a child
/// process, this test binary re-executed for this one test.)
#[test]
fn stopped_signal_source_does_not_keep_the_loop_alive() {
    const NAME: &str = "stopped_signal_source_does_not_keep_the_loop_alive";
    if std::env::var("EVLOOP_CHILD").as_deref() != Ok(NAME) {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", NAME, "--test-threads=1"])
            .env("EVLOOP_CHILD", NAME)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("1 passed"),
            "child failed:\n{text}"
        );
        return;
    }
    struct M;
    impl Machine for M {
        type Backend = DefaultBackend;
        fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {}
    }
    let mut el = EventLoop::new(M).unwrap();
    let id = el.ctx().add_signal(libc::SIGWINCH, Token(1)).unwrap();
    el.ctx().stop(id).unwrap();
    assert_eq!(el.run().unwrap(), Exit::Empty);
    el.ctx().remove(id).unwrap();
}
