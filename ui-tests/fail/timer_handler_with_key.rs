// Keys name the entries of a collection; a timer has none.
use evloop::prelude::*;

#[event_machine]
struct Ticker;

#[event_machine]
impl Ticker {
    #[on_timer(100)]
    fn tick(&mut self, _key: Key, _ctx: &mut Ctx<Self>) {}
}

fn main() {}
