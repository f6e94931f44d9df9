// Every I/O attribute and option: on_read (priority, edge, oneshot, peer_closed,
// raw_accept), on_write, on_timeout, on a single source and on a collection, with and
// without the trailing event; plus every struct option.
use evloop::prelude::*;
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;

#[event_machine(
    backend = evloop::Poll,
    sources = 200,
    timers = 100,
    events = 64,
    priorities = 5,
    activations = 32
)]
struct Server {
    listener: TcpListener,
    conns: Slab<TcpStream>,
    pipe: UnixStream,
    hits: u64,
}

#[event_machine]
impl Server {
    #[on_read(listener, priority = 0, edge, oneshot, raw_accept)]
    fn accept(&mut self, ctx: &mut Ctx<Self>) {
        while let Ok((s, _)) = self.listener.accept() {
            let _ = self.conns.insert(ctx, s);
        }
    }

    #[on_read(conns, peer_closed, priority = 4)]
    fn readable(&mut self, key: Key, ctx: &mut Ctx<Self>, ev: Event) {
        self.hits += u64::from(ev.count);
        let _ = self.conns.remove(ctx, key);
    }

    #[on_write(conns, priority = 4)]
    fn writable(&mut self, _key: Key, _ctx: &mut Ctx<Self>) {}

    #[on_timeout(conns, ms = 30_000)]
    fn idle_conn(&mut self, key: Key, ctx: &mut Ctx<Self>) {
        let _ = self.conns.remove(ctx, key);
    }

    #[on_write(pipe, edge)]
    fn pipe_writable(&mut self, ctx: &mut Ctx<Self>, _: Event) {
        ctx.exit();
    }

    #[on_timeout(pipe, ms = 1)]
    fn pipe_idle(&mut self, _ctx: &mut Ctx<Self>) {}

    /// Ordinary methods pass through untouched.
    fn hits(&self) -> u64 {
        self.hits
    }
}

fn main() {
    let (pipe, _peer) = UnixStream::pair().unwrap();
    let server = Server {
        listener: TcpListener::bind("127.0.0.1:0").unwrap(),
        conns: Slab::default(),
        pipe,
        hits: 0,
    };
    let server = server.run().unwrap();
    assert_eq!(server.hits(), 0);
}
