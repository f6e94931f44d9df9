// A single source has no entries: its handler takes no key.
use evloop::prelude::*;
use std::net::UdpSocket;

#[event_machine]
struct Server {
    sock: UdpSocket,
}

#[event_machine]
impl Server {
    #[on_read(sock)]
    fn recv(&mut self, _key: Key, _ctx: &mut Ctx<Self>) {}
}

fn main() {}
