// Even with the loop in reach (a closure over it), it cannot be run while a handler
// holds the machine borrowed from it.
use evloop::{Ctx, DefaultBackend, Event, EventLoop, Machine};

struct M;

impl Machine for M {
    type Backend = DefaultBackend;
    fn dispatch(&mut self, _ctx: &mut Ctx<Self>, _ev: Event) {}
}

fn main() {
    let mut el = EventLoop::new(M).unwrap();
    let m = el.machine_mut();
    el.run().unwrap();
    let _ = m;
}
