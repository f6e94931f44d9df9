// Named and real-time signals, with priorities and the trailing event. The machine is
// only built and dropped here (signal dispositions are process-wide). The real-time
// numbers are the target's, resolved when the loop is built: on a system without
// real-time signals (macOS, the BSDs) building it is an error that says so.
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
    let built = Daemon { reloads: 0 }.event_loop();
    match built {
        Ok(el) => assert_eq!(el.machine().reloads, 0),
        Err(e) => {
            assert!(evloop::realtime_signals().is_none(), "{e}");
            assert!(e.to_string().contains("no real-time signals"), "{e}");
        }
    }
}
