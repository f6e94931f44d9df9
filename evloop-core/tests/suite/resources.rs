//! Resources: dropping a loop closes everything it owns, and connection churn leaks no
//! fd. Both count the process's open fds (`util::open_fds`), so they run alone
//! (exclusive).

use std::io::{ErrorKind, Read};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use evloop_core::{Backend, Builder, Ctx, Event, Ready, Slab, Source, Token, Watch};

use super::util::*;

struct Owner {
    listener: TcpListener,
    ends: Vec<Stream>,
    slab: Slab<Stream>,
}

/// A loop dropped with sources of every kind still active (fds with timeouts, one-shot
/// and stopped ones, slab entries, timers, a pending activation, a wake source) closes
/// every fd it and its machine own; a wake handle that outlives it stays harmless.
pub fn dropping_the_loop_closes_what_it_owns<B: Backend>() {
    let before = open_fds();
    {
        let owner = Owner {
            listener: TcpListener::bind("127.0.0.1:0").unwrap(),
            ends: Vec::new(),
            slab: Slab::with_capacity(8),
        };
        let mut el = harness::<B, Owner>(owner, nothing);
        let (m, ctx) = el.parts();
        m.state.slab.attach(ctx, 1, Watch::read()).unwrap();
        let s = &mut m.state;
        ctx.add_io(&s.listener, Token(1), Watch::read()).unwrap();
        for i in 0..3 {
            let (a, b) = stream_pair();
            s.ends.push(a);
            s.ends.push(b);
            let w = match i {
                0 => Watch::read().timeout(Duration::from_secs(60)),
                1 => Watch::both().oneshot(),
                _ => Watch::write(),
            };
            let id = ctx.add_io(&s.ends[2 * i], Token(10 + i as u64), w).unwrap();
            if i == 2 {
                ctx.stop(id).unwrap();
            }
        }
        for _ in 0..4 {
            let (a, b) = stream_pair();
            s.slab.insert_with(ctx, a, Watch::read()).unwrap();
            s.ends.push(b);
        }
        ctx.add_timer(Token(20), Duration::from_secs(60)).unwrap();
        ctx.add_periodic(Token(21), Duration::from_secs(60))
            .unwrap();
        let u = ctx.add_user(Token(22)).unwrap();
        ctx.add_wake(Token(23)).unwrap();
        el.run_nowait().unwrap();
        el.ctx().activate(u, Ready::EMPTY).unwrap();
        assert!(open_fds() >= before + 1 + 6 + 8, "the sockets are open");
        let handle = el.ctx().wake_handle();
        drop(el);
        handle.wake().unwrap();
        assert!(handle.activate(u).is_ok());
    }
    assert_eq!(open_fds(), before, "fds leaked by dropping the loop");
}

struct Server {
    listener: TcpListener,
    conns: Slab<TcpStream>,
    accepted: usize,
    closed: usize,
}

const LISTENER: Token = Token(0);

fn serve<B: Backend>(s: &mut Server, ctx: &mut Ctx<Harness<B, Server>>, ev: &Event) {
    if ev.token == LISTENER {
        loop {
            match s.listener.accept() {
                Ok((conn, _)) => {
                    conn.set_nonblocking(true).unwrap();
                    s.conns.insert_with(ctx, conn, Watch::read()).unwrap();
                    s.accepted += 1;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) => panic!("accept: {e}"),
            }
        }
    }
    let key = s.conns.key_of(ev.token).expect("a live connection");
    let mut buf = [0u8; 64];
    let conn = s.conns.get_mut(key).unwrap();
    match conn.read(&mut buf) {
        Ok(0) => {}
        Ok(_) => return,
        Err(e) if e.kind() == ErrorKind::WouldBlock => return,
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Err(e) => panic!("read: {e}"),
    }
    drop(s.conns.remove(ctx, key).unwrap());
    s.closed += 1;
}

/// 1000 connect/accept/close cycles on 127.0.0.1 through a server loop: the number of
/// open fds is the same after every cycle as before the first, and after the loop is
/// dropped as before it was built.
pub fn no_fd_leak_over_1000_connections<B: Backend>() {
    let before = open_fds();
    {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let server = Server {
            listener,
            conns: Slab::with_capacity(16),
            accepted: 0,
            closed: 0,
        };
        let mut el = harness_with::<B, Server>(Builder::new().sources(64), server, serve);
        let (m, ctx) = el.parts();
        m.state.conns.attach(ctx, 1, Watch::read()).unwrap();
        ctx.add_io(&m.state.listener, LISTENER, Watch::read())
            .unwrap();
        let base = open_fds();
        for i in 1..=1000 {
            let client = TcpStream::connect(addr).unwrap();
            turn_until(&mut el, "accept", |el| el.machine().state.accepted == i);
            drop(client);
            turn_until(&mut el, "close", |el| el.machine().state.closed == i);
            if i % 250 == 0 {
                assert_eq!(open_fds(), base, "fds leaked after {i} connections");
            }
        }
        assert!(el.machine().state.conns.is_empty());
        assert_eq!(el.ctx().source_count(), 1);
    }
    assert_eq!(open_fds(), before, "fds leaked");
}
