// The context is passed mutably.
use evloop::prelude::*;

#[event_machine]
struct Ticker;

#[event_machine]
impl Ticker {
    #[on_timer(100)]
    fn tick(&mut self, _ctx: &Ctx<Self>) {}
}

fn main() {}
