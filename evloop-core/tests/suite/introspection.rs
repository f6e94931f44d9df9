//! Introspection: the number of registered sources and a readable dump of them.

use std::time::Duration;

use evloop_core::{Backend, Exit, Ready, Token, Watch};

use super::util::*;

/// `source_count` counts registered sources of every kind (the loop's own wake fd aside):
/// stopping keeps a source counted, removing it does not, and a failed removal of a stale
/// id changes nothing.
pub fn source_count_tracks_every_kind<B: Backend>() {
    let (a, _pa) = stream_pair();
    let mut el = harness::<B, ()>((), nothing);
    let ctx = el.ctx();
    assert_eq!(ctx.source_count(), 0);
    let io = ctx.add_io(&a, Token(1), Watch::read()).unwrap();
    let t = ctx.add_timer(Token(2), Duration::from_secs(60)).unwrap();
    let p = ctx.add_periodic(Token(3), Duration::from_secs(60)).unwrap();
    let u = ctx.add_user(Token(4)).unwrap();
    let w = ctx.add_wake(Token(5)).unwrap();
    assert_eq!(ctx.source_count(), 5);
    ctx.stop(io).unwrap();
    ctx.stop(t).unwrap();
    assert_eq!(
        ctx.source_count(),
        5,
        "stopped sources are still registered"
    );
    for id in [io, t, p, u, w] {
        ctx.remove(id).unwrap();
        assert!(ctx.remove(id).is_err());
    }
    assert_eq!(ctx.source_count(), 0);
    assert_eq!(el.run().unwrap(), Exit::Empty);
}

/// The dump names the backend and lists every source with its kind, token, priority,
/// state, fd and interest, armed timers and pending readiness.
pub fn dump_lists_every_source<B: Backend>() {
    let (a, _pa) = stream_pair();
    let mut el = harness::<B, ()>((), nothing);
    let ctx = el.ctx();
    let io = ctx.add_io(&a, Token(101), Watch::read().oneshot()).unwrap();
    let stopped = ctx.add_io(&a, Token(102), Watch::write()).unwrap();
    ctx.stop(stopped).unwrap();
    ctx.add_timer(Token(103), Duration::from_secs(60)).unwrap();
    ctx.add_periodic(Token(104), Duration::from_secs(60))
        .unwrap();
    let u = ctx.add_user(Token(105)).unwrap();
    ctx.add_wake(Token(106)).unwrap();
    ctx.activate(u, Ready::EMPTY).unwrap();
    let _ = io;

    let dump = el.ctx().dump().to_string();
    let lines: Vec<&str> = dump.lines().collect();
    assert_eq!(lines.len(), 1 + 6, "{dump}");
    assert!(
        lines[0].contains(B::NAME) && lines[0].contains("6 sources"),
        "{dump}"
    );
    let line = |token: u64| {
        *lines
            .iter()
            .find(|l| l.contains(&format!("token={token} ")))
            .unwrap_or_else(|| panic!("token {token} missing from:\n{dump}"))
    };
    let fd = format!("fd={}", raw(&a));
    let l = line(101);
    assert!(
        l.contains(" io ") && l.contains(&fd) && l.contains("READ") && l.contains("oneshot"),
        "{l}"
    );
    assert!(l.contains("active"), "{l}");
    let l = line(102);
    assert!(l.contains("stopped") && l.contains("WRITE"), "{l}");
    let l = line(103);
    assert!(
        l.contains("timer") && l.contains("once") && l.contains("due_in="),
        "{l}"
    );
    assert!(line(104).contains("periodic"));
    let l = line(105);
    assert!(l.contains("user") && l.contains("pending=ACTIVATED"), "{l}");
    assert!(line(106).contains("wake"));
}
