// One handler per signal.
use evloop::prelude::*;

#[event_machine]
struct Daemon;

#[event_machine]
impl Daemon {
    #[on_signal(SIGHUP)]
    fn reload(&mut self, _ctx: &mut Ctx<Self>) {}

    #[on_signal(SIGHUP)]
    fn reopen_logs(&mut self, _ctx: &mut Ctx<Self>) {}
}

fn main() {}
