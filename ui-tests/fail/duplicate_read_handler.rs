// One handler per field and interest.
use evloop::prelude::*;
use std::net::TcpListener;

#[event_machine]
struct Server {
    listener: TcpListener,
}

#[event_machine]
impl Server {
    #[on_read(listener)]
    fn accept(&mut self, _ctx: &mut Ctx<Self>) {}

    #[on_read(listener)]
    fn accept_again(&mut self, _ctx: &mut Ctx<Self>) {}
}

fn main() {}
