// A field of a generic type bounded by `AsFd`, and a `Slab` whose capacity is a const
// parameter.
use evloop::prelude::*;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;

#[event_machine]
struct Relay<S: AsFd, const N: usize> {
    sock: S,
    pool: Slab<UnixStream>,
}

#[event_machine]
impl<S: AsFd, const N: usize> Relay<S, N> {
    #[on_read(sock)]
    fn readable(&mut self, ctx: &mut Ctx<Self>) {
        ctx.exit();
    }

    #[on_read(pool)]
    fn pooled(&mut self, key: Key, ctx: &mut Ctx<Self>) {
        let _ = self.pool.remove(ctx, key);
    }
}

fn main() {
    use std::io::Write;
    let (a, mut b) = UnixStream::pair().unwrap();
    b.write_all(b"x").unwrap();
    let r = Relay::<UnixStream, 4> { sock: a, pool: Slab::default() };
    r.run().unwrap();
}
