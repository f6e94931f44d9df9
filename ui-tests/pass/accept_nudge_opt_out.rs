// No warning (denied here, so one would fail the build) for the fields the nudge
// towards `Listener` leaves alone: a `Listener`, a `Slab` of listeners, a stream, a
// generic field; nor for a plain `TcpListener` or `UnixListener` whose `#[on_read]`
// says `raw_accept`: its handler deals with running out of descriptors itself, here by
// not watching the listener until the next tick.
#![deny(deprecated)]
use evloop::prelude::*;
use evloop::Listener;
use std::io::ErrorKind;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};

/// Out of descriptors (or of kernel memory): the listener stays readable, so stop
/// watching it for a while instead of returning to be called again at once.
fn out_of_fds(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

#[event_machine]
struct Server<S: AsFd> {
    tcp: TcpListener,
    unix: UnixListener,
    listener: Listener,
    listeners: Slab<TcpListener>,
    conns: Slab<TcpStream>,
    other: S,
    paused: Vec<SourceId>,
}

#[event_machine]
impl<S: AsFd> Server<S> {
    #[on_read(tcp, raw_accept)]
    fn accept_tcp(&mut self, ctx: &mut Ctx<Self>) {
        loop {
            match self.tcp.accept() {
                Ok((s, _)) => drop(self.conns.insert(ctx, s)),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if out_of_fds(&e) => {
                    if let Some(id) = ctx.source_of(&self.tcp) {
                        let _ = ctx.stop(id);
                        self.paused.push(id);
                    }
                    return;
                }
                Err(_) => {} // the connection went away: on to the next one
            }
        }
    }

    #[on_read(unix, raw_accept)]
    fn accept_unix(&mut self, _ctx: &mut Ctx<Self>) {
        while let Ok((s, _)) = self.unix.accept() {
            drop(s);
        }
    }

    #[on_read(listener)]
    fn accept(&mut self, ctx: &mut Ctx<Self>) {
        let conns = &mut self.conns;
        self.listener
            .accept(ctx, |ctx, c| drop(conns.insert(ctx, c.into_tcp())));
    }

    #[on_read(listeners)]
    fn accept_any(&mut self, key: Key, _ctx: &mut Ctx<Self>) {
        let _ = key;
    }

    #[on_read(conns)]
    fn data(&mut self, key: Key, ctx: &mut Ctx<Self>) {
        let _ = self.conns.remove(ctx, key);
    }

    #[on_read(other)]
    fn other(&mut self, ctx: &mut Ctx<Self>) {
        ctx.exit();
    }

    #[on_timer(100)]
    fn resume(&mut self, ctx: &mut Ctx<Self>) {
        for id in self.paused.drain(..) {
            let _ = ctx.start(id);
        }
    }
}

fn main() {
    let path = std::env::temp_dir().join(format!("evloop-ui-nudge-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let (a, _b) = UnixStream::pair().unwrap();
    let server = Server {
        tcp: TcpListener::bind("127.0.0.1:0").unwrap(),
        unix: UnixListener::bind(&path).unwrap(),
        listener: Listener::tcp("127.0.0.1:0".parse().unwrap()).unwrap(),
        listeners: Slab::default(),
        conns: Slab::default(),
        other: a,
        paused: Vec::new(),
    };
    let _ = server.event_loop().unwrap();
    let _ = std::fs::remove_file(&path);
}
