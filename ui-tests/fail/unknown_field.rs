// The field named in the attribute does not exist: rustc lists the fields.
use evloop::prelude::*;
use std::net::TcpListener;

#[event_machine]
struct Server {
    listener: TcpListener,
}

#[event_machine]
impl Server {
    #[on_read(lisener)]
    fn accept(&mut self, _ctx: &mut Ctx<Self>) {
        let _ = self.listener.accept();
    }
}

fn main() {
    let _ = Server::run;
}
