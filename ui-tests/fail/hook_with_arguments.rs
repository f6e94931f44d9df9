// Lifecycle attributes take no arguments.
use evloop::prelude::*;

#[event_machine]
struct Ticker;

#[event_machine]
impl Ticker {
    #[on_start(now)]
    fn started(&mut self, _ctx: &mut Ctx<Self>) {}
}

fn main() {}
