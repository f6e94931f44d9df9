//! Handlers that change the loop while it dispatches: removing or stopping a source that
//! is already ready in this iteration, removing and re-adding themselves or another
//! source, and del -> add -> del in one pass.

use std::io::Write;
use std::time::Duration;

use evloop_core::{Backend, Builder, Ctx, Error, Event, Exit, SourceId, Token, Watch};

use super::util::*;

const A: Token = Token(0);

#[derive(Default)]
struct Victim {
    victim: Option<SourceId>,
    stop_only: bool,
}

fn remove_victim<B: Backend>(s: &mut Victim, ctx: &mut Ctx<Harness<B, Victim>>, ev: &Event) {
    if ev.token == A {
        if let Some(v) = s.victim.take() {
            if s.stop_only {
                ctx.stop(v).unwrap();
            } else {
                ctx.remove(v).unwrap();
            }
        }
    }
}

fn check_victim<B: Backend>(stop_only: bool) {
    let ((a, mut pa), (b, mut pb)) = (stream_pair(), stream_pair());
    let state = Victim {
        victim: None,
        stop_only,
    };
    let mut el = harness_with::<B, Victim>(Builder::new().priorities(3), state, remove_victim);
    el.ctx().add_io(&a, A, Watch::read().priority(0)).unwrap();
    let vb = el
        .ctx()
        .add_io(&b, Token(1), Watch::read().priority(1))
        .unwrap();
    el.machine_mut().state.victim = Some(vb);
    pa.write_all(b"a").unwrap();
    pb.write_all(b"b").unwrap();

    assert_eq!(el.run_once().unwrap(), Exit::Done);
    assert_eq!(
        el.machine().tokens(),
        [0],
        "a source removed by an earlier handler of the same iteration was dispatched"
    );
    assert_eq!(el.run_nowait().unwrap(), Exit::Done);
    assert_eq!(el.machine().tokens(), [0, 0], "still readable: A only");
    if stop_only {
        assert!(!el.ctx().is_active(vb));
        el.ctx().start(vb).unwrap();
        assert_eq!(el.run_nowait().unwrap(), Exit::Done);
        assert_eq!(el.machine().tokens()[2..], [0, 1], "restarted: fires again");
    } else {
        assert!(matches!(el.ctx().start(vb), Err(Error::StaleSource)));
    }
}

/// A handler deregisters a source that is already ready in this iteration: that source
/// is not dispatched, now or later.
pub fn removed_ready_source_is_not_dispatched<B: Backend>() {
    check_victim::<B>(false);
}

/// Same with `stop` (libevent's `event_del`, libev's `ev_io_stop`): a stopped source's
/// pending dispatch is cancelled too; `start` brings it back.
pub fn stopped_ready_source_is_not_dispatched<B: Backend>() {
    check_victim::<B>(true);
}

struct Pair {
    ids: Vec<SourceId>,
    stop_only: bool,
}

fn remove_the_other<B: Backend>(s: &mut Pair, ctx: &mut Ctx<Harness<B, Pair>>, ev: &Event) {
    let other = s.ids[1 - ev.token.0 as usize];
    if s.stop_only {
        ctx.stop(other).unwrap();
    } else {
        ctx.remove(other).unwrap();
    }
}

fn check_first_of_two<B: Backend>(stop_only: bool) {
    let ((a, mut pa), (b, mut pb)) = (stream_pair(), stream_pair());
    let state = Pair {
        ids: Vec::new(),
        stop_only,
    };
    let mut el = harness::<B, Pair>(state, remove_the_other);
    let ia = el.ctx().add_io(&a, Token(0), Watch::read()).unwrap();
    let ib = el.ctx().add_io(&b, Token(1), Watch::read()).unwrap();
    el.machine_mut().state.ids = vec![ia, ib];
    pa.write_all(b"a").unwrap();
    pb.write_all(b"b").unwrap();
    assert_eq!(el.run_once().unwrap(), Exit::Done);
    assert_eq!(el.machine().log.len(), 1, "{:?}", el.machine().log);
    let live = if stop_only { 2 } else { 1 };
    assert_eq!(el.ctx().source_count(), live);
}

/// Two sources of one priority (dispatched straight from the kernel's event buffer), both
/// ready: whichever runs first removes the other, which then never runs.
pub fn first_of_two_removes_the_other<B: Backend>() {
    check_first_of_two::<B>(false);
}

/// Same with `stop`.
pub fn first_of_two_stops_the_other<B: Backend>() {
    check_first_of_two::<B>(true);
}

struct Reregister {
    sock: Stream,
    other: Option<Stream>,
    old: Option<SourceId>,
    new: Option<SourceId>,
}

fn reregister_self<B: Backend>(
    s: &mut Reregister,
    ctx: &mut Ctx<Harness<B, Reregister>>,
    ev: &Event,
) {
    if ev.token == Token(1) {
        ctx.remove(ev.source).unwrap();
        s.old = Some(ev.source);
        s.new = Some(ctx.add_io(&s.sock, Token(2), Watch::read()).unwrap());
    }
}

/// A handler removes its own source and registers the same fd again: the old id is
/// stale, the new registration is dispatched from the next iteration on.
pub fn handler_removes_and_readds_itself<B: Backend>() {
    let (a, mut peer) = stream_pair();
    let state = Reregister {
        sock: a,
        other: None,
        old: None,
        new: None,
    };
    let mut el = harness::<B, Reregister>(state, reregister_self);
    let (m, ctx) = el.parts();
    ctx.add_io(&m.state.sock, Token(1), Watch::read()).unwrap();
    peer.write_all(b"x").unwrap();

    assert_eq!(el.run_once().unwrap(), Exit::Done);
    assert_eq!(el.machine().tokens(), [1]);
    let (old, new) = (
        el.machine().state.old.unwrap(),
        el.machine().state.new.unwrap(),
    );
    assert!(matches!(el.ctx().stop(old), Err(Error::StaleSource)));
    assert!(el.ctx().is_active(new));
    assert_eq!(el.run_once().unwrap(), Exit::Done);
    assert_eq!(el.machine().tokens(), [1, 2]);
    assert_eq!(el.machine().log[1].source, new);
    assert_eq!(el.ctx().source_count(), 1);
}

fn reregister_other<B: Backend>(
    s: &mut Reregister,
    ctx: &mut Ctx<Harness<B, Reregister>>,
    ev: &Event,
) {
    if ev.token == A {
        drain(&s.sock);
        if let Some(old) = s.old.take() {
            ctx.remove(old).unwrap();
            let other = s.other.as_ref().unwrap();
            s.new = Some(
                ctx.add_io(other, Token(2), Watch::read().priority(1))
                    .unwrap(),
            );
        }
    }
}

/// A handler removes another source that is ready in this iteration and registers its fd
/// again: the old registration is not dispatched, the new one is, from the next iteration.
pub fn handler_removes_and_readds_another<B: Backend>() {
    let ((a, mut pa), (b, mut pb)) = (stream_pair(), stream_pair());
    let state = Reregister {
        sock: a,
        other: Some(b),
        old: None,
        new: None,
    };
    let mut el =
        harness_with::<B, Reregister>(Builder::new().priorities(3), state, reregister_other);
    let (m, ctx) = el.parts();
    ctx.add_io(&m.state.sock, A, Watch::read().priority(0))
        .unwrap();
    let old = ctx
        .add_io(
            m.state.other.as_ref().unwrap(),
            Token(1),
            Watch::read().priority(1),
        )
        .unwrap();
    m.state.old = Some(old);
    pa.write_all(b"a").unwrap();
    pb.write_all(b"b").unwrap();

    assert_eq!(el.run_once().unwrap(), Exit::Done);
    assert_eq!(
        el.machine().tokens(),
        [0],
        "the removed registration was dispatched"
    );
    assert_eq!(el.run_once().unwrap(), Exit::Done);
    assert_eq!(el.machine().tokens(), [0, 2]);
    assert_eq!(Some(el.machine().log[1].source), el.machine().state.new);
}

struct Churn {
    sock: Stream,
    registered: Option<SourceId>,
}

fn del_add_del<B: Backend>(s: &mut Churn, ctx: &mut Ctx<Harness<B, Churn>>, ev: &Event) {
    if ev.token != A {
        return;
    }
    match s.registered {
        // Fresh registrations, removed again in the same pass.
        None => {
            let x = ctx.add_io(&s.sock, Token(1), Watch::read()).unwrap();
            ctx.remove(x).unwrap();
            let y = ctx.add_io(&s.sock, Token(1), Watch::read()).unwrap();
            ctx.remove(y).unwrap();
        }
        // An existing registration stopped, started and stopped again in one pass.
        Some(id) => {
            ctx.stop(id).unwrap();
            ctx.start(id).unwrap();
            ctx.stop(id).unwrap();
        }
    }
}

/// After the churn nothing fires and the loop burns no CPU waiting: the fd is readable
/// and hung up, the worst case for a registration left behind with an empty mask.
fn check_quiet_after_churn<B: Backend>(el: &mut evloop_core::EventLoop<Harness<B, Churn>>) {
    assert_eq!(
        el.run().unwrap(),
        Exit::Empty,
        "nothing should be left watching"
    );
    assert_eq!(el.machine().tokens(), [0]);
    let wall = Duration::from_millis(80);
    el.ctx().set_exit_when_empty(false);
    el.ctx().refresh_now();
    el.ctx().exit_after(wall);
    let cpu = thread_cpu_time();
    assert_eq!(el.run().unwrap(), Exit::Exited);
    let cpu = thread_cpu_time() - cpu;
    assert_eq!(
        el.machine().tokens(),
        [0],
        "something fired after del -> add -> del"
    );
    assert!(
        cpu < idle_cpu_budget(wall),
        "the loop spun: {cpu:?} in {wall:?}"
    );
}

/// register -> deregister -> register -> deregister of a ready fd inside one handler:
/// nothing fires afterwards and waiting costs no CPU.
pub fn del_add_del_in_one_pass_fires_nothing<B: Backend>() {
    let (a, mut peer) = stream_pair();
    peer.write_all(b"pending").unwrap();
    drop(peer);
    let state = Churn {
        sock: a,
        registered: None,
    };
    let mut el = harness::<B, Churn>(state, del_add_del);
    let t = el.ctx().add_timer(A, Duration::from_millis(1)).unwrap();
    el.ctx().set_priority(t, 0).unwrap();
    check_quiet_after_churn(&mut el);
}

/// stop -> start -> stop of a registered, ready source in one handler (the change list
/// coalesces it): the pending dispatch is cancelled, nothing fires afterwards, and
/// waiting costs no CPU.
pub fn stop_start_stop_in_one_pass_fires_nothing<B: Backend>() {
    let (a, mut peer) = stream_pair();
    peer.write_all(b"pending").unwrap();
    drop(peer);
    let state = Churn {
        sock: a,
        registered: None,
    };
    let mut el = harness_with::<B, Churn>(Builder::new().priorities(3), state, del_add_del);
    let (m, ctx) = el.parts();
    let id = ctx
        .add_io(&m.state.sock, Token(1), Watch::read().priority(2))
        .unwrap();
    m.state.registered = Some(id);
    let u = ctx.add_user(A).unwrap();
    ctx.set_priority(u, 0).unwrap();
    ctx.activate(u, evloop_core::Ready::EMPTY).unwrap();
    check_quiet_after_churn(&mut el);
    assert!(!el.ctx().is_active(id));
    assert_eq!(el.ctx().source_count(), 2);
}
