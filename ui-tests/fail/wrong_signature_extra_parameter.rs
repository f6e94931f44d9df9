// Nothing but `ev: Event` may follow `ctx`.
use evloop::prelude::*;

#[event_machine]
struct Ticker;

#[event_machine]
impl Ticker {
    #[on_timer(100)]
    fn tick(&mut self, _ctx: &mut Ctx<Self>, _ev: Event, _extra: u32) {}
}

fn main() {}
