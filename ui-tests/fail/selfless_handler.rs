// A handler is a method of the machine.
use evloop::prelude::*;

#[event_machine]
struct Ticker;

#[event_machine]
impl Ticker {
    #[on_timer(100)]
    fn tick(_ctx: &mut Ctx<Self>) {}
}

fn main() {}
