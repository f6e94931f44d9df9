// The period is read by the macro: a literal, not a constant.
use evloop::prelude::*;

const PERIOD: u64 = 100;

#[event_machine]
struct Ticker;

#[event_machine]
impl Ticker {
    #[on_timer(PERIOD)]
    fn tick(&mut self, _ctx: &mut Ctx<Self>) {}
}

fn main() {
    let _ = PERIOD;
}
