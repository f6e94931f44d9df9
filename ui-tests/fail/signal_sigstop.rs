use evloop::prelude::*;

#[event_machine]
struct Daemon;

#[event_machine]
impl Daemon {
    #[on_signal(SIGSTOP)]
    fn stopped(&mut self, _ctx: &mut Ctx<Self>) {}
}

fn main() {}
