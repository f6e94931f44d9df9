// At most one year, in milliseconds.
use evloop::prelude::*;

#[event_machine]
struct Ticker;

#[event_machine]
impl Ticker {
    #[on_timer(99_999_999_999)]
    fn tick(&mut self, _ctx: &mut Ctx<Self>) {}
}

fn main() {}
