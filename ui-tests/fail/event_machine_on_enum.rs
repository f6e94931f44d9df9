use evloop::prelude::*;

#[event_machine]
enum State {
    Idle,
}

fn main() {
    let _ = State::Idle;
}
