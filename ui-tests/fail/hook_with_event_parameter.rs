// Lifecycle hooks get no event.
use evloop::prelude::*;

#[event_machine]
struct Ticker;

#[event_machine]
impl Ticker {
    #[before_wait]
    fn prepare(&mut self, _ctx: &mut Ctx<Self>, _ev: Event) {}
}

fn main() {}
