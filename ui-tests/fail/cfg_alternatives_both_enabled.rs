// Two handlers for one field under different cfgs are fine as alternatives; compiled
// in together, they are a duplicate.
use evloop::prelude::*;
use evloop::Listener;

#[event_machine]
struct Server {
    listener: Listener,
}

#[event_machine]
impl Server {
    #[cfg_attr(unix, on_read(listener))]
    fn accept_unix(&mut self, _ctx: &mut Ctx<Self>) {}

    #[cfg_attr(not(windows), on_read(listener))]
    fn accept_other(&mut self, _ctx: &mut Ctx<Self>) {}
}

fn main() {}
