// Fields are watched by name.
use evloop::prelude::*;
use std::net::TcpListener;

#[event_machine]
struct Server(TcpListener);

#[event_machine]
impl Server {
    #[on_timer(100)]
    fn tick(&mut self, _ctx: &mut Ctx<Self>) {}
}

fn main() {}
