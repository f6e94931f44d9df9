//! The trait a machine implements: the whole interface between the loop and user code.

use evloop_backends::{Backend, Ready};

use crate::{Ctx, Result, SourceId, Token};

/// One dispatch: which source, what happened.
///
/// ```
/// use evloop_core::{Event, Ready, Token};
/// fn describe(ev: &Event) -> &'static str {
///     match (ev.ready.is_readable(), ev.ready.is_timeout()) {
///         (true, true) => "data arrived as the timeout expired",
///         (true, false) => "data",
///         (false, true) => "idle timeout",
///         _ => "other",
///     }
/// }
/// # let _ = describe;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// The token the source was registered with.
    pub token: Token,
    /// Everything that happened to the source since its last dispatch, merged: I/O bits,
    /// `TIMEOUT`, `SIGNAL`, `ACTIVATED`, `WAKE`.
    pub ready: Ready,
    /// The loop's handle of the source (to stop, re-arm or remove it).
    pub source: SourceId,
    /// For a signal, how many times it arrived since the last dispatch; for a periodic
    /// timer, how many periods elapsed (more than 1 if the process stalled; the timer
    /// still fires once); otherwise 0.
    pub count: u32,
}

/// A state machine driven by an [`EventLoop`](crate::EventLoop).
///
/// `setup` registers the machine's static sources; `dispatch` receives every event and
/// calls the right handler, normally with a `match` on the token. The loop is generic
/// over the machine, so the call from the loop to `dispatch` and from `dispatch` to each
/// handler is static: no `dyn`, no function pointer, no allocation. `#[event_machine]`
/// writes exactly this impl; you can write it by hand.
///
/// ```
/// use evloop_core::{Ctx, DefaultBackend, Event, EventLoop, Exit, Machine, Result, Token};
/// use std::time::Duration;
///
/// struct Ticker { ticks: u32 }
/// const TICK: Token = Token(1);
///
/// impl Machine for Ticker {
///     type Backend = DefaultBackend;
///     fn setup(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
///         ctx.add_periodic(TICK, Duration::from_millis(1))?;
///         Ok(())
///     }
///     fn dispatch(&mut self, ctx: &mut Ctx<Self>, ev: Event) {
///         match ev.token {
///             TICK => {
///                 self.ticks += 1;
///                 if self.ticks == 3 { ctx.exit(); }
///             }
///             _ => {}
///         }
///     }
/// }
///
/// let mut el = EventLoop::new(Ticker { ticks: 0 }).unwrap();
/// assert_eq!(el.run().unwrap(), Exit::Exited);
/// assert_eq!(el.machine().ticks, 3);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an event machine",
    label = "this type has no `impl Machine`",
    note = "annotate the struct and its `impl` block with `#[event_machine]`, or implement `evloop::Machine` by hand"
)]
pub trait Machine: Sized {
    /// The OS mechanism: usually [`DefaultBackend`](crate::DefaultBackend); a machine
    /// generic over `B: Backend` runs on any.
    type Backend: Backend;

    /// Register the machine's static sources. Called once, when the loop is built.
    fn setup(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        let _ = ctx;
        Ok(())
    }

    /// Handle one event.
    fn dispatch(&mut self, ctx: &mut Ctx<Self>, event: Event);

    /// Called at the start of every iteration, before the loop computes its timeout and
    /// waits (libev's prepare watcher): flush buffers, arm timers. The default does
    /// nothing and costs nothing.
    #[inline]
    fn before_wait(&mut self, ctx: &mut Ctx<Self>) {
        let _ = ctx;
    }

    /// Called right after the wait returns, before anything is dispatched (libev's
    /// check watcher). The default does nothing and costs nothing.
    #[inline]
    fn after_wait(&mut self, ctx: &mut Ctx<Self>) {
        let _ = ctx;
    }

    /// Called at the end of an iteration that dispatched nothing, while idling is on
    /// ([`Ctx::set_idle`]; libev's `ev_idle`). While it is on the loop never blocks, so
    /// background work runs whenever no event is pending; turn it off when the work is
    /// done.
    ///
    /// ```
    /// use evloop_core::*;
    /// struct Crunch { left: u32 }
    /// impl Machine for Crunch {
    ///     type Backend = DefaultBackend;
    ///     fn setup(&mut self, ctx: &mut Ctx<Self>) -> Result<()> { ctx.set_idle(true); Ok(()) }
    ///     fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {}
    ///     fn idle(&mut self, ctx: &mut Ctx<Self>) {
    ///         self.left -= 1; // one slice of background work
    ///         if self.left == 0 { ctx.set_idle(false); }
    ///     }
    /// }
    /// let mut el = EventLoop::new(Crunch { left: 3 }).unwrap();
    /// assert_eq!(el.run().unwrap(), Exit::Empty);
    /// assert_eq!(el.machine().left, 0);
    /// ```
    #[inline]
    fn idle(&mut self, ctx: &mut Ctx<Self>) {
        let _ = ctx;
    }
}
