// `#[on_read]` on a plain `TcpListener` or `UnixListener` is a warning: the usual accept
// loop spins when descriptors run out. Denied here, so that its text is checked.
#![deny(deprecated)]
use evloop::prelude::*;
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixListener;

#[event_machine]
struct Server {
    listener: TcpListener,
    local: UnixListener,
    conns: Slab<TcpStream>,
}

#[event_machine]
impl Server {
    #[on_read(listener)]
    fn accept(&mut self, ctx: &mut Ctx<Self>) {
        while let Ok((s, _)) = self.listener.accept() {
            let _ = self.conns.insert(ctx, s);
        }
    }

    #[on_read(local)]
    fn accept_local(&mut self, _ctx: &mut Ctx<Self>) {
        while let Ok((s, _)) = self.local.accept() {
            drop(s);
        }
    }

    #[on_read(conns)]
    fn data(&mut self, key: Key, ctx: &mut Ctx<Self>) {
        let _ = self.conns.remove(ctx, key);
    }
}

fn main() {}
