// `raw_accept` is about accepting, a read-side matter.
use evloop::prelude::*;
use std::net::TcpListener;

#[event_machine]
struct Server {
    listener: TcpListener,
}

#[event_machine]
impl Server {
    #[on_write(listener, raw_accept)]
    fn writable(&mut self, _ctx: &mut Ctx<Self>) {}
}

fn main() {}
