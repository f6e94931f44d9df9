// A machine with no handler: it has nothing to watch, so `run` returns at once.
use evloop::prelude::*;

#[event_machine]
struct Empty {
    n: u8,
}

#[event_machine]
impl Empty {
    fn n(&self) -> u8 {
        self.n
    }
}

fn main() {
    assert_eq!(Empty { n: 7 }.run().unwrap().n(), 7);
}
