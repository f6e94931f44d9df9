// The macro writes `impl Machine`; it goes on the inherent impl.
use evloop::prelude::*;

#[event_machine]
struct Ticker;

#[event_machine]
impl Machine for Ticker {
    type Backend = DefaultBackend;
    fn dispatch(&mut self, _ctx: &mut Ctx<Self>, _ev: Event) {}
}

fn main() {}
