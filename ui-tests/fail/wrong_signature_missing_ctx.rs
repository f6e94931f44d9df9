// A handler receives the loop's context.
use evloop::prelude::*;

#[event_machine]
struct Ticker;

#[event_machine]
impl Ticker {
    #[on_timer(100)]
    fn tick(&mut self) {}
}

fn main() {}
