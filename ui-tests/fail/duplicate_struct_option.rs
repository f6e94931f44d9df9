use evloop::prelude::*;

#[event_machine(sources = 100, sources = 200)]
struct Ticker;

#[event_machine]
impl Ticker {
    #[on_timer(100)]
    fn tick(&mut self, _ctx: &mut Ctx<Self>) {}
}

fn main() {}
