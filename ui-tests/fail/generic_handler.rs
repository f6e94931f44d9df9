// Nothing could choose a handler's type parameters.
use evloop::prelude::*;

#[event_machine]
struct Ticker;

#[event_machine]
impl Ticker {
    #[on_timer(100)]
    fn tick<T: Default>(&mut self, _ctx: &mut Ctx<Self>) {}
}

fn main() {}
