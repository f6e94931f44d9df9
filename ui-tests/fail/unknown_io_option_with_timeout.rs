// A misspelt option is one error, on the option: the field's other handlers (here its
// idle timeout) are not reported again.
use evloop::prelude::*;
use std::net::TcpStream;

#[event_machine]
struct Server {
    conns: Slab<TcpStream>,
}

#[event_machine]
impl Server {
    #[on_read(conns, edgy)]
    fn data(&mut self, key: Key, _ctx: &mut Ctx<Self>) {
        let _ = key;
    }

    #[on_timeout(conns, ms = 30_000)]
    fn idle(&mut self, key: Key, _ctx: &mut Ctx<Self>) {
        let _ = key;
    }
}

fn main() {}
