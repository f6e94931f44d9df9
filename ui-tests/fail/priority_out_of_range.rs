// The machine has 3 priority levels (the default): 0, 1, 2.
use evloop::prelude::*;

#[event_machine]
struct Ticker;

#[event_machine]
impl Ticker {
    #[on_timer(10, priority = 5)]
    fn tick(&mut self, _ctx: &mut Ctx<Self>) {}
}

fn main() {
    let _ = Ticker.run();
}
