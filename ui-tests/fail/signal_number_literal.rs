// Signal numbers differ between systems: name the signal.
use evloop::prelude::*;

#[event_machine]
struct Daemon;

#[event_machine]
impl Daemon {
    #[on_signal(1)]
    fn reload(&mut self, _ctx: &mut Ctx<Self>) {}
}

fn main() {}
