// `event_loop()` gives the core's EventLoop: run_once, run_nowait, poll, pollable_fd,
// ctx().
use evloop::prelude::*;
use std::time::Duration;

#[event_machine]
struct Ticker {
    ticks: u32,
}

#[event_machine]
impl Ticker {
    #[on_timer(1)]
    fn tick(&mut self, _ctx: &mut Ctx<Self>) {
        self.ticks += 1;
    }
}

fn main() {
    let mut el = Ticker { ticks: 0 }.event_loop().unwrap();
    assert_eq!(el.run_once().unwrap(), Exit::Done);
    el.run_nowait().unwrap();
    el.poll(Some(Duration::from_millis(5))).unwrap();
    let _ = el.pollable_fd();
    assert!(el.machine().ticks >= 1);
    el.ctx().exit();
}
