// A handler attribute does nothing on its own: in a machine written by hand, it is a
// mistake, reported on the attribute.
use evloop::prelude::*;
use std::net::TcpListener;

struct Server {
    listener: TcpListener,
}

impl Machine for Server {
    type Backend = DefaultBackend;
    fn dispatch(&mut self, ctx: &mut Ctx<Self>, _ev: Event) {
        self.accept(ctx);
    }
}

impl Server {
    #[on_read(listener)]
    fn accept(&mut self, _ctx: &mut Ctx<Self>) {
        let _ = self.listener.accept();
    }
}

fn main() {}
