// Handlers change the machine: `&mut self`.
use evloop::prelude::*;

#[event_machine]
struct Ticker;

#[event_machine]
impl Ticker {
    #[on_timer(100)]
    fn tick(&self, _ctx: &mut Ctx<Self>) {}
}

fn main() {}
