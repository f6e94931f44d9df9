//! Priorities: within one iteration the most urgent ready source runs first, even one
//! activated (or re-prioritised) by a handler of that iteration.

use std::io::Write;
use std::time::Duration;

use evloop_core::{Backend, Builder, Ctx, Error, Event, Exit, Ready, SourceId, Token, Watch};

use super::util::*;

/// Ready sources of one iteration run most urgent (0) first, whatever their registration
/// order and kind.
pub fn ready_sources_run_most_urgent_first<B: Backend>() {
    let pairs: Vec<_> = (0..4).map(|_| stream_pair()).collect();
    let mut el = harness_with::<B, ()>(Builder::new().priorities(4), (), nothing);
    for (prio, (a, b)) in [3u8, 1, 2, 0].into_iter().zip(&pairs) {
        el.ctx()
            .add_io(a, Token(prio as u64), Watch::read().priority(prio))
            .unwrap();
        (&*b).write_all(b"x").unwrap();
    }
    assert_eq!(el.run_once().unwrap(), Exit::Done);
    assert_eq!(el.machine().tokens(), [0, 1, 2, 3]);

    // Mixed kinds: a timer, a user source and an fd, ready in one iteration.
    for (a, _) in &pairs {
        drain(a);
    }
    let mut el = harness_with::<B, ()>(Builder::new().priorities(3), (), nothing);
    let (a, b) = &pairs[0];
    el.ctx()
        .add_io(a, Token(12), Watch::read().priority(2))
        .unwrap();
    let u = el.ctx().add_user(Token(11)).unwrap();
    el.ctx().set_priority(u, 1).unwrap();
    el.ctx().refresh_now();
    let t = el.ctx().add_timer(Token(10), Duration::ZERO).unwrap();
    el.ctx().set_priority(t, 0).unwrap();
    el.ctx().activate(u, Ready::EMPTY).unwrap();
    (&*b).write_all(b"x").unwrap();
    assert_eq!(el.run_once().unwrap(), Exit::Done);
    assert_eq!(el.machine().tokens(), [10, 11, 12]);
}

struct Escalate {
    urgent: Option<SourceId>,
    bump: Option<SourceId>,
}

fn escalate<B: Backend>(s: &mut Escalate, ctx: &mut Ctx<Harness<B, Escalate>>, ev: &Event) {
    if ev.token == Token(1) {
        if let Some(u) = s.urgent {
            ctx.activate(u, Ready::EMPTY).unwrap();
        }
        if let Some(b) = s.bump {
            ctx.set_priority(b, 0).unwrap();
        }
    }
}

/// A source activated by a handler with a more urgent priority runs before the less
/// urgent sources still queued in this iteration; one re-prioritised while queued moves.
pub fn later_activation_with_higher_priority_runs_first<B: Backend>() {
    let pairs: Vec<_> = (0..3).map(|_| stream_pair()).collect();
    let state = Escalate {
        urgent: None,
        bump: None,
    };
    let mut el = harness_with::<B, Escalate>(Builder::new().priorities(3), state, escalate);
    let prios = [(1, 1u8), (2, 2), (3, 2)];
    let mut ids = Vec::new();
    for ((token, prio), (a, b)) in prios.into_iter().zip(&pairs) {
        ids.push(
            el.ctx()
                .add_io(a, Token(token), Watch::read().priority(prio))
                .unwrap(),
        );
        (&*b).write_all(b"x").unwrap();
    }
    let u = el.ctx().add_user(Token(0)).unwrap();
    el.ctx().set_priority(u, 0).unwrap();
    el.machine_mut().state.urgent = Some(u);
    assert_eq!(el.run_once().unwrap(), Exit::Done);
    let tokens = el.machine().tokens();
    assert_eq!(
        tokens[..2],
        [1, 0],
        "the urgent activation waited: {tokens:?}"
    );
    let mut rest = tokens[2..].to_vec();
    rest.sort_unstable();
    assert_eq!(rest, [2, 3]);

    // Now the handler of 1 moves 3 (queued behind 2) to the most urgent level.
    el.machine_mut().state = Escalate {
        urgent: None,
        bump: Some(ids[2]),
    };
    assert_eq!(el.run_once().unwrap(), Exit::Done);
    assert_eq!(el.machine().tokens()[4..], [1, 3, 2]);
}

/// Sources default to the middle level; a level out of range is refused and registers
/// nothing.
pub fn default_and_invalid_priorities<B: Backend>() {
    let (a, _b) = stream_pair();
    let mut el = harness_with::<B, ()>(Builder::new().priorities(5), (), nothing);
    el.ctx().add_io(&a, Token(1), Watch::read()).unwrap();
    el.ctx().add_user(Token(2)).unwrap();
    let dump = el.ctx().dump().to_string();
    assert_eq!(dump.matches("prio=2").count(), 2, "{dump}");
    let e = el.ctx().add_io(&a, Token(3), Watch::read().priority(5));
    assert!(
        matches!(
            e,
            Err(Error::InvalidPriority {
                priority: 5,
                levels: 5
            })
        ),
        "{e:?}"
    );
    assert_eq!(el.ctx().source_count(), 2);
}
