use evloop::prelude::*;
use std::net::TcpStream;

#[event_machine]
struct Client {
    sock: TcpStream,
}

#[event_machine]
impl Client {
    #[on_read(sock)]
    fn readable(&mut self, _ctx: &mut Ctx<Self>) {}

    #[on_timeout(sock)]
    fn idle(&mut self, _ctx: &mut Ctx<Self>) {}
}

fn main() {}
