// A single source has no entries: its handler takes no key.
use evloop::prelude::*;
use std::net::TcpListener;

#[event_machine]
struct Server {
    listener: TcpListener,
}

#[event_machine]
impl Server {
    #[on_read(listener)]
    fn accept(&mut self, _key: Key, _ctx: &mut Ctx<Self>) {}
}

fn main() {}
