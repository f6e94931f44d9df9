// A collection's key is a `Key`, not an index.
use evloop::prelude::*;
use std::net::TcpStream;

#[event_machine]
struct Server {
    conns: Slab<TcpStream>,
}

#[event_machine]
impl Server {
    #[on_read(conns)]
    fn readable(&mut self, _index: usize, _ctx: &mut Ctx<Self>) {}
}

fn main() {}
