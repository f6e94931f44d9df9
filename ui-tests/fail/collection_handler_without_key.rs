// A `Slab`'s handler must take the key of the entry that fired.
use evloop::prelude::*;
use std::net::TcpStream;

#[event_machine]
struct Server {
    conns: Slab<TcpStream>,
}

#[event_machine]
impl Server {
    #[on_read(conns)]
    fn readable(&mut self, _ctx: &mut Ctx<Self>) {}
}

fn main() {}
