// A field is registered once: its handlers agree on edge-triggering.
use evloop::prelude::*;
use std::net::TcpStream;

#[event_machine]
struct Client {
    sock: TcpStream,
}

#[event_machine]
impl Client {
    #[on_read(sock, edge)]
    fn readable(&mut self, _ctx: &mut Ctx<Self>) {}

    #[on_write(sock)]
    fn writable(&mut self, _ctx: &mut Ctx<Self>) {}
}

fn main() {}
