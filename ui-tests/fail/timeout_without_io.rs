// An idle timeout is restarted by I/O: the field must be watched for some.
use evloop::prelude::*;
use std::net::TcpStream;

#[event_machine]
struct Client {
    sock: TcpStream,
}

#[event_machine]
impl Client {
    #[on_timeout(sock, ms = 5_000)]
    fn idle(&mut self, _ctx: &mut Ctx<Self>) {}
}

fn main() {}
