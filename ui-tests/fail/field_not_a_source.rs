// A `Vec<u8>` has no fd: it cannot be watched.
use evloop::prelude::*;

#[event_machine]
struct Server {
    buffer: Vec<u8>,
}

#[event_machine]
impl Server {
    #[on_read(buffer)]
    fn readable(&mut self, _ctx: &mut Ctx<Self>) {}
}

fn main() {}
