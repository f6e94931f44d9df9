// `SIGBREAK` is Windows's Ctrl-Break: on a Unix target the error is on the name, and says
// where it exists.
use evloop::prelude::*;

#[event_machine]
struct Daemon;

#[event_machine]
impl Daemon {
    #[on_signal(SIGBREAK)]
    fn on_break(&mut self, _ctx: &mut Ctx<Self>) {}
}

fn main() {}
