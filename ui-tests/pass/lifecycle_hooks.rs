// on_start, on_idle, before_wait, after_wait, on_wake (with the trailing event).
use evloop::prelude::*;

#[event_machine]
struct Life {
    log: Vec<&'static str>,
    idles: u32,
}

#[event_machine]
impl Life {
    #[on_start]
    fn started(&mut self, ctx: &mut Ctx<Self>) {
        self.log.push("start");
        ctx.wake_handle().wake().unwrap();
    }

    #[on_idle]
    fn background(&mut self, ctx: &mut Ctx<Self>) {
        self.idles += 1;
        if self.idles == 3 {
            ctx.set_idle(false);
        }
    }

    #[before_wait]
    fn prepare(&mut self, _ctx: &mut Ctx<Self>) {
        self.log.push("before");
    }

    #[after_wait]
    fn check(&mut self, _ctx: &mut Ctx<Self>) {
        self.log.push("after");
    }

    #[on_wake]
    fn woken(&mut self, _ctx: &mut Ctx<Self>, ev: Event) {
        assert!(ev.ready.is_wake());
        self.log.push("wake");
    }
}

fn main() {
    let mut el = Life { log: vec![], idles: 0 }.event_loop().unwrap();
    el.run_nowait().unwrap();
    while el.machine().idles < 3 {
        el.run_nowait().unwrap();
    }
    let m = el.into_machine();
    assert_eq!(m.log[0], "start");
    assert!(m.log.contains(&"wake") && m.log.contains(&"before") && m.log.contains(&"after"));
}
