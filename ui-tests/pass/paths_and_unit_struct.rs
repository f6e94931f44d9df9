// Attributes and types by full path; a unit struct; no prelude.
#[evloop::event_machine]
struct Tick;

#[evloop::event_machine]
impl Tick {
    #[evloop::on_timer(1, once)]
    fn tick(&mut self, ctx: &mut evloop::Ctx<Self>, _ev: evloop::Event) {
        ctx.exit();
    }
}

fn main() {
    Tick.run().unwrap();
}
