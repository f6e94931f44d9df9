// Periodic and one-shot timers, with priorities and the trailing event.
use evloop::prelude::*;

#[event_machine(priorities = 2)]
struct Ticker {
    ticks: u32,
    once: bool,
}

#[event_machine]
impl Ticker {
    #[on_timer(1)]
    fn tick(&mut self, ctx: &mut Ctx<Self>) {
        self.ticks += 1;
        if self.ticks >= 3 && self.once {
            ctx.exit();
        }
    }

    #[on_timer(2, once, priority = 0)]
    fn warmup(&mut self, _ctx: &mut Ctx<Self>, ev: Event) {
        assert!(ev.ready.is_timeout());
        self.once = true;
    }

    #[on_timer(31_536_000_000, priority = 1)]
    fn yearly(&mut self, _ctx: &mut Ctx<Self>) {}
}

fn main() {
    let t = Ticker { ticks: 0, once: false }.run().unwrap();
    assert!(t.once && t.ticks >= 3);
}
