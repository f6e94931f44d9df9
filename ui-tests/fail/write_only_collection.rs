// `#[on_write]` as the only handler of a collection of connections: nothing would read
// them, so a peer's data and its EOF would go unnoticed. `write_only` says it is meant.
use evloop::prelude::*;
use std::net::TcpStream;

#[event_machine]
struct Server {
    conns: Slab<TcpStream>,
}

#[event_machine]
impl Server {
    #[on_write(conns)]
    fn writable(&mut self, key: Key, _ctx: &mut Ctx<Self>) {
        let _ = key;
    }
}

fn main() {}
