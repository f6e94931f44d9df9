// A machine generic over its backend: `backend = B` names the struct's parameter.
use evloop::prelude::*;
use std::marker::PhantomData;

#[event_machine(backend = B)]
struct Ticker<B: Backend> {
    ticks: u32,
    _b: PhantomData<B>,
}

#[event_machine]
impl<B: Backend> Ticker<B> {
    #[on_timer(1, priority = 1)]
    fn tick(&mut self, ctx: &mut Ctx<Self>) {
        self.ticks += 1;
        if self.ticks == 2 {
            ctx.exit();
        }
    }
}

fn run<B: Backend>() -> u32 {
    Ticker::<B> { ticks: 0, _b: PhantomData }.run().unwrap().ticks
}

fn main() {
    assert_eq!(run::<Poll>(), 2);
    assert_eq!(run::<Select>(), 2);
    assert_eq!(run::<DefaultBackend>(), 2);
}
