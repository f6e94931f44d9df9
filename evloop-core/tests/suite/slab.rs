//! `Slab`: generation-checked keys, so a removed entry's events and keys never reach the
//! entry that reuses its slot.

use std::io::Write;

use evloop_core::{Backend, Builder, Ctx, Event, Exit, Key, Slab, Source, Token, Watch};

use super::util::*;

const CONNS: u16 = 3;
const CONTROL: Token = Token(0);

struct Conns {
    slab: Slab<Stream>,
    old: Option<Key>,
    replacement: Option<Stream>,
    new: Option<Key>,
    /// Keys of the slab events, in order.
    events: Vec<Key>,
}

fn replace_on_control<B: Backend>(s: &mut Conns, ctx: &mut Ctx<Harness<B, Conns>>, ev: &Event) {
    if ev.token == CONTROL {
        if let (Some(old), Some(sock)) = (s.old, s.replacement.take()) {
            let gone = s.slab.remove(ctx, old).unwrap();
            drop(gone); // closed: its fd number may be reused right away
            s.new = Some(s.slab.insert_with(ctx, sock, Watch::read()).unwrap());
        }
    } else {
        let key = s
            .slab
            .key_of(ev.token)
            .unwrap_or_else(|| panic!("an event for a removed entry: {ev:?}"));
        s.events.push(key);
    }
}

/// A handler removes a ready slab entry and inserts a new one into the same slot in the
/// same iteration: the old entry's event is not dispatched, the new one gets only its own
/// events under its own key, and the old key stays dead.
pub fn new_occupant_never_gets_old_events<B: Backend>() {
    let (ctl, mut pctl) = stream_pair();
    let (a, mut pa) = stream_pair(); // `pa` stays open: `a` must read as ready, not hung up
    let (b, mut pb) = stream_pair();
    let state = Conns {
        slab: Slab::with_capacity(1),
        old: None,
        replacement: Some(b),
        new: None,
        events: Vec::new(),
    };
    let mut el = harness_with::<B, Conns>(Builder::new().priorities(3), state, replace_on_control);
    let (m, ctx) = el.parts();
    m.state.slab.attach(ctx, CONNS, Watch::read()).unwrap();
    ctx.add_io(&ctl, CONTROL, Watch::read().priority(0))
        .unwrap();
    let old = m
        .state
        .slab
        .insert_with(ctx, a, Watch::read().priority(1))
        .unwrap();
    let old_id = m.state.slab.source(old).unwrap();
    let old_token = m.state.slab.token(old);
    m.state.old = Some(old);
    pctl.write_all(b"go").unwrap();
    pa.write_all(b"old").unwrap();
    pb.write_all(b"new").unwrap();

    assert_eq!(el.run_once().unwrap(), Exit::Done);
    assert_eq!(
        el.machine().tokens(),
        [CONTROL.0],
        "the removed entry was dispatched"
    );
    drain(&ctl);
    let m = &el.machine().state;
    let new = m.new.unwrap();
    assert_eq!(new.index(), old.index(), "the slot was reused");
    assert_ne!(new, old);
    assert_eq!(m.slab.key_of(old_token), None);
    assert!(m.slab.get(old).is_none() && !m.slab.contains(old));

    assert_eq!(el.run_once().unwrap(), Exit::Done);
    let m = &el.machine().state;
    assert_eq!(m.events, [new]);
    assert_eq!(el.machine().log[1].token, m.slab.token(new));
    assert_ne!(el.machine().log[1].source, old_id);
    assert!(matches!(
        el.ctx().stop(old_id),
        Err(evloop_core::Error::StaleSource)
    ));
}

/// Insert, look up, iterate and remove; tokens carry the slab's tag and map back to keys;
/// removing leaves the slab and the loop as they were.
pub fn insert_lookup_remove<B: Backend>() {
    let mut el = harness::<B, ()>((), nothing);
    let mut slab: Slab<Stream> = Slab::with_capacity(4);
    slab.attach(el.ctx(), CONNS, Watch::read()).unwrap();
    let mut peers = Vec::new();
    let mut keys = Vec::new();
    for _ in 0..4 {
        let (a, b) = stream_pair();
        keys.push(slab.insert_with(el.ctx(), a, Watch::read()).unwrap());
        peers.push(b);
    }
    assert_eq!((slab.len(), slab.capacity(), slab.tag()), (4, 4, CONNS));
    assert_eq!(el.ctx().source_count(), 4);
    for &k in &keys {
        let t = slab.token(k);
        assert_eq!(t.tag(), CONNS);
        assert_eq!(slab.key_of(t), Some(k));
        assert!(slab.get(k).is_some() && slab.get_mut(k).is_some());
        assert!(el.ctx().is_active(slab.source(k).unwrap()));
    }
    assert_eq!(slab.iter().count(), 4);
    assert_eq!(
        slab.key_of(Token::tagged(CONNS + 1, 0)),
        None,
        "another tag"
    );

    (&peers[2]).write_all(b"x").unwrap();
    assert_eq!(el.run_once().unwrap(), Exit::Done);
    assert_eq!(el.machine().log.len(), 1);
    assert_eq!(slab.key_of(el.machine().log[0].token), Some(keys[2]));

    for &k in &keys {
        slab.remove(el.ctx(), k).unwrap();
    }
    assert!(slab.is_empty());
    assert_eq!(el.ctx().source_count(), 0);
    assert_eq!(el.ctx().backend().len(), 1);
}
