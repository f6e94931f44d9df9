use evloop::prelude::*;

#[event_machine]
struct Daemon;

#[event_machine]
impl Daemon {
    #[on_signal(SIGRTMIN - 1)]
    fn rt(&mut self, _ctx: &mut Ctx<Self>) {}
}

fn main() {}
