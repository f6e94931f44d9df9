// A typo in a struct option gets a suggestion and the list.
use evloop::prelude::*;

#[event_machine(sorces = 100)]
struct Ticker;

#[event_machine]
impl Ticker {
    #[on_timer(100)]
    fn tick(&mut self, _ctx: &mut Ctx<Self>) {}
}

fn main() {}
