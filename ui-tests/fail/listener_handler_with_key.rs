// A `Listener` is a single source: its handler takes no key.
use evloop::prelude::*;
use evloop::Listener;

#[event_machine]
struct Server {
    listener: Listener,
}

#[event_machine]
impl Server {
    #[on_read(listener)]
    fn accept(&mut self, key: Key, _ctx: &mut Ctx<Self>) {
        let _ = key;
    }
}

fn main() {}
