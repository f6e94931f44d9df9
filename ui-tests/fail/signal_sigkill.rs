use evloop::prelude::*;

#[event_machine]
struct Daemon;

#[event_machine]
impl Daemon {
    #[on_signal(SIGKILL)]
    fn killed(&mut self, _ctx: &mut Ctx<Self>) {}
}

fn main() {}
