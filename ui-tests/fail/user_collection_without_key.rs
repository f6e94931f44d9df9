// A collection type of the user's own, declared one by its `Source::Kind`, gets the same
// check as `Slab`: its handlers take the entry's key.
use evloop::prelude::*;
use evloop::{kind, Source, Token, Watch};

struct Pool {
    slab: Slab<std::net::TcpStream>,
}

impl Source for Pool {
    type Kind = kind::Collection;
    fn capacity(&self) -> usize {
        self.slab.capacity()
    }
    fn attach<M: Machine>(&mut self, ctx: &mut Ctx<M>, tag: u16, watch: Watch) -> evloop::Result<()> {
        self.slab.attach(ctx, tag, watch)
    }
    fn entry(&self, token: Token) -> Option<Key> {
        self.slab.entry(token)
    }
}

#[event_machine]
struct Server {
    pool: Pool,
}

#[event_machine]
impl Server {
    #[on_read(pool)]
    fn readable(&mut self, _ctx: &mut Ctx<Self>) {}
}

fn main() {}
