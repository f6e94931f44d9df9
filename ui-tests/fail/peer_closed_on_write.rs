use evloop::prelude::*;
use std::net::TcpStream;

#[event_machine]
struct Client {
    sock: TcpStream,
}

#[event_machine]
impl Client {
    #[on_write(sock, peer_closed)]
    fn writable(&mut self, _ctx: &mut Ctx<Self>) {}
}

fn main() {}
