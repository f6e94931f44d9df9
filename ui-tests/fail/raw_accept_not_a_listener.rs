// `raw_accept` silences the warning on a plain listener's `#[on_read]`; on any other
// field there is nothing to silence.
use evloop::prelude::*;
use evloop::Listener;

#[event_machine]
struct Server {
    listener: Listener,
}

#[event_machine]
impl Server {
    #[on_read(listener, raw_accept)]
    fn accept(&mut self, ctx: &mut Ctx<Self>) {
        self.listener.accept(ctx, |_, _conn| {});
    }
}

fn main() {}
