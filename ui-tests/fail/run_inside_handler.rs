// A handler cannot run its own loop again: it only has the `Ctx`, not the `EventLoop`
// (which is mutably borrowed while it dispatches), so re-entering is a compile error,
// not a runtime recursion.
use evloop::{Ctx, DefaultBackend, Event, Machine};

struct M;

impl Machine for M {
    type Backend = DefaultBackend;
    fn dispatch(&mut self, ctx: &mut Ctx<Self>, _ev: Event) {
        ctx.run();
    }
}

fn main() {}
