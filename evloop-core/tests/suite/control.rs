//! Loop control: run until empty, keep running, run once, non-blocking pass, exit, exit
//! after a delay, break, and the embedding step (`poll` and the pollable fd).

use std::io::Write;
#[cfg(unix)]
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use evloop_core::{Backend, Ctx, Event, Exit, Ready, Token, Watch};
#[cfg(unix)]
use evloop_core::{EventLoop, Machine};

use super::util::*;

fn remove_at_eof<B: Backend>(sock: &mut Stream, ctx: &mut Ctx<Harness<B, Stream>>, ev: &Event) {
    if ev.ready.is_io() && drain(&*sock).1 {
        ctx.remove(ev.source).unwrap();
    }
}

/// `run` returns `Exit::Empty` once nothing can fire any more: at once for an empty loop,
/// after the last timer and the last fd (removed at EOF) otherwise.
pub fn run_until_empty<B: Backend>() {
    let mut el = harness::<B, ()>((), nothing);
    assert_eq!(el.run().unwrap(), Exit::Empty);
    // A user source alone (never activated) does not keep the loop running.
    el.ctx().add_user(Token(1)).unwrap();
    assert_eq!(el.run().unwrap(), Exit::Empty);

    let (a, mut b) = stream_pair();
    b.write_all(b"bye").unwrap();
    drop(b);
    let mut el = harness::<B, _>(a, remove_at_eof);
    let (m, ctx) = el.parts();
    ctx.add_io(&m.state, Token(1), Watch::read()).unwrap();
    ctx.add_timer(Token(2), Duration::from_millis(5)).unwrap();
    assert_eq!(el.run().unwrap(), Exit::Empty);
    let mut tokens = el.machine().tokens();
    tokens.dedup();
    assert!(tokens.contains(&1) && tokens.contains(&2), "{tokens:?}");
    assert_eq!(
        el.ctx().source_count(),
        1,
        "the fired timer stays registered"
    );
}

fn exit_on_activation<B: Backend>(_: &mut (), ctx: &mut Ctx<Harness<B, ()>>, ev: &Event) {
    assert!(ev.ready.is_activated(), "{:?}", ev.ready);
    ctx.exit();
}

/// With `set_exit_when_empty(false)`, an empty loop waits (for another thread, or a delayed exit)
/// instead of returning `Empty`.
pub fn stays_when_empty_if_told_to<B: Backend>() {
    let mut el = harness::<B, ()>((), exit_on_activation);
    el.ctx().set_exit_when_empty(false);
    let wall = Duration::from_millis(30);
    let t0 = el.ctx().refresh_now();
    el.ctx().exit_after(wall);
    assert_eq!(el.run().unwrap(), Exit::Exited);
    assert!(t0.elapsed() >= wall, "returned after {:?}", t0.elapsed());

    let u = el.ctx().add_user(Token(1)).unwrap();
    let h = el.ctx().wake_handle();
    let t = std::thread::spawn(move || h.activate(u).unwrap());
    assert_eq!(el.run().unwrap(), Exit::Exited);
    t.join().unwrap();
    assert_eq!(el.machine().tokens(), [1]);

    el.ctx().set_exit_when_empty(true);
    assert_eq!(el.run().unwrap(), Exit::Empty);
}

/// `run_once` blocks until something is dispatched, then dispatches everything ready in
/// that iteration and returns `Done`.
pub fn run_once_blocks_then_dispatches_all_ready<B: Backend>() {
    let pairs: Vec<_> = (0..3).map(|_| stream_pair()).collect();
    let mut el = harness::<B, ()>((), nothing);
    for (i, (a, b)) in pairs.iter().enumerate() {
        el.ctx().add_io(a, Token(i as u64), Watch::read()).unwrap();
        (&*b).write_all(b"x").unwrap();
    }
    let u = el.ctx().add_user(Token(9)).unwrap();
    el.ctx().activate(u, Ready::EMPTY).unwrap();
    assert_eq!(el.run_once().unwrap(), Exit::Done);
    let mut tokens = el.machine().tokens();
    tokens.sort_unstable();
    assert_eq!(tokens, [0, 1, 2, 9]);
    for (a, _) in &pairs {
        drain(a);
    }

    // Nothing ready: it blocks until the timer.
    let d = Duration::from_millis(25);
    let t0 = el.ctx().refresh_now();
    el.ctx().add_timer(Token(10), d).unwrap();
    assert_eq!(el.run_once().unwrap(), Exit::Done);
    assert!(t0.elapsed() >= d, "returned after {:?}", t0.elapsed());
    assert_eq!(el.machine().tokens()[4..], [10]);
}

/// `run_nowait` dispatches what is ready now and never blocks, not even when a timer is
/// armed or nothing at all is registered.
pub fn run_nowait_never_blocks<B: Backend>() {
    let (a, mut b) = stream_pair();
    let mut el = harness::<B, ()>((), nothing);
    let start = Instant::now();
    assert_eq!(el.run_nowait().unwrap(), Exit::Done);
    el.ctx().add_io(&a, Token(1), Watch::read()).unwrap();
    el.ctx()
        .add_timer(Token(2), Duration::from_secs(10))
        .unwrap();
    assert_eq!(el.run_nowait().unwrap(), Exit::Done);
    assert!(el.machine().log.is_empty());
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "blocked: {:?}",
        start.elapsed()
    );

    b.write_all(b"x").unwrap();
    assert_eq!(el.run_nowait().unwrap(), Exit::Done);
    assert_eq!(el.machine().tokens(), [1]);
}

fn first_exits<B: Backend>(_: &mut (), ctx: &mut Ctx<Harness<B, ()>>, ev: &Event) {
    if ev.token == Token(0) {
        ctx.exit();
    }
}

/// `exit` lets every handler of the current iteration run, then `run` returns `Exited`.
pub fn exit_lets_the_iteration_finish<B: Backend>() {
    let mut el = harness::<B, ()>((), first_exits);
    let ids: Vec<_> = (0..3)
        .map(|i| el.ctx().add_user(Token(i)).unwrap())
        .collect();
    for &id in &ids {
        el.ctx().activate(id, Ready::EMPTY).unwrap();
    }
    assert_eq!(el.run().unwrap(), Exit::Exited);
    assert_eq!(el.machine().tokens(), [0, 1, 2]);
}

fn urge<B: Backend>(
    urgent: &mut Option<evloop_core::SourceId>,
    ctx: &mut Ctx<Harness<B, Option<evloop_core::SourceId>>>,
    ev: &Event,
) {
    if ev.token.0 < 3 {
        if let Some(u) = urgent.take() {
            ctx.activate(u, Ready::EMPTY).unwrap();
        }
    }
}

/// `exit_after`: the loop ends no earlier than the delay, after every handler of the
/// iteration in which it expired (three timers due at the same time, and a more urgent
/// source one of them activates); `run` says `Exited`.
pub fn exit_after_lets_the_iteration_finish<B: Backend>() {
    let mut el = harness_with::<B, Option<evloop_core::SourceId>>(
        evloop_core::Builder::new().priorities(3),
        None,
        urge,
    );
    let d = Duration::from_millis(15);
    let t0 = el.ctx().refresh_now();
    el.ctx()
        .add_periodic(Token(5), Duration::from_millis(1))
        .unwrap();
    for i in 0..3 {
        el.ctx().add_timer(Token(i), d).unwrap();
    }
    el.ctx().exit_after(d); // due with the three timers: the same iteration
    let u = el.ctx().add_user(Token(3)).unwrap();
    el.ctx().set_priority(u, 0).unwrap();
    el.machine_mut().state = Some(u);
    assert_eq!(el.run().unwrap(), Exit::Exited);
    assert!(t0.elapsed() >= d);
    let tokens = el.machine().tokens();
    let at = tokens
        .iter()
        .position(|&t| t < 3)
        .expect("the timers fired");
    let mut last: Vec<_> = tokens[at..].iter().copied().filter(|&t| t != 5).collect();
    last.sort_unstable();
    assert_eq!(
        last,
        [0, 1, 2, 3],
        "handlers of the last iteration were cut: {tokens:?}"
    );
    assert!(
        tokens[at..].iter().filter(|&&t| t == 5).count() <= 1,
        "{tokens:?}"
    );
}

fn first_breaks<B: Backend>(_: &mut (), ctx: &mut Ctx<Harness<B, ()>>, ev: &Event) {
    if ev.token == Token(0) {
        ctx.break_loop();
    }
}

/// `break_loop` stops right after the current handler (`Exit::Break`); the events not yet
/// dispatched stay queued and are dispatched by the next run.
pub fn break_stops_after_the_current_handler<B: Backend>() {
    let mut el = harness::<B, ()>((), first_breaks);
    let ids: Vec<_> = (0..3)
        .map(|i| el.ctx().add_user(Token(i)).unwrap())
        .collect();
    for &id in &ids {
        el.ctx().activate(id, Ready::EMPTY).unwrap();
    }
    assert_eq!(el.run().unwrap(), Exit::Break);
    assert_eq!(el.machine().tokens(), [0]);
    let dump = el.ctx().dump().to_string();
    assert_eq!(dump.matches("pending=").count(), 2, "{dump}");

    assert_eq!(el.run().unwrap(), Exit::Empty);
    assert_eq!(el.machine().tokens(), [0, 1, 2]);

    // Same from run_once.
    el.ctx().activate(ids[0], Ready::EMPTY).unwrap();
    el.ctx().activate(ids[1], Ready::EMPTY).unwrap();
    assert_eq!(el.run_once().unwrap(), Exit::Break);
    assert_eq!(el.run_once().unwrap(), Exit::Done);
    assert_eq!(el.machine().tokens()[3..], [0, 1]);
}

fn exit_and_count<B: Backend>(_: &mut (), ctx: &mut Ctx<Harness<B, ()>>, _: &Event) {
    ctx.exit();
}

/// The embedding step: `poll(timeout)` waits at most `timeout`, dispatches what is ready,
/// returns how many sources it dispatched, and clears exit requests.
pub fn poll_step_returns_dispatch_count<B: Backend>() {
    let mut el = harness::<B, ()>((), exit_and_count);
    let ids: Vec<_> = (0..2)
        .map(|i| el.ctx().add_user(Token(i)).unwrap())
        .collect();
    for &id in &ids {
        el.ctx().activate(id, Ready::EMPTY).unwrap();
    }
    assert_eq!(el.poll(Some(Duration::ZERO)).unwrap(), 2);
    assert_eq!(el.poll(Some(Duration::ZERO)).unwrap(), 0);

    let start = Instant::now();
    assert_eq!(el.poll(Some(Duration::from_millis(20))).unwrap(), 0);
    assert!(start.elapsed() >= Duration::from_millis(15), "did not wait");

    // The loop's own timer shortens the wait.
    el.ctx()
        .add_timer(Token(3), Duration::from_millis(2))
        .unwrap();
    let start = Instant::now();
    assert_eq!(el.poll(Some(Duration::from_secs(10))).unwrap(), 1);
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "waited past its own timer"
    );
    assert_eq!(el.machine().tokens(), [0, 1, 3]);

    // An exit requested by a handler during poll does not stick to the next run.
    let u = el.ctx().add_user(Token(4)).unwrap();
    el.ctx().activate(u, Ready::EMPTY).unwrap();
    assert_eq!(el.poll(None).unwrap(), 1);
    assert_eq!(el.run().unwrap(), Exit::Empty);
}

/// An outer loop that embeds an inner one through its pollable fd.
#[cfg(unix)]
struct Outer<B: Backend> {
    inner: EventLoop<Harness<B, ()>>,
    wakeups: usize,
    inner_dispatches: usize,
}

#[cfg(unix)]
impl<B: Backend> Machine for Outer<B> {
    type Backend = B;
    fn dispatch(&mut self, _: &mut Ctx<Self>, ev: Event) {
        assert!(ev.ready.is_readable(), "{:?}", ev.ready);
        self.wakeups += 1;
        self.inner_dispatches += self.inner.poll(Some(Duration::ZERO)).unwrap();
    }
}

#[cfg(unix)]
/// The pollable fd (epoll's) becomes readable when the loop has an event pending, so an
/// outer loop can watch it and step the inner one; backends without one say so.
pub fn pollable_fd_signals_pending_events<B: Backend>() {
    let (a, mut b) = stream_pair();
    let mut inner = harness::<B, ()>((), nothing);
    inner.ctx().add_io(&a, Token(1), Watch::read()).unwrap();
    let Some(fd) = inner.pollable_fd().map(|fd| fd.as_raw_fd()) else {
        assert_ne!(B::NAME, "epoll", "epoll has a pollable fd");
        return;
    };
    let outer = Outer {
        inner,
        wakeups: 0,
        inner_dispatches: 0,
    };
    let mut el = EventLoop::new(outer).unwrap();
    el.ctx().add_io_raw(fd, Token(0), Watch::read()).unwrap();

    assert_eq!(el.run_nowait().unwrap(), Exit::Done);
    assert_eq!(el.machine().wakeups, 0, "readable with nothing pending");

    b.write_all(b"x").unwrap();
    turn_until(&mut el, "the inner loop's event", |el| {
        el.machine().inner_dispatches > 0
    });
    assert_eq!(el.machine().inner_dispatches, 1);
    assert_eq!(el.machine().inner.machine().tokens(), [1]);
    drain(&a);
    assert_eq!(el.run_nowait().unwrap(), Exit::Done);
    let wakeups = el.machine().wakeups;
    assert_eq!(el.run_nowait().unwrap(), Exit::Done);
    assert_eq!(
        el.machine().wakeups,
        wakeups,
        "still readable after the inner loop drained"
    );
}
