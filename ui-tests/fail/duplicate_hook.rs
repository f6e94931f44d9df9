// A machine has one `#[on_start]`.
use evloop::prelude::*;

#[event_machine]
struct Daemon;

#[event_machine]
impl Daemon {
    #[on_start]
    fn open(&mut self, _ctx: &mut Ctx<Self>) {}

    #[on_start]
    fn greet(&mut self, _ctx: &mut Ctx<Self>) {}
}

fn main() {}
