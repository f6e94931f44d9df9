//! Signal handlers of `#[event_machine]` machines, under every backend.
//!
//! Signal dispositions are process-wide, so every test runs in a process of its own: the
//! `#[test]` function re-executes this test binary with `--exact <its name>` and
//! `EVLOOP_DERIVED_SIGNAL_CHILD=<its name>`; in that child the same function runs the
//! real body. The parent checks the child's exit status and shows its output on failure.

// Unix signals (SIGUSR1, SIGWINCH, ...); Windows's console events are tested in evloop-core/tests/console_signals.rs.
#![cfg(unix)]

use std::marker::PhantomData;

use evloop::prelude::*;

#[macro_use]
#[path = "../../evloop-core/tests/support/subprocess.rs"]
mod subprocess;

const CHILD_ENV: &str = "EVLOOP_DERIVED_SIGNAL_CHILD";

/// In the child named `name`, run `body`; anywhere else, run the child and check it.
fn isolated(name: &str, body: fn()) {
    subprocess::isolated(CHILD_ENV, name, body);
}

fn raise(signo: i32) {
    // SAFETY: raise(3) only delivers a signal to this thread; every signal raised here is
    // watched by the loop under test, whose handler bumps an atomic and writes its wake fd.
    assert_eq!(unsafe { libc::raise(signo) }, 0);
}

/// The signal of `rt`: `SIGRTMIN + 1` where the system has real-time signals, else
/// `SIGWINCH` (three raises are still three arrivals: raise(3) runs the handler each time).
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "illumos",
    target_os = "solaris"
))]
fn rt_signal() -> i32 {
    libc::SIGRTMIN() + 1
}

/// The signal of `rt`: `SIGRTMIN + 1` where the system has real-time signals, else
/// `SIGWINCH` (three raises are still three arrivals: raise(3) runs the handler each time).
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "illumos",
    target_os = "solaris"
)))]
fn rt_signal() -> i32 {
    libc::SIGWINCH
}

/// The signal of `rt_high`: `SIGRTMAX - 1`, else `SIGHUP`.
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "illumos",
    target_os = "solaris"
))]
fn rt_high_signal() -> i32 {
    libc::SIGRTMAX() - 1
}

/// The signal of `rt_high`: `SIGRTMAX - 1`, else `SIGHUP`.
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "illumos",
    target_os = "solaris"
)))]
fn rt_high_signal() -> i32 {
    libc::SIGHUP
}

#[event_machine(backend = B)]
struct Signals<B: Backend> {
    order: Vec<&'static str>,
    usr1: u32,
    rt_count: u32,
    rt_high: u32,
    _b: PhantomData<B>,
}

#[event_machine]
impl<B: Backend> Signals<B> {
    #[on_start]
    fn started(&mut self, _ctx: &mut Ctx<Self>) {
        raise(libc::SIGUSR1);
        raise(libc::SIGUSR2);
        for _ in 0..3 {
            raise(rt_signal());
        }
        raise(rt_high_signal());
    }

    #[on_signal(SIGUSR1)]
    fn usr1(&mut self, _ctx: &mut Ctx<Self>, ev: Event) {
        assert!(ev.ready.is_signal());
        self.usr1 += ev.count;
        self.order.push("usr1");
    }

    #[on_signal(SIGUSR2, priority = 0)]
    fn usr2(&mut self, _ctx: &mut Ctx<Self>) {
        self.order.push("usr2");
    }

    #[cfg_attr(any(
        target_os = "linux",
        target_os = "android",
        target_os = "illumos",
        target_os = "solaris"
    ), on_signal(SIGRTMIN + 1))]
    #[cfg_attr(
        not(any(
            target_os = "linux",
            target_os = "android",
            target_os = "illumos",
            target_os = "solaris"
        )),
        on_signal(SIGWINCH)
    )]
    fn rt(&mut self, _ctx: &mut Ctx<Self>, ev: Event) {
        self.rt_count += ev.count;
        self.order.push("rt");
    }

    #[cfg_attr(any(
        target_os = "linux",
        target_os = "android",
        target_os = "illumos",
        target_os = "solaris"
    ), on_signal(SIGRTMAX - 1, priority = 2))]
    #[cfg_attr(
        not(any(
            target_os = "linux",
            target_os = "android",
            target_os = "illumos",
            target_os = "solaris"
        )),
        on_signal(SIGHUP, priority = 2)
    )]
    fn rt_high(&mut self, ctx: &mut Ctx<Self>) {
        self.rt_high += 1;
        self.order.push("rtmax");
        ctx.exit();
    }
}

fn signals<B: Backend>() {
    let m = Signals::<B> {
        order: vec![],
        usr1: 0,
        rt_count: 0,
        rt_high: 0,
        _b: PhantomData,
    }
    .run()
    .unwrap();
    assert_eq!(m.usr1, 1);
    assert_eq!(m.rt_count, 3, "three arrivals, one dispatch with count 3");
    assert_eq!(m.rt_high, 1);
    // Dispatched together, most urgent first: usr2 (0), then usr1 and rt (1), rtmax (2).
    assert_eq!(m.order.first(), Some(&"usr2"), "{:?}", m.order);
    assert_eq!(m.order.last(), Some(&"rtmax"), "{:?}", m.order);
    assert_eq!(m.order.len(), 4, "{:?}", m.order);
}

/// The per-backend bodies, one `#[test]` each (see `isolated_tests!`), under the backend
/// given: `epoll_derived::signals`, `kqueue_derived::signals`, ….
macro_rules! derived_tests {
    ($backend:ty) => {
        isolated_tests! { $backend; signals }
    };
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod epoll_derived {
    derived_tests!(evloop::Epoll);
}

mod poll_derived {
    derived_tests!(evloop::Poll);
}

mod select_derived {
    derived_tests!(evloop::Select);
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
mod kqueue_derived {
    derived_tests!(evloop::Kqueue);
}

#[cfg(any(target_os = "illumos", target_os = "solaris"))]
mod event_ports_derived {
    derived_tests!(evloop::EventPorts);
}

#[cfg(any(target_os = "illumos", target_os = "solaris"))]
mod devpoll_derived {
    derived_tests!(evloop::DevPoll);
}

/// A graceful-shutdown shape: SIGTERM stops the loop from inside a handler.
#[event_machine]
struct Daemon {
    ticks: u32,
    terminated: bool,
}

#[event_machine]
impl Daemon {
    #[on_timer(1)]
    fn tick(&mut self, _ctx: &mut Ctx<Self>) {
        self.ticks += 1;
        if self.ticks == 3 {
            raise(libc::SIGTERM);
        }
    }

    #[on_signal(SIGTERM)]
    fn terminate(&mut self, ctx: &mut Ctx<Self>) {
        self.terminated = true;
        ctx.exit();
    }
}

#[test]
fn sigterm_stops_the_loop() {
    isolated("sigterm_stops_the_loop", || {
        let d = Daemon {
            ticks: 0,
            terminated: false,
        }
        .run()
        .unwrap();
        assert!(d.terminated && d.ticks >= 3);
    });
}
