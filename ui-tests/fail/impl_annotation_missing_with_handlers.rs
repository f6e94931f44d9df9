// The struct is annotated, the impl block holding the handlers is not: one error for the
// missing attribute, one per handler attribute would be noise.
use evloop::prelude::*;
use std::net::{TcpListener, TcpStream};

#[event_machine]
struct Server {
    listener: TcpListener,
    conns: Slab<TcpStream>,
}

impl Server {
    #[on_read(listener)]
    fn accept(&mut self, ctx: &mut Ctx<Self>) {
        let _ = ctx;
    }

    #[on_read(conns)]
    fn data(&mut self, key: Key, ctx: &mut Ctx<Self>) {
        let _ = (key, ctx);
    }

    #[on_timeout(conns, ms = 30_000)]
    fn idle(&mut self, key: Key, ctx: &mut Ctx<Self>) {
        let _ = (key, ctx);
    }

    #[on_timer(1000)]
    fn tick(&mut self, ctx: &mut Ctx<Self>) {
        let _ = ctx;
    }

    #[on_signal(SIGHUP)]
    fn reload(&mut self, ctx: &mut Ctx<Self>) {
        let _ = ctx;
    }
}

fn main() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let _ = Server { listener, conns: Slab::default() }.run();
}
