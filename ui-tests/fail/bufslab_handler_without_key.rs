// A `BufSlab` is a collection too: its handlers take the key of the connection that
// fired, and the check knows it from the type's `Source::Kind`, not from its name.
use evloop::buffered::BufSlab;
use evloop::prelude::*;
use std::net::TcpStream;

#[event_machine]
struct Server {
    conns: BufSlab<TcpStream>,
}

#[event_machine]
impl Server {
    #[on_read(conns)]
    fn data(&mut self, key: Key, _ctx: &mut Ctx<Self>) {
        let _ = key;
    }

    #[on_timeout(conns, ms = 30_000)]
    fn idle(&mut self, _ctx: &mut Ctx<Self>) {}
}

fn main() {}
