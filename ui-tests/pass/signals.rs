// Named and real-time signals, with priorities and the trailing event. The machine is
// only built and dropped here (signal dispositions are process-wide).
use evloop::prelude::*;

#[event_machine]
struct Daemon {
    reloads: u32,
}

#[event_machine]
impl Daemon {
    #[on_signal(SIGHUP)]
    fn reload(&mut self, _ctx: &mut Ctx<Self>) {
        self.reloads += 1;
    }

    #[on_signal(SIGTERM, priority = 0)]
    fn stop(&mut self, ctx: &mut Ctx<Self>, ev: Event) {
        assert!(ev.count >= 1);
        ctx.exit();
    }

    #[on_signal(SIGRTMIN)]
    fn rt0(&mut self, _ctx: &mut Ctx<Self>) {}

    #[on_signal(SIGRTMIN + 1)]
    fn rt1(&mut self, _ctx: &mut Ctx<Self>) {}

    #[on_signal(SIGRTMAX - 1)]
    fn rt_high(&mut self, _ctx: &mut Ctx<Self>) {}
}

fn main() {
    let el = Daemon { reloads: 0 }.event_loop().unwrap();
    assert_eq!(el.machine().reloads, 0);
}
