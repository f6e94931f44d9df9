// The loop has at most 32 priority levels.
use evloop::prelude::*;

#[event_machine(priorities = 40)]
struct Ticker;

#[event_machine]
impl Ticker {
    #[on_timer(100)]
    fn tick(&mut self, _ctx: &mut Ctx<Self>) {}
}

fn main() {}
