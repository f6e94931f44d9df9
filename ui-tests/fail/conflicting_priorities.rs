// A field is registered once, at one priority.
use evloop::prelude::*;
use std::net::TcpStream;

#[event_machine]
struct Client {
    sock: TcpStream,
}

#[event_machine]
impl Client {
    #[on_read(sock, priority = 0)]
    fn readable(&mut self, _ctx: &mut Ctx<Self>) {}

    #[on_write(sock, priority = 2)]
    fn writable(&mut self, _ctx: &mut Ctx<Self>) {}
}

fn main() {}
