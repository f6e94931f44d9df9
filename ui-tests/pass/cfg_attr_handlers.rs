// `#[cfg_attr(pred, on_...)]` works: the method is a handler exactly when `pred` holds,
// and alternatives under exclusive cfgs may share a field.
use evloop::prelude::*;

#[event_machine]
struct Ticker {
    which: &'static str,
}

#[event_machine]
impl Ticker {
    #[cfg_attr(unix, on_timer(1, once))]
    fn on_unix(&mut self, _ctx: &mut Ctx<Self>) {
        self.which = "unix";
    }

    #[cfg_attr(not(unix), on_timer(1, once))]
    fn elsewhere(&mut self, _ctx: &mut Ctx<Self>) {
        self.which = "other";
    }

    #[cfg_attr(any(), on_timer(1))]
    #[allow(dead_code)]
    fn not_a_handler(&mut self, _ctx: &mut Ctx<Self>) {
        unreachable!()
    }

    #[cfg_attr(all(), cfg_attr(unix, on_start))]
    fn nested(&mut self, _ctx: &mut Ctx<Self>) {}
}

fn main() {
    let t = Ticker { which: "" }.run().unwrap();
    assert_eq!(t.which, if cfg!(unix) { "unix" } else { "other" });
}
