//! Manual activation (from a handler, from another thread) and cross-thread wakes.

use std::io::Write;
use std::time::Duration;

use evloop_core::{Backend, Ctx, Event, Exit, Ready, SourceId, Token, Watch};

use super::util::*;

fn activate_next<B: Backend>(
    next: &mut Option<SourceId>,
    ctx: &mut Ctx<Harness<B, Option<SourceId>>>,
    _: &Event,
) {
    if let Some(id) = next.take() {
        ctx.activate(id, Ready::READABLE).unwrap();
    }
}

/// A handler activates another source of its own priority: it is dispatched in the next
/// iteration (a source activating itself or a peer cannot starve I/O and timers), with
/// the readiness given plus `ACTIVATED`. Activation and real readiness of one source
/// merge into one dispatch. (A more urgent activation runs in the same iteration: see
/// `later_activation_with_higher_priority_runs_first`.)
pub fn activation_from_a_handler<B: Backend>() {
    let (a, _pa) = stream_pair();
    let mut el = harness::<B, Option<SourceId>>(None, activate_next);
    let idle = el.ctx().add_io(&a, Token(2), Watch::read()).unwrap();
    let u = el.ctx().add_user(Token(1)).unwrap();
    el.machine_mut().state = Some(idle);
    el.ctx().activate(u, Ready::EMPTY).unwrap();
    assert_eq!(el.run_once().unwrap(), Exit::Done);
    assert_eq!(el.machine().tokens(), [1]);
    assert!(el
        .ctx()
        .dump()
        .to_string()
        .contains("pending=READABLE | ACTIVATED"));
    assert_eq!(
        el.run_once().unwrap(),
        Exit::Done,
        "the activation was lost"
    );
    let log = &el.machine().log;
    assert_eq!(el.machine().tokens(), [1, 2]);
    assert_eq!(log[0].ready, Ready::ACTIVATED);
    assert_eq!(log[1].ready, Ready::READABLE | Ready::ACTIVATED);

    // Readable for real and activated by hand before the same iteration: one dispatch.
    let (b, mut pb) = stream_pair();
    let id = el.ctx().add_io(&b, Token(3), Watch::read()).unwrap();
    pb.write_all(b"x").unwrap();
    el.ctx().activate(id, Ready::EMPTY).unwrap();
    assert_eq!(el.run_once().unwrap(), Exit::Done);
    assert_eq!(el.machine().tokens()[2..], [3]);
    let ev = el.machine().log[2];
    assert_eq!(ev.ready, Ready::READABLE | Ready::ACTIVATED);
}

fn exit_when_activated<B: Backend>(_: &mut (), ctx: &mut Ctx<Harness<B, ()>>, ev: &Event) {
    if ev.ready.is_activated() {
        ctx.exit();
    }
}

/// Another thread activates a source through a `WakeHandle`: the blocked loop wakes and
/// dispatches it with `ACTIVATED`. An activation naming a removed source is dropped, even
/// when a new source took its slot.
pub fn activation_from_another_thread<B: Backend>() {
    let mut el = harness::<B, ()>((), exit_when_activated);
    el.ctx().set_exit_when_empty(false);
    el.ctx().refresh_now();
    el.ctx().exit_after(super::util::LONG); // a safety net only
    let u = el.ctx().add_user(Token(1)).unwrap();
    let h = el.ctx().wake_handle();
    let t = std::thread::spawn(move || h.activate(u).unwrap());
    assert_eq!(el.run().unwrap(), Exit::Exited);
    t.join().unwrap();
    assert_eq!(el.machine().tokens(), [1]);
    assert!(el.machine().log[0].ready.is_activated());

    // A stale id: its slot now belongs to another source, which must not hear of it.
    el.ctx().remove(u).unwrap();
    let u2 = el.ctx().add_user(Token(2)).unwrap();
    assert_eq!(u2.index(), u.index(), "the slot was reused");
    let h = el.ctx().wake_handle();
    std::thread::spawn(move || h.activate(u).unwrap())
        .join()
        .unwrap();
    assert_eq!(el.run_nowait().unwrap(), Exit::Done);
    assert_eq!(
        el.machine().tokens(),
        [1],
        "a stale activation reached the new source"
    );

    let h = el.ctx().wake_handle();
    std::thread::spawn(move || h.activate(u2).unwrap())
        .join()
        .unwrap();
    assert_eq!(el.run_nowait().unwrap(), Exit::Exited);
    assert_eq!(el.machine().tokens(), [1, 2]);
}

/// A burst of 1000 wakes from another thread costs one dispatch of the wake source.
pub fn wakes_from_other_threads_coalesce<B: Backend>() {
    let mut el = harness::<B, ()>((), nothing);
    let w = el.ctx().add_wake(Token(7)).unwrap();
    let h = el.ctx().wake_handle();
    std::thread::spawn(move || {
        for _ in 0..1000 {
            h.wake().unwrap();
        }
    })
    .join()
    .unwrap();
    el.ctx().set_exit_when_empty(false);
    assert_eq!(el.run_once().unwrap(), Exit::Done);
    assert_eq!(el.run_nowait().unwrap(), Exit::Done);
    let log = &el.machine().log;
    assert_eq!(log.len(), 1, "{} dispatches for one burst", log.len());
    assert_eq!(
        (log[0].token, log[0].source, log[0].ready),
        (Token(7), w, Ready::WAKE)
    );

    // A burst from several threads at once: still one dispatch.
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let h = el.ctx().wake_handle();
            std::thread::spawn(move || {
                for _ in 0..250 {
                    h.wake().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    el.ctx().refresh_now();
    el.ctx().exit_after(Duration::from_millis(5));
    assert_eq!(el.run().unwrap(), Exit::Exited);
    assert_eq!(el.machine().log.len(), 2, "{:?}", el.machine().log);
}
