// Options belong to the struct's attribute.
use evloop::prelude::*;

#[event_machine]
struct Ticker;

#[event_machine(priorities = 5)]
impl Ticker {
    #[on_timer(100)]
    fn tick(&mut self, _ctx: &mut Ctx<Self>) {}
}

fn main() {}
