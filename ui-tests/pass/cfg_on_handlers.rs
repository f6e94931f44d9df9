// `#[cfg]` on a handler removes it everywhere: registration, dispatch, checks.
use evloop::prelude::*;
use std::net::TcpListener;

#[event_machine]
struct Server {
    listener: TcpListener,
    ticks: u32,
}

#[event_machine]
impl Server {
    #[cfg(any())]
    #[on_read(listener)]
    fn never_compiled(&mut self, _ctx: &mut Ctx<Self>) {}

    #[cfg(any())]
    #[on_timer(1)]
    fn never_either(&mut self, _ctx: &mut Ctx<Self>) {}

    #[cfg(all())]
    #[on_timer(1, once)]
    fn compiled(&mut self, _ctx: &mut Ctx<Self>) {
        self.ticks += 1;
    }
}

fn main() {
    let mut el = Server {
        listener: TcpListener::bind("127.0.0.1:0").unwrap(),
        ticks: 0,
    }
    .event_loop()
    .unwrap();
    // The cfg'd-out listener and timer were never registered: one timer only.
    assert_eq!(el.ctx().source_count(), 1);
    el.run().unwrap();
    assert_eq!(el.machine().ticks, 1);
}
