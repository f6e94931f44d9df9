// The struct is annotated but no impl block is.
use evloop::prelude::*;

#[event_machine]
struct Ticker {
    ticks: u32,
}

impl Ticker {
    #[allow(dead_code)]
    fn count(&mut self) {
        self.ticks += 1;
    }
}

fn main() {}
