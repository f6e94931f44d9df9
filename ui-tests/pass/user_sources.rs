// Whether a handler takes a key comes from the field's `Source::Kind`: a collection type
// of the user's own, a `BufSlab` and a `Listener` are checked like `Slab` and a plain fd.
// `write_only` accepts a collection watched only by `#[on_write]`.
use evloop::buffered::BufSlab;
use evloop::prelude::*;
use evloop::{kind, Listener, ListenerBuilder};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;

struct Pool {
    slab: Slab<UnixStream>,
}

impl Source for Pool {
    type Kind = kind::Collection;
    fn capacity(&self) -> usize {
        self.slab.capacity()
    }
    fn attach<M: Machine>(&mut self, ctx: &mut Ctx<M>, tag: u16, watch: Watch) -> evloop::Result<()> {
        self.slab.attach(ctx, tag, watch)
    }
    fn entry(&self, token: Token) -> Option<Key> {
        self.slab.entry(token)
    }
}

#[event_machine]
struct Server {
    listener: Listener,
    pool: Pool,
    conns: BufSlab<TcpStream>,
    sinks: Slab<UnixStream>,
}

#[event_machine]
impl Server {
    #[on_read(listener)]
    fn accept(&mut self, _ctx: &mut Ctx<Self>) {}

    #[on_read(pool)]
    fn pooled(&mut self, key: Key, ctx: &mut Ctx<Self>) {
        let _ = self.pool.slab.remove(ctx, key);
    }

    #[on_read(conns)]
    fn data(&mut self, key: Key, _ctx: &mut Ctx<Self>) {
        let _ = key;
    }

    #[on_timeout(conns, ms = 30_000)]
    fn idle(&mut self, key: Key, _ctx: &mut Ctx<Self>) {
        let _ = key;
    }

    #[on_write(sinks, write_only)]
    fn drained(&mut self, key: Key, _ctx: &mut Ctx<Self>) {
        let _ = key;
    }
}

fn main() {
    let listener = ListenerBuilder::new().tcp("127.0.0.1:0".parse().unwrap()).unwrap();
    let server = Server {
        listener,
        pool: Pool { slab: Slab::with_capacity(8) },
        conns: BufSlab::with_capacity(3000, Default::default()),
        sinks: Slab::with_capacity(8),
    };
    let el = server.event_loop().unwrap();
    // Sized from the fields: 1024 + 1 + 8 + 3000 + 8 sources.
    assert_eq!(el.machine().conns.capacity(), 3000);
}
