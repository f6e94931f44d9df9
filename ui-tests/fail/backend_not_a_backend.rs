// `backend` must name a type implementing `Backend`.
use evloop::prelude::*;

#[event_machine(backend = String)]
struct Ticker;

#[event_machine]
impl Ticker {
    #[on_timer(10)]
    fn tick(&mut self, _ctx: &mut Ctx<Self>) {}
}

fn main() {}
