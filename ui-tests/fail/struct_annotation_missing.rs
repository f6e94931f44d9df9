// The impl block is annotated but the struct is not.
use evloop::prelude::*;

struct Ticker {
    ticks: u32,
}

#[event_machine]
impl Ticker {
    #[on_timer(10)]
    fn tick(&mut self, _ctx: &mut Ctx<Self>) {
        self.ticks += 1;
    }
}

fn main() {
    let _ = Ticker { ticks: 0 }.run();
}
