use evloop::prelude::*;

#[event_machine]
struct Ticker;

#[event_machine]
impl Ticker {
    #[on_timer]
    fn tick(&mut self, _ctx: &mut Ctx<Self>) {}
}

fn main() {}
