use evloop::prelude::*;

#[event_machine]
struct Ticker;

#[event_machine]
impl Ticker {
    #[on_timer(100)]
    const PERIOD: u64 = 100;
}

fn main() {}
