// The valid options are listed.
use evloop::prelude::*;
use std::net::TcpListener;

#[event_machine]
struct Server {
    listener: TcpListener,
}

#[event_machine]
impl Server {
    #[on_read(listener, edgy)]
    fn accept(&mut self, _ctx: &mut Ctx<Self>) {}
}

fn main() {}
