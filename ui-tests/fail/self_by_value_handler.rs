// The machine stays in the loop: no `self` by value.
use evloop::prelude::*;

#[event_machine]
struct Ticker;

#[event_machine]
impl Ticker {
    #[on_timer(100)]
    fn tick(self, _ctx: &mut Ctx<Self>) {}
}

fn main() {}
